"""Waiting on a Textual app driven by its pilot."""

from __future__ import annotations

import asyncio


async def wait_until(pilot, condition, timeout: float = 20.0) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds (a loaded
    machine runs the app slowly, so the wait is generous and the poll short)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the app"
        await pilot.pause(0.02)
