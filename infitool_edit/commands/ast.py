"""The command language's syntax tree: what a parsed command line is.

Every other part speaks in these objects: the parser builds them, the
serializer writes them back, the document engine applies them, the history
stores their serialized form as commit messages, and the agent samples
their text under a grammar mask.

Conventions (shared with docs/commands.md):
- Lines and columns are 1-based; a column counts characters (code points),
  not bytes.
- A span's end is exclusive: ``3:5-3:8`` covers the 5th, 6th and 7th
  characters of line 3.
- A line range ``N-M`` is inclusive and covers whole lines with their
  newlines.
- A heading path ``#intro/method`` names headings by slug (lower case,
  spaces as ``-``, punctuation dropped: ``grammar.slugify``), each part a
  child of the one before.
- A search string names the first occurrence of that exact text.
- Addresses here are only well formed (``grammar.py`` says which); whether
  they exist in a draft, or run forwards (``14-12`` does not), is for the
  document engine to decide when it applies the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


# --- addresses -------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """``12``: as a point, the start of line 12; as a range, all of line 12."""

    line: int


@dataclass(frozen=True)
class Point:
    """``12:5``: just before the 5th character of line 12."""

    line: int
    col: int


@dataclass(frozen=True)
class LineRange:
    """``12-14``: lines 12 to 14, inclusive, whole lines."""

    start: int
    end: int


@dataclass(frozen=True)
class Span:
    """``12:5-13:1``: from one point up to (not including) another."""

    start: Point
    end: Point


@dataclass(frozen=True)
class Heading:
    """``#intro/method``: a section, from its heading line to the next heading
    of the same or a higher level. As a point: the end of that section."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Search:
    """``"exact text"``: the first occurrence of that text in the draft.
    As a point: just after it."""

    text: str


@dataclass(frozen=True)
class End:
    """``$``: the end of the draft (a point only)."""


PointAddress = Union[Line, Point, Heading, Search, End]
RangeAddress = Union[Line, LineRange, Span, Heading, Search]


@dataclass(frozen=True)
class VersionRef:
    """``v17``: a version number in the history."""

    number: int


@dataclass(frozen=True)
class CheckpointRef:
    """``"draft one"``: a named checkpoint in the history."""

    name: str


# --- commands --------------------------------------------------------------
# Editing commands change the draft; the others only look (or, for note,
# checkpoint, rewind and done, act outside the draft's text).


@dataclass(frozen=True)
class Insert:
    """``insert 12:5 "text"``"""

    at: PointAddress
    text: str


@dataclass(frozen=True)
class Delete:
    """``delete 12-14``"""

    target: RangeAddress


@dataclass(frozen=True)
class Replace:
    """``replace 13 "Teh" "The"`` (first ``old`` inside ``target`` becomes
    ``new``) or ``replace 13:1-13:4 "The"`` (the whole target becomes
    ``new``; ``old`` is None). When the target is a Search, ``old`` is None:
    ``replace "Teh" "The"``."""

    target: RangeAddress
    new: str
    old: str | None = None


@dataclass(frozen=True)
class Move:
    """``move #winter #summer`` / ``move 3-6 $`` / ``move "Calm." 21:1``: the
    text ``target`` names is cut and put at ``to`` (any point but a search
    string), as one edit. A heading's point is the end of its section, so
    ``move #a #b`` puts section a after section b. Whole lines (a line, a line range or a section) moved to the
    start of a line or the end keep markdown's blank lines between blocks;
    any other move cuts and pastes the text as it is."""

    target: RangeAddress
    to: PointAddress


@dataclass(frozen=True)
class Jump:
    """``jump #method``: move the model's cursor; the answer is a view there."""

    to: PointAddress


@dataclass(frozen=True)
class Find:
    """``find "text"``: where that text occurs (a bounded list)."""

    text: str


@dataclass(frozen=True)
class Check:
    """``check`` / ``check 12-40``: the likely slips (misspelt words, doubled
    words and spaces, capitals, punctuation) in the draft or a range, each
    written as the strings of the ``replace`` that would fix it."""

    target: RangeAddress | None = None


@dataclass(frozen=True)
class Fix:
    """``fix`` / ``fix 12`` / ``fix 12-40``: apply what ``check`` (or
    ``check 12``, ``check 12-40``) finds now, every finding at once, as one
    edit (``fix 12`` takes line 12's findings only)."""

    target: RangeAddress | None = None


@dataclass(frozen=True)
class Outline:
    """``outline``: the headings with their line numbers."""


@dataclass(frozen=True)
class Read:
    """``read 12-40`` / ``read #intro`` / ``read``: a bounded window of
    numbered lines (the cursor's surroundings when no target is given)."""

    target: RangeAddress | None = None


@dataclass(frozen=True)
class Note:
    """``note "text"``: append a line to the model's notes."""

    text: str


@dataclass(frozen=True)
class Notes:
    """``notes``: show the notes. ``notes "text"``: the notes become exactly
    ``text`` (the writer editing the scratchpad, or the model tidying it;
    ``notes ""`` clears them)."""

    text: str | None = None


@dataclass(frozen=True)
class Goal:
    """``goal``: re-read what the model was asked to do."""


@dataclass(frozen=True)
class History:
    """``history``: the most recent versions."""


@dataclass(frozen=True)
class Checkpoint:
    """``checkpoint "name"``: name the current version."""

    name: str


@dataclass(frozen=True)
class Rewind:
    """``rewind v17`` / ``rewind "name"``: a new version with that version's
    draft and notes (nothing is destroyed)."""

    to: VersionRef | CheckpointRef


@dataclass(frozen=True)
class Done:
    """``done "summary"``: the model ends its turn."""

    summary: str


Command = Union[
    Insert, Delete, Replace, Move, Jump, Find, Check, Fix, Outline, Read, Note, Notes, Goal,
    History, Checkpoint, Rewind, Done,
]

# Commands whose application can change the draft's text.
EDITING = (Insert, Delete, Replace, Move, Fix)
