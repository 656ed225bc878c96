"""The BPE path of the constrained decoder: llguidance holds a BPE
vocabulary (built here with `tokenizers`) to the same command grammar."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("llguidance")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from infitool_edit.agent.constrain import BpeLineConstraint, llguidance_tokenizer  # noqa: E402
from infitool_edit.commands import parse  # noqa: E402

CORPUS = [
    'replace 13 "Teh" "The"',
    'insert 12:5 "very "',
    "read 12-40",
    'find "log books"',
    'note "cut the second paragraph"',
    "outline",
    "jump #the-lighthouse-keepers-year/winter",
    'done "Fixed the typo in the introduction."',
    "delete 12-14",
    "rewind v17",
] * 20


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([line + "\n" for line in CORPUS], trainer)
    return tokenizer


def test_random_logits_under_the_bpe_mask_write_only_commands(bpe: Tokenizer) -> None:
    ll_tokenizer = llguidance_tokenizer(bpe.to_str(), eos_token=bpe.token_to_id("<|endoftext|>"))
    vocab = bpe.get_vocab_size()
    generator = torch.Generator().manual_seed(0)
    multi_byte_tokens = finished = 0
    for _ in range(40):
        constraint = BpeLineConstraint(ll_tokenizer, vocab)
        ids: list[int] = []
        while not constraint.finished and len(ids) < 200:
            bias, forced = constraint.mask()
            logits = torch.randn(vocab, generator=generator) * 4 + bias
            token = forced if forced >= 0 else int(torch.multinomial(torch.softmax(logits, 0), 1, generator=generator))
            constraint.advance(token)
            ids.append(token)
            multi_byte_tokens += len(bpe.decode([token])) > 1
        text = bpe.decode(ids)
        if constraint.finished:
            finished += 1
            assert text.endswith("\n")
            parse(text[:-1])
    assert finished >= 20  # random logits write long strings; most lines still end
    assert multi_byte_tokens > 0  # merged tokens were chosen, not just single bytes


def test_a_token_outside_the_grammar_is_refused(bpe: Tokenizer) -> None:
    ll_tokenizer = llguidance_tokenizer(bpe.to_str(), eos_token=bpe.token_to_id("<|endoftext|>"))
    constraint = BpeLineConstraint(ll_tokenizer, bpe.get_vocab_size())
    bias, _ = constraint.mask()
    digit = bpe.encode("7").ids[0]
    assert bias[digit] == float("-inf")  # no command starts with a digit
    with pytest.raises(ValueError, match="breaks the command grammar"):
        constraint.advance(digit)
