"""The BPE path of the constrained decoder: llguidance holds a BPE
vocabulary (built here with `tokenizers`) to the same command grammar."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("llguidance")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from infitool_edit.agent.constrain import BpeLineConstraint, llguidance_tokenizer  # noqa: E402
from infitool_edit.agent.constrain import MAX_COMMAND_BYTES  # noqa: E402
from infitool_edit.commands import CommandError, command_dfa, parse  # noqa: E402

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


def _bpe_checkpoint(bpe: Tokenizer, folder: Path) -> Path:
    """A random Mamba whose embedding is padded past its BPE tokenizer, as mamba-130m-hf's is,
    saved as a HuggingFace folder with the tokenizer.json beside it."""
    from infitool_edit.model import MambaConfig, MambaLM
    from infitool_edit.model.checkpoint import save_checkpoint

    torch.manual_seed(3)
    config = MambaConfig(vocab_size=bpe.get_vocab_size() + 3, hidden_size=32, state_size=8, num_hidden_layers=2)
    save_checkpoint(MambaLM(config).eval(), folder)
    (folder / "tokenizer.json").write_text(bpe.to_str())
    return folder


def test_a_bpe_checkpoint_folder_writes_commands_in_the_editor_loop(bpe: Tokenizer, tmp_path: Path) -> None:
    """`--model FOLDER` with a tokenizer.json: the runner's real loop (history, stream, mask)
    over a BPE vocabulary; every line the model ends is a command, and resume continues."""
    from typer.testing import CliRunner

    from infitool_edit.agent.stream import StreamLog, stream_dir_for
    from infitool_edit.cli import app
    from infitool_edit.history import History

    folder = _bpe_checkpoint(bpe, tmp_path / "bpe-model")
    draft = tmp_path / "draft.md"
    draft.write_text("# Notes\n\nTeh first line.\nThe second line.\n")
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(draft), "--goal", "Fix the typo.", "--model", str(folder),
                              "--max-commands", "12", "--seed", "2"])
    assert ran.exit_code == 0, ran.output
    assert ran.output.startswith("> ")
    with History.open(draft) as history:
        log = StreamLog(stream_dir_for(history))
        stream = log.tail_text(100_000)
    model_lines = [line[2:] for line in stream.split("\n") if line.startswith("> ")]
    assert len(model_lines) >= 3
    parsed = 0
    for line in model_lines:
        try:
            parse(line)
            parsed += 1
        except CommandError:
            # Under llguidance a line can run on (a quote never closed): the backend ends it at
            # the byte budget. Such a line must still be one the grammar could continue, cut
            # no earlier than the budget; anything else is a line the mask let through.
            data = line.encode("utf-8")
            assert len(data) >= MAX_COMMAND_BYTES, line
            assert command_dfa().walk(data)[1] == len(data), line
    assert parsed >= 3
    again = runner.invoke(app, ["resume", str(draft), "--model", str(folder), "--max-commands", "3"])
    assert again.exit_code == 0, again.output


def test_a_bpe_tokenizer_larger_than_the_checkpoint_is_a_one_line_error(bpe: Tokenizer, tmp_path: Path) -> None:
    from infitool_edit.agent.ssm import ModelError, load_model
    from infitool_edit.model import MambaConfig, MambaLM
    from infitool_edit.model.checkpoint import save_checkpoint

    folder = tmp_path / "small"
    save_checkpoint(MambaLM(MambaConfig(vocab_size=300, hidden_size=16, num_hidden_layers=1)), folder)
    (folder / "tokenizer.json").write_text(bpe.to_str())
    with pytest.raises(ModelError, match=f"300 token embeddings, its tokenizer.json needs {bpe.get_vocab_size()}"):
        load_model(folder)
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a tokenizer.json"):
        load_model(folder)
