"""The editor's async tests (Textual's pilot) run on asyncio, the loop Textual itself uses."""

from pathlib import Path

import pytest

from helpers.first_frame import DRAFT


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def no_idle_flush_mid_test(monkeypatch):
    """A run of typing becomes a version after a 2-second pause; on a loaded
    machine two of a test's key presses can be that far apart, splitting
    the versions the test counts. No test here waits for that timer (a
    sentence's end, a save or another step makes the version), so it waits
    an hour."""
    monkeypatch.setattr("infitool_edit.ui.app.IDLE_FLUSH_S", 3600.0)


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    """A three-line essay (a test file that needs another draft defines its own ``draft``)."""
    path = tmp_path / "essay.md"
    path.write_text(DRAFT, encoding="utf-8")
    return path
