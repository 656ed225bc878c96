"""A copy prior for byte-level models: inside a quoted argument, once its last few bytes match
the goal, the goal's next byte gets a share of the probability.

Why: the built-in model is small, and a small recurrent model copies poorly. Asked to rename a
section to "Scala" it picks the right command and the right heading (the grammar mask holds
slugs and search strings to the draft) and then writes "Scalability": the new name is free text
the mask cannot hold. A writer's goal names such text ("Mentorship Team", "Windows Store
package"), so the prior makes the goal's own bytes likelier where the model is already copying
it. It only ever adds probability to a byte the grammar allows, and it leaves the model's choice
alone wherever the goal says nothing.

The rule, for each byte sampled inside a quoted argument of a command other than ``done`` (a
summary, not a copy, except for a name it quotes: see ``_summary``):

- the source: the goal's quoted spans, or the whole goal where it quotes nothing (the last
  ``@goal`` line within the stream's last ``CONTEXT_BYTES``); for an argument that is not a
  search string only the spans the draft does not hold (new text, not a place), and never a
  span the line already holds before this argument (a rename's old name, when the new one is
  being written). A ``notes`` argument copies instead from the goal's quoted spans and the last
  ``@outline`` the editor showed, listed as notes list an outline (the title, then ``- `` and
  each section's name): asked to put the outline in the notes, the model otherwise invents
  headings; an unquoted goal's own words ("into the notes") are not notes.
- k: the longest run (at most ``MAX_MATCH`` bytes) ending the argument so far that also occurs in
  the source; nothing if k is under ``MIN_MATCH``: a name's first bytes are the model's to choose.
  Two exceptions, where the source is not in doubt (``_anchored``, at full strength): a heading's
  text that begins as one of the goal's quoted spans is copied from its first byte, and notes
  whose first byte is the outline listing's are copied from the second byte on.
- q: what follows that run in the source, counted over its occurrences. Where a span ends
  there (a closing quote, the line's end, or a full stop before one), the argument may end too,
  and q gives that share to the closing quote and the backslash of an escaped newline in the
  proportion the model gives them (a heading inserted ends with ``\\n\\n"``).
- the next byte is drawn from (1 - w)·p + w·q, where p is the model's masked distribution and
  w = strength · min(1, (k - MIN_MATCH + 1) / RAMP): a longer match is stronger evidence.
- where the goal offers nothing, a ``replace``'s new text copies the words of its own search
  string the same way, at ``SEARCH_COPY_STRENGTH`` (``copied_from``: no span ends but the
  string's own, and where the words break — a space, a new line — is left to the model): asked
  to split a paragraph, the model wrote ``replace "the developer. As" "the devguide.\n\nAs"``.

Held to the stream: the prior reads only the stream's last ``CONTEXT_BYTES``, which a resumed
backend gets back from the stored stream (``context_chars``), so rewinds and resumes decode as
the live session did.
"""

from __future__ import annotations

import re

import torch

MIN_MATCH = 3
MAX_MATCH = 48
RAMP = 2
SEARCH_COPY_STRENGTH = 0.4  # a replace's new text copying its search string
CONTEXT_BYTES = 16_384
GOAL_TAG = b"@goal "
OUTLINE_TAG = b"@outline "
# One heading of an ``@outline`` observation: its line and its quoted text (escapes kept).
_OUTLINE_HEADING = re.compile(rb'(\d+) "((?:[^"\\]|\\.)*)"')
_HEADING_MARKS = re.compile(rb"^#+ ")
# A heading's start inside a quoted argument: ``## `` or, after a blank line, ``\\n## ``.
_HEADING_START = re.compile(rb"^(?:\\n)*#{1,6} ")
# A replace's line up to its new text: its search string (escapes as written).
_REPLACING = re.compile(rb'replace "((?:[^"\\]|\\.)*)" "$')
QUOTE, BACKSLASH, NEWLINE, FULL_STOP = 0x22, 0x5C, 0x0A, 0x2E
SPAN_ENDS = (QUOTE, NEWLINE)
WORD_BREAKS = (0x20, BACKSLASH)  # a space; an escape (``\n``) as written inside quotes


def last_goal(recent: bytes) -> bytes:
    """The last ``@goal`` line's text in ``recent`` (with its newline), or b"" without one."""
    start = recent.rfind(b"\n" + GOAL_TAG) + 1
    if start == 0 and not recent.startswith(GOAL_TAG):
        return b""
    end = recent.find(b"\n", start)
    return recent[start + len(GOAL_TAG): len(recent) if end < 0 else end] + b"\n"


def outline_listing(recent: bytes) -> bytes:
    """The last ``@outline`` in ``recent`` as the notes would list it, written as it is inside a
    quoted argument (``Title\\n- First\\n- Second``), or b"" without one."""
    start = recent.rfind(b"\n" + OUTLINE_TAG) + 1
    if start == 0:
        return b""
    end = recent.find(b"\n", start)
    line = recent[start: len(recent) if end < 0 else end]
    items = []
    for match in _OUTLINE_HEADING.finditer(line):
        text = match.group(2)
        level = len(text) - len(text.lstrip(b"#"))
        title = _HEADING_MARKS.sub(b"", text)
        items.append(title if level <= 1 else b"  " * (level - 2) + b"- " + title)
    return b"\\n".join(items)


def quoted_spans(goal: bytes) -> list[bytes]:
    """A goal's quoted spans (``Rename "Winter" to "Deep Winter"``)."""
    parts = goal.rstrip(b"\n").split(b'"')
    return [part for part in parts[1:-1:2] if part]


def goal_spans(goal: bytes) -> list[bytes]:
    """The text a goal offers to copy: its quoted spans, else the whole line (``Rename Winter to
    Deep Winter.``)."""
    return quoted_spans(goal) or ([goal.rstrip(b"\n")] if goal.strip() else [])


def _longest_tail(source: bytes, written: bytes, stop: int) -> tuple[int, list[int]]:
    """The longest tail of ``written`` (``MIN_MATCH`` to ``MAX_MATCH`` bytes) found in
    ``source[:stop]``: (its length, where each occurrence of it ends), or (0, []) if none is."""
    best = 0
    for k in range(MIN_MATCH, min(len(written), MAX_MATCH) + 1):
        if source.find(written[-k:], 0, stop) < 0:
            break
        best = k
    if not best:
        return 0, []
    tail, ends = written[-best:], []
    at = source.find(tail, 0, stop)
    while at >= 0:
        ends.append(at + best)
        at = source.find(tail, at + 1, stop)
    return best, ends


def continuations(goal: bytes, written: bytes) -> tuple[int, dict[int | None, int]]:
    """(k, counts): the longest tail of ``written`` found in ``goal`` (k ≥ MIN_MATCH, else 0) and
    how often each byte follows it there; None stands for the end of the goal's span."""
    best, ends = _longest_tail(goal, written, len(goal) - 1)  # the goal ends with a newline
    counts: dict[int | None, int] = {}
    for after in ends:
        byte: int | None = goal[after]
        if byte in SPAN_ENDS or (byte == FULL_STOP and goal[after + 1: after + 2] in (b'"', b"\n", b" ")):
            byte = None
        counts[byte] = counts.get(byte, 0) + 1
    return best, counts


def copied_from(old: bytes, written: bytes) -> tuple[int, dict[int | None, int]]:
    """(k, counts) as ``continuations`` gives them, from a search string ``old`` that ``written``
    rewrites: None only at its end, and nothing where it has a space or an escape next: where
    the words break (a space, a new line, a paragraph) is the model's to choose."""
    best, ends = _longest_tail(old, written, len(old))
    counts: dict[int | None, int] = {}
    for after in ends:
        byte = old[after] if after < len(old) else None
        if byte not in WORD_BREAKS:
            counts[byte] = counts.get(byte, 0) + 1
    return best, counts


def next_bytes(names: list[bytes], written: bytes) -> dict[int | None, int]:
    """How often each byte follows ``written`` among the names that begin with it (None: the
    name ends there)."""
    counts: dict[int | None, int] = {}
    for name in names:
        if name and name.startswith(written):
            byte = name[len(written)] if len(written) < len(name) else None
            counts[byte] = counts.get(byte, 0) + 1
    return counts


class CopyPrior:
    """The prior of one backend: ``recent`` is the stream's last ``CONTEXT_BYTES`` (everything the
    model read, its own lines included). Where a quoted argument is being written is the grammar
    constraint's to say (``LineConstraint.open_argument``), which follows quotes and escapes."""

    def __init__(self, strength: float) -> None:
        if not 0 <= strength <= 1:
            raise ValueError(f"copy_prior must be within [0, 1], not {strength!r}")
        self.strength = strength
        # Grown in place and cut back only at twice the context: `read` runs for every byte the
        # model steps, and cutting a 16 KB bytes object each time copied it each time.
        self._recent = bytearray()
        self._spans: list[bytes] = []  # the goal's, for this line
        self._new_spans: list[bytes] = []  # those the draft does not hold
        self._quoted: list[bytes] = []  # the goal's quoted spans: names
        self._listing = b""  # the last outline, as notes list it
        self._done_names: list[bytes] = []  # the goal's names written since the goal

    def _summary(self, logits: torch.Tensor, argument: bytes) -> torch.Tensor:
        """A ``done`` line is a summary, not a copy; only a name it quotes (``Added the section
        \\"…``) is copied, from the goal's names this session wrote, so the summary names the
        section that was added, not "Supporting dynamic advantages" for "Special case …"."""
        if argument.count(b'\\"') % 2 == 0:
            return logits
        counts = next_bytes(self._done_names, argument[argument.rfind(b'\\"') + 2:])
        return self._mix(logits, counts, self.strength) if counts else logits

    def _anchored(self, argument: bytes, spans: list[bytes], notes: bool) -> tuple[int, dict] | None:
        """(k, counts) where the argument so far starts as a name does: notes that begin as the
        outline's listing begins (from their second byte: "It's …" is not to become "Iterators
        …"), or a heading's text (``## ``, ``\\n## ``) that begins as one of the goal's quoted
        spans does, from its first byte: the goal names the section ("Start a section
        "Performance""), so its first letter is no longer the model's guess ("## Purroring").
        None where the argument starts as no such name."""
        if notes:
            names, rest = [self._listing], argument
            if not rest:
                return None
        else:
            heading = _HEADING_START.match(argument)
            if heading is None:
                return None
            names, rest = [span for span in spans if span in self._quoted], argument[heading.end():]
        counts = next_bytes(names, rest)
        return (len(rest), counts) if counts else None

    @property
    def recent(self) -> bytes:
        return bytes(self._recent[-CONTEXT_BYTES:])

    @recent.setter
    def recent(self, data: bytes) -> None:
        self._recent = bytearray(data[-CONTEXT_BYTES:])

    def read(self, data: bytes) -> None:
        """Bytes the model read (fed text, or a token it stepped)."""
        self._recent += data
        if len(self._recent) > 2 * CONTEXT_BYTES:
            del self._recent[:-CONTEXT_BYTES]

    def start_line(self, read_draft=None) -> None:
        """A command line begins; ``read_draft()``: the draft's text as the line will see it
        (read only when the goal quotes something)."""
        recent = self.recent  # one copy of the stream's end for the line, not one per use
        goal = last_goal(recent)
        self._spans = goal_spans(goal)
        self._quoted = quoted_spans(goal)
        draft = read_draft() if self._spans and read_draft is not None else ""
        self._new_spans = [span for span in self._spans if span.decode("utf-8", "replace") not in draft]
        self._listing = outline_listing(recent)
        # The goal's names the model has written since the goal: a summary names what was done.
        since_goal = recent[recent.rfind(b"\n" + GOAL_TAG) + 1:]
        written = b"\n".join(line for line in since_goal.split(b"\n") if line.startswith(b"> "))
        self._done_names = [span for span in self._quoted if span in written]

    def apply(self, logits: torch.Tensor, before: bytes, argument: bytes, *, search_string: bool = False
              ) -> torch.Tensor:
        """The masked logits for the next byte, with the goal's continuation mixed in. ``before``:
        the command line up to the quoted argument being written, ``argument``: its bytes so far;
        ``search_string``: the argument is one (the mask holds it to the draft's text)."""
        if before.startswith(b"done"):
            return self._summary(logits, argument)
        notes = before.startswith(b"notes")
        # A search string may copy any span (the old name of a rename); new text only a span
        # the draft does not hold yet: one it holds ("Cut the paragraph starting "This PEP
        # serves as"") says where, not what to write. And a span this line already holds is
        # not copied again: in `replace "## Old" "## New"` the second argument is the other name.
        if notes:
            spans = self._quoted + ([self._listing] if self._listing else [])
        else:
            spans = self._spans if search_string else self._new_spans
        spans = [span for span in spans if span not in before]
        anchored = self._anchored(argument, spans, notes)
        if anchored is not None:
            (k, counts), weight = anchored, self.strength
        else:
            source = b"".join(span + b"\n" for span in spans)
            k, counts = continuations(source, argument) if source else (0, {})
            strength = self.strength
            replacing = None if counts or search_string else _REPLACING.match(before)
            if replacing:
                k, counts = copied_from(replacing.group(1), argument)
                strength = min(strength, SEARCH_COPY_STRENGTH)
            weight = strength * min(1.0, (k - MIN_MATCH + 1) / RAMP)
        if not counts:
            return logits
        return self._mix(logits, counts, weight)

    @staticmethod
    def _mix(logits: torch.Tensor, counts: dict[int | None, int], weight: float) -> torch.Tensor:
        """(1 - weight)·p + weight·q, q from ``counts`` (None: the span ends, as the model ends it)."""
        allowed = torch.isfinite(logits)
        p = torch.softmax(logits.float(), dim=-1)
        q = torch.zeros_like(p)
        for byte, count in counts.items():
            if byte is None:  # the span ends: as the model would end it
                ends = torch.zeros_like(p)
                ends[QUOTE], ends[BACKSLASH] = p[QUOTE], p[BACKSLASH]
                if ends.sum() > 0:
                    q += count * ends / ends.sum()
            elif allowed[byte]:
                q[byte] += count
        if q.sum() == 0:
            return logits
        mixed = (1 - weight) * p + weight * q / q.sum()
        return torch.where(allowed, torch.log(mixed), logits.float()).to(logits.dtype)
