"""What the agent runtime tells its listeners (the TUI, the headless CLI).

Events are plain frozen dataclasses so they cross threads safely: the
runtime emits them from its worker thread; the TUI turns each into a
Textual message with ``post_message`` / ``call_from_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass

from infitool_edit.commands import ast
from infitool_edit.document.edits import TextEdit


@dataclass(frozen=True)
class TokenDecided:
    """One token of the command being generated, as text (may be a partial
    UTF-8 character's worth of nothing: ``text`` is then empty)."""

    text: str


@dataclass(frozen=True)
class CommandStarted:
    """The model began a new command line."""


@dataclass(frozen=True)
class CommandApplied:
    """A command was parsed, applied and recorded as ``version``."""

    line: str  # the serialized command, as stored in the history
    author: str  # "model:<name>" or the writer's name
    version: int | None  # None for commands that made no version (read-only)
    observation: str  # the text appended to the stream after the command
    edit: TextEdit | None  # what changed in the draft, for incremental views
    command: ast.Command | None = None  # as parsed (the session's Executed.command)
    scale: str | None = None  # how much prose changed, by the document's rule
    notes_changed: bool = False


@dataclass(frozen=True)
class CommandFailed:
    """A command could not be parsed or applied; nothing changed. The message
    is also what the model reads as its observation."""

    line: str
    message: str


@dataclass(frozen=True)
class Paused:
    """The runtime stopped at a token boundary (writer took the pen)."""


@dataclass(frozen=True)
class Resumed:
    """The model holds the pen again."""


@dataclass(frozen=True)
class Finished:
    """The model said ``done`` or reached its command budget."""

    summary: str


@dataclass(frozen=True)
class Stats:
    """Periodic figures for the status bar."""

    tokens_per_s: float
    stream_tokens: int
    state_bytes: int


Event = (
    TokenDecided | CommandStarted | CommandApplied | CommandFailed | Paused
    | Resumed | Finished | Stats
)
