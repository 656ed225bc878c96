"""Looking at an older version, and going back to it.

Moving through the timeline shows a version read-only in the editor, its
change against its parent marked word by word; Escape returns to the draft.
From there the writer rewinds (a new version with that text, on the same
branch) or forks (a new branch starting from it). Either is a version the
session records and publishes like any other command's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.widgets import Static

from infitool_edit.commands import ast
from infitool_edit.document.positions import Position
from infitool_edit.errors import expected_errors, one_line
from infitool_edit.session.editing import Executed
from infitool_edit.ui.worddiff import word_diff

if TYPE_CHECKING:
    from infitool_edit.ui.app import InfitoolEditApp

PREVIEW_DELAY_S = 0.05  # holding a key in the timeline previews only where it stops
MAX_REMOVED_SHOWN = 120
CACHED_DRAFTS = 4


def positions_of(text: str, offsets: list[int]) -> dict[int, Position]:
    """(line, column) of each offset, counting newlines once from the top
    between successive offsets (not from the top for each)."""
    found: dict[int, Position] = {}
    line = at = 0
    for offset in sorted(set(offsets)):
        line += text.count("\n", at, offset)
        at = offset
        found[offset] = (line, offset - text.rfind("\n", 0, offset) - 1)
    return found


class VersionPreview:
    def __init__(self, app: InfitoolEditApp) -> None:
        self.app = app
        self.number: int | None = None  # the version shown, None: the live draft
        self._timer = None
        self._drafts: dict[int, str] = {}  # version -> draft, oldest use first

    def select(self, number: int) -> None:
        """The timeline's cursor moved: preview there once it rests."""
        self.cancel()
        self._timer = self.app.set_timer(PREVIEW_DELAY_S, lambda: self.show(number))

    def cancel(self) -> None:
        """Forget a preview still waiting for the timeline's cursor to rest."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def show(self, number: int) -> None:
        """Show version ``number`` read-only, its change marked word by word."""
        app = self.app
        if self.number is None:
            app.writer_pen.flush()
            app.action_take_pen()  # the writer is reviewing: the model waits
        self.number = number
        history = app.history
        info = history.version(number)
        new = self._draft(number)
        old = self._draft(info.parent) if info.parent else ""
        diff = word_diff(old, new)
        editor = app.editor
        editor.read_only = True
        editor.show_text(new)  # only the lines that differ from what is on screen
        at = positions_of(new, [offset for span in diff.inserted for offset in span])
        editor.set_marks([(at[a], at[b]) for a, b in diff.inserted])
        if editor.marks:
            editor.scroll_to_position(editor.marks[0][0])
        removed = " · ".join(word.strip() for word in diff.removed if word.strip())[:MAX_REMOVED_SHOWN]
        banner = app.query_one("#preview-banner", Static)
        banner.update(f"v{number} by {info.author}: {info.message.splitlines()[0] if info.message else ''}"
                      + (f"  — removed: {removed}" if removed else "")
                      + "   (Enter rewinds · f forks · Esc back)")
        banner.add_class("shown")

    def _draft(self, number: int) -> str:
        """A version's draft; the last few are kept, since stepping through
        the timeline reads each version twice (as itself, then as a parent)."""
        cache = self._drafts
        if number in cache:
            cache[number] = cache.pop(number)  # the newest use last
        else:
            cache[number] = self.app.history.read(number).draft
            while len(cache) > CACHED_DRAFTS:
                del cache[next(iter(cache))]
        return cache[number]

    def leave(self) -> None:
        if self.number is None:
            return
        self.number = None
        app = self.app
        app.editor.read_only = False
        app.editor.set_marks([])
        app.query_one("#preview-banner").remove_class("shown")
        app.resync()

    def rewind(self, number: int) -> None:
        self._go_back(lambda: self.app.execute_for_writer(ast.Rewind(ast.VersionRef(number))))

    def fork(self, number: int) -> None:
        def fork() -> Executed | None:
            try:
                return self.app.session.fork(number, author=self.app.writer)
            except expected_errors() as error:
                self.app.notify(one_line(error), severity="error")
                return None

        self._go_back(fork)

    def _go_back(self, make_version: Callable[[], Executed | None]) -> None:
        app = self.app
        app.action_take_pen()
        self.leave()
        executed = make_version()
        if executed is not None:
            app.notify(f"now at v{executed.version} ({executed.line})")
            app.resync()
