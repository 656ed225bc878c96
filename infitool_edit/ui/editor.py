"""The editor pane: a Line API widget over the draft, sized for a book.

Only what is on screen is ever highlighted or wrapped: ``render_line`` finds
the draft line behind a screen row with a bisect over per-line row counts,
then wraps and highlights that line through content-keyed caches
(``wrap_offsets``, ``highlight_line``). An edit arrives as a ``TextEdit``
and rewraps the edited lines only; the running row totals are rebuilt with
``itertools.accumulate`` (C speed) only when a line's row count changed.

Two cursors are drawn: the writer's (which the keys move) and the model's
(which the agent's commands move). Text the model is still typing (a command
not yet applied) is shown as a "ghost" range in the model's colour.

(Over 400 lines, on purpose: layout, painting and the writer's keys all
work on the same row geometry, ``_row_starts`` and the wrap offsets; apart,
each would need the other's private state.)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from infitool_edit.document.edits import TextEdit
from infitool_edit.document.positions import Position, shift
from infitool_edit.ui.buffer import DraftBuffer, LinesChanged
from infitool_edit.ui.spans import changed_spans
from infitool_edit.ui.highlight import highlight_line
from infitool_edit.ui.motion import (
    is_list_item, line_span, ordered, row_end, row_home, text_between, word_at, word_left, word_right,
)
from infitool_edit.ui.wrap import wrap_offsets

HIGHLIGHT_NAMES = (
    "heading1", "heading2", "heading3", "heading4", "heading5", "heading6",
    "strong", "emphasis", "code", "link", "quote", "list", "rule",
)


EDITING_KEYS = frozenset({"enter", "backspace", "delete", "tab"})
# Deleting a word: what TextArea binds, plus the keys terminals send for ctrl+backspace.
DELETE_WORD_LEFT = frozenset({"ctrl+backspace", "alt+backspace", "ctrl+w"})
DELETE_WORD_RIGHT = frozenset({"ctrl+delete", "alt+delete"})
CLIPBOARD_KEYS = frozenset({"ctrl+c", "ctrl+x", "ctrl+v", "super+c", "super+x", "super+v"})


class DraftEditor(ScrollView, can_focus=True):
    """Shows the draft with markdown highlighting and soft wrap; the writer types here."""

    DEFAULT_CSS = """
    DraftEditor {
        background: $surface;
        color: $foreground;
        scrollbar-gutter: stable;
        overflow-x: hidden;
        & > .editor--heading1 { color: $accent; text-style: bold underline; }
        & > .editor--heading2 { color: $accent; text-style: bold; }
        & > .editor--heading3 { color: $accent; text-style: bold; }
        & > .editor--heading4 { color: $accent; }
        & > .editor--heading5 { color: $accent; }
        & > .editor--heading6 { color: $accent; }
        & > .editor--strong { text-style: bold; }
        & > .editor--emphasis { text-style: italic; }
        & > .editor--code { color: $success; }
        & > .editor--link { color: $primary; text-style: underline; }
        & > .editor--quote { color: $text-muted; text-style: italic; }
        & > .editor--list { color: $warning; }
        & > .editor--rule { color: $text-muted; }
        & > .editor--writer-cursor { background: $foreground; color: $surface; }
        & > .editor--model-cursor { background: $secondary; color: $surface; }
        & > .editor--ghost { color: $secondary; text-style: italic; }
        & > .editor--changed { background: $success 30%; }
        & > .editor--struck { color: $error; text-style: strike; }
        & > .editor--selection { background: $primary 55%; color: $foreground; }
    }
    """

    COMPONENT_CLASSES = {f"editor--{name}" for name in HIGHLIGHT_NAMES} | {
        "editor--writer-cursor", "editor--model-cursor", "editor--ghost", "editor--changed",
        "editor--struck", "editor--selection",
    }

    BINDINGS = [
        Binding("f5", "follow_model", "Follow model", show=False),
    ]

    class WriterEdited(Message):
        """The writer changed the buffer; ``edit`` is already applied here.
        ``alone``: a version of its own (a paste, a cut), never merged into
        a run of typing."""

        def __init__(self, edit: TextEdit, alone: bool = False) -> None:
            super().__init__()
            self.edit = edit
            self.alone = alone

    def __init__(self, text: str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.buffer = DraftBuffer(text)
        self.writer_cursor: Position = (0, 0)
        # Where a selection began; the selection runs from here to the cursor.
        self.anchor: Position | None = None
        self._dragging = False
        self.model_cursor: Position | None = None
        self.ghost: tuple[Position, Position] | None = None
        self.struck: tuple[Position, Position] | None = None  # text about to be removed
        # Ranges shown as changed: the model's last edit, a preview's word diff.
        self.marks: list[tuple[Position, Position]] = []
        self.read_only = False
        # While the draft's session is still opening (the first screen is up
        # before it): the writer's edits wait here, in order, to be replayed
        # by ``release_held`` once the session can take them. None: not waiting.
        self.held: list[events.Key | str] | None = None
        # Called before the writer's first change lands (the app takes the pen there).
        self.before_writer_edit: Callable[[], None] = lambda: None
        # Given each writer edit as it lands (the app's pen takes it there and
        # then, so no other message can reload the view before the pen has
        # it); by default posted as a WriterEdited message.
        self.writer_edited: Callable[[TextEdit, bool], None] = (
            lambda edit, alone: self.post_message(self.WriterEdited(edit, alone)))
        self.follow_model = True
        self._wrap_width = 0
        self._row_counts: list[int] = []
        self._row_starts: list[int] = [0]
        self._styles: dict[str | tuple[str, ...], Style] = {}
        self._desired_x: int | None = None

    # --- content -----------------------------------------------------------

    @property
    def text(self) -> str:
        return self.buffer.text

    def load(self, text: str) -> None:
        """Replace the whole content (opening a draft, previewing a version)."""
        self.buffer = DraftBuffer(text)
        self._forget_marks()
        self._relayout()
        self.refresh()

    def _forget_marks(self) -> None:
        """New content: the cursors kept inside it, the selection, ghost and strike dropped."""
        self.writer_cursor = self.buffer.clamp(self.writer_cursor)
        self.anchor = None
        if self.model_cursor is not None:
            self.model_cursor = self.buffer.clamp(self.model_cursor)
        self.ghost = None
        self.struck = None

    def show_text(self, text: str) -> None:
        """Make the content ``text`` (read-only previews of versions), changing
        only the lines that differ from what is shown: stepping to a
        neighbouring version costs its change, not the draft's length."""
        shown = self.buffer.text
        spans = changed_spans(shown, text) if self._wrap_width else None
        if spans is None:
            self.load(text)  # not laid out yet, or far apart: build it whole
            return
        blocks = []
        line_a = at_a = 0
        for n, (a0, a1, b0, b1) in enumerate(spans):
            line_a += shown.count("\n", at_a, a0)
            at_a = a0
            # Whole lines, to just after a newline; the last span, when it
            # reaches the end, has the text's last line too (after its last
            # newline, perhaps empty), in both texts alike.
            to_end = n == len(spans) - 1 and a1 == len(shown)
            new_lines = text[b0:b1].split("\n")
            if not to_end:
                new_lines.pop()  # the empty piece after the span's last newline
            blocks.append((line_a, line_a + shown.count("\n", a0, a1) + to_end, new_lines))
        for first, end, new_lines in reversed(blocks):  # from the bottom: the blocks above keep their numbers
            self.buffer.replace_lines(first, end, new_lines)
            self._row_counts[first:end] = [self._line_rows(line) for line in new_lines]
        self._forget_marks()
        self.marks = []
        if blocks:
            self._row_starts = list(accumulate(self._row_counts, initial=0))
            self._update_virtual_size()
        self.refresh()

    def apply_edit(self, edit: TextEdit) -> Position:
        """Apply ``edit`` to the view; returns where its inserted text ends."""
        changed = self.buffer.apply(edit)
        new_end = changed.end

        def moved(position: Position) -> Position:
            return shift(position, edit.start, edit.end, new_end)

        self.writer_cursor = self.buffer.clamp(moved(self.writer_cursor))
        if self.anchor is not None:
            self.anchor = self.buffer.clamp(moved(self.anchor))
        if self.model_cursor is not None:
            self.model_cursor = self.buffer.clamp(moved(self.model_cursor))
        self.marks = [(moved(start), moved(end)) for start, end in self.marks]
        if self.ghost is not None:
            self.ghost = (moved(self.ghost[0]), moved(self.ghost[1]))
        self._rewrap(changed)
        return new_end

    def set_model_cursor(self, position: Position | None) -> None:
        """Move the model's cursor, repainting only the rows it left and entered."""
        self._refresh_positions(self.model_cursor)
        self.model_cursor = None if position is None else self.buffer.clamp(position)
        self._refresh_positions(self.model_cursor)

    def set_marks(self, marks: list[tuple[Position, Position]]) -> None:
        """Mark ranges as changed, repainting only the rows of the old and new marks."""
        for start, end in self.marks:
            self._refresh_range(start, end)
        self.marks = marks
        for start, end in marks:
            self._refresh_range(start, end)

    # --- the ghost: text the model is still typing ------------------------

    def extend_ghost(self, at: Position, text: str) -> Position:
        """Show ``text`` typed at the end of the ghost (which begins at ``at``
        when there is none yet); returns where the ghost now ends."""
        if self.ghost is None:
            at = self.buffer.clamp(at)
            self.ghost = (at, at)
        start, end = self.ghost
        new_end = self.apply_edit(TextEdit(end, end, text))
        self.ghost = (start, new_end)
        return new_end

    def clear_ghost(self) -> Position | None:
        """Take the ghost's text out again; returns where it began (None: no ghost)."""
        if self.ghost is None:
            return None
        start, end = self.ghost
        self.ghost = None
        self.apply_edit(TextEdit(start, end, ""))
        return start

    def set_struck(self, region: tuple[Position, Position] | None) -> None:
        """Show ``region`` struck through (a removal about to be applied)."""
        if self.struck is not None:
            self._refresh_range(*self.struck)
        self.struck = region
        if region is not None:
            self._refresh_range(*region)
            if self.follow_model:
                self.scroll_to_position(self.buffer.clamp(region[0]))

    def _refresh_positions(self, *positions: Position | None) -> None:
        for position in positions:
            if position is not None and self._row_counts:
                self.refresh_lines(self.row_of(self.buffer.clamp(position)))

    def _refresh_range(self, start: Position, end: Position) -> None:
        if not self._row_counts:
            return
        first = self.row_of(self.buffer.clamp(start))
        self.refresh_lines(first, self.row_of(self.buffer.clamp(end)) - first + 1)

    # --- layout ------------------------------------------------------------

    def _line_rows(self, line: str) -> int:
        return len(wrap_offsets(line, self._wrap_width))

    def _relayout(self) -> None:
        self._wrap_width = max(self.scrollable_content_region.width - 1, 1)
        self._row_counts = [self._line_rows(line) for line in self.buffer.lines]
        self._row_starts = list(accumulate(self._row_counts, initial=0))
        self._update_virtual_size()

    def _rewrap(self, changed: LinesChanged) -> None:
        if not self._wrap_width:
            return
        lines = self.buffer.lines
        first = changed.first
        new_counts = [self._line_rows(lines[n]) for n in range(first, first + changed.added)]
        old_counts = self._row_counts[first : first + changed.removed]
        self._row_counts[first : first + changed.removed] = new_counts
        if new_counts != old_counts:
            self._row_starts = list(accumulate(self._row_counts, initial=0))
            self._update_virtual_size()
            self.refresh()
        else:
            start_row = self._row_starts[first]
            self.refresh_lines(start_row, self._row_starts[first + changed.added] - start_row)

    def _update_virtual_size(self) -> None:
        new = Size(self.scrollable_content_region.width, self._row_starts[-1])
        old = self.virtual_size
        height = self.scrollable_content_region.height
        if new.width == old.width and min(new.height, old.height) > height > 0:
            # The scrollbar stays as it is, only its thumb moves: skip the
            # screen layout a virtual_size change asks for (it would repaint
            # every pane on each edit that adds a row).
            self.set_reactive(DraftEditor.virtual_size, new)
            self._scroll_update(new)
        else:
            self.virtual_size = new

    def on_resize(self, event: events.Resize) -> None:
        if max(self.scrollable_content_region.width - 1, 1) != self._wrap_width:
            self._relayout()

    def on_mount(self) -> None:
        self._relayout()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()

    def _style(self, name: str) -> Style:
        """A component class's style ("" is the widget's own), cached until the styles change."""
        style = self._styles.get(name)
        if style is None:
            style = self.rich_style if not name else self.get_component_rich_style(f"editor--{name}", partial=True)
            self._styles[name] = style
        return style

    # --- geometry ----------------------------------------------------------

    def row_of(self, position: Position) -> int:
        """The screen row (in virtual coordinates) showing ``position``."""
        line, col = position
        offsets = wrap_offsets(self.buffer.lines[line], self._wrap_width)
        return self._row_starts[line] + bisect_right(offsets, col) - 1

    def position_at_row(self, row: int, x: int) -> Position:
        row = min(max(row, 0), self._row_starts[-1] - 1)
        line = bisect_right(self._row_starts, row) - 1
        text = self.buffer.lines[line]
        offsets = wrap_offsets(text, self._wrap_width)
        sub = row - self._row_starts[line]
        row_end = offsets[sub + 1] - 1 if sub + 1 < len(offsets) else len(text)
        return line, min(offsets[sub] + x, row_end)

    def scroll_to_position(self, position: Position) -> None:
        row = self.row_of(position)
        height = self.scrollable_content_region.height
        if not self.scroll_y <= row < self.scroll_y + height:
            self.scroll_to(y=max(row - height // 3, 0), animate=False, immediate=True)

    # --- rendering ---------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._style("")
        row = int(self.scroll_y) + y
        if not self._row_counts or row >= self._row_starts[-1]:
            return Strip.blank(width, base)
        line_no = bisect_right(self._row_starts, row) - 1
        text = self.buffer.lines[line_no]
        offsets = wrap_offsets(text, self._wrap_width)
        sub = row - self._row_starts[line_no]
        start = offsets[sub]
        last_row = sub + 1 == len(offsets)
        end = len(text) if last_row else offsets[sub + 1]
        cells = end - start + (1 if last_row else 0)  # the last row has room for the cursor
        # Each cell gets the tuple of style names on it; runs of equal tuples
        # become one segment, styled once through a cache of combined styles.
        names: list[tuple[str, ...]] = [()] * cells

        def paint(lo: int, hi: int, name: str) -> None:
            for i in range(max(lo, start) - start, min(hi, start + cells) - start):
                names[i] = names[i] + (name,)

        for lo, hi, name in highlight_line(text, self.buffer.in_code_block(line_no)):
            paint(lo, hi, name)
        regions = [(mark, "changed") for mark in self.marks]
        selection = self.selection
        if selection is not None:
            regions.append((selection, "selection"))
        if self.ghost is not None:
            regions.append((self.ghost, "ghost"))
        if self.struck is not None:
            regions.append((self.struck, "struck"))
        for ((sl, sc), (el, ec)), name in regions:
            if sl <= line_no <= el:
                paint(sc if sl == line_no else 0, ec if el == line_no else len(text) + 1, name)
        cursors = [(self.model_cursor, "model-cursor")]
        if self.has_focus:
            cursors.append((self.writer_cursor, "writer-cursor"))
        for cursor, name in cursors:
            if cursor is not None and cursor[0] == line_no:
                paint(cursor[1], cursor[1] + 1, name)
        shown = text[start:end] + (" " if last_row else "")
        segments: list[Segment] = []
        run_start = 0
        for i in range(1, cells + 1):
            if i == cells or names[i] != names[run_start]:
                segments.append(Segment(shown[run_start:i], self._combined(names[run_start])))
                run_start = i
        return Strip(segments).crop_extend(0, width, base)

    def _combined(self, names: tuple[str, ...]) -> Style:
        style = self._styles.get(names)
        if style is None:
            style = self._style("")
            for name in names:
                style = style + self._style(name)
            self._styles[names] = style
        return style

    # --- the writer's keys -------------------------------------------------

    def set_writer_cursor(self, position: Position, *, keep_x: bool = False) -> None:
        old_row = self.row_of(self.writer_cursor)
        self.writer_cursor = self.buffer.clamp(position)
        if not keep_x:
            self._desired_x = None
        new_row = self.row_of(self.writer_cursor)
        self.refresh_lines(old_row)
        self.refresh_lines(new_row)
        height = self.scrollable_content_region.height
        if new_row < self.scroll_y:
            self.scroll_to(y=new_row, animate=False, immediate=True)
        elif new_row >= self.scroll_y + height:
            self.scroll_to(y=new_row - height + 1, animate=False, immediate=True)

    # --- the selection ---------------------------------------------------

    @property
    def selection(self) -> tuple[Position, Position] | None:
        """The selected stretch, start before end; None when nothing is selected."""
        if self.anchor is None or self.anchor == self.writer_cursor:
            return None
        return ordered(self.anchor, self.writer_cursor)

    @property
    def selected_text(self) -> str:
        selection = self.selection
        return "" if selection is None else text_between(self.buffer.lines, *selection)

    def select(self, start: Position, end: Position) -> None:
        """Select ``start``..``end``, the cursor at ``end``."""
        self._refresh_selection()
        self.anchor = self.buffer.clamp(start)
        self.set_writer_cursor(end)
        self._refresh_selection()

    def clear_selection(self) -> None:
        self._refresh_selection()
        self.anchor = None

    def _refresh_selection(self) -> None:
        selection = self.selection
        if selection is not None:
            self._refresh_range(*selection)

    # --- the writer's keys -------------------------------------------------

    def _writer_edit(self, edit: TextEdit, *, alone: bool = False) -> None:
        self.follow_model = False
        self.clear_selection()
        new_end = self.apply_edit(edit)
        self.set_writer_cursor(new_end)
        self.writer_edited(edit, alone)

    def _move_rows(self, delta: int) -> Position:
        x = self._desired_x if self._desired_x is not None else self._column_in_row(self.writer_cursor)
        return self.position_at_row(self.row_of(self.writer_cursor) + delta, x)

    def _motion(self, key: str) -> Position | None:
        """Where ``key`` (without shift) moves the cursor; None: not a motion."""
        line, col = self.writer_cursor
        lines = self.buffer.lines
        page = max(self.scrollable_content_region.height - 1, 1)
        if key == "left":
            return (line, col - 1) if col else ((line - 1, len(lines[line - 1])) if line else (0, 0))
        if key == "right":
            if col < len(lines[line]):
                return line, col + 1
            return (line + 1, 0) if line + 1 < len(lines) else (line, col)
        if key in ("up", "down", "pageup", "pagedown"):
            return self._move_rows({"up": -1, "down": 1, "pageup": -page, "pagedown": page}[key])
        if key in ("ctrl+left", "alt+left"):
            return word_left(lines, (line, col))
        if key in ("ctrl+right", "alt+right"):
            return word_right(lines, (line, col))
        if key == "home":
            return row_home(wrap_offsets(lines[line], self._wrap_width), (line, col))
        if key == "end":
            return row_end(wrap_offsets(lines[line], self._wrap_width), len(lines[line]), (line, col))
        if key == "ctrl+home":
            return 0, 0
        if key == "ctrl+end":
            return self.buffer.end()
        return None

    def _move(self, key: str, target: Position, *, extend: bool) -> None:
        vertical = key in ("up", "down", "pageup", "pagedown")
        x = self._desired_x if self._desired_x is not None else self._column_in_row(self.writer_cursor)
        selection = self.selection
        if extend:
            if self.anchor is None:
                self.anchor = self.writer_cursor
        else:
            self.clear_selection()
            if selection is not None and key in ("left", "right"):
                target = selection[0] if key == "left" else selection[1]  # collapse, as editors do
        self._refresh_selection()
        self.set_writer_cursor(target, keep_x=vertical)
        self._refresh_selection()
        if vertical:
            self._desired_x = x  # up and down keep the column they started from

    def _column_in_row(self, position: Position) -> int:
        line, col = position
        offsets = wrap_offsets(self.buffer.lines[line], self._wrap_width)
        return col - offsets[bisect_right(offsets, col) - 1]

    async def _on_key(self, event: events.Key) -> None:
        handled = self.writer_key(event)
        if handled:
            event.stop()
            event.prevent_default()

    def writer_key(self, event: events.Key) -> bool:
        """Act on one key; True when it was the editor's to handle."""
        key = event.key
        if self.held is not None:
            return self._hold(event)
        extend = "shift+" in key
        base = key.replace("shift+", "")
        target = self._motion(base)
        if target is not None:
            self.follow_model = False
            self._move(base, target, extend=extend)
            return True
        if key == "ctrl+a":
            self.select((0, 0), self.buffer.end())
            return True
        if key in ("ctrl+c", "super+c"):
            self.copy()
            return True
        if self.read_only:
            return False
        if key in ("ctrl+x", "super+x"):
            self.cut()
            return True
        if key in ("ctrl+v", "super+v"):
            self.paste(self.app.clipboard)
            return True
        word_delete = key in DELETE_WORD_LEFT or key in DELETE_WORD_RIGHT
        if not (key in EDITING_KEYS or word_delete or (event.is_printable and event.character)):
            return False
        # Taking the pen may first bring in the model's last edits: read the cursor after.
        self.before_writer_edit()
        line, col = self.writer_cursor
        selection = self.selection
        lines = self.buffer.lines
        if key == "tab" and selection is None and is_list_item(lines[line]):
            self._writer_edit(TextEdit((line, 0), (line, 0), "  "))  # nest the list item
            self.set_writer_cursor((line, col + 2))
            return True
        typed = {"enter": "\n", "tab": "    "}.get(key, event.character if event.is_printable else None)
        if typed and key not in ("backspace", "delete") and not word_delete:
            start, end = selection or ((line, col), (line, col))
            self._writer_edit(TextEdit(start, end, typed), alone=selection is not None)
            return True
        if selection is not None:
            self._writer_edit(TextEdit(*selection, ""), alone=True)
            return True
        if key == "backspace":
            start = (line, col - 1) if col else ((line - 1, len(lines[line - 1])) if line else None)
            if start is not None:
                self._writer_edit(TextEdit(start, (line, col), ""))
        elif key == "delete":
            end = (line, col + 1) if col < len(lines[line]) else ((line + 1, 0) if line + 1 < len(lines) else None)
            if end is not None:
                self._writer_edit(TextEdit((line, col), end, ""))
        elif key in DELETE_WORD_LEFT:
            start = word_left(lines, (line, col))
            if start != (line, col):
                self._writer_edit(TextEdit(start, (line, col), ""), alone=True)
        else:
            end = word_right(lines, (line, col))
            if end != (line, col):
                self._writer_edit(TextEdit((line, col), end, ""), alone=True)
        return True

    def _hold(self, event: events.Key) -> bool:
        """A key while the session opens: a motion acts at once until an edit
        waits (then it waits too, so the edits land where they were typed)."""
        key = event.key
        moves = self._motion(key.replace("shift+", "")) is not None or key == "ctrl+a"
        edits = (key in EDITING_KEYS or key in CLIPBOARD_KEYS or key in DELETE_WORD_LEFT
                 or key in DELETE_WORD_RIGHT or (event.is_printable and bool(event.character)))
        if not (moves or edits):
            return False
        if edits or self.held:
            self.held.append(event)
            return True
        held, self.held = self.held, None  # a motion with nothing waiting: now
        try:
            return self.writer_key(event)
        finally:
            self.held = held

    def release_held(self) -> None:
        """The session is open: the edits typed (and pasted) meanwhile, in order."""
        held, self.held = self.held or [], None
        for item in held:
            if isinstance(item, str):
                self.paste(item)
            else:
                self.writer_key(item)

    # --- the clipboard -------------------------------------------------------

    def copy(self) -> None:
        """The selection to the app's clipboard and the terminal's (OSC 52)."""
        if self.selection is not None:
            self.app.copy_to_clipboard(self.selected_text)

    def cut(self) -> None:
        selection = self.selection
        if selection is None or self.read_only:
            return
        self.copy()
        self.before_writer_edit()
        selection = self.selection  # taking the pen may have moved it
        if selection is not None:
            self._writer_edit(TextEdit(*selection, ""), alone=True)

    def paste(self, text: str) -> None:
        """Insert ``text`` over the selection, as one edit of its own."""
        if not text or self.read_only:
            return
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.before_writer_edit()
        start, end = self.selection or (self.writer_cursor, self.writer_cursor)
        self._writer_edit(TextEdit(start, end, text), alone=True)

    def _on_paste(self, event: events.Paste) -> None:
        # A terminal's bracketed paste arrives as one event: one edit, one version.
        event.stop()
        if self.has_focus and self.held is not None:
            self.held.append(event.text)
        elif self.has_focus:
            self.paste(event.text)

    # --- the mouse -----------------------------------------------------------

    def _position_at(self, event: events.MouseEvent) -> Position | None:
        offset = event.get_content_offset(self)
        if offset is None:
            return None
        return self.position_at_row(int(self.scroll_y) + offset.y, offset.x)

    def on_mouse_down(self, event: events.MouseDown) -> None:
        position = self._position_at(event)
        if position is None or self.held:  # edits wait to land where they were typed
            return
        self.clear_selection()
        if event.shift:
            self.anchor = self.anchor or self.writer_cursor
        else:
            self.anchor = position
        self.set_writer_cursor(position)
        self._refresh_selection()
        self._dragging = True
        self.capture_mouse()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._dragging and event.button:
            position = self._position_at(event)
            if position is not None and position != self.writer_cursor:
                self._refresh_selection()
                self.set_writer_cursor(position)
                self._refresh_selection()

    def on_mouse_up(self, event: events.MouseUp) -> None:
        if self._dragging:
            self._dragging = False
            self.release_mouse()

    def on_click(self, event: events.Click) -> None:
        position = self._position_at(event)
        if position is None:
            return
        if event.chain == 2:
            self.select(*word_at(self.buffer.lines, position))
        elif event.chain >= 3:
            self.select(*line_span(self.buffer.lines, position[0]))

    def on_mouse_scroll_up(self) -> None:
        self.follow_model = False

    def on_mouse_scroll_down(self) -> None:
        self.follow_model = False

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_follow_model(self) -> None:
        self.follow_model = True
        if self.model_cursor is not None:
            self.scroll_to_position(self.model_cursor)
