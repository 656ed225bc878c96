"""Reading command lines: ``parse``, ``parse_script`` and ``CommandError``.

The fast path matches the line against one regular expression per form of
its verb (all compiled from the grammar) and builds the command from the
groups. Only a line that matches none of them takes the slow path: it walks
the grammar's byte DFA to the first byte that cannot be right and reports
that byte's column and what the DFA would have taken there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from infitool_edit.errors import InfitoolError
from infitool_edit.commands import grammar
from infitool_edit.commands.ast import Command
from infitool_edit.commands.regular import to_regex


class CommandError(InfitoolError, ValueError):
    """A line that is not a command. ``column`` is 1-based and counts
    characters; ``expected`` says what would have been right there. When the
    line came from a script, ``line`` is its 1-based line number."""

    def __init__(self, column: int, expected: str, *, line: int | None = None) -> None:
        self.column = column
        self.expected = expected
        self.line = line
        where = f"column {column}" if line is None else f"line {line}, column {column}"
        super().__init__(f"{where}: expected {expected}")

    def at_line(self, line: int) -> CommandError:
        return CommandError(self.column, self.expected, line=line)


@dataclass(frozen=True)
class _CompiledForm:
    form: grammar.Form
    pattern: re.Pattern[str]
    # For each slot: (field, [(group number, kind)]) -- which group matched
    # tells which kind the token is.
    slots: tuple[tuple[str, tuple[tuple[int, grammar.TokenKind], ...]], ...]

    def build(self, match: re.Match[str]) -> Command:
        values = {}
        for field, groups in self.slots:
            for group, kind in groups:
                token = match.group(group)
                if token is not None:
                    values[field] = kind.decode(token)
                    break
        return self.form.command(**values)


def _compile(form: grammar.Form) -> _CompiledForm:
    pattern = [re.escape(form.verb)]
    slots = []
    group = 0
    for slot in form.slots:
        alternatives = []
        groups = []
        for kind in slot.kinds:
            group += 1
            alternatives.append(f"({to_regex(kind.shape)})")
            groups.append((group, kind))
        pattern.append(" (?:" + "|".join(alternatives) + ")")
        slots.append((slot.field, tuple(groups)))
    return _CompiledForm(form, re.compile("".join(pattern)), tuple(slots))


_COMPILED: dict[str, tuple[_CompiledForm, ...]] = {}


def _forms(verb: str) -> tuple[_CompiledForm, ...]:
    """A verb's compiled forms, compiled at its first use: compiling all of
    them on import took half a second of the editor's start on a busy machine."""
    compiled = _COMPILED.get(verb)
    if compiled is None:
        compiled = tuple(_compile(form) for form in grammar.FORMS_BY_VERB.get(verb, ()))
        if verb in grammar.FORMS_BY_VERB:
            _COMPILED[verb] = compiled  # (a thread racing here compiles the same patterns: harmless)
    return compiled


def parse(line: str | bytes) -> Command:
    """The command on ``line`` (without its newline), or ``CommandError``.
    Bytes must be UTF-8."""
    if isinstance(line, (bytes, bytearray, memoryview)):
        data = bytes(line)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _locate(data, bad_utf8_at=error.start) from None
    elif isinstance(line, str):
        text = line
    else:
        raise TypeError(f"parse() takes str or bytes, not {type(line).__name__}")
    for compiled in _forms(text.partition(" ")[0]):
        match = compiled.pattern.fullmatch(text)
        if match is not None:
            return compiled.build(match)
    raise _locate(text.encode("utf-8", "surrogatepass"))


def _column(data: bytes, offset: int) -> int:
    """The 1-based character column of the character holding byte ``offset``
    (the column just past the end when ``offset == len(data)``). The bytes
    before the character holding ``offset`` must be UTF-8."""
    started = sum(1 for byte in data[:offset] if not 0x80 <= byte < 0xC0)
    inside_a_character = offset < len(data) and 0x80 <= data[offset] < 0xC0 and started > 0
    return started if inside_a_character else started + 1


def _bad_utf8_column(data: bytes, offset: int) -> int:
    """The column of the first byte of a bad UTF-8 sequence: one past the
    characters before it (a stray continuation byte counts as its own)."""
    return len(data[:offset].decode("utf-8")) + 1


def _locate(data: bytes, *, bad_utf8_at: int | None = None) -> CommandError:
    from infitool_edit.commands.fsm import command_dfa  # (numpy: imported when a line is refused)

    dfa = command_dfa()
    state, read = dfa.walk(data)
    if bad_utf8_at is not None and read >= bad_utf8_at:
        return CommandError(_bad_utf8_column(data, bad_utf8_at), "valid UTF-8")
    if read == len(data) and dfa.accepting[state]:
        # The DFA took a line the regular expressions refused: they disagree,
        # which the tests rule out; still, the caller gets a CommandError.
        return CommandError(_column(data, len(data)), "a command the parser knows")
    expected = dfa.expected[state]
    if read < len(data) and (data[read] < 0x20 or data[read] == 0x7F) and "text" in expected:
        # The one mistake the bare grammar words badly: a tab or newline
        # pasted raw into a quoted string.
        expected += " (control characters are written \\n or \\t)"
    return CommandError(_column(data, read), expected)


# --- scripts ---------------------------------------------------------------


def script_lines(text: str | bytes) -> Iterator[tuple[int, Command]]:
    """``(line number, command)`` for each command of a script: one command
    per line; blank lines and lines starting with ``//`` are skipped; a
    ``\\r`` before a newline is ignored. A bad line raises ``CommandError``
    carrying its line number (nothing after it is read)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line_number = data.count(b"\n", 0, error.start) + 1
            line_start = data.rfind(b"\n", 0, error.start) + 1
            line_end = data.find(b"\n", error.start)
            line = data[line_start : None if line_end < 0 else line_end]
            column = _bad_utf8_column(line, error.start - line_start)
            raise CommandError(column, "valid UTF-8", line=line_number) from None
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        try:
            yield number, parse(line)
        except CommandError as error:
            raise error.at_line(number) from None


def parse_script(text: str | bytes) -> list[Command]:
    """Every command of a script (see ``script_lines``)."""
    return [command for _, command in script_lines(text)]
