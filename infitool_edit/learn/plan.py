"""Expert sessions: the commands a careful writer would type to turn one text
into another.

Every training stream that edits (real revisions, typo and mechanics fixes)
comes from :func:`edit_script`. It works the way the editor wants a
recurrent model to work: look at a small window (``read`` a few lines), act
on it at once, move on; whole lines and blocks before the words inside them;
search strings short but unique, line numbers where a whole line is meant.

A plan is checked by playing it on the document engine (``Workspace``): a
plan that does not give exactly the target is never returned.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from infitool_edit.commands import parse
from infitool_edit.document import Workspace
from infitool_edit.document.observation import MAX_LINE_CHARS, check_rows

READ_CONTEXT = 1  # lines of context around the lines about to change
READ_MAX_LINES = 8  # a window a recurrent model keeps in mind
SCAN_WINDOW_CHARS = 700  # proofreading: how much one `read` takes in
WHOLE_LINE_RATIO = 0.5  # below this word similarity, a line is rewritten whole
MAX_LINE_EDITS = 4  # more edits than this in one line: rewrite it whole
MERGE_GAP_TOKENS = 2  # edits this close together become one replace
SPAN_CHARS = 360  # a `read` shows this much of a long line (the engine clips lines at MAX_LINE_CHARS)
SPAN_BEFORE = 120  # and starts this far before the edit

_TOKEN = re.compile(r"\w+|[^\w\s]|\s+")
_HEADING = re.compile(r"#{1,6} \S")


class PlanError(ValueError):
    """No plan gives the target (one line)."""


def quote(text: str) -> str:
    """A command-language string: four escapes, nothing else."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def tokens(text: str) -> list[str]:
    """Words, single punctuation marks and runs of white space."""
    return _TOKEN.findall(text)


def normalize(text: str) -> str:
    """One form for drafts and targets: ``\\n`` line ends, one at the end."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip("\n") + "\n" if text.strip() else ""


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def writable(text: str) -> bool:
    """The command language can carry the text (no control characters but newline and tab)."""
    return _CONTROL.search(text) is None


@dataclass
class _Row:
    """One line of the alignment: its text in the draft and in the target
    (None where it has none). A row is *present* while its line is in the
    current text; a line's number is 1 + the present rows above it."""

    old: str | None
    new: str | None
    present: bool = field(init=False)

    def __post_init__(self) -> None:
        self.present = self.old is not None


class _Planner:
    def __init__(self, draft: str, target: str, *, scan: bool) -> None:
        self.draft, self.target, self.scan = draft, target, scan
        self.rows = _align(draft.split("\n")[:-1] if draft else [], target.split("\n")[:-1] if target else [])
        self.lines: list[str] = []
        self.read_until = 0  # rows up to here were read since they last changed

    # --- addresses -------------------------------------------------------------

    def number(self, index: int) -> int:
        """The current line number of row ``index`` (where it is or would be)."""
        return 1 + sum(1 for row in self.rows[:index] if row.present)

    def line_count(self) -> int:
        return sum(1 for row in self.rows if row.present)

    def current(self) -> str:
        return "".join((row.new if row.old is None else row.old) + "\n" for row in self.rows if row.present)

    # --- the plan ----------------------------------------------------------------

    def plan(self) -> list[str]:
        if any(_HEADING.match(row.new or row.old or "") for row in self.rows):
            self.lines.append("outline")
        regions = _regions(self.rows)
        if self.scan:
            self._scan(regions)
        else:
            for first, last in regions:
                self._look(first, last)
                self._edit(first, last)
        return self.lines

    def _scan(self, regions: list[tuple[int, int]]) -> None:
        """Proofreading: read the whole draft window by window, fixing what
        each window shows before reading on."""
        index = 0
        pending = list(regions)
        while index < len(self.rows):
            start, size = index, 0
            while index < len(self.rows) and (index == start or size + len(self.rows[index].old or "") < SCAN_WINDOW_CHARS):
                if index - start >= READ_MAX_LINES:
                    break
                size += len(self.rows[index].old or "") + 1
                index += 1
            # Stretch the window over a region it cuts, so each fix follows its read.
            for first, last in pending:
                if first < index <= last:
                    index = last + 1
            shown = [i for i in range(start, index) if self.rows[i].present]
            if shown:
                a, b = self.number(shown[0]), self.number(shown[-1])
                self.lines.append(f"read {a}-{b}" if b > a else f"read {a}")
            for first, last in [r for r in pending if r[0] < index]:
                self._edit(first, last)
            pending = [r for r in pending if r[0] >= index]
        for first, last in pending:  # lines only added at the very end
            self._edit(first, last)

    def _look(self, first: int, last: int) -> None:
        """Read the lines about to change, with a line of context."""
        shown = [i for i in range(max(0, first - READ_CONTEXT), min(len(self.rows), last + 1 + READ_CONTEXT))
                 if self.rows[i].present]
        if not shown:
            return
        a = self.number(shown[0])
        b = min(self.number(shown[-1]), a + READ_MAX_LINES - 1)
        self.lines.append(f"read {a}-{b}" if b > a else f"read {a}")

    def _edit(self, first: int, last: int) -> None:
        """Coarse before fine: whole lines leave and arrive, then the words change."""
        index = first
        while index <= last:  # runs of deleted lines
            if self.rows[index].old is not None and self.rows[index].new is None:
                end = index
                while end + 1 <= last and self.rows[end + 1].old is not None and self.rows[end + 1].new is None:
                    end += 1
                a, b = self.number(index), self.number(end)
                self.lines.append(f"delete {a}-{b}" if b > a else f"delete {a}")
                for row in self.rows[index : end + 1]:
                    row.present = False
                index = end + 1
            else:
                index += 1
        index = first
        while index <= last:  # runs of new lines, a block (up to a blank line) at a time
            if self.rows[index].old is None and not self.rows[index].present:
                end = index
                while (end + 1 <= last and self.rows[end + 1].old is None
                       and self.rows[end].new.strip() != "" and not _HEADING.match(self.rows[end + 1].new)):
                    end += 1
                if end + 1 <= last and self.rows[end + 1].old is None and self.rows[end + 1].new.strip() == "":
                    end += 1  # the blank line that ends the block goes with it
                text = "".join(row.new + "\n" for row in self.rows[index : end + 1])
                at = self.number(index)
                self.lines.append(f"insert {'$' if at > self.line_count() else at} {quote(text)}")
                for row in self.rows[index : end + 1]:
                    row.present = True
                index = end + 1
            else:
                index += 1
        for index in range(first, last + 1):
            row = self.rows[index]
            if row.old is not None and row.new is not None and row.old != row.new:
                self._edit_line(index)

    def _edit_line(self, index: int) -> None:
        row = self.rows[index]
        number = self.number(index)
        edits = _word_edits(row.old, row.new)
        whole = difflib.SequenceMatcher(None, tokens(row.old), tokens(row.new), autojunk=False).ratio()
        if not row.new.strip() or len(edits) > MAX_LINE_EDITS or whole < WHOLE_LINE_RATIO:
            self.lines.append(f"replace {number} {quote(row.new + chr(10))}")
            row.old = row.new
            return
        current = row.old
        shift = 0
        seen = (1, MAX_LINE_CHARS)  # what the last read showed of this line (1-based columns)
        for start, end, new in edits:
            start, end = start + shift, end + shift
            old_text, new_text = self._search(current, start, end, new)
            at = current.find(old_text)
            if len(current) > MAX_LINE_CHARS and not (seen[0] <= at + 1 and at + len(old_text) + 1 <= seen[1]):
                # A long line shows clipped: read the stretch around the edit first.
                first = current.rfind(" ", 0, max(0, at - SPAN_BEFORE)) + 2
                last = max(min(len(current) + 1, first + SPAN_CHARS), at + len(old_text) + 1)
                self.lines.append(f"read {number}:{first}-{number}:{last}")
                seen = (first, last)
            draft = self.current()
            line_start = sum(len(r.old if r.old is not None else r.new) + 1 for r in self.rows[:index] if r.present)
            if draft.count(old_text) == 1 and draft.find(old_text) == line_start + current.find(old_text):
                self.lines.append(f"replace {quote(old_text)} {quote(new_text)}")
            else:
                self.lines.append(f"replace {number} {quote(old_text)} {quote(new_text)}")
            current = current[:at] + new_text + current[at + len(old_text):]
            row.old = current
            shift += len(new) - (end - start)
        if current != row.new:
            raise PlanError("a line's edits did not add up")

    @staticmethod
    def _search(line: str, start: int, end: int, new: str) -> tuple[str, str]:
        """The shortest text around ``line[start:end]`` whose first occurrence
        in the line is this one, and what it becomes. An insertion, or a bare
        space or mark, takes a neighbouring word along so it reads as a place."""
        left, right = start, end
        parts = tokens(line)
        bounds, position = [], 0
        for part in parts:
            bounds.append((position, position + len(part)))
            position += len(part)

        def grow_left(at: int) -> int:
            for a, b in reversed(bounds):
                if a < at:
                    return a
            return at

        def grow_right(at: int) -> int:
            for a, b in bounds:
                if b > at:
                    return b
            return at

        def good(a: int, b: int) -> bool:
            text = line[a:b]
            return any(c.isalnum() for c in text) and len(text) >= 3 and line.count(text) == 1

        steps = 0
        while not good(left, right) and steps < 40:
            steps += 1
            # Alternate sides, preferring the side that adds a word.
            if steps % 2 and right < len(line):
                right = grow_right(right)
            elif left > 0:
                left = grow_left(left)
            elif right < len(line):
                right = grow_right(right)
            else:
                break
        return line[left:right], line[left:start] + new + line[end:right]


def _align(old: list[str], new: list[str]) -> list[_Row]:
    """Rows pairing draft and target lines: equal lines, and inside each
    changed stretch the lines that are recognisably the same line edited."""
    rows: list[_Row] = []
    for tag, i1, i2, j1, j2 in line_opcodes(old, new):
        if tag == "equal":
            rows.extend(_Row(line, line) for line in old[i1:i2])
            continue
        a, b = old[i1:i2], new[j1:j2]
        i = j = 0
        while i < len(a) or j < len(b):
            if i < len(a) and j < len(b) and _similar(a[i], b[j]):
                rows.append(_Row(a[i], b[j]))
                i, j = i + 1, j + 1
            elif j < len(b) and (i >= len(a) or any(_similar(a[i], x) for x in b[j + 1 : j + 4])):
                rows.append(_Row(None, b[j]))
                j += 1
            elif i < len(a):
                rows.append(_Row(a[i], None))
                i += 1
            else:
                rows.append(_Row(None, b[j]))
                j += 1
    return _slide_blank_lines(rows)


def _slide_blank_lines(rows: list[_Row]) -> list[_Row]:
    """A run of added (or removed) lines that starts with a blank line and is
    followed by an unchanged blank line is the same change one line lower:
    take it that way, so a new block reads heading first, blank line after."""
    for side in ("new", "old"):
        i = 0
        while i < len(rows):
            def added(row: _Row) -> bool:
                return (row.old is None) if side == "new" else (row.new is None)

            if not added(rows[i]):
                i += 1
                continue
            j = i
            while j + 1 < len(rows) and added(rows[j + 1]):
                j += 1
            while (getattr(rows[i], side) == "" and j + 1 < len(rows)
                   and rows[j + 1].old == rows[j + 1].new == ""):
                moved = rows[i]
                rows[i : j + 2] = [_Row("", ""), *rows[i + 1 : j + 1], moved]
                i += 1
                j += 1
            i = j + 1
    return rows


def line_opcodes(old: list[str], new: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib's opcodes, with the common head and tail taken off first
    (most revisions touch a few lines of a long file; this keeps them cheap)."""
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    middle = difflib.SequenceMatcher(None, old[head : len(old) - tail], new[head : len(new) - tail], autojunk=False)
    out = [("equal", 0, head, 0, head)] if head else []
    for tag, i1, i2, j1, j2 in middle.get_opcodes():
        out.append((tag, i1 + head, i2 + head, j1 + head, j2 + head))
    if tail:
        out.append(("equal", len(old) - tail, len(old), len(new) - tail, len(new)))
    return out


def _similar(a: str, b: str) -> bool:
    if not a.strip() or not b.strip():
        return a.strip() == b.strip()
    return difflib.SequenceMatcher(None, tokens(a), tokens(b), autojunk=False).ratio() >= WHOLE_LINE_RATIO


def _regions(rows: list[_Row]) -> list[tuple[int, int]]:
    """Stretches of changed rows, joined when one line apart."""
    changed = [i for i, row in enumerate(rows) if row.old != row.new]
    regions: list[tuple[int, int]] = []
    for i in changed:
        if regions and i - regions[-1][1] <= 2:
            regions[-1] = (regions[-1][0], i)
        else:
            regions.append((i, i))
    return regions


def _word_edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """(start, end, new text) in ``old``'s characters, left to right; edits a
    token or two apart merge, as a writer would retype the phrase."""
    a, b = tokens(old), tokens(new)
    offsets = [0]
    for part in a:
        offsets.append(offsets[-1] + len(part))
    spans: list[list[int]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if spans and i1 - spans[-1][1] <= MERGE_GAP_TOKENS:
            spans[-1][1], spans[-1][3] = i2, j2
        else:
            spans.append([i1, i2, j1, j2])
    return [(offsets[i1], offsets[i2], "".join(b[j1:j2])) for i1, i2, j1, j2 in spans]


def play(draft: str, script: Iterable[str], notes: str = "") -> Workspace:
    """The document engine after the script's draft commands (others skipped)."""
    workspace = Workspace(draft, notes)
    for line in script:
        verb = line.split(" ", 1)[0]
        if verb in ("done", "goal", "history", "checkpoint", "rewind"):
            continue
        workspace.apply(parse(line))
    return workspace


def edit_script(draft: str, target: str, *, scan: bool = False, summary: str = "Done.") -> list[str]:
    """Commands that turn ``draft`` into ``target`` (both normalized), ending
    with ``done``. ``scan``: read the whole draft window by window (for
    proofreading, where the writer cannot know where the faults are)."""
    if not writable(draft) or not writable(target):
        raise PlanError("the text holds control characters the command language cannot carry")
    lines = _Planner(draft, target, scan=scan).plan()
    try:
        result = play(draft, lines).text
    except ValueError as error:
        result = None
        reason = str(error).splitlines()[0]
    if result != target:
        # The plain way always works: each changed stretch rewritten as whole lines.
        lines = _fallback(draft, target, scan)
        try:
            result = play(draft, lines).text
        except ValueError as error:
            raise PlanError(f"no plan replays: {str(error).splitlines()[0]}") from None
        if result != target:
            raise PlanError("no plan replays to the target")
    return [*lines, f"done {quote(summary)}"]


# How many times a proofreader checks again after fixing what a check found.
CHECK_ROUNDS = 3


def proofreading_script(draft: str, target: str, *, summary: str) -> list[str]:
    """A proofreader's session with the ``check`` tool: check, take the
    findings that bring their line closer to the target (and pass over the
    others: a name, a word meant as written), check again until a check
    brings nothing to fix, then fix by reading whatever the checks could not
    see, and say done.

    Findings are taken with ``fix`` (no copying of strings): ``fix`` when
    every finding is right, else ``fix N`` for each line whose findings are
    all right (and are what ``check N`` finds), and ``replace`` for a right
    finding on a line with a wrong one. Lines keep their numbers (a finding
    never spans lines), so each finding's line is compared with the same
    line of the target."""
    if draft.count("\n") != target.count("\n"):
        return edit_script(draft, target, scan=True, summary=summary)
    workspace = Workspace(draft)
    wanted = target.split("\n")
    script: list[str] = []
    for _ in range(CHECK_ROUNDS):
        script.append("check")
        rows = check_rows(workspace.apply(parse("check")).render())
        right = [_brings_closer(workspace.lines[number - 1], strings, wanted[number - 1]) for number, strings in rows]
        if not any(right):
            break
        if all(right):
            script.append("fix")
            workspace.apply(parse("fix"))
            continue
        by_line: dict[int, list[tuple[str, bool]]] = {}
        for (number, strings), good in zip(rows, right):
            by_line.setdefault(number, []).append((strings, good))
        for number, findings in by_line.items():
            if all(good for _, good in findings) and _line_check(workspace, number) == [s for s, _ in findings]:
                command = f"fix {number}"
            else:
                command = None
                for strings, good in findings:
                    if good:
                        try:
                            workspace.apply(parse(f"replace {number} {strings}"))
                            script.append(f"replace {number} {strings}")
                        except ValueError:
                            pass  # an earlier fix on this line took its text away
            if command:
                workspace.apply(parse(command))
                script.append(command)
    rest = edit_script(workspace.text, target, scan=False, summary=summary) if workspace.text != target else []
    return [*script, *rest] if rest else [*script, f"done {quote(summary)}"]


def _brings_closer(line: str, strings: str, wanted: str) -> bool:
    """Whether the finding ``strings`` (``"old" "new"``) makes ``line`` more like ``wanted``."""
    trial = Workspace(line)
    try:
        trial.apply(parse(f"replace 1 {strings}"))
    except ValueError:
        return False
    return _distance(trial.lines[0], wanted) < _distance(line, wanted)


def _line_check(workspace: Workspace, number: int) -> list[str]:
    """The strings of what ``check N`` finds on line ``number``."""
    return [strings for _, strings in check_rows(workspace.apply(parse(f"check {number}")).render())]


def _distance(a: str, b: str) -> int:
    """Characters that differ between two lines (difflib's opcodes)."""
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in
               difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if tag != "equal")


def _fallback(draft: str, target: str, scan: bool) -> list[str]:
    """Each changed stretch of lines replaced whole, bottom up (line numbers above stay put)."""
    old, new = draft.split("\n")[:-1] if draft else [], target.split("\n")[:-1] if target else []
    lines = ["outline"] if any(_HEADING.match(x) for x in old + new) else []
    edits = []
    for tag, i1, i2, j1, j2 in line_opcodes(old, new):
        if tag == "equal":
            continue
        text = "".join(x + "\n" for x in new[j1:j2])
        if i2 > i1:
            rng = f"{i1 + 1}-{i2}" if i2 > i1 + 1 else f"{i1 + 1}"
            edits.append([f"read {rng}", f"replace {rng} {quote(text)}" if text else f"delete {rng}"])
        else:
            at = i1 + 1
            edits.append([f"insert {'$' if at > len(old) else at} {quote(text)}"])
    for group in reversed(edits):
        lines.extend(group)
    return lines
