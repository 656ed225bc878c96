"""Other regular-expression engines read ``command_regex()`` as the byte DFA
does: Python's ``re`` and llguidance (Rust's regex, the engine a BPE model
or a structured-outputs server would be held by)."""

from __future__ import annotations

import re
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infitool_edit.commands import command_dfa, serialize
from infitool_edit.commands.generate import commands
from infitool_edit.commands.grammar import command_regex

from helpers.command_lines import interesting_lines, mutated_commands

llguidance = pytest.importorskip("llguidance")


class _ByteVocabulary:
    """A tokenizer whose tokens are the 256 bytes (plus an end token), so
    llguidance's verdict is per byte, like the DFA's."""

    eos_token_id = 256
    bos_token_id = None
    tokens = [bytes([b]) for b in range(256)] + [b"<end>"]
    special_token_ids = [256]

    def __call__(self, data: bytes) -> list[int]:
        return list(data)


@lru_cache(maxsize=1)
def _llguidance_grammar():
    tokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteVocabulary()))
    grammar = llguidance.grammar_from("regex", command_regex())
    assert llguidance.LLMatcher.validate_grammar(grammar, tokenizer) == ""
    return tokenizer, grammar


def _llguidance_reads(data: bytes) -> tuple[int, bool]:
    """How many bytes llguidance lets through, and whether all of them make
    a complete line."""
    tokenizer, grammar = _llguidance_grammar()
    matcher = llguidance.LLMatcher(tokenizer, grammar)
    read = matcher.validate_tokens(list(data))
    complete = read == len(data) and matcher.consume_tokens(list(data)) and matcher.is_accepting()
    return read, complete


def _all_agree(data: bytes) -> None:
    dfa = command_dfa()
    _, dfa_read = dfa.walk(data)
    dfa_accepts = dfa.accepts(data)
    assert _llguidance_reads(data) == (dfa_read, dfa_accepts)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert not dfa_accepts
    else:
        assert (re.fullmatch(command_regex(), text) is not None) == dfa_accepts


@settings(max_examples=150, deadline=None)
@given(commands())
def test_peers_accept_every_serialized_command(command):
    _all_agree(serialize(command).encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(mutated_commands())
def test_peers_stop_at_the_same_byte_on_mutated_commands(data):
    _all_agree(data)


@settings(max_examples=200, deadline=None)
@given(st.one_of(interesting_lines, st.binary(max_size=30)))
def test_peers_stop_at_the_same_byte_on_other_bytes(data):
    _all_agree(data)
