"""Without --model the editor runs the trained checkpoint in model/weights/ if one is installed,
else random weights, and says which."""

from __future__ import annotations

import pytest
import torch

import infitool_edit.agent.default_model as shipped
from infitool_edit.agent.headless import make_backend, run_headless
from infitool_edit.agent.ssm import BUILTIN_MODEL_NAME, DEFAULT_MODEL_NAME, random_tiny_model
from infitool_edit.learn.train import CONFIGS
from infitool_edit.model import Mamba2LM, save_checkpoint


def test_without_weights_the_default_is_the_random_tiny_model(tmp_path, monkeypatch):
    monkeypatch.delenv(shipped.FORCE_RANDOM_ENV, raising=False)
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
    monkeypatch.delenv(shipped.FORCE_RANDOM_ENV, raising=False)
    monkeypatch.setattr(shipped, "weights_dir", lambda: weights)
    assert shipped.default_model_description() == shipped.TRAINED_DESCRIPTION
    backend = make_backend()
    assert backend.name == BUILTIN_MODEL_NAME
    assert isinstance(backend.model, Mamba2LM)
    assert torch.equal(backend.model.embeddings.weight, trained.embeddings.weight)
    assert backend.mask_table is not None  # bytes: the byte-level mask holds lines to the draft


def test_the_shipped_weights_load_and_write_valid_commands(example_draft, monkeypatch):
    """The checkpoint committed in model/weights/ is the default, and runs the editor's loop."""
    monkeypatch.delenv(shipped.FORCE_RANDOM_ENV, raising=False)
    assert shipped.has_trained_default(), "model/weights/ holds no trained checkpoint"
    from infitool_edit.agent.runner import Runner
    from infitool_edit.commands import parse
    from infitool_edit.session.editing import EditingSession

    backend = make_backend()
    assert backend.name == BUILTIN_MODEL_NAME
    with EditingSession.open(example_draft, author="writer") as session:
        Runner(session, backend, "Fix the typos.", max_commands=4, seed=0).run()
        commands = [v.message for v in session.history.log() if v.author != "writer" and v.number > 1]
    for line in commands:
        parse(line)  # every version the model made is a command the parser accepts


# The README's first goal, and ways a writer might word it instead: a checkpoint once fixed the
# example for "Fix the typos." and, asked "Fix typos", rewrote a word of good text.
@pytest.mark.parametrize("goal", ["Fix the typos.", "fix typos", "Proofread the draft.",
                                  "Correct the spelling mistakes"])
def test_the_shipped_model_fixes_the_examples_typo_and_nothing_else(example_draft, monkeypatch, goal):
    monkeypatch.delenv(shipped.FORCE_RANDOM_ENV, raising=False)
    original = example_draft.read_text()
    assert original.count("Teh ") == 1
    run_headless(example_draft, goal, backend=make_backend(), max_commands=12, seed=0)
    assert example_draft.read_text() == original.replace("Teh ", "The ")


def test_forcing_the_random_model(monkeypatch):
    monkeypatch.setenv(shipped.FORCE_RANDOM_ENV, "random")
    assert not shipped.has_trained_default()
    assert make_backend().name == DEFAULT_MODEL_NAME
