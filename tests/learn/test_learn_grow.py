"""`train --from` a shallower checkpoint, or into a hybrid: the grown model computes exactly what
it did, its new blocks learn, and a hybrid trains, saves and resumes."""

from __future__ import annotations

import json

from dataclasses import replace

import pytest
import torch

from infitool_edit.learn.card import render
from infitool_edit.learn.grow import copies_after
from infitool_edit.learn.train import CONFIGS, TrainError, TrainOptions, start_from, train
from infitool_edit.model import Mamba2LM, load_checkpoint, save_checkpoint
from infitool_edit.model.granite import GraniteHybridLM
from infitool_edit.model.hf_folder import save_folder
from infitool_edit.model.training import TrainingLM
from infitool_edit.model.training import forward as training_forward

from helpers.training_data import data_folder


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


def test_a_grown_checkpoint_computes_what_it_did_and_its_new_blocks_learn(tmp_path, monkeypatch):
    from infitool_edit.kernels import cpu_step

    monkeypatch.setattr(cpu_step, "ADAPTIVE_THREADS", False)  # bits compared across two models' steps
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


def test_a_mamba2_checkpoint_becomes_a_hybrid_that_computes_what_it_did(tmp_path):
    small = CONFIGS["smoke"]
    model = trained_looking(small.model_config())
    save_checkpoint(model, tmp_path / "small")
    hybrid_config = replace(small, attention_after=(0,), attention_heads=2, mlp_size=32)

    hybrid, _ = start_from(tmp_path / "small", hybrid_config)
    hybrid.eval()
    assert isinstance(hybrid, GraniteHybridLM)
    assert hybrid.config.layer_types == ["mamba", "attention", "mamba"]
    tokens = torch.randint(0, 256, (2, 70))
    with torch.no_grad():
        assert torch.equal(hybrid(tokens)[0], model(tokens)[0])
        torch.testing.assert_close(training_forward(hybrid, tokens), model(tokens)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(TrainError, match="hybrid shape"):  # a hybrid goes on only as that hybrid
        save_folder(hybrid, tmp_path / "hybrid")
        start_from(tmp_path / "hybrid", replace(hybrid_config, mlp_size=16))


def test_train_grows_a_hybrid_saves_it_and_resumes_it(tmp_path, monkeypatch):
    monkeypatch.setitem(CONFIGS, "tiny-hybrid", replace(CONFIGS["smoke"], name="tiny-hybrid", attention_after=(1,),
                                                        attention_heads=2, mlp_size=32))
    save_checkpoint(trained_looking(CONFIGS["smoke"].model_config()), tmp_path / "small")
    data, out = data_folder(tmp_path), tmp_path / "out"
    first = train(TrainOptions(data=data, out=out, config="tiny-hybrid", start_from=tmp_path / "small",
                               phase="streams", max_steps=3, threads=1, quiet=True))
    assert first["steps"] == 3
    saved = load_checkpoint(out / "latest")
    assert isinstance(saved, GraniteHybridLM) and saved.config.layer_types[-1] == "attention"
    # The folder names the window it trained at (its longest read), which the editor then uses.
    longest = CONFIGS["tiny-hybrid"].longest_read
    assert json.loads((out / "latest" / "config.json").read_text())["attention_window"] == longest
    assert saved.new_state().window == longest
    assert load_checkpoint(out / "latest", attention_window=64).new_state().window == 64  # --attention-window
    card = render(out / "latest")
    assert f"keys and values of the last {longest} bytes) after Mamba-2 layer 2" in card
    assert "`GraniteMoeHybridForCausalLM` names" in card
    again = train(TrainOptions(data=data, out=out, resume=True, max_steps=1, threads=1, quiet=True))
    assert again["steps"] == 4
