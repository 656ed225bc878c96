"""`train --from` a shallower checkpoint: the grown model computes exactly what it did, and its
new blocks learn."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from infitool_edit.learn.grow import copies_after, grow_depth
from infitool_edit.learn.train import CONFIGS, TrainError, start_from
from infitool_edit.model import Mamba2LM, save_checkpoint
from infitool_edit.model.training import TrainingLM


def trained_looking(config) -> Mamba2LM:
    """A small model whose out_proj weights are not small, so a copy that still added its
    output (a wrong zeroing) would move the logits far past the tolerance."""
    torch.manual_seed(0)
    model = Mamba2LM(config).eval()
    with torch.no_grad():
        for block in model.layers:
            block.mixer.out_proj.weight.normal_(std=0.3)
    return model


def test_copies_are_spread_over_the_blocks():
    assert copies_after(6, 12) == [1] * 6
    assert copies_after(6, 8) == [0, 0, 0, 0, 1, 1]
    assert copies_after(2, 7) == [2, 3]
    assert sum(copies_after(5, 13)) == 8


def test_a_grown_checkpoint_computes_what_it_did_and_its_new_blocks_learn(tmp_path):
    small = replace(CONFIGS["smoke"], layers=2)
    model = trained_looking(small.model_config())
    save_checkpoint(model, tmp_path / "small")

    grown, _ = start_from(tmp_path / "small", replace(small, layers=5))
    grown.eval()
    assert len(grown.layers) == grown.config.num_hidden_layers == 5
    tokens = torch.randint(0, 256, (2, 70))
    with torch.no_grad():
        assert torch.equal(grown(tokens)[0], model(tokens)[0])
        state_small, state_grown = model.new_state(1), grown.new_state(1)
        for token in tokens[0, :20]:
            expected = model.step(token.view(1), state_small)
            assert torch.equal(grown.step(token.view(1), state_grown), expected)

    # The copies start silent (out_proj zero) and one optimizer step makes them speak.
    new_block = grown.layers[1]  # blocks: first, its copy, second, its two copies
    assert torch.count_nonzero(new_block.mixer.out_proj.weight) == 0
    grown.train()
    optimizer = torch.optim.SGD(grown.parameters(), lr=0.1)
    loss, count = TrainingLM(grown, small.chunk)(tokens)
    (loss / count).backward()
    optimizer.step()
    assert torch.count_nonzero(new_block.mixer.out_proj.weight) > 0


def test_a_deeper_checkpoint_is_not_cut_down(tmp_path):
    deep = replace(CONFIGS["smoke"], layers=3)
    save_checkpoint(Mamba2LM(deep.model_config()), tmp_path / "deep")
    with pytest.raises(TrainError, match="is not config 'smoke'"):
        start_from(tmp_path / "deep", replace(deep, layers=2))
