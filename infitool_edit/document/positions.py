"""Position arithmetic, once: where inserted text ends, and where a position
goes when a stretch of text is replaced.

Positions are 0-based ``(line, col)`` pairs, columns in code points. Every
part that keeps a copy of the draft (the document's ``LineBuffer``, the
editor's ``DraftBuffer``, the writer's pen, the session) uses these two
functions, so the views and the document cannot disagree about an edit.
"""

from __future__ import annotations

Position = tuple[int, int]


def end_after(start: Position, text: str) -> Position:
    """Where ``text`` ends when it is written at ``start``."""
    newlines = text.count("\n")
    if newlines == 0:
        return start[0], start[1] + len(text)
    return start[0] + newlines, len(text) - text.rfind("\n") - 1


def shift(position: Position, start: Position, end: Position, new_end: Position) -> Position:
    """Where ``position`` goes when ``[start, end)`` became text ending at
    ``new_end``: unmoved before the edit, along with the text after it.

    One rule for a position inside the replaced text: it goes to the edit's
    start. That place exists before and after the edit whatever was
    written, a deletion gives it anyway, and a cursor there never skips
    past new text its owner has not read yet."""
    if position <= start:
        return position
    if position < end:
        return start
    if position[0] == end[0]:
        return new_end[0], new_end[1] + position[1] - end[1]
    return position[0] + new_end[0] - end[0], position[1]


def position_of(text: str, offset: int) -> Position:
    """A character offset into ``text`` as a position."""
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


def common_prefix(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share."""
    low, high = 0, min(len(a), len(b))
    while low < high:  # a binary search of C-speed slice comparisons
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low
