"""Without --model the editor runs the trained checkpoint in model/weights/ if one is installed,
else random weights, and says which."""

from __future__ import annotations

import torch

import infitool_edit.agent.default_model as shipped
from infitool_edit.agent.headless import make_backend
from infitool_edit.agent.ssm import BUILTIN_MODEL_NAME, DEFAULT_MODEL_NAME, random_tiny_model
from infitool_edit.learn.train import CONFIGS
from infitool_edit.model import Mamba2LM, save_checkpoint


def test_without_weights_the_default_is_the_random_tiny_model(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "weights_dir", lambda: tmp_path / "weights")
    assert shipped.default_model_description() == "untrained default model"
    backend = make_backend()
    assert backend.name == DEFAULT_MODEL_NAME
    expected = random_tiny_model()
    assert all(torch.equal(a, b) for a, b in zip(backend.model.parameters(), expected.parameters()))


def test_a_trained_checkpoint_in_weights_becomes_the_default(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    torch.manual_seed(5)
    trained = Mamba2LM(CONFIGS["smoke"].model_config())
    save_checkpoint(trained, weights)
    monkeypatch.setattr(shipped, "weights_dir", lambda: weights)
    assert shipped.default_model_description() == "built-in proofreading model"
    backend = make_backend()
    assert backend.name == BUILTIN_MODEL_NAME
    assert isinstance(backend.model, Mamba2LM)
    assert torch.equal(backend.model.embeddings.weight, trained.embeddings.weight)
    assert backend.mask_table is not None  # bytes: the byte-level mask holds lines to the draft
