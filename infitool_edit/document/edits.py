"""The primitive text change every editing command comes down to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextEdit:
    """Replace the text between ``start`` and ``end`` (0-based (line, column)
    pairs in the text *before* the edit, end exclusive, columns in code
    points) by ``text``. Insert: start == end. Delete: text == "".

    Views (the TUI) apply these to their own copy of the draft instead of
    reloading it, which is what keeps a 1 MB draft responsive."""

    start: tuple[int, int]
    end: tuple[int, int]
    text: str
