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

BPE tokenizers of pretrained checkpoints go through ``llguidance``
(``BpeLineConstraint``), fed the same grammar as one regular expression
(``grammar.command_regex()``). The line-number and length rules above are
byte-level only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from infitool_edit.commands import CommandDFA, command_dfa
from infitool_edit.commands import grammar
from infitool_edit.commands.fsm import DEAD

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
        self._extra: dict[tuple, tuple[torch.Tensor, int]] = {}

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


class LineConstraint:
    """The mask for one command line being written, byte by byte."""

    def __init__(self, table: ByteMaskTable, line_count: int, draft: Callable[[], str] | None = None) -> None:
        """``draft``: gives the draft's text, read only if the line comes to
        a search string (None: search strings are not held to a draft)."""
        self.table = table
        self.line_limit = max(1, line_count)
        self._draft = draft
        self._search: DraftSearch | None = None
        self.state = table.dfa.start
        self.written = bytearray()
        self._in_quote = False
        self._escaped = False
        self._in_heading = False  # slugs may hold digits and dashes
        self._line_digits: str | None = None  # digits of a line number being typed
        self._plain_next = True  # see `advance`
        self._plain, self._loose_until, self._transitions = table.plain, table.loose_until, table._transitions

    def mask(self) -> tuple[torch.Tensor, int]:
        """(bias row, forced token or -1) for the next token: a row of the table, never
        copied (the backend hands it to the model's step, which adds it to the logits)."""
        state = self.state
        # The common case, a byte of a quoted string, a heading or a verb with no line number
        # near and the budget far: the state's own row (what `row` would return).
        if self._plain_next and len(self.written) <= self._loose_until[state]:
            return self._plain[state]
        budget = self.table.max_bytes - len(self.written)
        if self._search is not None:
            return self._search_mask(budget)
        if self._in_quote or self._in_heading:
            return self.table.row(state, budget=budget)
        return self.table.row(state, banned=self._banned_digits(), budget=budget)

    def advance(self, token: int) -> None:
        self.written.append(token)
        self.state = -1 if token == NEWLINE else self._transitions[self.state][token]
        if self._in_quote and self._search is None and token != QUOTE and token != BACKSLASH and not self._escaped:
            return  # a plain byte of a string: nothing to track (what `_track` would conclude)
        self._track(token)
        # Whether `mask` may take the state's own row: no search string narrows it and no
        # line number can be under way (`_banned_digits` would give NOTHING).
        self._plain_next = self._search is None and (
            self._in_quote or self._in_heading
            or (self._line_digits is None and token != 0x20 and token != 0x2D)
        )

    @property
    def finished(self) -> bool:
        return self.state == -1

    def _search_mask(self, budget: int) -> tuple[torch.Tensor, int]:
        """The grammar's row narrowed to bytes that keep the search string
        one that occurs in the draft (not cached: it depends on the draft)."""
        row, forced = self.table.row(self.state, budget=budget)
        keep = np.zeros(self.table.vocab_size, dtype=bool)
        keep[self._search.allowed()] = True
        allowed = keep & np.isfinite(row.numpy())
        if not allowed.any():
            return row, forced  # nothing occurs and fits: the grammar alone
        bias = torch.where(torch.from_numpy(allowed), 0.0, float("-inf"))
        return bias, int(allowed.argmax()) if allowed.sum() == 1 else -1

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
            return
        if byte == QUOTE:
            self._in_quote = True
            self._line_digits = None
            verb = bytes(self.written[:-2])
            if self._draft is not None and self.written[-2:-1] == b" " and verb in SEARCH_VERBS:
                self._search = DraftSearch(self._draft().encode("utf-8"))
        elif byte == 0x23:  # `#`
            self._in_heading = True
            self._line_digits = None
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
