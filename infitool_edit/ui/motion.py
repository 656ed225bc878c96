"""Where the writer's cursor goes: words, screen rows, selections.

Pure functions over a list of lines (the editor's ``DraftBuffer.lines``), so
the editor pane only dispatches keys and paints. Word motion follows
Textual's ``TextArea`` (and VS Code): a word is a run of word characters;
moving left or right skips the spaces before the next word, and at the
start or end of a line moves to the neighbouring line.
"""

from __future__ import annotations

import re
from bisect import bisect_right

from infitool_edit.document.positions import Position

_WORD = re.compile(r"\w+")
_PUNCT = re.compile(r"[^\w\s]+")
_WORD_END = re.compile(r"\w+$")
_PUNCT_END = re.compile(r"[^\w\s]+$")
_LIST_ITEM = re.compile(r"\s*([-*+]|\d+[.)])\s")


def word_left(lines: list[str], position: Position) -> Position:
    """The start of the word before ``position`` (the previous line's end at a line start)."""
    line, col = position
    if col == 0:
        return (line - 1, len(lines[line - 1])) if line else (0, 0)
    before = lines[line][:col].rstrip()
    run = _WORD_END.search(before) or _PUNCT_END.search(before)
    return line, run.start() if run else 0


def word_right(lines: list[str], position: Position) -> Position:
    """The end of the word after ``position`` (the next line's start at a line end)."""
    line, col = position
    text = lines[line]
    if col >= len(text):
        return (line + 1, 0) if line + 1 < len(lines) else (line, len(text))
    skipped = col + len(text[col:]) - len(text[col:].lstrip())
    run = _WORD.match(text, skipped) or _PUNCT.match(text, skipped)
    return line, run.end() if run else len(text)


def word_at(lines: list[str], position: Position) -> tuple[Position, Position]:
    """The word under ``position`` (a double click), or the single character there."""
    line, col = position
    text = lines[line]
    for match in _WORD.finditer(text):
        if match.start() <= col < match.end() or (col == len(text) and match.end() == col):
            return (line, match.start()), (line, match.end())
    return (line, col), (line, min(col + 1, len(text)))


def line_span(lines: list[str], line: int) -> tuple[Position, Position]:
    """A whole line with its newline (a triple click): up to the next line's start."""
    if line + 1 < len(lines):
        return (line, 0), (line + 1, 0)
    return (line, 0), (line, len(lines[line]))


def row_home(offsets: tuple[int, ...], position: Position) -> Position:
    """Home with soft wrap: the start of the screen row, or of the line when already there."""
    line, col = position
    row_start = offsets[bisect_right(offsets, col) - 1]
    if col == row_start and col:
        return line, 0
    return line, row_start


def row_end(offsets: tuple[int, ...], length: int, position: Position) -> Position:
    """End with soft wrap: the end of the screen row, or of the line when already there."""
    line, col = position
    index = bisect_right(offsets, col)
    end = offsets[index] - 1 if index < len(offsets) else length
    # a row ending in a space: stop before the next row's first character
    if col == end and end != length:
        return line, length
    return line, end


def ordered(a: Position, b: Position) -> tuple[Position, Position]:
    return (a, b) if a <= b else (b, a)


def text_between(lines: list[str], start: Position, end: Position) -> str:
    """The text from ``start`` to ``end`` (``start <= end``)."""
    (sl, sc), (el, ec) = start, end
    if sl == el:
        return lines[sl][sc:ec]
    return "\n".join([lines[sl][sc:], *lines[sl + 1 : el], lines[el][:ec]])


def is_list_item(line_text: str) -> bool:
    """Whether Tab should nest this line (a markdown list item) rather than
    insert an indent at the cursor."""
    return bool(_LIST_ITEM.match(line_text))
