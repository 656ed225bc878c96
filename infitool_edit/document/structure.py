"""The draft's markdown structure, from tree-sitter, kept current edit by edit.

What the editor needs from the markdown tree is small: the headings (for
``outline`` and ``#intro/method`` addresses) and, to know where a partial
reparse may safely start and stop, the *opaque blocks*: those that can run
over blank lines and heading-like lines (fenced code, HTML blocks, tables,
front matter, and tree-sitter's ERROR nodes). A heading inside a fenced code
block is code, not a heading; tree-sitter knows that, a regex would not.

Only top-level headings count: a ``# heading`` inside a block quote or a
list item is part of that quote or item, not of the outline.

Speed. A full tree-sitter parse of a 1 MB draft takes hundreds of
milliseconds, so an edit costs at most a parse of a bounded region:

- An edit that keeps to lines of prose inside a paragraph (lines starting
  with a letter, see ``_is_prose_edit``) changes no block at all: nothing is
  parsed, the line numbers below shift.
- Otherwise the region from the last *restart line* at or before the edit to
  the first one after it is reparsed. A restart line is one where the block
  parser is at the top level with nothing open, whatever came before: a line
  that does not start with whitespace and follows a blank line or is an ATX
  heading, outside any opaque block. The region grows while its parse ends
  inside an opaque block that may go on (opening a fence turns the rest of
  the draft into code, so that region reaches the end of the draft).

Memory. tree-sitter's tree costs tens of bytes per byte of paragraph text
(a 50 MB draft parsed whole peaked at 2.9 GB), and none of that text matters
to the block structure. So the draft is parsed region by region, between
restart lines (the same regions an edit reparses), a region of nothing but
prose lines and blank lines is not parsed at all (it holds no heading and
no block), and a long prose line reaches tree-sitter cut to its first
characters (what follows its first letter cannot change the blocks, unless
it holds a ``|`` or a ``>``, which may make a table or end an HTML block:
such lines go whole). A run of such prose lines reaches it as its first
line only: a line that starts with a letter continues whatever the line
above it was in (a paragraph, a quote or list item lazily, a code block, a
table row), so the run's other lines change no block, only row numbers,
which are mapped back. A one-paragraph 50 MB draft (860,000 lines) parsed
line by line still peaked at 700 MB and took seconds; as one line, nothing.
Setext titles are taken from the draft's own lines.
``MarkdownStructure(lines, whole=True)`` is the plain twin: one parse of the
whole text, nothing cut or skipped; the tests hold the two equal.

Headings and blocks are kept in sorted numpy arrays of line numbers, so the
shift below an edit is one slice add, as cheap at the top of a long draft as
at its end. ``tests/document/test_document_structure.py`` checks the result against a
full parse after random edits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tree_sitter_markdown
from tree_sitter import Language, Node, Parser

from infitool_edit.commands import slugify
from infitool_edit.document.buffer import lines_between

_LANGUAGE = Language(tree_sitter_markdown.language())

# Nodes that may span blank lines or lines that look like headings (a table
# row of a lone "|" takes the next line in too, "# Title" included). Where
# tree-sitter gives up, its ERROR node can swallow the rest of the draft.
_OPAQUE_BLOCKS = frozenset(
    {"fenced_code_block", "html_block", "pipe_table", "minus_metadata", "plus_metadata", "ERROR"}
)
_METADATA_FENCES = ("---", "+++")
_HEADINGS = frozenset({"atx_heading", "setext_heading"})
_ATX_LEVELS = {f"atx_h{n}_marker": n for n in range(1, 7)}
_SETEXT_LEVELS = {"setext_h1_underline": 1, "setext_h2_underline": 2}
# An ATX heading may start a region: it interrupts a paragraph, closes any
# list or quote when not indented, and is never a setext underline.
_ATX_LINE = re.compile(r"#{1,6}(?:[ \t]|$)")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
# The first parse goes region by region, each at least this many lines.
REGION_LINES = 4096
# A prose line longer than this reaches tree-sitter cut to this length.
_PROSE_KEPT = 1


@dataclass(frozen=True)
class HeadingInfo:
    """One heading of the outline. ``line`` is 1-based; ``path`` holds the
    slugs of the heading and of the headings it sits under, outermost first."""

    line: int
    level: int
    title: str
    path: tuple[str, ...]


@dataclass
class _Parsed:
    """What a reparse of lines [start, stop) found, in absolute 0-based lines."""

    heading_lines: list[int]
    heading_stops: list[int]  # the line after the heading (after a setext underline)
    heading_levels: list[int]
    heading_titles: list[str]
    block_starts: list[int]
    block_stops: list[int]
    open_at_end: bool  # an opaque block runs into the line after the region


class MarkdownStructure:
    """Headings and opaque blocks of a draft held as lines (the text split
    on ``\\n``: a list, or a large draft's ``TextLines``). The owner calls
    ``update`` after every edit."""

    def __init__(self, lines: Sequence[str], *, whole: bool = False, region_lines: int = REGION_LINES):
        self._parser = Parser(_LANGUAGE)
        self._whole = whole
        parsed = self._parse(lines, 0, len(lines)) if whole else self._parse_by_regions(lines, region_lines)
        self._heading_lines = np.array(parsed.heading_lines, dtype=np.int64)
        self._heading_stops = np.array(parsed.heading_stops, dtype=np.int64)
        self._heading_levels = parsed.heading_levels
        self._heading_titles = parsed.heading_titles
        self._heading_slugs = [slugify(title) for title in parsed.heading_titles]
        self._block_starts = np.array(parsed.block_starts, dtype=np.int64)
        self._block_stops = np.array(parsed.block_stops, dtype=np.int64)

    # --- queries -------------------------------------------------------------

    @property
    def heading_count(self) -> int:
        return len(self._heading_levels)

    def headings_in(self, first: int, stop: int) -> int:
        """How many headings start on lines [first, stop) (0-based)."""
        lines = self._heading_lines
        return int(np.searchsorted(lines, stop) - np.searchsorted(lines, first))

    def line_kinds(self, first: int, stop: int) -> list[str | None]:
        """For lines [first, stop): "heading" for a heading's lines (a setext
        underline too), None inside an opaque block (code, HTML, a table,
        front matter), "prose" otherwise; what ``check`` looks at."""
        kinds: list[str | None] = ["prose"] * (stop - first)
        for starts, stops, kind in (
            (self._heading_lines, self._heading_stops, "heading"), (self._block_starts, self._block_stops, None),
        ):
            index = max(0, int(np.searchsorted(stops, first, side="right")))
            while index < len(starts) and starts[index] < stop:
                for line in range(max(first, int(starts[index])), min(stop, int(stops[index]))):
                    kinds[line - first] = kind
                index += 1
        return kinds

    def outline(self) -> list[HeadingInfo]:
        result: list[HeadingInfo] = []
        parents: list[tuple[int, str]] = []  # (level, slug) of enclosing headings
        for line, level, title, slug in zip(
            self._heading_lines.tolist(), self._heading_levels, self._heading_titles, self._heading_slugs
        ):
            while parents and parents[-1][0] >= level:
                parents.pop()
            parents.append((level, slug))
            result.append(HeadingInfo(line + 1, level, title, tuple(s for _, s in parents)))
        return result

    def heading_slugs(self) -> tuple[tuple[int, str], ...]:
        """(level, slug) of every heading in draft order: what heading paths
        are made of (``find_section``), without building the outline."""
        return tuple(zip(self._heading_levels, self._heading_slugs))

    def find_section(self, path: tuple[str, ...]) -> tuple[int, int | None] | None:
        """The section a ``#a/b`` path names, as (heading line, line of the next
        heading of the same or a higher level, or None for the end of the
        draft), 0-based. The first part may name a heading at any level; each
        later part names the first matching heading inside the section found
        so far. None when no heading matches."""
        levels, slugs = self._heading_levels, self._heading_slugs
        lo, hi, found = 0, len(levels), -1
        for part in path:
            found = next((i for i in range(lo, hi) if slugs[i] == part), -1)
            if found < 0:
                return None
            lo, hi = found + 1, self._section_end_index(found)
        if found < 0:
            return None
        end_index = self._section_end_index(found)
        stop = int(self._heading_lines[end_index]) if end_index < len(levels) else None
        return int(self._heading_lines[found]), stop

    def _section_end_index(self, index: int) -> int:
        level = self._heading_levels[index]
        for later in range(index + 1, len(self._heading_levels)):
            if self._heading_levels[later] <= level:
                return later
        return len(self._heading_levels)

    # --- keeping up with edits ---------------------------------------------

    def update(self, lines: Sequence[str], first: int, old_stop: int, new_stop: int, old_lines: list[str] | None = None) -> None:
        """Lines [first, old_stop) of the previous draft became lines
        [first, new_stop) of ``lines``; everything else is unchanged.
        ``old_lines``, the previous text of lines [first, old_stop), lets a
        prose-only edit skip parsing (pass it when it is short).

        The stored structure stays in the previous draft's line numbers until
        the splice: a line ``n`` at or after ``new_stop`` was line
        ``n - delta`` before, which is where its old parser state is looked up."""
        delta = new_stop - old_stop
        if old_lines is not None and self._is_prose_edit(lines, first, old_stop, new_stop, old_lines):
            self._shift(old_stop, delta)
            return
        if self._front_matter_open(lines):
            # Its closing line could be anywhere below: only a full parse knows.
            self._splice(0, len(lines) - delta, delta, self._parse(lines, 0, len(lines)))
            return
        start = first
        # The edited line may only start the region after a blank line: had
        # it been a setext underline before, the heading above would change.
        while not self._is_restart(lines, start, start, after_atx=start < first):
            block_start = self._inside_block(start)
            start = block_start if block_start is not None else start - 1
        stop = self._restart_after(lines, max(new_stop, start + 1), new_stop, delta)
        while True:
            parsed = self._parse(lines, start, stop)
            if not parsed.open_at_end:
                break
            # Grow geometrically so an unclosed fence costs O(n) once, not O(n²).
            stop = self._restart_after(lines, max(stop + 1, start + 2 * (stop - start)), new_stop, delta)
        self._splice(start, stop - delta, delta, parsed)

    def _is_prose_edit(self, lines: Sequence[str], first: int, old_stop: int, new_stop: int, old_lines: list[str]) -> bool:
        """Whether the edit leaves every heading and block as it was, so nothing
        needs parsing. True for the commonest edits, to lines of prose inside
        a paragraph: a line that starts with a letter is never a heading,
        fence, HTML start, list item, quote, underline or table delimiter, and
        a run of them after a blank line (or inside a paragraph) is one
        paragraph whatever their number and text. Not when the lines touched
        or their neighbours are the text of a setext heading, lie in an
        opaque block (where ``-->`` may close it), or hold a ``|`` (which can
        make the paragraph a table's header row instead)."""
        edited = [*old_lines, *lines[first:new_stop]]
        neighbours = [lines[line] for line in (first - 1, new_stop) if 0 <= line < len(lines)]
        if not all(_is_prose(text) for text in edited):
            return False
        if not all(_is_prose(text) or not text.strip() for text in neighbours):
            return False
        old_count = len(lines) - (new_stop - old_stop)
        return not any(self._in_structure(line) for line in range(max(first - 1, 0), min(old_stop + 1, old_count)))

    def _in_structure(self, old_line: int) -> bool:
        """Whether ``old_line`` belongs to a heading or an opaque block."""
        for starts, stops in ((self._heading_lines, self._heading_stops), (self._block_starts, self._block_stops)):
            index = int(np.searchsorted(starts, old_line, side="right")) - 1
            if index >= 0 and stops[index] > old_line:
                return True
        return False

    def _shift(self, old_stop: int, delta: int) -> None:
        """Move what starts at or below old line ``old_stop`` by ``delta`` lines."""
        if delta:
            for positions in (self._heading_lines, self._heading_stops, self._block_starts, self._block_stops):
                positions[np.searchsorted(positions, old_stop) :] += delta

    def _inside_block(self, old_line: int) -> int | None:
        """The start of the opaque block holding ``old_line`` past its first line."""
        index = int(np.searchsorted(self._block_starts, old_line, side="left")) - 1
        if index >= 0 and self._block_stops[index] > old_line:
            return int(self._block_starts[index])
        return None

    def _is_restart(self, lines: Sequence[str], line: int, old_line: int, *, after_atx: bool) -> bool:
        """Whether the block parser is at the top level with nothing open at
        the start of ``line`` (which was ``old_line`` before the edit):
        after a blank line, or (when ``after_atx``) on an ATX heading."""
        if line == 0 or line >= len(lines):
            return True
        text = lines[line]
        if not text or text[0] in " \t" or not text.strip():
            return False
        if lines[line - 1].strip() and not (after_atx and _ATX_LINE.match(text)):
            return False
        return self._inside_block(old_line) is None

    def _front_matter_open(self, lines: Sequence[str]) -> bool:
        """Whether the draft starts like front matter that has not closed yet."""
        starts = self._block_starts
        return lines[0].rstrip() in _METADATA_FENCES and not (len(starts) and starts[0] == 0)

    def _restart_after(self, lines: Sequence[str], line: int, new_stop: int, delta: int) -> int:
        """The first restart line at or after ``line`` (>= new_stop) where the
        old parse was also clean, so the old structure below it still holds.
        A blank line that was itself edited does not count: what followed it
        may have continued a paragraph before the edit."""
        while line < len(lines):
            if self._is_restart(lines, line, line - delta, after_atx=True) and (
                line - 1 >= new_stop or _ATX_LINE.match(lines[line])
            ):
                return line
            line += 1
        return len(lines)

    def _splice(self, start: int, old_stop: int, delta: int, parsed: _Parsed) -> None:
        """Replace what was known of old lines [start, old_stop) by ``parsed``
        and move everything below by ``delta`` lines."""
        self._heading_lines, lo, hi = _spliced(self._heading_lines, start, old_stop, delta, parsed.heading_lines)
        stops = self._heading_stops
        self._heading_stops = np.concatenate((stops[:lo], np.array(parsed.heading_stops, dtype=np.int64), stops[hi:] + delta))
        self._heading_levels[lo:hi] = parsed.heading_levels
        self._heading_titles[lo:hi] = parsed.heading_titles
        self._heading_slugs[lo:hi] = [slugify(title) for title in parsed.heading_titles]
        # Blocks never straddle a restart line, so their starts locate them.
        starts, lo, hi = _spliced(self._block_starts, start, old_stop, delta, parsed.block_starts)
        stops = self._block_stops
        self._block_stops = np.concatenate((stops[:lo], np.array(parsed.block_stops, dtype=np.int64), stops[hi:] + delta))
        self._block_starts = starts

    # --- tree-sitter ----------------------------------------------------------

    def _parse_by_regions(self, lines: Sequence[str], region_lines: int) -> _Parsed:
        """The whole draft, parsed a region at a time: from a restart line to
        the first restart line at least ``region_lines`` further on, grown
        while a block runs on past its end (as ``update`` grows a region).
        Peak memory is one region's tree, not the draft's."""
        whole = _Parsed([], [], [], [], [], [], False)
        start, count = 0, len(lines)
        while start < count:
            stop = _next_restart(lines, start + region_lines)
            while True:
                parsed = self._parse(lines, start, stop)
                if not parsed.open_at_end:
                    break
                stop = _next_restart(lines, max(stop + 1, start + 2 * (stop - start)))
            for name in ("heading_lines", "heading_stops", "heading_levels", "heading_titles",
                         "block_starts", "block_stops"):
                getattr(whole, name).extend(getattr(parsed, name))
            start = stop
        return whole

    def _parse(self, lines: Sequence[str], start: int, stop: int) -> _Parsed:
        # Always end on a newline: tree-sitter-markdown reads a lone "# Title"
        # with no newline after it as an error, not a heading.
        # A region inside the draft starts with a blank line: front matter is
        # only front matter on the draft's first line, and every restart line
        # reads the same after a blank line.
        parsed = _Parsed([], [], [], [], [], [], False)
        lead = 1 if start > 0 else 0
        if self._whole:
            region = lines[start:stop]
            rows = _Rows(start - lead, None)
        else:
            if all(not line.strip() or _is_prose(line) for line in lines_between(lines, start, stop)):
                return parsed  # paragraphs only: no heading, no block, nothing open
            region, kept = _for_parser_region(lines, start, stop)
            rows = _Rows(start - lead, [start - 1] * lead + kept + [stop])
        text = ("\n" * lead + "\n".join(region) + "\n").encode("utf-8")
        del region
        tree = self._parser.parse(text)
        del text
        bounded = stop < len(lines)
        self._collect(tree.root_node, rows, rows.count(stop), bounded, parsed, lines)
        if bounded and start == 0 and lines[0].rstrip() in _METADATA_FENCES and parsed.block_starts[:1] != [0]:
            # Front matter whose closing line lies beyond the region.
            parsed.open_at_end = True
        if bounded and tree.root_node.has_error:
            # tree-sitter gave up somewhere (a table ending on a lone "|", say):
            # only more context, up to the whole draft, makes it agree with a full parse.
            parsed.open_at_end = True
        return parsed

    def _collect(self, node: Node, rows: _Rows, region_rows: int, bounded: bool, parsed: _Parsed,
                 lines: Sequence[str]) -> None:
        for child in node.children:
            kind = child.type
            if kind == "section":
                self._collect(child, rows, region_rows, bounded, parsed, lines)
            elif kind in _HEADINGS:
                level, title = _heading(child, rows, lines)
                parsed.heading_lines.append(rows.line(child.start_point.row))
                end = child.end_point
                parsed.heading_stops.append(rows.line(end.row if end.column == 0 else end.row + 1))
                parsed.heading_levels.append(level)
                parsed.heading_titles.append(title)
            elif kind in _OPAQUE_BLOCKS:
                end = child.end_point
                stop_row = end.row if end.column == 0 else end.row + 1
                parsed.block_starts.append(rows.line(child.start_point.row))
                parsed.block_stops.append(rows.line(min(stop_row, region_rows)))
                if bounded and stop_row >= region_rows and _may_continue(child):
                    parsed.open_at_end = True


def _is_prose(text: str) -> bool:
    return text[:1].isalpha() and "|" not in text


class _Rows:
    """Where the rows tree-sitter saw lie in the draft: row ``r`` of the
    parsed text is line ``offset + r`` when nothing was left out, else
    ``kept[r]`` (``kept`` ends with the region's stop, so a block's exclusive
    end row maps too). A line left out belongs with the kept line above it."""

    def __init__(self, offset: int, kept: list[int] | None):
        self._offset = offset
        self._kept = kept

    def line(self, row: int) -> int:
        return self._offset + row if self._kept is None else self._kept[row]

    def count(self, stop: int) -> int:
        """How many rows the parsed text has before the region's ``stop``."""
        return stop - self._offset if self._kept is None else len(self._kept) - 1


def _is_plain_prose(line: str) -> bool:
    """A line tree-sitter sees cut short: it starts with a letter and holds
    no ``|`` or ``>`` (see the module docstring)."""
    return line[:1].isalpha() and "|" not in line and ">" not in line


def _for_parser_region(lines: Sequence[str], start: int, stop: int) -> tuple[list[str], list[int]]:
    """Lines [start, stop) as tree-sitter needs them for the blocks, and the
    draft line of each. A plain prose line right after another is left out
    (see the module docstring): whatever block holds the line above holds
    it too, so only the row numbers change, and ``_Rows`` maps them back."""
    region: list[str] = []
    kept: list[int] = []
    previous_plain = False
    for number, line in enumerate(lines_between(lines, start, stop), start):
        plain = _is_plain_prose(line)
        if plain and previous_plain:
            continue
        previous_plain = plain
        region.append(line[:_PROSE_KEPT] if plain else line)
        kept.append(number)
    return region, kept


def _next_restart(lines: Sequence[str], line: int) -> int:
    """The first line at or after ``line`` where a region may end and the
    next begin: one that does not start with whitespace and follows a blank
    line or is an ATX heading (whether a block runs over it is for the
    parse to say)."""
    count = len(lines)
    if line >= count:
        return count
    previous = lines[line - 1] if line > 0 else ""
    for number, text in enumerate(lines_between(lines, line, count), line):
        if text and text[0] not in " \t" and text.strip() and (not previous.strip() or _ATX_LINE.match(text)):
            return number
        previous = text
    return count


def _spliced(sorted_lines: np.ndarray, start: int, old_stop: int, delta: int, replacement: list[int]):
    lo = int(np.searchsorted(sorted_lines, start))
    hi = int(np.searchsorted(sorted_lines, old_stop))
    spliced = np.concatenate((sorted_lines[:lo], np.array(replacement, dtype=np.int64), sorted_lines[hi:] + delta))
    return spliced, lo, hi


def _may_continue(block: Node) -> bool:
    """Whether a block that reaches the end of a region could run on past it.
    A fence with its closing line cannot; an HTML block or a table might (a
    blank line ends some kinds but not others, and tree-sitter lets a table
    row run into the next line), so the region grows once to be sure."""
    if block.type == "fenced_code_block":
        delimiters = sum(1 for child in block.children if child.type == "fenced_code_block_delimiter")
        return delimiters < 2
    return block.type in ("html_block", "pipe_table", "ERROR")


def _heading(node: Node, rows: _Rows, lines: Sequence[str]) -> tuple[int, str]:
    level, title = 1, ""
    for child in node.children:
        kind = child.type
        if kind in _ATX_LEVELS:
            level = _ATX_LEVELS[kind]
        elif kind in _SETEXT_LEVELS:
            level = _SETEXT_LEVELS[kind]
        elif kind == "inline":  # ATX: the text after the marker (never cut: it starts with #)
            title = _ATX_CLOSING.sub("", _text(child).strip())
        elif kind == "paragraph":  # setext: the lines above the underline, from the draft (they may reach tree-sitter cut)
            end = child.end_point
            first, stop = rows.line(child.start_point.row), rows.line(end.row if end.column == 0 else end.row + 1)
            title = " ".join(lines[line].strip() for line in range(first, stop) if lines[line].strip())
    return level, title


def _text(node: Node) -> str:
    return node.text.decode("utf-8", errors="replace") if node.text else ""
