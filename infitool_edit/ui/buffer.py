"""The editor's own copy of the draft: a list of lines changed by TextEdits.

The view never reloads the draft after an edit; it applies the same
``TextEdit`` the document engine applied, which touches only the lines in the
edited region. ``apply`` reports which lines those were so the view can redo
wrapping and highlighting for them alone.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from infitool_edit.document.edits import TextEdit
from infitool_edit.document.positions import Position, end_after


@dataclass(frozen=True)
class LinesChanged:
    """Lines ``first .. first+removed-1`` became ``first .. first+added-1``;
    the edit's new text ends at ``end``."""

    first: int
    removed: int
    added: int
    end: Position


def is_fence(line: str) -> bool:
    stripped = line.lstrip(" ")
    return stripped.startswith("```") or stripped.startswith("~~~")


class DraftBuffer:
    """Lines of text (no newlines), plus the fence lines of code blocks.

    Fence lines are kept in a sorted list so "is line N inside a code block"
    is a bisect, not a scan from the top of a book-length draft.
    """

    def __init__(self, text: str = "") -> None:
        self.lines: list[str] = text.split("\n")
        has_fences = "```" in text or "~~~" in text  # most prose has none: no scan of every line
        self.fences: list[int] = [n for n, line in enumerate(self.lines) if is_fence(line)] if has_fences else []

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def line_count(self) -> int:
        return len(self.lines)

    def in_code_block(self, line: int) -> bool:
        """True when ``line`` lies strictly between an opening and a closing fence."""
        before = bisect_left(self.fences, line)
        on_fence = before < len(self.fences) and self.fences[before] == line
        return before % 2 == 1 and not on_fence

    def clamp(self, position: tuple[int, int]) -> tuple[int, int]:
        line = min(max(position[0], 0), len(self.lines) - 1)
        col = min(max(position[1], 0), len(self.lines[line]))
        return line, col

    def end(self) -> tuple[int, int]:
        return len(self.lines) - 1, len(self.lines[-1])

    def apply(self, edit: TextEdit) -> LinesChanged:
        (start_line, start_col), (end_line, end_col) = edit.start, edit.end
        head = self.lines[start_line][:start_col]
        tail = self.lines[end_line][end_col:]
        new_lines = (head + edit.text + tail).split("\n")
        self.lines[start_line : end_line + 1] = new_lines
        self._update_fences(start_line, end_line - start_line + 1, new_lines)
        return LinesChanged(start_line, end_line - start_line + 1, len(new_lines),
                            end_after(edit.start, edit.text))

    def replace_lines(self, first: int, end: int, new_lines: list[str]) -> None:
        """Lines ``first .. end-1`` become ``new_lines``."""
        self.lines[first:end] = new_lines
        self._update_fences(first, end - first, new_lines)

    def _update_fences(self, first: int, removed: int, new_lines: list[str]) -> None:
        shift = len(new_lines) - removed
        lo = bisect_left(self.fences, first)
        hi = bisect_left(self.fences, first + removed)
        kept_after = [n + shift for n in self.fences[hi:]]
        added = [first + i for i, line in enumerate(new_lines) if is_fence(line)]
        self.fences[lo:] = added + kept_after
