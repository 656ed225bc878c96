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
from infitool_edit.ui.highlight import highlight_line
from infitool_edit.ui.wrap import wrap_offsets

HIGHLIGHT_NAMES = (
    "heading1", "heading2", "heading3", "heading4", "heading5", "heading6",
    "strong", "emphasis", "code", "link", "quote", "list", "rule",
)


EDITING_KEYS = frozenset({"enter", "backspace", "delete", "tab"})


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
    }
    """

    COMPONENT_CLASSES = {f"editor--{name}" for name in HIGHLIGHT_NAMES} | {
        "editor--writer-cursor", "editor--model-cursor", "editor--ghost", "editor--changed",
        "editor--struck",
    }

    BINDINGS = [
        Binding("ctrl+f", "follow_model", "Follow model", show=False),
    ]

    class WriterEdited(Message):
        """The writer changed the buffer; ``edit`` is already applied here."""

        def __init__(self, edit: TextEdit) -> None:
            super().__init__()
            self.edit = edit

    def __init__(self, text: str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.buffer = DraftBuffer(text)
        self.writer_cursor: Position = (0, 0)
        self.model_cursor: Position | None = None
        self.ghost: tuple[Position, Position] | None = None
        self.struck: tuple[Position, Position] | None = None  # text about to be removed
        # Ranges shown as changed: the model's last edit, a preview's word diff.
        self.marks: list[tuple[Position, Position]] = []
        self.read_only = False
        # Called before the writer's first change lands (the app takes the pen there).
        self.before_writer_edit: Callable[[], None] = lambda: None
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
        self.writer_cursor = self.buffer.clamp(self.writer_cursor)
        if self.model_cursor is not None:
            self.model_cursor = self.buffer.clamp(self.model_cursor)
        self.ghost = None
        self.struck = None
        self._relayout()
        self.refresh()

    def apply_edit(self, edit: TextEdit) -> Position:
        """Apply ``edit`` to the view; returns where its inserted text ends."""
        changed = self.buffer.apply(edit)
        new_end = changed.end

        def moved(position: Position) -> Position:
            return shift(position, edit.start, edit.end, new_end)

        self.writer_cursor = self.buffer.clamp(moved(self.writer_cursor))
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

    def _writer_edit(self, edit: TextEdit) -> None:
        self.follow_model = False
        new_end = self.apply_edit(edit)
        self.set_writer_cursor(new_end)
        self.post_message(self.WriterEdited(edit))

    def _move_rows(self, delta: int) -> None:
        line, col = self.writer_cursor
        offsets = wrap_offsets(self.buffer.lines[line], self._wrap_width)
        x = self._desired_x
        if x is None:
            x = col - offsets[bisect_right(offsets, col) - 1]
        self.set_writer_cursor(self.position_at_row(self.row_of(self.writer_cursor) + delta, x), keep_x=True)
        self._desired_x = x

    async def _on_key(self, event: events.Key) -> None:
        handled = self.writer_key(event)
        if handled:
            event.stop()
            event.prevent_default()

    def writer_key(self, event: events.Key) -> bool:
        """Act on one key; True when it was the editor's to handle."""
        line, col = self.writer_cursor
        key = event.key
        moves = {
            "left": lambda: self.set_writer_cursor(
                (line, col - 1) if col else ((line - 1, len(self.buffer.lines[line - 1])) if line else (0, 0))),
            "right": lambda: self.set_writer_cursor(
                (line, col + 1) if col < len(self.buffer.lines[line]) else
                ((line + 1, 0) if line + 1 < self.buffer.line_count else (line, col))),
            "up": lambda: self._move_rows(-1),
            "down": lambda: self._move_rows(1),
            "pageup": lambda: self._move_rows(-max(self.scrollable_content_region.height - 1, 1)),
            "pagedown": lambda: self._move_rows(max(self.scrollable_content_region.height - 1, 1)),
            "home": lambda: self.set_writer_cursor((line, 0)),
            "end": lambda: self.set_writer_cursor((line, len(self.buffer.lines[line]))),
            "ctrl+home": lambda: self.set_writer_cursor((0, 0)),
            "ctrl+end": lambda: self.set_writer_cursor(self.buffer.end()),
        }
        if key in moves:
            self.follow_model = False
            moves[key]()
            return True
        if self.read_only or not (key in EDITING_KEYS or (event.is_printable and event.character)):
            return False
        # Taking the pen may first bring in the model's last edits: read the cursor after.
        self.before_writer_edit()
        line, col = self.writer_cursor
        if key == "enter":
            self._writer_edit(TextEdit((line, col), (line, col), "\n"))
        elif key == "backspace":
            if col:
                self._writer_edit(TextEdit((line, col - 1), (line, col), ""))
            elif line:
                self._writer_edit(TextEdit((line - 1, len(self.buffer.lines[line - 1])), (line, 0), ""))
        elif key == "delete":
            if col < len(self.buffer.lines[line]):
                self._writer_edit(TextEdit((line, col), (line, col + 1), ""))
            elif line + 1 < self.buffer.line_count:
                self._writer_edit(TextEdit((line, col), (line + 1, 0), ""))
        elif key == "tab":
            self._writer_edit(TextEdit((line, col), (line, col), "    "))
        else:
            self._writer_edit(TextEdit((line, col), (line, col), event.character))
        return True

    def on_mouse_scroll_up(self) -> None:
        self.follow_model = False

    def on_mouse_scroll_down(self) -> None:
        self.follow_model = False

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None:
            self.set_writer_cursor(self.position_at_row(int(self.scroll_y) + offset.y, offset.x))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def action_follow_model(self) -> None:
        self.follow_model = True
        if self.model_cursor is not None:
            self.scroll_to_position(self.model_cursor)
