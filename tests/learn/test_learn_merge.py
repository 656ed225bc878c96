"""`infitool-edit merge`: a fine-tuned checkpoint merged with the weights it started from is the
straight line between them, tensor by tensor, loads as an ordinary checkpoint, and says so in the
model card; different models, or a share outside 0..1, are refused in one line with nothing
written."""

from __future__ import annotations

import json

import pytest
import torch

from infitool_edit.learn.card import render
from infitool_edit.learn.merge import MergeError, merge
from infitool_edit.model import Mamba2Config, Mamba2LM, load_checkpoint, save_checkpoint

from helpers import run_cli


def small(seed: int, hidden: int = 32) -> Mamba2LM:
    torch.manual_seed(seed)
    config = Mamba2Config(vocab_size=259, hidden_size=hidden, state_size=8, num_hidden_layers=2, expand=2,
                          num_heads=hidden // 8, head_dim=16, n_groups=1, chunk_size=8, tie_word_embeddings=True)
    model = Mamba2LM(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.5)  # far from the other seed's, so a wrong share shows
    return model


@pytest.fixture
def pair(tmp_path):
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    save_checkpoint(small(0), base)
    save_checkpoint(small(1), tuned)
    (base / "training.json").write_text(json.dumps({"steps": 100, "training_seconds": 3600.0}))
    (tuned / "training.json").write_text(json.dumps({"steps": 140, "training_seconds": 4000.0, "parameters": 1000,
                                                     "config": {"name": "default", "prose_mix": 0.2}}))
    (base / "generation_config.json").write_text(json.dumps({"do_sample": False, "min_plan_p": 0.7}))
    return base, tuned


def test_the_merge_is_the_straight_line_between_the_two_and_loads(pair, tmp_path):
    base, tuned = pair
    record = merge(base, tuned, 0.25, tmp_path / "merged")
    assert record == {"base": str(base), "tuned": str(tuned), "share": 0.25, "base_steps": 100, "tuned_steps": 140}
    a, b = load_checkpoint(base).state_dict(), load_checkpoint(tuned).state_dict()
    merged = load_checkpoint(tmp_path / "merged")
    for name, tensor in merged.state_dict().items():
        torch.testing.assert_close(tensor, 0.75 * a[name] + 0.25 * b[name], rtol=0, atol=1e-6)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    assert not torch.allclose(merged(ids)[0], load_checkpoint(base)(ids)[0], atol=1e-3)  # it computes something new
    # the run-time settings come from the folder that has them; the card says what was merged
    assert json.loads((tmp_path / "merged" / "generation_config.json").read_text())["min_plan_p"] == 0.7
    record = json.loads((tmp_path / "merged" / "training.json").read_text())
    assert record["steps"] == 140 and record["merge"]["share"] == 0.25
    assert "| merged | 0.25 of these weights with 0.75 of step 100's" in render(tmp_path / "merged")


def test_share_zero_is_the_base_bit_for_bit(pair, tmp_path):
    base, tuned = pair
    merge(base, tuned, 0.0, tmp_path / "same")
    a, same = load_checkpoint(base).state_dict(), load_checkpoint(tmp_path / "same").state_dict()
    assert all(torch.equal(a[name], same[name]) for name in a)
    (tuned / "training.json").unlink()  # a tuned folder without a record: the card still renders
    merge(base, tuned, 0.5, tmp_path / "bare")
    assert "| parameters | — |" in render(tmp_path / "bare") and "| merged | 0.5 of these weights" in render(tmp_path / "bare")


def test_different_models_or_a_share_past_one_are_refused_and_nothing_is_written(pair, tmp_path):
    base, tuned = pair
    wider = tmp_path / "wider"
    save_checkpoint(small(2, hidden=64), wider)
    with pytest.raises(MergeError, match="are different models \\(hidden_size: 32 against 64\\)"):
        merge(base, wider, 0.5, tmp_path / "out")
    with pytest.raises(MergeError, match="share"):
        merge(base, tuned, 1.5, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = run_cli("merge", base, wider, "--out", tmp_path / "out")
    assert result.returncode == 1 and "different models" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    good = run_cli("merge", base, tuned, "--out", tmp_path / "out", "--share", "0.5")
    assert good.returncode == 0 and json.loads(good.stdout.strip().splitlines()[-1])["share"] == 0.5
