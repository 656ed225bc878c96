"""The command language as a byte-level DFA, for the constrained decoder.

Compiled from ``grammar.language()``: the expression becomes a byte NFA
(UTF-8 spelled out, see ``regular.py``), subset construction makes it
deterministic, and Moore's partition refinement merges states with the same
future (so the many verbs that end in a quoted string share its states).

The DFA reads a command line without its final newline: ``accepting[s]``
says a complete command may end in state ``s``, i.e. ``\\n`` may come next.
Each state also knows what it was waiting for (``expected``), which is how
the parser words its errors: the parser and the decoder fail at the same
byte for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from infitool_edit.commands import grammar
from infitool_edit.commands.regular import ByteNFA

DEAD = -1

# Separators are listed after the things a line could go on with.
_LAST_LABELS = ("a space", "end of line")


def describe(labels) -> str:
    """``["a digit", "`:`", "a space"]`` -> ``a digit, `:` or a space``."""
    ordered = [label for label in labels if label not in _LAST_LABELS]
    ordered += [label for label in _LAST_LABELS if label in labels]
    if len(ordered) <= 1:
        return "".join(ordered) or "nothing more"
    return ", ".join(ordered[:-1]) + " or " + ordered[-1]


@dataclass(frozen=True)
class CommandDFA:
    start: int
    transitions: np.ndarray  # int32 [n_states, 256]; DEAD (-1) where no byte may follow
    accepting: np.ndarray  # bool [n_states]: a command may end here (b"\n" next)
    expected: tuple[str, ...]  # per state: what may come next, in words
    # The same table as Python lists: they index faster than numpy scalars
    # in a byte-at-a-time loop.
    _rows: list[list[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rows", self.transitions.tolist())

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    def walk(self, data: bytes, state: int | None = None) -> tuple[int, int]:
        """Feed ``data`` from ``state`` (default: the start). Returns the state
        reached and how many bytes were read; when a byte is refused it
        returns the state before it and that byte's offset."""
        table = self._rows
        state = self.start if state is None else state
        for offset, byte in enumerate(data):
            nxt = table[state][byte]
            if nxt == DEAD:
                return state, offset
            state = nxt
        return state, len(data)

    def accepts(self, data: bytes) -> bool:
        state, read = self.walk(data)
        return read == len(data) and bool(self.accepting[state])

    def allowed(self, state: int) -> np.ndarray:
        """Bool [256]: the bytes that may follow in ``state`` (``\\n`` is
        allowed exactly when ``accepting[state]``; it is not in the table)."""
        mask = self.transitions[state] != DEAD
        mask[0x0A] = bool(self.accepting[state])
        return mask


def _byte_classes(nfa: ByteNFA) -> tuple[np.ndarray, list[int]]:
    """Group the 256 bytes into classes no edge tells apart (a few dozen), so
    subset construction works on classes instead of bytes."""
    signature = [[] for _ in range(256)]
    for index, byteset in enumerate({edge[0] for edges in nfa.edges for edge in edges}):
        for byte in byteset:
            signature[byte].append(index)
    class_of: dict[tuple, int] = {}
    classes = np.empty(256, dtype=np.int64)
    representatives: list[int] = []
    for byte in range(256):
        key = tuple(signature[byte])
        if key not in class_of:
            class_of[key] = len(representatives)
            representatives.append(byte)
        classes[byte] = class_of[key]
    return classes, representatives


def _determinize(nfa: ByteNFA, start: int, final: int, representatives: list[int]):
    start_set = nfa.closure([start])
    index = {start_set: 0}
    order = [start_set]
    rows: list[list[int]] = []
    accepting: list[bool] = []
    labels: list[frozenset[int]] = []
    position = 0
    while position < len(order):
        current = order[position]
        position += 1
        row = []
        state_labels = set()
        for byte in representatives:
            targets = set()
            for nfa_state in current:
                for byteset, target, label in nfa.edges[nfa_state]:
                    if byte in byteset:
                        targets.add(target)
                        state_labels.add(label)
            if not targets:
                row.append(DEAD)
                continue
            closed = nfa.closure(targets)
            if closed not in index:
                index[closed] = len(order)
                order.append(closed)
            row.append(index[closed])
        rows.append(row)
        accepting.append(final in current)
        labels.append(frozenset(state_labels))
    return rows, accepting, labels


def _minimize(rows: np.ndarray, initial_blocks: np.ndarray) -> np.ndarray:
    """Moore's refinement: states stay together while they agree on their
    block and on the blocks every byte class leads to. Returns each state's
    final block."""
    blocks = initial_blocks
    while True:
        successor_blocks = np.where(rows >= 0, blocks[np.maximum(rows, 0)], DEAD)
        keys = np.concatenate([blocks[:, None], successor_blocks], axis=1)
        _, refined = np.unique(keys, axis=0, return_inverse=True)
        refined = refined.reshape(-1)
        if refined.max() == blocks.max():
            return refined
        blocks = refined


def build_dfa() -> CommandDFA:
    nfa = ByteNFA()
    start, final = nfa.new_state(), nfa.new_state()
    nfa.add(grammar.language(), start, final)
    classes, representatives = _byte_classes(nfa)
    rows, accepting, label_sets = _determinize(nfa, start, final, representatives)

    # What each state expects, in words; states that differ in it (or in
    # accepting) are never merged, so every error keeps its wording.
    expected = []
    for label_set, is_accepting in zip(label_sets, accepting):
        words = [nfa.labels[i] for i in sorted(label_set)]
        expected.append(describe(words + (["end of line"] if is_accepting else [])))
    kinds = {key: i for i, key in enumerate(dict.fromkeys(zip(expected, accepting)))}
    initial = np.array([kinds[key] for key in zip(expected, accepting)], dtype=np.int64)

    class_rows = np.array(rows, dtype=np.int64)
    blocks = _minimize(class_rows, initial)

    # Number the merged states in the order a breadth-first walk from the
    # start meets them, so the table does not depend on numpy's sort order.
    renumber = {blocks[0]: 0}
    queue = [0]
    members = {}
    for old, block in enumerate(blocks):
        members.setdefault(block, old)
    for old in queue:
        for target in class_rows[old]:
            if target != DEAD and blocks[target] not in renumber:
                renumber[blocks[target]] = len(renumber)
                queue.append(members[blocks[target]])
    block_to_new = np.full(blocks.max() + 1, DEAD, dtype=np.int64)
    for block, new in renumber.items():
        block_to_new[block] = new
    state_to_new = block_to_new[blocks]
    n_states = len(renumber)
    transitions = np.full((n_states, 256), DEAD, dtype=np.int32)
    accepting_out = np.zeros(n_states, dtype=bool)
    expected_out = [""] * n_states
    for block, new in renumber.items():
        old = members[block]
        targets = class_rows[old][classes]
        transitions[new] = np.where(targets >= 0, state_to_new[np.maximum(targets, 0)], DEAD)
        accepting_out[new] = accepting[old]
        expected_out[new] = expected[old]
    transitions.setflags(write=False)
    accepting_out.setflags(write=False)
    return CommandDFA(0, transitions, accepting_out, tuple(expected_out))


@lru_cache(maxsize=1)
def command_dfa() -> CommandDFA:
    """The DFA of the command language, built on first use (well under a
    second) and shared after that."""
    return build_dfa()
