"""The editor's async tests (Textual's pilot) run on asyncio, the loop Textual itself uses."""

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
