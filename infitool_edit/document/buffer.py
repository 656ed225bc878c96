"""The draft's text as a list of lines, edited in place.

A 1 MB draft is some 25,000 lines; replacing a few of them is a short list
splice, where rebuilding one big string per edit would copy the megabyte.
The joined text is built only when asked for and kept until the next edit.

Positions are 0-based ``(line, col)`` pairs, columns in code points. The
lines are the text split on ``\\n``, so a draft that ends with a newline has
an empty last line: that line is where text appended at the end goes.
"""

from __future__ import annotations

from infitool_edit.document.positions import Position, end_after, position_of


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR become LF: tree-sitter ends a line at a CR too, and
    line numbers must agree between the buffer and the markdown tree."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


class LineBuffer:
    def __init__(self, text: str):
        self.lines: list[str] = text.split("\n")
        self._text: str | None = text

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "\n".join(self.lines)
        return self._text

    @property
    def line_count(self) -> int:
        """Lines as a writer counts them: ``"a\\nb\\n"`` has two, ``""`` none."""
        return len(self.lines) - 1 if self.lines[-1] == "" else len(self.lines)

    @property
    def end(self) -> Position:
        return len(self.lines) - 1, len(self.lines[-1])

    def is_position(self, line: int, col: int) -> bool:
        return 0 <= line < len(self.lines) and 0 <= col <= len(self.lines[line])

    def slice(self, start: Position, end: Position) -> str:
        (start_line, start_col), (end_line, end_col) = start, end
        if start_line == end_line:
            return self.lines[start_line][start_col:end_col]
        middle = self.lines[start_line + 1 : end_line]
        return "\n".join([self.lines[start_line][start_col:], *middle, self.lines[end_line][:end_col]])

    def replace(self, start: Position, end: Position, text: str) -> Position:
        """Put ``text`` in place of [start, end); returns where it ends."""
        (start_line, start_col), (end_line, end_col) = start, end
        prefix = self.lines[start_line][:start_col]
        suffix = self.lines[end_line][end_col:]
        self.lines[start_line : end_line + 1] = (prefix + text + suffix).split("\n")
        self._text = None
        return end_after(start, text)

    def offset_to_position(self, offset: int) -> Position:
        """A character offset into ``text`` as (line, col)."""
        return position_of(self.text, offset)

    def find(self, needle: str, start: Position | None = None, end: Position | None = None) -> tuple[Position, Position] | None:
        """The first occurrence of ``needle`` in [start, end) (the whole text
        by default) as a (start, end) pair of positions, or None."""
        if start is None and end is None:
            offset = self.text.find(needle)
            if offset < 0:
                return None
            return self.offset_to_position(offset), self.offset_to_position(offset + len(needle))
        start = start or (0, 0)
        region = self.slice(start, end or self.end)
        inside = region.find(needle)
        if inside < 0:
            return None
        found = end_after(start, region[:inside])
        return found, end_after(found, needle)

    def find_all(self, needle: str, limit: int) -> tuple[int, list[Position]]:
        """How many times ``needle`` occurs (not overlapping), and where the
        first ``limit`` occurrences start."""
        text = self.text
        found: list[Position] = []
        offset = text.find(needle)
        while offset >= 0 and len(found) < limit:
            found.append(self.offset_to_position(offset))
            offset = text.find(needle, offset + len(needle))
        return text.count(needle), found
