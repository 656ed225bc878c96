"""The byte DFA agrees with the parser: same lines, same failing byte."""

from __future__ import annotations

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from infitool_edit.commands import CommandError, command_dfa, parse, serialize
from infitool_edit.commands import ast
from infitool_edit.commands.fsm import DEAD
from infitool_edit.commands.generate import commands
from infitool_edit.commands.grammar import VERBS

from helpers.command_lines import interesting_lines, mutated_commands

COMMAND_TYPES = tuple(t for t in vars(ast).values() if isinstance(t, type) and t.__module__ == ast.__name__)


def test_the_table_has_the_promised_shape_and_stays_small():
    dfa = command_dfa()
    assert dfa is command_dfa()
    assert dfa.transitions.dtype == np.int32
    assert dfa.transitions.shape == (dfa.n_states, 256)
    assert dfa.accepting.shape == (dfa.n_states,) and dfa.accepting.dtype == bool
    assert len(dfa.expected) == dfa.n_states
    assert 50 < dfa.n_states < 1000
    assert dfa.transitions.min() >= DEAD and dfa.transitions.max() < dfa.n_states
    # A newline is never inside a command: it is what `accepting` allows.
    assert (dfa.transitions[:, 0x0A] == DEAD).all()
    assert not dfa.accepting[dfa.start]


def test_every_state_is_alive():
    """From every state some accepting state can be reached: a decoder held
    to the mask can never paint itself into a corner."""
    dfa = command_dfa()
    reaches_end = set(np.flatnonzero(dfa.accepting).tolist())
    predecessors = {s: set() for s in range(dfa.n_states)}
    for source, row in enumerate(dfa.transitions.tolist()):
        for target in row:
            if target != DEAD:
                predecessors[target].add(source)
    queue = deque(reaches_end)
    while queue:
        for source in predecessors[queue.popleft()]:
            if source not in reaches_end:
                reaches_end.add(source)
                queue.append(source)
    assert reaches_end == set(range(dfa.n_states))


@settings(max_examples=300, deadline=None)
@given(commands())
def test_the_dfa_accepts_every_serialized_command_byte_by_byte(command):
    dfa = command_dfa()
    data = serialize(command).encode("utf-8")
    state = dfa.start
    for byte in data:
        assert dfa.allowed(state)[byte]
        state = int(dfa.transitions[state, byte])
    assert dfa.accepting[state] and dfa.allowed(state)[0x0A]


# --- arbitrary bytes: the DFA and parse agree ------------------------------

def _agrees(data: bytes) -> None:
    dfa = command_dfa()
    try:
        command = parse(data)
    except CommandError as error:
        assert not dfa.accepts(data)
        assert error.column >= 1
        _check_the_prefix_before_the_error_could_go_on(data, error)
    else:
        assert isinstance(command, COMMAND_TYPES)
        assert dfa.accepts(data)
        # One spelling per command: a line that parses is its canonical form.
        assert serialize(command).encode("utf-8") == data


def _check_the_prefix_before_the_error_could_go_on(data: bytes, error: CommandError) -> None:
    """Everything before the error's column is the start of some command the
    parser's regular expressions accept (so the column is not too early)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # the UTF-8 cases are pinned in test_commands.py
    prefix = text[: error.column - 1].encode("utf-8")
    dfa = command_dfa()
    state, read = dfa.walk(prefix)
    assert read == len(prefix)
    completion = _shortest_completion(state)
    parse(prefix + completion)  # raises if the column was wrong


def _shortest_completion(state: int) -> bytes:
    dfa = command_dfa()
    seen = {state: b""}
    queue = deque([state])
    while queue:
        current = queue.popleft()
        if dfa.accepting[current]:
            return seen[current]
        for byte in range(0x20, 0x7F):  # ASCII suffices to finish any line
            target = int(dfa.transitions[current, byte])
            if target != DEAD and target not in seen:
                seen[target] = seen[current] + bytes([byte])
                queue.append(target)
    raise AssertionError(f"state {state} cannot finish a command in ASCII")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_dfa_and_parse_agree(data):
    _agrees(data)


@settings(max_examples=400, deadline=None)
@given(interesting_lines)
def test_grammar_shaped_bytes_dfa_and_parse_agree(data):
    _agrees(data)


@settings(max_examples=600, deadline=None)
@given(mutated_commands())
def test_mutated_commands_dfa_and_parse_agree(data):
    _agrees(data)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_arbitrary_text_gives_a_command_or_a_command_error(text):
    try:
        parse(text)
    except CommandError:
        pass
