"""The workspace: a draft, the model's notes and two cursors, changed only by
commands.

``Workspace.apply`` resolves a command's address against the current text,
applies it, and answers with an ``Outcome``: the observation, the primitive
``TextEdit``, and the inverse command. An address that does not resolve
raises ``ApplyError`` before anything is touched, so a failed command never
leaves a half-applied edit, moved cursor or changed notes behind.

Line endings: CRLF and lone CR are normalised to LF on load and in every
text a command brings in (tree-sitter ends lines at CR too, and line numbers
must agree). ``Workspace.newline`` remembers whether the draft came with
CRLF, for whoever writes it back to disk.
"""

from __future__ import annotations

import re

from infitool_edit.errors import InfitoolError
from infitool_edit.commands import ast
from infitool_edit.document.buffer import LineBuffer, Position, normalize_newlines
from infitool_edit.document.edits import TextEdit
from infitool_edit.document.moving import MoveRefused, plan_line_move
from infitool_edit.document.positions import common_prefix, end_after, position_of, shift
from infitool_edit.document.observation import (
    MAX_FOUND,
    MAX_READ_LINES,
    Outcome,
    check_observation,
    found_observation,
    format_position,
    notes_observation,
    outline_observation,
    text_window,
)
from infitool_edit.document.proofread import Finding, check as proofread, unique_in_draft
from infitool_edit.document.structure import HeadingInfo, MarkdownStructure

# Lines shown above the cursor by a bare ``read`` or a ``jump``.
CONTEXT_ABOVE = 5
# At most this many lines are looked at by one ``check`` (a bare one starts
# at line 1); the answer says which, so the next can go on from there.
MAX_CHECK_LINES = 400
PROSE_CHECK_LINES = 64
_TWO_WORDS = re.compile(r"\S\s+\S")  # more than one word, as str.split() counts them
_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)(?:\s|$)")

Range = tuple[Position, Position]


class ApplyError(InfitoolError, ValueError):
    """A command that cannot be applied to this draft; nothing was changed.
    ``str()`` is one line, meant for the writer and the model alike."""


class Workspace:
    def __init__(self, draft: str, notes: str = ""):
        self.newline = "\r\n" if "\r\n" in draft else "\n"
        self._buffer = LineBuffer(normalize_newlines(draft))
        self._structure = MarkdownStructure(self._buffer.lines)
        self.notes = normalize_newlines(notes)
        self.model_cursor: Position = (0, 0)
        self.writer_cursor: Position = (0, 0)

    @property
    def text(self) -> str:
        return self._buffer.text

    @property
    def lines(self) -> list[str]:
        """The draft split on ``\\n`` (read only: edit through ``apply``)."""
        return self._buffer.lines

    @property
    def line_count(self) -> int:
        return self._buffer.line_count

    def outline(self) -> list[HeadingInfo]:
        return self._structure.outline()

    def heading_slugs(self) -> tuple[tuple[int, str], ...]:
        """(level, slug) of every heading, in order (what the constrained
        decoder holds heading paths to)."""
        return self._structure.heading_slugs()

    def take_splice(self) -> tuple[str, str, int, int, int] | None:
        """How the last edit made the text from the one before, as
        (before, after, begin, old_stop, new_stop) character offsets, when
        the buffer knows (a large draft; see ``LineBuffer.last_splice``);
        None otherwise. Asked once: it is forgotten when taken."""
        splice, self._buffer.last_splice = self._buffer.last_splice, None
        return splice

    # --- applying commands ----------------------------------------------------

    def apply(self, cmd: ast.Command, *, author: str = "model") -> Outcome:
        """Apply one command for ``author`` (``model`` or ``model:<name>`` moves
        the model's cursor; anyone else is the writer).

        ``Outcome.scale`` grades an edit by what it touched, largest first:
        ``structure`` when a heading line is touched, a heading appears or
        disappears, or a line break is added or removed next to a blank line
        (a paragraph boundary); ``paragraph`` when the removed or inserted text
        spans lines or holds two or more sentence ends; ``sentence`` when it
        holds a sentence end or several words; ``word`` otherwise."""
        is_model = author == "model" or author.startswith("model:")
        if isinstance(cmd, ast.Insert):
            if not cmd.text:
                raise ApplyError("insert needs some text")
            at = self._point(cmd.at)
            return self._edit(at, at, normalize_newlines(cmd.text), is_model)
        if isinstance(cmd, ast.Delete):
            start, end = self._range(cmd.target)
            if start == end:
                raise ApplyError("nothing to delete there")
            return self._edit(start, end, "", is_model)
        if isinstance(cmd, ast.Replace):
            start, end = self._range(cmd.target)
            if cmd.old is not None:
                start, end = self._find_inside(normalize_newlines(cmd.old), start, end)
            if start == end and not cmd.new:
                raise ApplyError("nothing to replace there, and nothing to put there")
            new = normalize_newlines(cmd.new)
            # A replace that leaves the text as it was would still be a version
            # in the history: a step the writer scrubs past that changed nothing.
            if self._buffer.slice(start, end) == new:
                raise ApplyError("the new text is the text already there; nothing to change")
            return self._edit(start, end, new, is_model)
        if isinstance(cmd, ast.Move):
            start, end, new, landed = self._move(cmd)
            return self._edit(start, end, new, is_model, cursor=landed)
        if isinstance(cmd, ast.Jump):
            # Jumping to a section lands on its heading, not past its end.
            cursor = (self._section(cmd.to)[0], 0) if isinstance(cmd.to, ast.Heading) else self._point(cmd.to)
            self._set_cursor(cursor, is_model)
            return self._look("text", self._window_around(cursor, f", cursor {format_position(cursor)}"))
        if isinstance(cmd, ast.Read):
            return self._look("text", self._read(cmd.target, is_model))
        if isinstance(cmd, ast.Find):
            needle = normalize_newlines(cmd.text)
            if not needle:
                raise ApplyError("find needs some text")
            return self._look("found", found_observation(*self._buffer.find_all(needle, MAX_FOUND)))
        if isinstance(cmd, ast.Check):
            return self._look("check", self._check(cmd.target))
        if isinstance(cmd, ast.Fix):
            start, end, new = self._fix(cmd.target)
            return self._edit(start, end, new, is_model)
        if isinstance(cmd, ast.Outline):
            return self._look("outline", outline_observation(self.outline()))
        if isinstance(cmd, ast.Note):
            text = normalize_newlines(cmd.text)
            if not text:
                raise ApplyError("note needs some text")
            self.notes += text if text.endswith("\n") else text + "\n"
            return Outcome("ok", notes_changed=True)
        if isinstance(cmd, ast.Notes):
            if cmd.text is None:
                return self._look("notes", notes_observation(self.notes))
            text = normalize_newlines(cmd.text)
            if text and not text.endswith("\n"):
                text += "\n"  # notes are lines, as `note` leaves them
            changed = text != self.notes
            self.notes = text
            return Outcome("ok", notes_changed=changed)
        name = type(cmd).__name__.lower()
        raise ApplyError(f"{name} is the session's command, not the document's")

    def removal(self, cmd: ast.Command) -> str:
        """The text ``cmd`` would take out of the draft if applied now (empty
        for a command that removes nothing, such as a ``move``: what it cuts
        stays in the draft), changing nothing. Raises the ApplyError
        ``apply`` would raise for an address that is not there."""
        if isinstance(cmd, ast.Delete):
            start, end = self._range(cmd.target)
            return self._buffer.slice(start, end)
        if isinstance(cmd, ast.Replace):
            start, end = self._range(cmd.target)
            if cmd.old is not None:
                start, end = self._find_inside(normalize_newlines(cmd.old), start, end)
            return self._buffer.slice(start, end)
        if isinstance(cmd, ast.Fix):
            start, end, _ = self._fix(cmd.target)
            return self._buffer.slice(start, end)
        return ""

    def _look(self, kind: str, body: str) -> Outcome:
        return Outcome(kind, body=body)

    def _set_cursor(self, cursor: Position, is_model: bool) -> None:
        if is_model:
            self.model_cursor = cursor
        else:
            self.writer_cursor = cursor

    def _edit(self, start: Position, end: Position, text: str, is_model: bool,
              cursor: Position | None = None) -> Outcome:
        """Replace ``[start, end)`` with ``text``; the editing author's cursor
        goes to ``cursor`` if given, else to the end of the new text."""
        buffer, structure = self._buffer, self._structure
        old_text = buffer.slice(start, end)
        headings_before = structure.heading_count
        headings_touched = structure.headings_in(start[0], end[0] + 1)
        blank_touched = any(not line.strip() for line in buffer.lines[start[0] : end[0] + 1])

        # Short edits may skip the reparse when they only touch prose lines.
        old_lines = buffer.lines[start[0] : end[0] + 1] if end[0] - start[0] < PROSE_CHECK_LINES else None
        new_end = buffer.replace(start, end, text)
        structure.update(buffer.lines, start[0], end[0] + 1, new_end[0] + 1, old_lines)

        headings_touched += structure.headings_in(start[0], new_end[0] + 1)
        blank_touched = blank_touched or any(not line.strip() for line in buffer.lines[start[0] : new_end[0] + 1])
        structural = headings_touched > 0 or structure.heading_count != headings_before or (
            blank_touched and ("\n" in old_text or "\n" in text)
        )
        scale = "structure" if structural else _prose_scale(old_text, text)

        other = self.writer_cursor if is_model else self.model_cursor
        other = shift(other, start, end, new_end)
        own = new_end if cursor is None else cursor
        self.model_cursor, self.writer_cursor = (own, other) if is_model else (other, own)
        return Outcome(
            "ok",
            edit=TextEdit(start, end, text),
            inverse=_inverse(start, new_end, old_text, text),
            scale=scale,
            cursor=own,
        )

    def rewrite_scale(self, new_text: str) -> str | None:
        """The scale of turning this draft into ``new_text`` wholesale (a
        rewind, a fork): the rule of ``apply``, graded on the one stretch that
        differs. The workspace itself does not change; None: nothing differs."""
        old, new = self.text, normalize_newlines(new_text)
        if old == new:
            return None
        prefix = common_prefix(old, new)
        suffix = common_prefix(old[prefix:][::-1], new[prefix:][::-1])
        start, end = position_of(old, prefix), position_of(old, len(old) - suffix)
        return Workspace(old)._edit(start, end, new[prefix : len(new) - suffix], True).scale

    # --- reading ------------------------------------------------------------

    def _read(self, target: ast.RangeAddress | None, is_model: bool) -> str:
        if target is None:
            return self._window_around(self.model_cursor if is_model else self.writer_cursor, "")
        start, end = self._range(target)
        last = end[0] - 1 if end[1] == 0 and end[0] > start[0] else end[0]
        first_col = start[1] if isinstance(target, ast.Span) else 0
        return text_window(self._buffer, start[0], last, first_col=first_col)

    def _check(self, target: ast.RangeAddress | None) -> str:
        count = self._buffer.line_count
        if count == 0:
            return "@check (empty draft): nothing found"
        findings, first, looked = self._findings(target)
        if findings:  # the draft's whole text only when there is a finding to place in it
            findings = unique_in_draft(findings, self._buffer.lines, self._buffer.text)
        return check_observation(findings, first, first + max(looked, 1) - 1, count)

    def _findings(self, target: ast.RangeAddress | None) -> tuple[list[Finding], int, int]:
        """What ``check`` finds on ``target``'s lines (from line 1 without
        one), the first line looked at (0-based) and how many were."""
        count = self._buffer.line_count
        if target is None:
            first, stop = 0, count
        else:
            start, end = self._range(target)
            first, stop = start[0], (end[0] if end[1] == 0 and end[0] > start[0] else end[0] + 1)
        stop = min(stop, count, first + MAX_CHECK_LINES)
        findings, looked = proofread(self._buffer.lines[first:stop], self._structure.line_kinds(first, stop), first)
        return findings, first, looked

    def _fix(self, target: ast.RangeAddress | None) -> tuple[Position, Position, str]:
        """The one edit that applies every finding of ``check`` on
        ``target``'s lines: from the first finding's start to the last's
        end, and the text that goes there. A line's findings never overlap
        and each ``old`` first occurs in its line where the slip is."""
        findings = self._findings(target)[0]
        if not findings:
            where = "the draft" if target is None else "there"
            raise ApplyError(f"nothing to fix in {where}: check finds nothing")
        pieces: list[str] = []
        start = at = None
        for finding in findings:
            column = self._buffer.lines[finding.line].find(finding.old)
            begin = (finding.line, column)
            if start is None:
                start = at = begin
            pieces += [self._buffer.slice(at, begin), finding.new]
            at = (finding.line, column + len(finding.old))
        return start, at, "".join(pieces)

    def _move(self, cmd: ast.Move) -> tuple[Position, Position, str, Position]:
        """The one edit that moves ``cmd.target`` to ``cmd.to``: its start,
        end and new text, and where the moved text begins after it. Whole
        lines moved to a line's start or the end keep markdown's blank lines
        (``moving.plan_line_move``); anything else is cut and pasted as it is."""
        buffer = self._buffer
        start, end = self._range(cmd.target)
        point = self._point(cmd.to)
        if start == end:
            raise ApplyError("nothing to move there")
        whole_lines = isinstance(cmd.target, (ast.Line, ast.LineRange, ast.Heading))
        if whole_lines and (point[1] == 0 or point == buffer.end):
            count = buffer.line_count

            def line_of(position: Position) -> int:  # the draft's end is past its last real line
                return count if position == buffer.end else position[0]

            try:
                plan = plan_line_move(buffer.lines, count, start[0], line_of(end), line_of(point))
            except MoveRefused as refused:
                raise ApplyError(str(refused)) from None
            # Real lines [plan.start, plan.stop) as text; the last real line's
            # newline goes with it only when the draft has one there.
            stop = (plan.stop, 0) if plan.stop < count else buffer.end
            final_newline = plan.stop < count or len(buffer.lines) > count
            text = "\n".join(plan.lines) + ("\n" if final_newline else "")
            return (plan.start, 0), stop, text, (plan.landed, 0)
        if start < point < end:
            raise ApplyError("the place to move to lies inside the text that moves")
        if point in (start, end):
            raise ApplyError("nothing would move: the text is already there")
        moving = buffer.slice(start, end)
        if point < start:
            return point, end, moving + buffer.slice(point, start), point
        between = buffer.slice(end, point)
        return start, point, between + moving, end_after(start, between)

    def _window_around(self, cursor: Position, suffix: str) -> str:
        first = max(0, cursor[0] - CONTEXT_ABOVE)
        return text_window(self._buffer, first, first + MAX_READ_LINES - 1, suffix=suffix)

    # --- addresses ------------------------------------------------------------

    def _point(self, address: ast.PointAddress) -> Position:
        buffer = self._buffer
        if isinstance(address, ast.Line):
            if not 1 <= address.line <= buffer.line_count + 1:
                raise ApplyError(self._no_line(address.line, insertion=True))
            return (address.line - 1, 0) if address.line <= len(buffer.lines) else buffer.end
        if isinstance(address, ast.Point):
            return self._position(address)
        if isinstance(address, ast.Heading):
            _, stop = self._section(address)
            return (stop, 0) if stop is not None else buffer.end
        if isinstance(address, ast.Search):
            return self._search(address)[1]
        if isinstance(address, ast.End):
            return buffer.end
        raise ApplyError(f"{type(address).__name__} is not a place in the draft")

    def _range(self, address: ast.RangeAddress) -> Range:
        buffer = self._buffer
        if isinstance(address, ast.Line):
            return self._lines(address.line, address.line)
        if isinstance(address, ast.LineRange):
            if address.start > address.end:
                raise ApplyError(f"line range {address.start}-{address.end} runs backwards")
            return self._lines(address.start, address.end)
        if isinstance(address, ast.Span):
            start, end = self._position(address.start), self._position(address.end)
            if end < start:
                raise ApplyError(f"span {format_position(start)}-{format_position(end)} runs backwards")
            return start, end
        if isinstance(address, ast.Heading):
            heading, stop = self._section(address)
            return (heading, 0), ((stop, 0) if stop is not None else buffer.end)
        if isinstance(address, ast.Search):
            return self._search(address)
        raise ApplyError(f"{type(address).__name__} is not a stretch of the draft")

    def _lines(self, first: int, last: int) -> Range:
        """Whole lines ``first..last`` (1-based), with the last one's newline."""
        buffer = self._buffer
        for line in (first, last):
            if not 1 <= line <= buffer.line_count:
                raise ApplyError(self._no_line(line, insertion=False))
        end = (last, 0) if last < len(buffer.lines) else buffer.end
        return (first - 1, 0), end

    def _position(self, point: ast.Point) -> Position:
        line, col = point.line - 1, point.col - 1
        if not 0 <= line < len(self._buffer.lines):
            raise ApplyError(self._no_line(point.line, insertion=True))
        if not self._buffer.is_position(line, col):
            width = len(self._buffer.lines[line])
            raise ApplyError(f"line {point.line} has no column {point.col} (it has {width} characters)")
        return line, col

    def _section(self, address: ast.Heading) -> tuple[int, int | None]:
        section = self._structure.find_section(address.path)
        if section is None:
            raise ApplyError(f"no heading #{'/'.join(address.path)} in the draft")
        return section

    def _search(self, address: ast.Search) -> Range:
        needle = normalize_newlines(address.text)
        found = self._buffer.find(needle) if needle else None
        if found is None:
            raise ApplyError(f"{_short(needle)} does not occur in the draft")
        return found

    def _find_inside(self, needle: str, start: Position, end: Position) -> Range:
        found = self._buffer.find(needle, start, end) if needle else None
        if found is None:
            raise ApplyError(f"{_short(needle)} does not occur in {format_position(start)}-{format_position(end)}")
        return found

    def _no_line(self, line: int, *, insertion: bool) -> str:
        count = self._buffer.line_count
        valid = f"1-{count + 1}" if insertion else (f"1-{count}" if count else "none: the draft is empty")
        return f"there is no line {line} (lines: {valid})"


def _short(text: str) -> str:
    shown = text if len(text) <= 40 else text[:40] + "…"
    return '"' + shown.replace("\n", "\\n") + '"'


def _inverse(start: Position, new_end: Position, old_text: str, new_text: str) -> ast.Command:
    """The command that turns the edited draft back into the one before."""
    at = ast.Point(start[0] + 1, start[1] + 1)
    span = ast.Span(at, ast.Point(new_end[0] + 1, new_end[1] + 1))
    if not new_text:
        return ast.Insert(at, old_text)
    if not old_text:
        return ast.Delete(span)
    return ast.Replace(span, old_text)


def _prose_scale(old_text: str, new_text: str) -> str:
    # Counted up to 2 and searched, never listed: a 10 MB insert split into
    # words was a list of two million strings.
    sentence_ends = max(_at_most_two(_SENTENCE_END.finditer(text)) for text in (old_text, new_text))
    if "\n" in old_text or "\n" in new_text or sentence_ends >= 2:
        return "paragraph"
    if sentence_ends == 1 or _TWO_WORDS.search(old_text) or _TWO_WORDS.search(new_text):
        return "sentence"
    return "word"


def _at_most_two(matches) -> int:
    count = 0
    for _ in matches:
        count += 1
        if count == 2:
            break
    return count
