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


@pytest.fixture(scope="session")
def llama_cpp(request):
    """A real llama.cpp: INFITOOL_LLAMA_SERVER's, or built once by tools/build_llamacpp.sh into
    ~/.cache/infitool-edit/llama.cpp/ (tests/helpers/llamacpp.py); skips with one line where
    it cannot be had. The build's progress lines reach the terminal."""
    from helpers import llamacpp

    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        try:
            return llamacpp.find_or_build()
        except llamacpp.Unavailable as reason:
            skip, why = True, str(reason)
        except llamacpp.BuildFailed as reason:
            skip, why = False, str(reason)
    # Outside the except blocks, so the report is the one line, not the line twice with a chain.
    if skip:
        pytest.skip(why)
    pytest.fail(why, pytrace=False)


def pytest_collection_modifyitems(config, items):
    # A first run builds llama.cpp inside the llama_cpp fixture (minutes on two cores): time only
    # the test bodies of the tests that use it, so the build is not cut off by the per-test limit.
    for item in items:
        if "llama_cpp" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(float(config.getini("timeout") or 0), func_only=True))
