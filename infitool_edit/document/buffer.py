"""The draft's text, line-addressed, edited in place.

Two forms behind one interface, chosen by size when the buffer is made:

- A list of lines (drafts up to ``COMPACT_ABOVE`` characters). A 1 MB draft
  is some 25,000 lines; replacing a few of them is a short list splice,
  where rebuilding one big string per edit would copy the megabyte. The
  joined text is built only when asked for and kept until the next edit.
- One string and an array of line starts (larger drafts). A list of lines
  costs a Python string per line: for prose wrapped at 60 columns that is
  twice the text again (a 50 MB draft's 860,000 lines took 103 MB beside
  the 50 MB string everyone else holds). Here the text is the only copy,
  the line starts cost 8 bytes a line, a line is sliced out when asked
  for, and an edit builds the new string in one copy (``_spliced_text``;
  the file write and the history read the whole draft anyway).

Positions are 0-based ``(line, col)`` pairs, columns in code points. The
lines are the text split on ``\\n``, so a draft that ends with a newline has
an empty last line: that line is where text appended at the end goes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from infitool_edit.document.positions import Position, end_after, position_of

# Characters above which a draft is held as one string and its line starts.
COMPACT_ABOVE = 4 * 2**20
# Line starts are found this many characters at a time (bounded scratch).
_SCAN_PIECE = 1 << 22


# Characters after an edit that make the stretch it replaces unique, so that
# ``str.replace`` can splice it in one copy (see ``_spliced_text``).
_SPLICE_CONTEXT = 64


def _spliced_text(old: str, begin: int, stop: int, text: str) -> str:
    """``old[:begin] + text + old[stop:]`` with as few copies of a large
    draft as Python allows. Slicing the head and the tail and joining them
    copies the draft twice; ``str.replace(..., 1)`` builds its result in one
    allocation, one copy. It replaces the *first* occurrence, so the stretch
    is widened by the characters after it until no earlier occurrence exists
    (``find``, a read-only scan): in prose, at once. In text that repeats
    itself, the slices."""
    if begin == len(old):
        return old + text
    context = old[stop : stop + _SPLICE_CONTEXT]
    stretch = old[begin:stop] + context
    if old.find(stretch, 0, begin + len(stretch)) == begin:
        return old.replace(stretch, text + context, 1)
    new = old[:begin]
    new += text  # grown in place: no one else holds ``new``
    new += old[stop:]
    return new


def normalize_newlines(text: str) -> str:
    """CRLF and lone CR become LF: tree-sitter ends a line at a CR too, and
    line numbers must agree between the buffer and the markdown tree."""
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def newline_offsets(text: str, base: int = 0) -> np.ndarray:
    """Where each ``\\n`` of ``text`` is, plus ``base``, as int64 character
    offsets: numpy over the text a piece at a time (as ASCII bytes, or as
    UTF-32 where a piece holds more, so offsets stay in characters)."""
    found = []
    for start in range(0, len(text), _SCAN_PIECE):
        piece = text[start : start + _SCAN_PIECE]
        if piece.isascii():
            codes = np.frombuffer(piece.encode("ascii"), dtype=np.uint8)
        else:
            codes = np.frombuffer(piece.encode("utf-32-le"), dtype=np.uint32)
        found.append(np.flatnonzero(codes == 10).astype(np.int64) + (base + start))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


class TextLines(Sequence[str]):
    """The lines of a compact buffer, read-only, sliced from its text on
    demand (``lines[n]``, ``lines[a:b]``, ``len``, iteration)."""

    def __init__(self, buffer: LineBuffer):
        self._buffer = buffer

    def __len__(self) -> int:
        return len(self._buffer._starts)

    def __getitem__(self, index):
        buffer = self._buffer
        starts = buffer._starts
        count = len(starts)
        if isinstance(index, slice):
            return [self[n] for n in range(*index.indices(count))]
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("line index out of range")
        stop = starts.item(index + 1) - 1 if index + 1 < count else len(buffer._text)
        return buffer._text[starts.item(index) : stop]

    def __iter__(self) -> Iterator[str]:
        return self.between(0, len(self))

    def between(self, start: int, stop: int, *, block: int = 4096) -> Iterator[str]:
        """Lines [start, stop) in order, split from the text ``block`` lines
        at a time: a whole-draft scan at C speed, never the whole list."""
        buffer = self._buffer
        count = len(buffer._starts)
        stop = min(stop, count)
        for first in range(max(start, 0), stop, block):
            last = min(first + block, stop) - 1
            end = buffer._starts.item(last + 1) - 1 if last + 1 < count else len(buffer._text)
            yield from buffer._text[buffer._starts.item(first) : end].split("\n")


def lines_between(lines: Sequence[str], start: int, stop: int) -> Iterator[str]:
    """Lines [start, stop) of a list of lines or a ``TextLines``, in order."""
    if isinstance(lines, TextLines):
        return lines.between(start, stop)
    return iter(lines[start:stop])


class LineBuffer:
    def __init__(self, text: str, *, compact: bool | None = None):
        self.compact = len(text) > COMPACT_ABOVE if compact is None else compact
        self._text: str | None = text
        # A compact buffer's last edit, as (base, result, begin, old_stop,
        # new_stop): result == base[:begin] + new text + base[old_stop:],
        # new text ending at new_stop. The history's chunker uses it in
        # place of comparing the whole draft; taken (and let go) by
        # ``take_splice``, so it holds the old string no longer than that.
        self.last_splice: tuple[str, str, int, int, int] | None = None
        if self.compact:
            self._starts = np.concatenate((np.zeros(1, dtype=np.int64), newline_offsets(text, 1)))
            self.lines: Sequence[str] = TextLines(self)
        else:
            self.lines = text.split("\n")

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

    def _offset(self, position: Position) -> int:
        """A compact buffer's character offset of ``position``."""
        return self._starts.item(position[0]) + position[1]

    def slice(self, start: Position, end: Position) -> str:
        (start_line, start_col), (end_line, end_col) = start, end
        if start_line == end_line:
            return self.lines[start_line][start_col:end_col]
        if self.compact:
            return self.text[self._offset(start) : self._offset(end)]
        middle = self.lines[start_line + 1 : end_line]
        return "\n".join([self.lines[start_line][start_col:], *middle, self.lines[end_line][:end_col]])

    def replace(self, start: Position, end: Position, text: str) -> Position:
        """Put ``text`` in place of [start, end); returns where it ends."""
        (start_line, start_col), (end_line, end_col) = start, end
        if self.compact:
            self._replace_compact(start, end, text)
            return end_after(start, text)
        prefix = self.lines[start_line][:start_col]
        suffix = self.lines[end_line][end_col:]
        self.lines[start_line : end_line + 1] = (prefix + text + suffix).split("\n")
        self._text = None
        self.last_splice = None
        return end_after(start, text)

    def _replace_compact(self, start: Position, end: Position, text: str) -> None:
        old = self.text
        begin, stop = self._offset(start), self._offset(end)
        self._text = _spliced_text(old, begin, stop, text)
        self.last_splice = (old, self._text, begin, stop, begin + len(text))
        del old
        starts = self._starts
        self._starts = np.concatenate((
            starts[: start[0] + 1],
            newline_offsets(text, begin + 1),
            starts[end[0] + 1 :] + (len(text) - (stop - begin)),
        ))

    def offset_to_position(self, offset: int) -> Position:
        """A character offset into ``text`` as (line, col)."""
        if self.compact:
            line = int(np.searchsorted(self._starts, offset, side="right")) - 1
            return line, offset - self._starts.item(line)
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
        if self.compact:
            offset = self.text.find(needle, self._offset(start), self._offset(end or self.end))
            if offset < 0:
                return None
            return self.offset_to_position(offset), self.offset_to_position(offset + len(needle))
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
