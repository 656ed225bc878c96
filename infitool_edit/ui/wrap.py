"""Soft wrap: where each screen row of a long line begins.

A row breaks after the last space that fits, or hard at the width when a
word is longer than the row. Results are cached by (line, width), so
rewrapping after an edit costs only the edited lines.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1 << 18)  # a 2 MB book's lines all fit: loading a version rewraps from the cache
def wrap_offsets(line: str, width: int) -> tuple[int, ...]:
    """Start offsets of the rows ``line`` occupies at ``width`` columns."""
    width = max(width, 1)
    if len(line) <= width:
        return (0,)
    offsets = [0]
    start = 0
    while len(line) - start > width:
        space = line.rfind(" ", start, start + width + 1)
        start = space + 1 if space > start else start + width
        offsets.append(start)
    return tuple(offsets)
