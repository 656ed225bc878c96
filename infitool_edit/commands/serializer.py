"""Writing commands back as lines: ``serialize``.

The canonical spelling of a command, the one the history stores as a
commit message: ``parse(serialize(c)) == c`` for every command that can be
written at all. A command that cannot (line 0, an empty search string, a
raw control character other than newline and tab in a string, a heading
slug with a space) raises ``UnwritableCommand`` (a ``ValueError``) instead
of producing a line that would not read back.
"""

from __future__ import annotations

import dataclasses
import re

from infitool_edit.commands import grammar
from infitool_edit.commands.ast import Command
from infitool_edit.commands.regular import to_regex
from infitool_edit.errors import InfitoolError


class UnwritableCommand(InfitoolError, ValueError):
    """A command no line of the language spells (see the module's docstring)."""


_KIND_PATTERNS: dict[str, re.Pattern[str]] = {}


def _kind_pattern(kind: grammar.TokenKind) -> re.Pattern[str]:
    pattern = _KIND_PATTERNS.get(kind.name)
    if pattern is None:
        # Possessive repeats (``)++``): a backtracking ``(?:a|b)+`` keeps a
        # backtrack point per character, 120 bytes each (a 10 MB insert cost
        # 1.2 GB here). In every token shape a repeat is followed by a
        # character its body cannot start with (the closing quote, a ``/``
        # between slugs, the end), so giving up backtracking changes nothing
        # it matches; the round-trip tests hold serialize to parse.
        pattern = _KIND_PATTERNS[kind.name] = re.compile(to_regex(kind.shape).replace(")+", ")++"))
    return pattern


def _encode(kind: grammar.TokenKind, value: object) -> str | None:
    """The token for ``value`` as ``kind``, or None when it is not one."""
    if type(value) is not kind.value_type:
        return None
    try:
        token = kind.encode(value)
    except (TypeError, ValueError, AttributeError):
        return None
    if not _kind_pattern(kind).fullmatch(token):
        return None
    # A token can be well formed and still mean something else (a slug
    # holding "/" reads back as two slugs): only a faithful one will do.
    return token if kind.decode(token) == value else None


def _write(form: grammar.Form, command: Command) -> str | None:
    filled = {slot.field for slot in form.slots}
    for field in dataclasses.fields(command):
        if field.name not in filled and getattr(command, field.name) != field.default:
            return None
    tokens = [form.verb]
    for slot in form.slots:
        value = getattr(command, slot.field)
        token = next((t for kind in slot.kinds if (t := _encode(kind, value)) is not None), None)
        if token is None:
            return None
        tokens.append(token)
    return " ".join(tokens)


def serialize(command: Command) -> str:
    """The one line that ``parse`` reads back as ``command``."""
    forms = grammar.FORMS_BY_COMMAND.get(type(command))
    if forms is None:
        raise UnwritableCommand(f"not a command: {command!r}")
    for form in forms:
        line = _write(form, command)
        if line is not None:
            return line
    usages = " or ".join(form.usage for form in forms)
    raise UnwritableCommand(f"cannot write this {type(command).__name__} as a command line ({usages}): {_shown(command)}")


def _shown(command: Command) -> str:
    try:
        return repr(command)[:200]
    except ValueError:  # an int too long for Python to print
        return "a number too long to print"
