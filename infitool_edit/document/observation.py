"""What a command returns, and the observation text the model reads next.

Observations are compact and bounded, so that a command costs the model the
same number of tokens in a ten-line draft as in a book:

    @ok v17 13:4                     an edit (version, the author's cursor) or a note was applied
    @text 12-20 of 212               numbered lines follow: ``12│...``
    @outline 1 "# Title" | 12 "## Introduction"
    @found 3: 13:1 | 40:7 | 88:2     how many, then where (line:col) the first ones start
    @check 1-12 of 12: 1 found       likely slips follow: ``3│"teh" "the"`` (replace's strings)
    @notes                           the notes follow

A ``read`` window shows at most ``MAX_READ_LINES`` lines, ``find`` lists at
most ``MAX_FOUND`` places, a line longer than ``MAX_LINE_CHARS`` is clipped
with a marker saying how much was left out, and no observation is longer
than ``MAX_OBSERVATION_CHARS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from infitool_edit.commands.ast import Command
from infitool_edit.commands.grammar import quote
from infitool_edit.document.buffer import LineBuffer, Position
from infitool_edit.document.edits import TextEdit
from infitool_edit.document.proofread import Finding
from infitool_edit.document.structure import HeadingInfo

MAX_READ_LINES = 40
MAX_FOUND = 20
MAX_OBSERVATION_CHARS = 4000
MAX_LINE_CHARS = 400
GUTTER = "│"


@dataclass(frozen=True)
class Outcome:
    """The result of one applied command.

    ``kind`` is ``ok``, ``text``, ``outline``, ``found`` or ``notes``.
    ``edit`` is what changed in the draft and ``inverse`` a command that puts
    it back byte for byte (both None when the draft did not change).
    ``scale`` says how big the change was, see ``Workspace.apply``.
    ``cursor`` is where the edit left its author's cursor (0-based: the end
    of the new text), shown in the ``@ok`` answer; ``body`` is the finished
    observation of the looking commands, which do not depend on the version."""

    kind: str
    edit: TextEdit | None = None
    inverse: Command | None = None
    notes_changed: bool = False
    scale: str | None = None
    cursor: Position | None = None
    body: str = ""

    def render(self, version: int | None = None) -> str:
        if self.kind != "ok":
            return self.body
        parts = ["@ok"]
        if version is not None:
            parts.append(f"v{version}")
        if self.cursor is not None:
            parts.append(format_position(self.cursor))
        return " ".join(parts)


def format_position(position: Position) -> str:
    return f"{position[0] + 1}:{position[1] + 1}"


def clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[+{len(text) - limit} chars]"


def text_window(buffer: LineBuffer, first: int, last: int, *, first_col: int = 0, suffix: str = "") -> str:
    """``@text a-b of n`` and numbered lines ``first..last`` (0-based,
    inclusive), cut short to stay inside the bounds. ``first_col`` starts
    the first line mid-way (a span read of a long line), shown as ``12:401│``."""
    count = buffer.line_count
    if count == 0:
        return f"@text (empty draft){suffix}"
    first = max(0, min(first, count - 1))
    last = max(first, min(last, count - 1, first + MAX_READ_LINES - 1))
    budget = MAX_OBSERVATION_CHARS - 64 - len(suffix)  # the header's room
    shown: list[str] = []
    for line in range(first, last + 1):
        text = buffer.lines[line]
        label = str(line + 1)
        if line == first and first_col > 0:
            text, label = text[first_col:], f"{line + 1}:{first_col + 1}"
        row = f"{label}{GUTTER}{clip(text)}"
        if shown and len(row) + 1 > budget:  # the first row always fits: MAX_LINE_CHARS is far below
            break
        shown.append(row)
        budget -= len(row) + 1
    end = first + len(shown)
    return "\n".join([f"@text {first + 1}-{end} of {count}{suffix}", *shown])


def outline_observation(headings: list[HeadingInfo]) -> str:
    if not headings:
        return "@outline (no headings)"
    parts: list[str] = []
    size = len("@outline ")
    for index, heading in enumerate(headings):
        part = f"{heading.line} {quote('#' * heading.level + ' ' + clip(heading.title, 120))}"
        if size + len(part) + 3 > MAX_OBSERVATION_CHARS - 32:
            parts.append(f"… {len(headings) - index} more")
            break
        parts.append(part)
        size += len(part) + 3
    return "@outline " + " | ".join(parts)


def found_observation(count: int, places: list[Position]) -> str:
    if count == 0:
        return "@found 0"
    listed = " | ".join(format_position(place) for place in places)
    more = " | …" if count > len(places) else ""
    return f"@found {count}: {listed}{more}"


def check_observation(findings: list[Finding], first: int, last: int, count: int) -> str:
    """``@check a-b of n: k found`` (lines a to b were looked at), then each
    finding as ``line│"old" "new"``: ``replace "old" "new"`` fixes it (``old``
    first occurs in the draft there), or, where the line's whole text occurs
    earlier too, ``replace line "old" "new"``."""
    header = f"@check {first + 1}-{last + 1} of {count}: "
    if not findings:
        return header + "nothing found"
    rows: list[str] = []
    budget = MAX_OBSERVATION_CHARS - 64
    for finding in findings:
        row = f"{finding.line + 1}{GUTTER}{quote(clip(finding.old, 120))} {quote(clip(finding.new, 120))}"
        if len(row) + 1 > budget:
            break
        rows.append(row)
        budget -= len(row) + 1
    return "\n".join([header + f"{len(rows)} found", *rows])


def check_rows(observation: str) -> list[tuple[int, str]]:
    """An ``@check`` observation read back: each finding's line number and
    its strings (``"old" "new"``), in order; the reader of ``check_observation``."""
    rows = []
    for row in observation.split("\n")[1:]:
        number, strings = row.split(GUTTER, 1)
        rows.append((int(number), strings))
    return rows


def notes_observation(notes: str) -> str:
    """The notes, newest last; when they are too long, their most recent part."""
    if not notes:
        return "@notes (empty)"
    budget = MAX_OBSERVATION_CHARS - 64
    if len(notes) <= budget:
        return "@notes\n" + notes.rstrip("\n")
    tail = notes[-budget:]
    tail = tail[tail.find("\n") + 1 :] if "\n" in tail[:-1] else tail
    return f"@notes (the last {len(tail)} of {len(notes)} characters)\n" + tail.rstrip("\n")
