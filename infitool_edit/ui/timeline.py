"""The timeline pane: every version, newest first, paged in as it scrolls.

A history can hold 100,000 versions; opening the pane reads one page of the
log (``History.log(limit, before)``) and later pages only when they scroll
into view. Without a filter, row ``i`` is version ``count - i`` (numbers
are global and dense), so no page before the visible one is ever read. With
an author or scale filter, matching versions are collected page by page
while the view scrolls down. A version's scale is the one the session
graded it with and the history recorded (``VersionInfo.scale``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

PAGE = 200
SCALES = ("structure", "paragraph", "sentence", "word")  # the document's grades, largest first
AUTHOR_FILTERS = ("all", "model", "writer")
SCALE_FILTERS = ("all", *SCALES)


@dataclass(frozen=True)
class Row:
    """What the timeline shows of one version."""

    number: int
    author: str
    message: str
    time: float
    checkpoint: str | None
    scale: str | None = None  # None: the version did not change the draft's prose
    branch: str = "main"
    back_to: int | None = None  # a rewind or a fork went back to this version

    @property
    def by_model(self) -> bool:
        return self.author.startswith("model:")


def row_of(info) -> Row:
    return Row(info.number, info.author, info.message, info.time, info.checkpoint, info.scale,
               info.branch, info.back_to)


def branch_tag(branch: str) -> str:
    """The branch column: blank on the first line of history, ``fork-3`` as ``⑂3``."""
    if branch == "main":
        return "  "
    return "⑂" + branch.removeprefix("fork-")[:1]


def mark_of(row: Row) -> str:
    """★ checkpoint, ⑂ the first version of a fork, ↺ a rewind, ● model, ✎ writer."""
    if row.checkpoint:
        return "★"
    if row.back_to is not None:
        return "⑂" if row.message.startswith("fork") else "↺"
    return "●" if row.by_model else "✎"


class TimelineView(ScrollView, can_focus=True):
    """Versions, newest first. Moving the cursor previews; Enter rewinds."""

    DEFAULT_CSS = """
    TimelineView {
        background: $panel;
        & > .timeline--model { color: $secondary; }
        & > .timeline--writer { color: $primary; }
        & > .timeline--checkpoint { text-style: bold; color: $warning; }
        & > .timeline--cursor { background: $accent 60%; color: $foreground; text-style: bold; }
        & > .timeline--dim { color: $text-muted; }
    }
    """
    COMPONENT_CLASSES = {"timeline--model", "timeline--writer", "timeline--checkpoint",
                         "timeline--cursor", "timeline--dim"}

    BINDINGS = [
        Binding("up", "move(-1)", "Newer", show=False),
        Binding("down", "move(1)", "Older", show=False),
        Binding("pageup", "move(-20)", "Page newer", show=False),
        Binding("pagedown", "move(20)", "Page older", show=False),
        Binding("home", "move(-1000000000)", "Newest", show=False),
        Binding("end", "move(1000000000)", "Oldest", show=False),
        Binding("enter", "rewind", "Rewind"),
        Binding("f", "fork", "Fork"),
        Binding("a", "cycle_author", "Author filter"),
        Binding("s", "cycle_scale", "Scale filter"),
        Binding("r", "replay", "Replay"),
        Binding("plus,equals_sign", "speed(2)", "Faster", show=False),
        Binding("minus", "speed(0.5)", "Slower", show=False),
    ]

    cursor = reactive(0, always_update=True)
    author_filter = reactive("all", init=False)
    scale_filter = reactive("all", init=False)

    class Selected(Message):
        """The writer moved to version ``number`` (preview it)."""

        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    class RewindRequested(Message):
        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    class ForkRequested(Message):
        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    class FilterChanged(Message):
        """The filters changed: ``description`` says what is shown."""

        def __init__(self, description: str) -> None:
            super().__init__()
            self.description = description

    class ReplayToggled(Message):
        def __init__(self, playing: bool, speed: float) -> None:
            super().__init__()
            self.playing = playing
            self.speed = speed

    @staticmethod
    def clock(when: float) -> str:
        """How a version's time reads (replaceable, e.g. for repeatable screenshots)."""
        return time.strftime("%H:%M:%S", time.localtime(when))

    def __init__(self, history, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.history = history
        self.total = history.count()
        self._rows: dict[int, Row] = {}
        self._matching: list[int] = []  # filtered view: numbers, newest first
        self._scanned_below: int | None = None  # filtered view: next number to scan
        self.pages_read = 0
        self.replay_speed = 2.0
        self._replay_timer = None

    # --- data ----------------------------------------------------------------

    @property
    def filtered(self) -> bool:
        return self.author_filter != "all" or self.scale_filter != "all"

    @property
    def row_count(self) -> int:
        if not self.filtered:
            return self.total
        return len(self._matching)

    def number_at(self, row: int) -> int | None:
        if not self.filtered:
            return self.total - row if 0 <= row < self.total else None
        self._scan_until(row + 1)
        return self._matching[row] if 0 <= row < len(self._matching) else None

    def _load_page(self, number: int) -> None:
        """Read the page of versions that holds ``number`` (and older)."""
        self.pages_read += 1
        for info in self.history.log(limit=PAGE, before=number + 1):
            self._rows.setdefault(info.number, row_of(info))

    def row(self, number: int) -> Row:
        if number not in self._rows:
            self._load_page(number)
        return self._rows[number]

    def _matches(self, row: Row) -> bool:
        if self.author_filter == "model" and not row.by_model:
            return False
        if self.author_filter == "writer" and (row.by_model or row.author == "disk"):
            return False  # "disk": the file as another program left it
        return self.scale_filter == "all" or row.scale == self.scale_filter

    def _scan_until(self, wanted: int) -> None:
        """Collect matching versions, a page at a time, until ``wanted`` are known."""
        while len(self._matching) < wanted and self._scanned_below:
            top = self._scanned_below
            self._load_page(top)
            bottom = max(top - PAGE + 1, 1)
            for number in range(top, bottom - 1, -1):
                row = self._rows.get(number)
                if row is not None and self._matches(row):
                    self._matching.append(number)
            self._scanned_below = bottom - 1
        self._update_virtual_size()

    def add_version(self, number: int, author: str, message: str, *, checkpoint: str | None = None,
                    scale: str | None = None, back_to: int | None = None) -> None:
        """A version was just recorded: show it on top without reading the log."""
        row = Row(number, author, message, time.time(), checkpoint, scale, self.history.current_branch, back_to)
        self._rows[number] = row
        self.total = max(self.total, number)
        listed = not self.filtered or self._matches(row)
        if self.filtered and listed:
            self._matching.insert(0, number)
        if self.cursor and listed:
            self.cursor += 1  # stay on the same version
        if self.shown:  # hidden, it would cost a screen layout per version for nothing
            self._update_virtual_size()
            self.refresh()

    def forget_rows(self) -> None:
        """Drop the rows read so far: the next paint reads its page again."""
        self._rows.clear()

    def reset_filter(self) -> None:
        self._matching = []
        self._scanned_below = self.total
        self.cursor = 0
        if self.filtered:
            self._scan_until(self.size.height + 1)
        self._update_virtual_size()
        self.refresh()

    @property
    def filter_description(self) -> str:
        """What the filters let through, in words ("" when they let everything)."""
        parts = [f"by {self.author_filter}"] if self.author_filter != "all" else []
        if self.scale_filter != "all":
            parts.append(f"{self.scale_filter} changes")
        return ", ".join(parts)

    def watch_author_filter(self) -> None:
        self.reset_filter()
        self.post_message(self.FilterChanged(self.filter_description))

    def watch_scale_filter(self) -> None:
        self.reset_filter()
        self.post_message(self.FilterChanged(self.filter_description))

    @property
    def shown(self) -> bool:
        """Whether this pane and every container around it are displayed."""
        return all(node.display for node in self.ancestors_with_self if hasattr(node, "display"))

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.size.width, self.row_count)

    def on_mount(self) -> None:
        self._update_virtual_size()

    def on_resize(self) -> None:
        self._update_virtual_size()

    def on_show(self) -> None:
        self._update_virtual_size()

    # --- rendering -----------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        index = int(self.scroll_y) + y
        if self.filtered and index >= len(self._matching):
            self._scan_until(index + 1)
        number = self.number_at(index)
        if number is None:
            if index == 0 and self.filtered:  # a filter that hides everything says so
                dim = self.get_component_rich_style("timeline--dim", partial=True)
                return Strip([Segment(f"no versions {self.filter_description} (a, s: change the filter)",
                                      base + dim)]).crop_extend(0, width, base)
            return Strip.blank(width, base)
        row = self.row(number)
        who = self.get_component_rich_style("timeline--model" if row.by_model else "timeline--writer", partial=True)
        dim = self.get_component_rich_style("timeline--dim", partial=True)
        mark = mark_of(row)
        author = row.author.removeprefix("model:")
        clock = self.clock(row.time)
        scale = (row.scale or "-")[:4]
        command = row.message.split("\n", 1)[0]
        if row.checkpoint:
            command = f"[{row.checkpoint}] {command}"
        line_style = self.get_component_rich_style("timeline--checkpoint", partial=True) if row.checkpoint else Style()
        selected = index == self.cursor
        # The selected row: a pointer (seen in every colour mode) and the cursor style on top.
        segments = [
            Segment("▶" if selected else " ", base),
            Segment(branch_tag(row.branch) + " ", base + dim),
            Segment(f"v{row.number:<6} ", base + dim),
            Segment(f"{mark} {author[:8]:<8} ", base + who),
            Segment(f"{scale:<4} ", base + dim),
            Segment(f"{clock} ", base + dim),
            Segment(command, base + line_style),
        ]
        if selected:
            cursor = self.get_component_rich_style("timeline--cursor", partial=True)
            segments = [Segment(text, style + cursor) for text, style, _ in segments]
            return Strip(segments).crop_extend(0, width, base + cursor)
        return Strip(segments).crop_extend(0, width, base)

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()

    # --- actions ---------------------------------------------------------------

    @property
    def selected(self) -> int | None:
        return self.number_at(self.cursor)

    def action_move(self, delta: int) -> None:
        if self.filtered:
            self._scan_until(self.cursor + delta + 1)
        count = self.row_count
        if not count:
            return
        self.cursor = min(max(self.cursor + delta, 0), count - 1)
        height = self.size.height
        if self.cursor < self.scroll_y:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= self.scroll_y + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)
        if (number := self.selected) is not None:
            self.post_message(self.Selected(number))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is not None:
            self.action_move(int(self.scroll_y) + offset.y - self.cursor)

    def action_rewind(self) -> None:
        if (number := self.selected) is not None:
            self.post_message(self.RewindRequested(number))

    def action_fork(self) -> None:
        if (number := self.selected) is not None:
            self.post_message(self.ForkRequested(number))

    def action_cycle_author(self) -> None:
        self.author_filter = AUTHOR_FILTERS[(AUTHOR_FILTERS.index(self.author_filter) + 1) % len(AUTHOR_FILTERS)]

    def action_cycle_scale(self) -> None:
        self.scale_filter = SCALE_FILTERS[(SCALE_FILTERS.index(self.scale_filter) + 1) % len(SCALE_FILTERS)]

    # --- replay ----------------------------------------------------------------

    @property
    def replaying(self) -> bool:
        return self._replay_timer is not None

    def action_replay(self) -> None:
        """Play the versions from the selected one forward (older to newer)."""
        if self._replay_timer is not None:
            self._replay_timer.stop()
            self._replay_timer = None
        else:
            self._replay_timer = self.set_interval(1 / self.replay_speed, self._replay_step)
        self.post_message(self.ReplayToggled(self.replaying, self.replay_speed))

    def action_speed(self, factor: float) -> None:
        self.replay_speed = min(max(self.replay_speed * factor, 0.25), 64.0)
        if self._replay_timer is not None:
            self._replay_timer.stop()
            self._replay_timer = self.set_interval(1 / self.replay_speed, self._replay_step)
        self.post_message(self.ReplayToggled(self.replaying, self.replay_speed))

    def _replay_step(self) -> None:
        if self.cursor == 0:
            self.action_replay()  # reached the newest version: stop
            return
        self.action_move(-1)
