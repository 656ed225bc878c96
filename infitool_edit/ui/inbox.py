"""Carrying the agent's events from its thread to the UI, coalesced.

The runner may emit thousands of events a second (one per token). Posting a
Textual message for each would flood the UI's queue; instead events wait in
a deque and the UI is woken by a single ``EventsWaiting`` message, then
drains everything that arrived since in one go (Toolong's coalescing, done
by hand). When the UI falls behind, ``put`` blocks the runner: the backlog
is bounded, so the screen never shows a model that is far ahead of it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from textual.message import Message

from infitool_edit.agent.events import Event

BACKLOG_LIMIT = 2000


class EventsWaiting(Message):
    """Agent events are waiting in the inbox."""


class EventInbox:
    def __init__(self, wake: Callable[[], object], limit: int = BACKLOG_LIMIT) -> None:
        self._wake = wake
        self._limit = limit
        self._events: deque[Event] = deque()
        self._changed = threading.Condition()
        self._woken = False
        self.closed = False

    def put(self, event: Event) -> None:
        """From the runner's thread: queue one event, waiting while the UI is behind."""
        with self._changed:
            while len(self._events) >= self._limit and not self.closed:
                self._changed.wait(0.1)
            self._events.append(event)
            wake = not self._woken
            self._woken = True
        if wake:
            self._wake()

    @property
    def waiting(self) -> int:
        return len(self._events)

    def take_all(self) -> list[Event]:
        """From the UI thread: every event that arrived, oldest first."""
        with self._changed:
            events = list(self._events)
            self._events.clear()
            self._woken = False
            self._changed.notify_all()
        return events

    def close(self) -> None:
        with self._changed:
            self.closed = True
            self._changed.notify_all()
