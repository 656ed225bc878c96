"""Constrained decoding: the model can write nothing but a command line.

Byte-level tokenizers (the project's own models) use the commands'
``CommandDFA`` as it is: per DFA state a cached additive bias row over the
vocabulary (0 where a byte may follow, -inf elsewhere), so masking a step is
one tensor add. A state with exactly one allowed token names it, and the
backend feeds it without sampling.

On top of the grammar, per turn:

- line numbers stay within the draft: while a line number is being typed,
  digits that would take it past the line count are masked (so every line
  number is between 1 and the line count, or one past it for ``insert``);
- every line ends within ``max_bytes``: each state knows the fewest bytes
  that complete a command from it, and once the budget runs short only
  bytes that can still finish in time are allowed.

- search strings occur in the draft: a quoted first argument of ``insert``,
  ``delete``, ``replace``, ``jump``, ``read`` or ``find`` is an address, and
  while it is typed only bytes that keep it a substring of the draft (escapes
  included) are allowed. Other strings (the ``old`` of ``replace 13 "old"
  "new"`` cannot be told from a ``new`` until the line ends) are free; one
  that does not occur comes back as an ``@error`` observation.

- heading paths resolve in the draft: wherever the grammar takes a heading
  address (``read #a/b``, ``insert #a "text"``: any verb, as a point or a
  range), while it is typed only bytes that keep it a prefix of a path that
  ``find_section`` resolves are allowed, and a byte that ends it (the space
  or the newline, whatever the grammar has next) only once the path typed
  so far resolves; ``#`` itself is banned where no heading can be named.
  The paths are all that ``find_section`` resolves (``heading_paths``):
  each heading's own slug (where it is the first of that slug), its full
  path from the top (what ``outline`` shows) and every shortcut between,
  such as ``#year/spring`` for ``# Year`` > ``## Seasons`` > ``### Spring``;
  at most 32 a heading (six levels). They are made from the draft's
  headings (``Turn.read_headings``; the text is parsed only without them)
  when the headings change, and kept as a sorted list of byte strings, so a
  byte costs a few bisections however many headings there are, and the
  rows are cached in the table.

None of these draft-dependent rules is in the fused C step: it adds whatever
row ``mask`` hands it (the common case, a ready row per DFA state), and the
narrowed rows are made here, as for search strings.

BPE tokenizers of pretrained checkpoints go through ``llguidance``
(``BpeLineConstraint``), fed the same grammar as one regular expression
(``grammar.command_regex()``). The line-number, length, search-string and
heading-path rules above are byte-level only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch

from infitool_edit.commands import CommandDFA, command_dfa
from infitool_edit.commands import grammar
from infitool_edit.commands.fsm import DEAD
from infitool_edit.commands.grammar import SLUG_ASCII
from infitool_edit.document.buffer import normalize_newlines
from infitool_edit.document.structure import MarkdownStructure

NEWLINE = 0x0A
DIGITS = frozenset(range(0x30, 0x3A))
MAX_COMMAND_BYTES = 512
NOTHING: frozenset[int] = frozenset()


def distances_to_accept(dfa: CommandDFA) -> np.ndarray:
    """Per state, the fewest bytes after which a command may end (0 in an
    accepting state; a large number for states that cannot finish)."""
    far = np.iinfo(np.int32).max // 2
    distance = np.where(dfa.accepting, 0, far).astype(np.int64)
    targets = dfa.transitions
    while True:
        via = np.where(targets >= 0, distance[np.maximum(targets, 0)] + 1, far).min(axis=1)
        updated = np.minimum(distance, via)
        if np.array_equal(updated, distance):
            return updated
        distance = updated


class ByteMaskTable:
    """The DFA's masks over a byte-level vocabulary (ids 0-255 are bytes;
    anything above, such as special tokens, is never allowed)."""

    def __init__(self, dfa: CommandDFA, vocab_size: int, *, max_bytes: int = MAX_COMMAND_BYTES) -> None:
        if vocab_size < 256:
            raise ValueError(f"a byte-level mask needs at least 256 tokens, the model has {vocab_size}")
        self.dfa = dfa
        self.vocab_size = vocab_size
        self.max_bytes = max_bytes
        self.distance = distances_to_accept(dfa)
        self._transitions = dfa.transitions.tolist()
        self._distance = self.distance.tolist()
        successors = np.where(dfa.transitions >= 0, self.distance[np.maximum(dfa.transitions, 0)], -1)
        self._max_next_distance = successors.max(axis=1).tolist()
        allowed = np.zeros((dfa.n_states, vocab_size), dtype=bool)
        allowed[:, :256] = dfa.transitions != DEAD
        allowed[:, NEWLINE] = dfa.accepting
        self._allowed = allowed
        self.bias = torch.where(torch.from_numpy(allowed), 0.0, float("-inf"))  # (states, vocab)
        # One view per state, made once: indexing the tensor per token costs more than a decode
        # step of the default model leaves for the whole mask.
        self._rows = list(self.bias.unbind(0))
        counts = allowed.sum(axis=1)
        first = allowed.argmax(axis=1)
        self.forced = [int(first[s]) if counts[s] == 1 else -1 for s in range(dfa.n_states)]
        # What `row(state)` gives with nothing banned, as one ready tuple per state, and the most
        # bytes a line may hold in that state before the budget can bind (`row`'s `tight`): the
        # mask's common case is then a list index and a comparison, no call, nothing allocated.
        self.plain = [(self._rows[s], self.forced[s]) for s in range(dfa.n_states)]
        self.loose_until = [max_bytes - 2 - self._max_next_distance[s] for s in range(dfa.n_states)]
        # States where a heading address may start (the byte `#` is allowed).
        self.heading_may_start = allowed[:, 0x23].tolist()
        self._extra: dict[tuple, tuple[torch.Tensor, int]] = {}
        # Rows inside heading paths (`LineConstraint._heading_mask`), by (state, the path's next
        # bytes, whether it may end, the budget where it binds).
        self.heading_rows: dict[tuple, tuple[torch.Tensor, int]] = {}

    def next_state(self, state: int, token: int) -> int:
        """The state after ``token``; -1 after the line's newline."""
        if token == NEWLINE:
            return -1
        return self._transitions[state][token]

    def row(self, state: int, *, banned: frozenset[int] = NOTHING, budget: int | None = None) -> tuple[torch.Tensor, int]:
        """The bias row for ``state`` with ``banned`` bytes removed and, when
        ``budget`` bytes are left, only bytes that can still finish in time;
        and the one allowed token, or -1."""
        # Tight: some byte would lead where the line can no longer end in time.
        tight = budget is not None and budget - 2 < self._max_next_distance[state]
        if not banned and not tight:
            return self._rows[state], self.forced[state]
        key = (state, banned, budget if tight else None)
        cached = self._extra.get(key)
        if cached is None:
            allowed = self._allowed[state].copy()
            for byte in banned:
                allowed[byte] = False
            if tight:
                for byte in range(256):
                    if byte == NEWLINE:
                        continue  # ends the line now: always in time
                    nxt = self._transitions[state][byte]
                    if allowed[byte] and (nxt == DEAD or self._distance[nxt] + 1 > budget - 1):
                        allowed[byte] = False
            if not allowed.any():  # nothing fits: fall back to the grammar alone
                allowed = self._allowed[state]
            bias = torch.where(torch.from_numpy(allowed), 0.0, float("-inf"))
            cached = (bias, int(allowed.argmax()) if allowed.sum() == 1 else -1)
            self._extra[key] = cached
        return cached


@lru_cache(maxsize=4096)
def _digits_past(prefix: str, limit: int) -> frozenset[int]:
    """The digits that would make ``prefix`` + digit a number above ``limit``."""
    return frozenset(d for d in DIGITS if int(prefix + chr(d)) > limit)


@lru_cache(maxsize=8)
def byte_mask_table(vocab_size: int, max_bytes: int = MAX_COMMAND_BYTES) -> ByteMaskTable:
    return ByteMaskTable(command_dfa(), vocab_size, max_bytes=max_bytes)


# What a draft byte is written as inside quotes, when it cannot stand for itself.
ESCAPE_LETTER = {0x0A: ord("n"), 0x09: ord("t"), 0x22: ord('"'), 0x5C: ord("\\")}
ESCAPED_BYTE = {letter: byte for byte, letter in ESCAPE_LETTER.items()}
QUOTE, BACKSLASH = 0x22, 0x5C

# Verbs whose first argument, when quoted, is a search string (an address).
SEARCH_VERBS = (b"insert", b"delete", b"replace", b"move", b"jump", b"read", b"find", b"check", b"fix")


def _typeable_raw(byte: int) -> bool:
    return 0x20 <= byte < 0x7F or byte >= 0x80


class DraftSearch:
    """Where a search string being typed still occurs in the draft: the
    positions just past each occurrence of what has been typed so far."""

    def __init__(self, draft: bytes) -> None:
        self.draft = np.frombuffer(draft, dtype=np.uint8)
        self.ends: np.ndarray | None = None  # None: nothing typed yet
        self.escaping = False

    def allowed(self) -> list[int]:
        """The bytes that keep the string an occurring one (the closing quote
        once it is non-empty)."""
        if self.ends is None:
            following = np.unique(self.draft)
        else:
            ends = self.ends[self.ends < len(self.draft)]
            following = np.unique(self.draft[ends])
        following = following.tolist()
        if self.escaping:
            return [ESCAPE_LETTER[b] for b in following if b in ESCAPE_LETTER]
        allowed = [b for b in following if b not in ESCAPE_LETTER and _typeable_raw(b)]
        if any(b in ESCAPE_LETTER for b in following):
            allowed.append(BACKSLASH)
        if self.ends is not None:
            allowed.append(QUOTE)
        return allowed

    def advance(self, byte: int) -> None:
        if not self.escaping and byte == BACKSLASH:
            self.escaping = True
            return
        actual = ESCAPED_BYTE.get(byte, byte) if self.escaping else byte
        self.escaping = False
        if self.ends is None:
            self.ends = np.flatnonzero(self.draft == actual) + 1
        else:
            ends = self.ends[self.ends < len(self.draft)]
            self.ends = ends[self.draft[ends] == actual] + 1


HASH = 0x23
HEADING_ROWS_KEPT = 4096  # cached heading-path rows per table (256 floats and more each)
NO_HEADING = frozenset({HASH})
# The bytes that go on with a heading address: a slug's characters (every non-ASCII byte among
# them) and the `/` between parts. Any other byte the grammar allows after a slug ends the address.
CONTINUES_HEADING = np.zeros(256, dtype=bool)
CONTINUES_HEADING[list((SLUG_ASCII + "/").encode("ascii"))] = True
CONTINUES_HEADING[0x80:] = True
ENDS_HEADING = ~CONTINUES_HEADING
# Past every byte of UTF-8 text (which never holds 0xFF): `prefix + PAST` sorts after each string
# that starts with `prefix`.
PAST = b"\xff"


@lru_cache(maxsize=4)
def heading_paths(headings: tuple[tuple[int, str], ...]) -> tuple[bytes, ...]:
    """Every heading path ``find_section`` resolves in a draft whose headings
    are ``headings`` ((level, slug) in draft order), as sorted UTF-8 byte
    strings without the ``#``: ``b"the-year"``, ``b"the-year/spring"``.

    A first part names the first heading of that slug anywhere; each later
    part the first heading of that slug inside the section found so far,
    that is among the headings below it in the outline. So a path resolves
    to heading ``h`` when it is ``h``'s slug (``h`` the first of that slug),
    or a path resolving to one of ``h``'s enclosing headings ``e`` followed
    by ``h``'s slug (``h`` the first of that slug in ``e``'s section). A
    heading at depth ``d`` gets at most 2**(d-1) paths, markdown has six
    levels: at most 32 paths a heading, whatever the draft. A heading whose
    slug is empty (a title of punctuation) cannot be written as a path."""
    found: list[bytes] = []
    first_anywhere: set[str] = set()
    # The headings enclosing the current one, outermost first: (level, the paths resolving to
    # it, the slugs already met in its section).
    enclosing: list[tuple[int, list[bytes], set[str]]] = []
    for level, slug in headings:
        while enclosing and enclosing[-1][0] >= level:
            enclosing.pop()
        paths: list[bytes] = []
        if slug:
            name = slug.encode("utf-8")
            if slug not in first_anywhere:
                first_anywhere.add(slug)
                paths.append(name)
            for _, outer_paths, met in enclosing:
                if slug not in met:
                    met.add(slug)
                    paths.extend(outer + b"/" + name for outer in outer_paths)
        found.extend(paths)
        enclosing.append((level, paths, set()))
    return tuple(sorted(found))  # each path resolves to one heading: no duplicates


@lru_cache(maxsize=2)  # the texts are held: keep few (the draft now and the one before)
def headings_of_draft(text: str) -> tuple[tuple[int, str], ...]:
    """(level, slug) of the headings of ``text`` as the document engine finds
    them, for a caller that has the draft's text but not its structure; kept
    for the last texts, so the text is parsed once, not once a line."""
    return MarkdownStructure(normalize_newlines(text).split("\n")).heading_slugs()


class HeadingPathCursor:
    """Where a heading path being typed stands among the draft's paths: the
    slice ``[lo, hi)`` of the sorted ``paths`` that start with what has been
    typed after the ``#``."""

    def __init__(self, paths: Sequence[bytes]) -> None:
        self.paths = paths
        self.typed = b""
        self.lo, self.hi = 0, len(paths)

    @property
    def resolves(self) -> bool:
        """Whether the path typed so far is one that resolves (the address may end here)."""
        return self.lo < self.hi and self.paths[self.lo] == self.typed

    def next_bytes(self) -> list[int]:
        """The bytes that keep the path a prefix of one that resolves: one
        bisection per distinct next byte, not a walk over the paths."""
        paths, typed, depth, hi = self.paths, self.typed, len(self.typed), self.hi
        index = self.lo + (1 if self.resolves else 0)
        following = []
        while index < hi:
            byte = paths[index][depth]
            following.append(byte)
            index = bisect_left(paths, typed + bytes((byte,)) + PAST, index, hi)
        return following

    def advance(self, byte: int) -> None:
        self.typed += bytes((byte,))
        self.lo = bisect_left(self.paths, self.typed, self.lo, self.hi)
        self.hi = bisect_left(self.paths, self.typed + PAST, self.lo, self.hi)


class LineConstraint:
    """The mask for one command line being written, byte by byte."""

    def __init__(
        self, table: ByteMaskTable, line_count: int, draft: Callable[[], str] | None = None,
        headings: Callable[[], Sequence[tuple[int, str]]] | None = None,
    ) -> None:
        """``draft``: gives the draft's text, read only if the line comes to
        a search string or a heading address (None: neither is held to a
        draft). ``headings``: gives the draft's headings as (level, slug) (the
        workspace's ``heading_slugs()``), so that heading paths need no parse
        of the text; without it the text from ``draft`` is parsed when a
        heading address may start."""
        self.table = table
        self.line_limit = max(1, line_count)
        self._draft = draft
        self._headings = headings
        self._search: DraftSearch | None = None
        self._paths: tuple[bytes, ...] | None = None  # the draft's heading paths, once needed
        self._heading: HeadingPathCursor | None = None  # a heading path being typed, held to them
        self.state = table.dfa.start
        self.written = bytearray()
        self._in_quote = False
        self._argument_start = 0  # where the quoted argument being written starts in `written`
        self._escaped = False
        self._in_heading = False  # slugs may hold digits and dashes
        self._line_digits: str | None = None  # digits of a line number being typed
        self._plain_next = True  # see `advance`
        self._plain, self._loose_until, self._transitions = table.plain, table.loose_until, table._transitions
        self.reached_limit = False  # see `_full_mask`

    def mask(self) -> tuple[torch.Tensor, int]:
        """(bias row, forced token or -1) for the next token: a row of the table, never
        copied (the backend hands it to the model's step, which adds it to the logits)."""
        state = self.state
        # The common case, a byte of a quoted string, a heading or a verb with no line number
        # near and the budget far: the state's own row (what `_full_mask` would return).
        if self._plain_next and len(self.written) <= self._loose_until[state]:
            return self._plain[state]
        return self._full_mask()

    def _full_mask(self) -> tuple[torch.Tensor, int]:
        """The mask for the next token, every rule looked at (``mask`` without its short path)."""
        state = self.state
        budget = self.table.max_bytes - len(self.written)
        if len(self.written) > self._loose_until[state]:  # `row`'s `tight`, as `mask` reads it
            # The budget now decides some bytes, not the model: the line ends because it must,
            # and what it holds (a new text closed mid-sentence) is cut, not finished.
            self.reached_limit = True
        if self._search is not None:
            return self._narrowed(budget, self._search.allowed())
        if self._heading is not None:
            return self._heading_mask(budget)
        if self._in_quote or self._in_heading:
            return self.table.row(state, budget=budget)
        banned = self._banned_digits()
        if self._draft is not None and self.table.heading_may_start[state] and not self._heading_paths():
            banned = banned | NO_HEADING  # no heading to name: no `#`
        return self.table.row(state, banned=banned, budget=budget)

    def advance(self, token: int) -> None:
        self.written.append(token)
        self.state = -1 if token == NEWLINE else self._transitions[self.state][token]
        if self._in_quote and self._search is None and token != QUOTE and token != BACKSLASH and not self._escaped:
            return  # a plain byte of a string: nothing to track (what `_track` would conclude)
        self._track(token)
        # Whether `mask` may take the state's own row: no search string or heading path narrows
        # it and no line number can be under way (`_banned_digits` would give NOTHING).
        self._plain_next = self._search is None and self._heading is None and (
            self._in_quote or self._in_heading
            or (self._line_digits is None and token != 0x20 and token != 0x2D)
        )

    @property
    def finished(self) -> bool:
        return self.state == -1

    @property
    def in_search_string(self) -> bool:
        """Whether the next byte is one of a search string's (held to the draft's text)."""
        return self._search is not None

    @property
    def in_address(self) -> bool:
        """Whether the next byte names a place in the draft: one of a search string's, a heading
        path's, or a line number's after its first digit (each held to what the draft holds)."""
        return self._search is not None or self._heading is not None or self._line_digits is not None

    @property
    def open_argument(self) -> tuple[bytes, bytes] | None:
        """(the line up to it, the quoted argument so far) while the next byte is one of a quoted
        argument's (escapes as written), else None."""
        if not self._in_quote:
            return None
        return bytes(self.written[: self._argument_start]), bytes(self.written[self._argument_start:])

    def _heading_mask(self, budget: int) -> tuple[torch.Tensor, int]:
        """The grammar's row narrowed to bytes that keep the heading path a
        prefix of one that resolves, and to the bytes that end it once it does.
        Cached in the table by what it depends on (the same headings give the
        same rows line after line)."""
        heading = self._heading
        following, ends = tuple(heading.next_bytes()), heading.resolves
        table, state = self.table, self.state
        tight = budget - 2 < table._max_next_distance[state]
        key = (state, following, ends, budget if tight else None)
        cached = table.heading_rows.get(key)
        if cached is None:
            keep = np.zeros(256, dtype=bool)
            keep[list(following)] = True
            if ends:
                keep |= ENDS_HEADING
            cached = self._narrowed(budget, keep)
            if len(table.heading_rows) >= HEADING_ROWS_KEPT:
                table.heading_rows.clear()  # a bound, not a policy: rows are cheap to make again
            table.heading_rows[key] = cached
        return cached

    def _narrowed(self, budget: int, keep) -> tuple[torch.Tensor, int]:
        """The grammar's row narrowed to the bytes ``keep`` (a list of them or a
        mask over the 256), not cached: it depends on the draft."""
        row, forced = self.table.row(self.state, budget=budget)
        allowed = np.isfinite(row.numpy())
        kept = np.zeros(self.table.vocab_size, dtype=bool)
        kept[:256][keep] = True
        allowed &= kept
        if not allowed.any():
            return row, forced  # nothing the draft has fits: the grammar alone
        bias = torch.where(torch.from_numpy(allowed), 0.0, float("-inf"))
        return bias, int(allowed.argmax()) if allowed.sum() == 1 else -1

    def _heading_paths(self) -> tuple[bytes, ...]:
        """The draft's heading paths, read once for the line, from the
        headings when they are given (``heading_paths`` keeps the paths of
        the last few heading lists: a draft whose headings did not change
        costs their list and its hash), else from the text, parsed once per
        text (``headings_of_draft``)."""
        if self._paths is None:
            headings = self._headings() if self._headings is not None else headings_of_draft(self._draft())
            self._paths = heading_paths(tuple(headings))
        return self._paths

    def _track(self, byte: int) -> None:
        """Follow quotes and numbers, to know when a line number or a search
        string is typed."""
        if self._in_quote:
            if self._escaped:
                self._escaped = False
            elif byte == BACKSLASH:
                self._escaped = True
            elif byte == QUOTE:
                self._in_quote = False
                self._search = None
                return
            if self._search is not None:
                self._search.advance(byte)
            return
        if self._in_heading:
            self._in_heading = byte != 0x20
            if self._heading is not None:
                if CONTINUES_HEADING[byte]:
                    self._heading.advance(byte)
                else:
                    self._heading = None  # the address ended
            return
        if byte == QUOTE:
            self._in_quote = True
            self._argument_start = len(self.written)
            self._line_digits = None
            verb = bytes(self.written[:-2])
            if self._draft is not None and self.written[-2:-1] == b" " and verb in SEARCH_VERBS:
                self._search = DraftSearch(self._draft().encode("utf-8"))
        elif byte == HASH:
            self._in_heading = True
            self._line_digits = None
            if self._draft is not None:
                self._heading = HeadingPathCursor(self._heading_paths())
        elif byte in DIGITS:
            if self._line_digits is not None:
                self._line_digits += chr(byte)
            elif len(self.written) >= 2 and self.written[-2] in b" -":
                self._line_digits = chr(byte)  # after a space or a range's dash: a line
        else:
            self._line_digits = None  # `:` starts a column, `v` a version

    def _banned_digits(self) -> frozenset[int]:
        prefix = self._line_digits
        if prefix is None:
            # A line number may start here: the next digit begins it.
            if not self.written or self.written[-1] not in b" -":
                return NOTHING
            prefix = ""
        limit = self.line_limit + (1 if self.written.startswith(b"insert ") else 0)
        return _digits_past(prefix, limit)


# --- BPE tokenizers: the same grammar through llguidance ----------------------


class BpeLineConstraint:
    """The mask for one command line over a BPE vocabulary, computed by
    llguidance from the grammar's regular expression (``command_regex``)
    followed by the newline. Same interface as ``LineConstraint``.
    ``vocab_size``: the model's, which may exceed the tokenizer's."""

    def __init__(self, ll_tokenizer, vocab_size: int) -> None:
        import llguidance

        self.vocab_size = vocab_size
        self.matcher = llguidance.LLMatcher(ll_tokenizer, _bpe_grammar())
        if self.matcher.is_error():
            raise ValueError(f"llguidance refused the command grammar: {self.matcher.get_error()}")
        self.finished = False
        # Nothing here holds a line to a byte budget: the backend cuts a line that runs on.
        self.reached_limit = False

    def mask(self) -> tuple[torch.Tensor, int]:
        bits = np.frombuffer(self.matcher.compute_bitmask(), dtype=np.uint8)
        tokenizer_bits = np.unpackbits(bits, bitorder="little")[: self.vocab_size].astype(bool)
        # A checkpoint's embedding may be padded past its tokenizer (mamba-130m: 50,280 rows for
        # 50,277 tokens): rows no token stands for are never allowed.
        allowed = np.zeros(self.vocab_size, dtype=bool)
        allowed[: len(tokenizer_bits)] = tokenizer_bits
        bias = torch.where(torch.from_numpy(allowed), 0.0, float("-inf"))
        return bias, int(allowed.argmax()) if allowed.sum() == 1 else -1

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise ValueError(f"token {token} breaks the command grammar: {self.matcher.get_error()}")
        # The line is over once the newline is in: only the end may follow.
        self.finished = self.matcher.is_stopped() or self.matcher.is_accepting()


@lru_cache(maxsize=1)
def _bpe_grammar() -> str:
    import llguidance

    return llguidance.grammar_from("regex", grammar.command_regex() + "\\n")


def llguidance_tokenizer(tokenizer_json: str, eos_token: int):
    """An ``llguidance.LLTokenizer`` from a ``tokenizer.json`` text."""
    import llguidance

    return llguidance.LLTokenizer(tokenizer_json, eos_token=eos_token)
