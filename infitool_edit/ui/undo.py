"""Undo and redo of the writer's own edits, as new versions.

Nothing is ever taken out of the history: an undo executes the inverse of
the writer's last version as a new writer version (the timeline shows it,
and the model reads it in its stream like any other edit), a redo executes
the original again. One step is one writer version, so steps are grouped
the way the pen groups versions: a run of typing up to a sentence end or a
pause, a paste, a cut, a deleted selection or word.

Only the writer's steps are undone. The model's (and anyone else's) edits
are stepped over: the writer's steps are moved along through them
(``document/positions.shift``), and a step whose text the model has since
edited is dropped, with a word, rather than undone across the model's work.
Going back past the model is deliberate: the timeline (Enter rewinds) or
taking back the model's whole run (``reject_run`` in the app). A rewind or
fork by anyone empties both stacks: positions before it mean nothing after.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from infitool_edit.commands import ast
from infitool_edit.document.edits import TextEdit
from infitool_edit.document.positions import Position, end_after, shift
from infitool_edit.session.editing import Executed

MAX_STEPS = 1000


@dataclass(frozen=True)
class Step:
    """One writer version: ``inserted`` now lies at ``start`` where ``removed`` was."""

    start: Position
    removed: str
    inserted: str

    @property
    def end(self) -> Position:
        return end_after(self.start, self.inserted)

    def as_command(self) -> ast.Command:
        """The command that takes this step back."""
        at = ast.Point(self.start[0] + 1, self.start[1] + 1)
        end = self.end
        span = ast.Span(at, ast.Point(end[0] + 1, end[1] + 1))
        if not self.inserted:
            return ast.Insert(at, self.removed)
        if not self.removed:
            return ast.Delete(span)
        return ast.Replace(span, self.removed)

    def moved_by(self, edit: TextEdit) -> Step | None:
        """This step after someone else's ``edit``; None when the edit touched its text."""
        end = self.end
        if edit.end <= self.start or edit.start >= end:
            new_end = end_after(edit.start, edit.text)
            start = shift(self.start, edit.start, edit.end, new_end)
            if edit.start == edit.end == self.start and edit.text:
                start = new_end  # text inserted right before the step pushes it along
            return Step(start, self.removed, self.inserted)
        return None


def removed_text(executed: Executed) -> str:
    """What the version took out of the draft, read from its inverse command."""
    inverse = executed.outcome.inverse if executed.outcome is not None else None
    if isinstance(inverse, ast.Insert):
        return inverse.text
    if isinstance(inverse, ast.Replace):
        return inverse.new
    return ""


class WriterUndo:
    """The writer's undo and redo stacks, fed every version the session makes."""

    def __init__(self, writer: str, execute: Callable[[ast.Command], Executed | None]) -> None:
        self.writer = writer
        self._execute = execute
        self.undo_steps: list[Step] = []
        self.redo_steps: list[Step] = []
        self._replaying: list[Step] | None = None  # where the step being executed goes
        self.dropped = 0  # steps given up because the model edited their text
        # The model's versions are published on its thread: one stack change at a time.
        self._lock = threading.RLock()

    def record(self, executed: Executed) -> None:
        """One version, as the session published it (on any thread)."""
        with self._lock:
            self._record(executed)

    def _record(self, executed: Executed) -> None:
        if executed.back_to is not None:  # a rewind or fork: earlier positions mean nothing now
            self.undo_steps.clear()
            self.redo_steps.clear()
            return
        edit = executed.edit
        if edit is None:
            return
        if executed.author == self.writer:
            step = Step(edit.start, removed_text(executed), edit.text)
            if self._replaying is not None:
                self._replaying.append(step)  # an undo's own step is what a redo takes back
                return
            self.undo_steps.append(step)
            del self.undo_steps[:-MAX_STEPS]
            self.redo_steps.clear()
            return
        for stack in (self.undo_steps, self.redo_steps):
            moved = [step.moved_by(edit) for step in stack]
            self.dropped += sum(step is None for step in moved)
            stack[:] = [step for step in moved if step is not None]

    def undo(self) -> Executed | None:
        return self._replay(self.undo_steps, self.redo_steps)

    def redo(self) -> Executed | None:
        return self._replay(self.redo_steps, self.undo_steps)

    def _replay(self, source: list[Step], target: list[Step]) -> Executed | None:
        with self._lock:
            if not source:
                return None
            step = source.pop()
            self._replaying = target
            try:
                return self._execute(step.as_command())
            finally:
                self._replaying = None
