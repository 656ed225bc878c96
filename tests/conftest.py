"""Fixtures shared across the test suite (add yours with a targeted edit).
Plain helpers live in ``tests/helpers``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_cli


# The tests written for the random-weight default model keep it (its behaviour is what they pin);
# tests/agent/test_agent_default_model.py checks the shipped trained model on its own.
os.environ.setdefault("INFITOOL_DEFAULT_MODEL", "random")


@pytest.fixture
def example_draft(tmp_path: Path) -> Path:
    """A private copy of examples/draft.md, in a folder of its own."""
    draft = tmp_path / "draft.md"
    shutil.copyfile(EXAMPLES / "draft.md", draft)
    return draft


@pytest.fixture
def cli():
    """Call ``cli(*args)`` to run the real command line in a subprocess."""
    return run_cli
