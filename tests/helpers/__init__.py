"""Helpers shared by test files of several layers. Test files import these
(``from helpers import …``; ``tests/`` is on pytest's ``pythonpath``), never
each other: with ``--import-mode=importlib`` a test file is not importable
by name, and two layers may hold test files of the same name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "examples"


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 120,
            **popen_options) -> subprocess.CompletedProcess[str]:
    """Run the real `infitool-edit` (as `python -m infitool_edit`) and capture
    its output."""
    return subprocess.run(
        [sys.executable, "-m", "infitool_edit", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen_options,
    )
