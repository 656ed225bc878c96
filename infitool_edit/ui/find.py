"""Find and replace in the draft: a bar above the editor.

ctrl+f opens it (ctrl+r with the replace field). Typing searches as you
type and selects the first match after the cursor; Enter or ↓ goes to the
next match, ↑ (or shift+enter) to the previous, and the bar says which
match of how many ("3/12"). In the replace field Enter replaces the match
shown and goes on; ctrl+r there replaces every match as ONE version (one
``replace`` of the stretch from the first match to the last), so one undo
takes it back. Esc closes the bar and leaves the match selected.

Case: smart, as in many editors: a search in lower case ignores case, one
with a capital letter matches it exactly.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label

from infitool_edit.document.positions import end_after, position_of

if TYPE_CHECKING:
    from infitool_edit.commands import ast
    from infitool_edit.ui.app import InfitoolEditApp


def find_all(text: str, needle: str) -> list[int]:
    """Start offsets of ``needle`` in ``text`` (smart case), not overlapping."""
    if not needle:
        return []
    flags = 0 if any(c.isupper() for c in needle) else re.IGNORECASE
    return [m.start() for m in re.finditer(re.escape(needle), text, flags)]


def replaced_stretch(text: str, starts: list[int], length: int, new: str) -> tuple[int, int, str]:
    """Replace-all as one edit: ``(start, end, new text)`` of the stretch from
    the first match to the last, every match in it replaced."""
    first, last = starts[0], starts[-1] + length
    pieces = []
    at = first
    for start in starts:
        pieces.append(text[at:start])
        pieces.append(new)
        at = start + length
    return first, last, "".join(pieces)


def _point(position: tuple[int, int]) -> ast.Point:
    from infitool_edit.commands import ast

    return ast.Point(position[0] + 1, position[1] + 1)


class FindBar(Horizontal):
    """The find (and replace) bar; hidden until ctrl+f or ctrl+r."""

    DEFAULT_CSS = """
    FindBar { height: auto; display: none; background: $panel; }
    FindBar.shown { display: block; }
    FindBar Input { width: 1fr; height: 1; border: none; padding: 0 1; }
    FindBar #replace-field { display: none; }
    FindBar.replacing #replace-field { display: block; }
    FindBar Label { width: auto; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close find", show=True),
        Binding("down", "next", "Next", show=True),
        Binding("up,shift+enter", "previous", "Previous", show=True),
        Binding("ctrl+r", "replace_all", "Replace all", show=True),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.starts: list[int] = []
        self.current: int | None = None  # index into starts
        self._text = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="find", id="find-field")
        yield Input(placeholder="replace with", id="replace-field")
        yield Label("", id="find-count")

    @property
    def edit_app(self) -> InfitoolEditApp:
        return self.app  # type: ignore[return-value]

    @property
    def needle(self) -> str:
        return self.query_one("#find-field", Input).value

    def open(self, *, replace: bool) -> None:
        self.add_class("shown")
        self.set_class(replace, "replacing")
        field = self.query_one("#find-field", Input)
        selected = self.edit_app.editor.selected_text
        if selected and "\n" not in selected:
            field.value = selected
        # At once, not after the messages already queued (Widget.focus waits
        # for them): the keys typed behind ctrl+f belong to the field.
        self.screen.set_focus(field)
        self.search()

    def action_close(self) -> None:
        self.remove_class("shown")
        self.edit_app.editor.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "find-field":
            self.search()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "replace-field":
            self.replace_current()
        else:
            self.action_next()

    def search(self) -> None:
        """Find every match and go to the first one at or after the writer's cursor."""
        editor = self.edit_app.editor
        self._text = editor.text
        self.starts = find_all(self._text, self.needle)
        self.current = None
        if self.starts:
            line, col = editor.selection[0] if editor.selection else editor.writer_cursor
            cursor = sum(len(l) + 1 for l in editor.buffer.lines[:line]) + col
            self.current = next((i for i, s in enumerate(self.starts) if s >= cursor), 0)
            self._show()
        self._count()

    def _count(self) -> None:
        label = self.query_one("#find-count", Label)
        if not self.needle:
            label.update("")
        elif not self.starts:
            label.update("no match")
        else:
            label.update(f"{(self.current or 0) + 1}/{len(self.starts)}")

    def _show(self) -> None:
        editor = self.edit_app.editor
        start = self.starts[self.current]
        begin = position_of(self._text, start)
        editor.select(begin, end_after(begin, self._text[start : start + len(self.needle)]))
        editor.scroll_to_position(begin)

    def _step(self, delta: int) -> None:
        if self.edit_app.editor.text != self._text:
            self.search()  # the draft changed under the bar
        if self.starts:
            self.current = ((self.current or 0) + delta) % len(self.starts)
            self._show()
        self._count()

    def action_next(self) -> None:
        self._step(1)

    def action_previous(self) -> None:
        self._step(-1)

    def replace_current(self) -> None:
        """Replace the match shown (one version) and go to the next."""
        app = self.edit_app
        if not self.starts or app.editor.read_only or app.editor.text != self._text:
            self.search()
            return
        start = self.starts[self.current]
        self._replace(start, start + len(self.needle), self.query_one("#replace-field", Input).value)
        index = self.current
        self.search()
        if self.starts:
            self.current = index % len(self.starts)
            self._show()
            self._count()

    def action_replace_all(self) -> None:
        """Every match replaced, as one version."""
        app = self.edit_app
        if not self.has_class("replacing"):
            self.open(replace=True)
            return
        self.search()
        if not self.starts or app.editor.read_only:
            return
        count = len(self.starts)
        first, last, new = replaced_stretch(self._text, self.starts, len(self.needle),
                                            self.query_one("#replace-field", Input).value)
        if self._replace(first, last, new):
            app.notify(f"replaced {count} match{'es' if count != 1 else ''} in one version")
        self.search()

    def _replace(self, start: int, end: int, new: str) -> bool:
        from infitool_edit.commands import ast  # the bar is on the first screen; the command language loads later

        app = self.edit_app
        app.writer_takes_pen()
        app.writer_pen.flush()
        begin, finish = position_of(self._text, start), position_of(self._text, end)
        executed = app.execute_for_writer(ast.Replace(ast.Span(_point(begin), _point(finish)), new))
        if executed is None or executed.edit is None:
            return False
        editor = app.editor
        editor.clear_selection()
        editor.set_writer_cursor(editor.apply_edit(executed.edit))
        return True
