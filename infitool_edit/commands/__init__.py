"""The command language: its syntax tree, its grammar, and the machines
derived from that grammar (parser, serializer, byte DFA)."""

from infitool_edit.commands.ast import *  # noqa: F401,F403  (the syntax tree is the API)
from infitool_edit.commands.ast import Command, EDITING
from infitool_edit.commands.grammar import VERBS, slugify
from infitool_edit.commands.parser import CommandError, parse, parse_script, script_lines
from infitool_edit.commands.serializer import serialize

__all__ = [
    "Command", "CommandDFA", "CommandError", "EDITING", "VERBS", "command_dfa", "parse",
    "parse_script", "script_lines", "serialize", "slugify",
]


def __getattr__(name: str):
    # The byte DFA (and numpy with it) loads on first use: only the
    # constrained decoder needs it, and the editor's first screen does not.
    if name in ("CommandDFA", "command_dfa"):
        from infitool_edit.commands import fsm

        return getattr(fsm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
