"""--quantize: a local model decodes with int8 or 4-bit weights, named so in its versions."""

from __future__ import annotations

import subprocess
import sys

import pytest

import infitool_edit.agent.default_model as shipped
from infitool_edit.agent.backend import QUANTIZE_CHOICES, QuantizeError
from infitool_edit.agent.headless import make_backend, run_headless
from infitool_edit.agent.ssm import BUILTIN_MODEL_NAME, random_tiny_model
from infitool_edit.model.checkpoint import save_checkpoint
from infitool_edit.model.quantize import QUANTIZERS, Int8Linear, Q4Linear


def test_the_choices_the_cli_checks_are_the_quantizers_the_model_has():
    assert tuple(QUANTIZERS) == QUANTIZE_CHOICES


@pytest.mark.parametrize("quantize, layer", [("int8", Int8Linear), ("q4", Q4Linear)])
def test_a_checkpoint_folder_decodes_quantized(tmp_path, example_draft, quantize, layer):
    folder = tmp_path / "tiny"
    save_checkpoint(random_tiny_model(hidden_size=64), folder)
    backend = make_backend(model=folder, quantize=quantize)
    assert backend.name == f"tiny+{quantize}"
    assert isinstance(backend.model.layers[0].mixer.in_proj, layer)
    run_headless(example_draft, "Fix the typos.", backend=backend, max_commands=3, seed=0)  # random weights: runs


def test_the_built_in_model_quantized_still_fixes_the_examples_typo_and_its_versions_say_so(example_draft,
                                                                                            monkeypatch):
    monkeypatch.delenv(shipped.FORCE_RANDOM_ENV, raising=False)
    original = example_draft.read_text()
    backend = make_backend(quantize="int8")
    assert backend.name == f"{BUILTIN_MODEL_NAME}+int8"
    run_headless(example_draft, "Fix the typos.", backend=backend, max_commands=12, seed=0)
    assert example_draft.read_text() == original.replace("Teh ", "The ")
    from infitool_edit.session.editing import EditingSession

    with EditingSession.open(example_draft, author="writer") as session:
        authors = {version.author for version in session.history.log()}
    assert f"model:{BUILTIN_MODEL_NAME}+int8" in authors


def test_a_wrong_choice_or_a_backend_without_weights_is_one_line_before_anything_loads(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(QuantizeError, match=r"^--quantize is one of int8, q4, not 'q5'$"):
        make_backend(model=missing, quantize="q5")  # the folder is never looked at
    script = tmp_path / "s.txt"
    script.write_text('done "x"\n')
    with pytest.raises(QuantizeError, match="for a local model"):
        make_backend(script=script, quantize="int8")
    result = subprocess.run([sys.executable, "-m", "infitool_edit", "run", str(tmp_path / "d.md"), "--goal", "x",
                             "--quantize", "q5"], capture_output=True, text=True)
    assert result.returncode != 0
    assert result.stderr.strip() == "infitool-edit: --quantize is one of int8, q4, not 'q5'"
