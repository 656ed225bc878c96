"""Turning the writer's keystrokes into commands.

Each keystroke is shown at once, but a version per letter (or per word:
~65 a minute) would bury the model's work in the timeline, so typed
characters gather into one pending ``insert`` and become one version when a
sentence or a line ends (". " "! " "? " or a newline), when the writer does
anything else (backspace outside the run, a jump, a paste, a save, handing
the pen back, undo) or after a pause in typing (the app's timer). Backspace
inside the pending run just shortens it; elsewhere it becomes a ``delete``
version of its own. The model reads the writer's versions in its stream
when it next reads, so it loses nothing by the grouping.
"""

from __future__ import annotations

from collections.abc import Callable

from infitool_edit.commands import ast
from infitool_edit.document.edits import TextEdit
from infitool_edit.document.positions import end_after
from infitool_edit.ui.holder import Holder  # noqa: F401  (where the pen's users have always found it)

SENTENCE_ENDS = (". ", "! ", "? ", ".\" ", "?\" ", "!\" ", "\n")  # where a run of typing becomes a version


def point(position: tuple[int, int]) -> ast.Point:
    """A 0-based (line, col) as the command language's 1-based point."""
    return ast.Point(position[0] + 1, position[1] + 1)


class WriterPen:
    """Gathers the writer's edits; ``execute`` runs one command for the writer."""

    def __init__(self, execute: Callable[[ast.Command], object]) -> None:
        self._execute = execute
        self.start: tuple[int, int] | None = None
        self.text = ""

    @property
    def pending(self) -> bool:
        return bool(self.text)

    def _pending_end(self) -> tuple[int, int]:
        assert self.start is not None
        return end_after(self.start, self.text)

    def edit(self, edit: TextEdit, *, alone: bool = False) -> None:
        """Take one edit the writer made in the view (already shown there);
        ``alone``: a version of its own (a paste, a cut), never part of a run."""
        is_insert = edit.start == edit.end and edit.text
        if alone:
            self.flush()
            self._execute(_as_command(edit))
            return
        if is_insert and self.text and edit.start == self._pending_end():
            self.text += edit.text
        elif (not edit.text and self.text and edit.end == self._pending_end()
              and edit.start[0] == edit.end[0] and edit.end[1] - edit.start[1] <= len(self.text.split("\n")[-1])
              and edit.start >= self.start):
            self.text = self.text[: len(self.text) - (edit.end[1] - edit.start[1])]
            if not self.text:
                self.start = None
        else:
            self.flush()
            if is_insert:
                self.start, self.text = edit.start, edit.text
            else:
                self._execute(_as_command(edit))
        if self.text.endswith(SENTENCE_ENDS):
            self.flush()

    def flush(self) -> None:
        """Make the pending insert a version now."""
        if self.text:
            start, text = self.start, self.text
            self.start, self.text = None, ""
            self._execute(ast.Insert(point(start), text))


def _as_command(edit: TextEdit) -> ast.Command:
    span = ast.Span(point(edit.start), point(edit.end))
    if not edit.text:
        return ast.Delete(span)
    if edit.start == edit.end:
        return ast.Insert(point(edit.start), edit.text)
    return ast.Replace(span, edit.text)

