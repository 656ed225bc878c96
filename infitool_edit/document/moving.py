"""Where ``move`` puts a block of whole lines, and the blank lines around it.

Markdown separates blocks (paragraphs, sections, lists) with blank lines.
Cutting a section and pasting it as it is leaves a doubled blank line where
it was, or none where it lands, and moving the last section (which has no
blank line after it) glues it to its new neighbour. So a move of whole
lines treats the blank lines around the block as the gaps between blocks,
not as part of the block:

- the block is its lines without the blank lines at either end;
- where it was, the gaps above and below it close into one gap, as wide as
  the wider of the two (one blank line between sections stays one);
- where it lands, a block that stood on its own (blank lines on both
  sides: a paragraph, a section) gets a gap on each side as wide as the
  gap that was there, and at least as wide as its own narrower gap (its
  *separation*); a block that was part of a larger one (a list item, a
  line of a paragraph: no blank line on one side) joins the text it is put
  next to, so moving an item within a list keeps the list tight;
- the draft's edges keep what they had: the blank lines before its first
  text and after its last (usually none), and whether it ends in a newline.

All of it is computed on a window of lines, so the move is one edit. Lines
here are the draft's *real* lines, 0-based, without the empty string that
splitting a text ending in a newline leaves after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infitool_edit.document.buffer import lines_between


class MoveRefused(ValueError):
    """A move that cannot be made; ``str()`` is one line. The workspace
    passes it on as its own ``ApplyError``."""


@dataclass(frozen=True)
class LineMove:
    """Real lines ``[start, stop)`` become ``lines``; the moved block's first
    line is then line ``landed`` (0-based)."""

    start: int
    stop: int
    lines: list[str]
    landed: int


def _blank(line: str) -> bool:
    return not line.strip()


def _blanks_above(lines: Sequence[str], index: int, floor: int = 0) -> int:
    """How many blank lines end just above line ``index`` (none above ``floor``)."""
    count = 0
    while index - count - 1 >= floor and _blank(lines[index - count - 1]):
        count += 1
    return count


def _blanks_below(lines: Sequence[str], index: int, ceiling: int) -> int:
    """How many blank lines start at line ``index`` (none at or past ``ceiling``)."""
    count = 0
    while index + count < ceiling and _blank(lines[index + count]):
        count += 1
    return count


def plan_line_move(lines: Sequence[str], count: int, first: int, stop: int, point: int) -> LineMove:
    """Move real lines ``[first, stop)`` of a draft of ``count`` real lines
    to just before line ``point`` (``count``: the end). Raises
    ``MoveRefused`` when the point lies inside the block, or next to it so
    that nothing would move, or the block holds only blank lines."""
    if first < point < stop:
        raise MoveRefused("the place to move to lies inside the lines that move")
    lead = _blanks_below(lines, first, stop)
    if lead == stop - first:
        raise MoveRefused("those lines are blank: nothing to move")
    trail = _blanks_above(lines, stop, first)
    block = list(lines_between(lines, first + lead, stop - trail))
    above, below = _blanks_above(lines, first), _blanks_below(lines, stop, count)
    cut_start, cut_stop = first - above, stop + below  # the block with the gaps around it
    if cut_start <= point <= cut_stop:
        raise MoveRefused("nothing would move: the lines are already there")

    gap_above, gap_below = above + lead, trail + below
    # The block's separation: its narrower gap to other text (the draft's
    # edges do not count). 0: it was part of a larger block (a paragraph's
    # line, a list's item) and joins the text it lands next to.
    separation = min([gap for gap, text in ((gap_above, cut_start > 0), (gap_below, cut_stop < count)) if text],
                     default=0)
    # Where it was, one gap remains; at an edge of the draft, the edge's own.
    if cut_start == 0:
        seam = gap_above
    elif cut_stop == count:
        seam = gap_below
    else:
        seam = max(gap_above, gap_below)

    land_above, land_below = _blanks_above(lines, point), _blanks_below(lines, point, count)
    land_start, land_stop = point - land_above, point + land_below  # the gap it lands in
    gap = land_above + land_below
    if separation == 0 and land_above == 0 and land_start > 0:  # just after a line: join it
        before, after = 0, gap
    elif separation == 0 and land_below == 0 and land_stop < count:  # just before a line: join it
        before, after = gap, 0
    elif land_start == 0:  # the start of the draft: its leading blank lines stay first
        before, after = gap, separation
    elif land_stop == count:  # the end: its trailing blank lines stay last
        before, after = separation, gap
    else:
        before = after = max(gap, separation)

    if point < first:  # up: [landing gap .. block with its gaps) becomes block, text between, seam
        middle = list(lines_between(lines, land_stop, cut_start))
        new = [""] * before + block + [""] * after + middle + [""] * seam
        return LineMove(land_start, cut_stop, new, land_start + before)
    middle = list(lines_between(lines, cut_stop, land_start))  # down: the mirror image
    new = [""] * seam + middle + [""] * before + block + [""] * after
    return LineMove(cut_start, land_stop, new, cut_start + seam + len(middle) + before)
