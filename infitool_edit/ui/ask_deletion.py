"""The question the editor asks before the model deletes a large part of the
draft (agent/deletion_guard.py): allow, refuse, or take the pen.

The runner's thread waits in ``DeletionQuestion.ask`` while the dialog is on
screen; quitting (or stopping the model) answers "refuse" so that it never
waits for a screen that is gone.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from infitool_edit.agent.deletion_guard import Answer, LargeDeletion

if TYPE_CHECKING:
    from infitool_edit.ui.app import InfitoolEditApp


class DeletionScreen(ModalScreen[Answer]):
    DEFAULT_CSS = """
    DeletionScreen { align: center middle; }
    DeletionScreen > Vertical { width: 76; max-width: 95%; height: auto; border: thick $warning;
                                background: $panel; padding: 0 1; }
    DeletionScreen #removed { color: $text-muted; max-height: 6; }
    """
    BINDINGS = [
        Binding("a", "answer('allow')", "Allow"),
        Binding("r,escape", "answer('refuse')", "Refuse"),
        Binding("p,f2", "answer('take the pen')", "Take the pen"),
    ]

    def __init__(self, question: LargeDeletion) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("The model wants to delete a large part of the draft", id="deletion-title")
            yield Static(self.question.describe() + ":", markup=False, id="deletion-what")
            yield Static(self.question.removed, markup=False, id="removed")
            yield Label("a allow · r refuse (nothing is applied) · p take the pen   "
                        "(every version stays in the timeline either way)")

    def action_answer(self, answer: str) -> None:
        self.dismiss(Answer(answer))


class DeletionQuestion:
    """Carries one question from the runner's thread to the screen and the answer back."""

    def __init__(self, app: InfitoolEditApp) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._waiting: tuple[threading.Event, list[Answer]] | None = None
        self._closed = False

    def ask(self, question: LargeDeletion) -> Answer:
        """On the runner's thread: show the question, wait for the answer."""
        answered, answer = threading.Event(), []
        with self._lock:
            if self._closed:
                return Answer.REFUSE
            self._waiting = (answered, answer)
        self.app.call_from_thread(self.app.ask_about_deletion, question, lambda given: self._give(given))
        answered.wait()
        return answer[0]

    def _give(self, given: Answer) -> None:
        with self._lock:
            if self._waiting is not None:
                answered, answer = self._waiting
                self._waiting = None
                answer.append(given)
                answered.set()

    def close(self) -> None:
        """No one will answer any more: a waiting question is refused."""
        with self._lock:
            self._closed = True
        self._give(Answer.REFUSE)
