"""Fixtures shared across the test suite (add yours with a targeted edit).
Plain helpers live in ``tests/helpers``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import EXAMPLES, run_cli


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
