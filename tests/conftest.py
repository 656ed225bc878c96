"""Fixtures shared across the test suite (add yours with a targeted edit)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
EXAMPLES = REPOSITORY / "examples"


@pytest.fixture
def example_draft(tmp_path: Path) -> Path:
    """A private copy of examples/draft.md, in a folder of its own."""
    draft = tmp_path / "draft.md"
    shutil.copyfile(EXAMPLES / "draft.md", draft)
    return draft


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 120,
            **popen_options) -> subprocess.CompletedProcess[str]:
    """Run the real `infitool-edit` (as `python -m infitool_edit`) and capture
    its output."""
    return subprocess.run(
        [sys.executable, "-m", "infitool_edit", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen_options,
    )


@pytest.fixture
def cli():
    """Call ``cli(*args)`` to run the real command line in a subprocess."""
    return run_cli
