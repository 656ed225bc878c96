"""The model's side of the pen: its backend, the worker thread its runner
works in, the inbox its events arrive through, and stopping it.

A model is loaded in the worker when it first gets the pen (progress in the
status bar). Redirecting it (a new goal) stops the old run at its next
token and waits until that run has let go of the backend before the new
one takes it. The runner listens to the session itself; nothing here
relays the writer's edits to it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.worker import Worker

from infitool_edit.errors import expected_errors, one_line
from infitool_edit.ui.ask_deletion import DeletionQuestion
from infitool_edit.ui.inbox import EventInbox, EventsWaiting
from infitool_edit.ui.pen import Holder

if TYPE_CHECKING:
    from infitool_edit.agent.runner import Runner
    from infitool_edit.ui.app import InfitoolEditApp

BackendFactory = Callable[[], Any]


class ModelPen:
    def __init__(self, app: InfitoolEditApp, backend_factory: BackendFactory | None,
                 backend_name: str | None, *, ask_before_deleting: bool = True) -> None:
        self.app = app
        # Before a model's command deletes more than a share of the draft, the
        # run waits for the writer (agent/deletion_guard.py).
        self.deletion_question = DeletionQuestion(app) if ask_before_deleting else None
        self.backend_factory = backend_factory
        self.backend: Any = None
        self.backend_name = backend_name or ("no model" if backend_factory is None else "model")
        self.runner: Runner | None = None
        self.worker: Worker | None = None
        self.inbox = EventInbox(lambda: app.post_message(EventsWaiting()))
        self._run_finished = threading.Event()
        self._run_finished.set()

    @property
    def available(self) -> bool:
        return self.backend_factory is not None

    @property
    def running(self) -> bool:
        """A run is under way (perhaps paused)."""
        return self.runner is not None and not (self.worker is not None and self.worker.is_finished)

    def start(self, goal: str | None) -> None:
        """Start a run on ``goal`` (None: continue the stream's goal) in a
        worker thread; a run already going is redirected."""
        self.worker = self.app.run_worker(
            lambda: self._run(goal), thread=True, exclusive=True, exit_on_error=False, group="agent",
        )

    def _run(self, goal: str | None) -> None:
        from infitool_edit.agent.runner import Runner

        app = self.app
        if self.runner is not None:
            self.runner.stop()  # redirect: the old run ends at its next token…
            self._run_finished.wait()  # …and lets go of the backend before the new one takes it
        self._run_finished.clear()
        # ValueError too: parts outside the error root (the stream's store,
        # the constrained decoder's grammar check) refuse bad input with it.
        refused = (*expected_errors(), ValueError)
        try:
            if self.backend is None:
                app.call_from_thread(app.status.set, activity="loading model…")
                self.backend = self.backend_factory()
                # The model's own name, when the backend knows it (its display_name).
                self.backend_name = getattr(self.backend, "display_name", None) or self.backend_name
                app.call_from_thread(app.status.set, activity="", backend=self.backend_name)
                app.call_from_thread(app.show_title)
            question = self.deletion_question
            runner = Runner(app.session, self.backend, goal,
                            ask_before_deleting=question.ask if question is not None else None)
        except refused as error:
            self._refused(error)
            self._run_finished.set()
            return
        self.runner = runner
        try:
            runner.run(self.inbox.put)
        except refused as error:
            self._refused(error)
        finally:
            self._run_finished.set()

    def _refused(self, error: BaseException) -> None:
        self.app.call_from_thread(self.app.notify, one_line(error), severity="error")
        self.app.call_from_thread(self.app.set_holder, Holder.WRITER)

    def pause(self) -> None:
        if self.runner is not None:
            self.runner.pause()

    def resume(self) -> None:
        if self.runner is not None:
            self.runner.resume()

    def stop(self) -> None:
        """Stop the run at its next token and release its thread (from a
        pause, or from a full inbox)."""
        if self.runner is not None:
            self.runner.stop()
        if self.deletion_question is not None:
            self.deletion_question.close()  # a run waiting for an answer gets "refuse"
        self.inbox.close()

    async def wait(self) -> None:
        if self.worker is not None and not self.worker.is_finished:
            await self.worker.wait()

    def wait_finished(self, timeout: float) -> None:
        self._run_finished.wait(timeout=timeout)
