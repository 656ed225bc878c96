"""Which model runs when no ``--model`` is given, told without loading it (no torch import):
the trained checkpoint shipped in ``model/weights/`` when there is one, else random weights.

The names here are what the status bar and ``--help`` show, so they say which it is."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# The shipped checkpoint proofreads (check, fix, done) and moves, adds and renames sections (a new
# name copied from the goal); it cannot yet write a paragraph of its own: model/weights/README.md.
TRAINED_DESCRIPTION = "built-in model: proofreads, edits sections"
UNTRAINED_DESCRIPTION = "untrained default model"
FORCE_RANDOM_ENV = "INFITOOL_DEFAULT_MODEL"
"""``INFITOOL_DEFAULT_MODEL=random`` runs the random-weight model even when trained weights are
installed: the machinery demo, and the model the tests written for it expect."""


def weights_dir() -> Path:
    """``model/weights/`` of the installed package (found without importing the package)."""
    spec = importlib.util.find_spec("infitool_edit.model")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) / "weights" if locations else Path(__file__).resolve().parents[2] / "model" / "weights"


def has_trained_default() -> bool:
    if os.environ.get(FORCE_RANDOM_ENV) == "random":
        return False
    folder = weights_dir()
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def default_model_description() -> str:
    return TRAINED_DESCRIPTION if has_trained_default() else UNTRAINED_DESCRIPTION
