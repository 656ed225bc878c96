"""The smaller panes: status bar, command stream, outline, notes, goal prompt."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from functools import cached_property

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Label, OptionList, Static, TextArea
from textual.widgets.option_list import Option

STREAM_LINES = 2000


@dataclass(frozen=True)
class Status:
    backend: str = "no model"
    tokens_per_s: float = 0.0
    stream_tokens: int = 0
    state_bytes: int = 0
    versions: int = 0
    pen: str = "writer"  # who holds the pen: "writer" or "model"
    activity: str = ""  # e.g. "loading model…", "finished: …", "replay ×2"
    commands: int = 0  # the model's commands applied in this session
    verbose: bool = False  # the protocol's figures too (F8)

    def render(self) -> Text:
        """Plain words first ("✎ model writing · 12 commands · v31"); the
        backend's figures only when verbose."""
        text = Text()
        pen_style = "bold reverse" if self.pen == "model" else "bold"
        text.append(" ✎ model writing " if self.pen == "model" else " ✎ writer ", style=pen_style)
        if self.pen != "model":
            text.append("(you hold the pen) ")
        if self.commands:
            text.append(f"· {self.commands:,} model command{'s' if self.commands != 1 else ''} ")
        text.append(f"· v{self.versions:,} ")
        if self.verbose:
            text.append(f"│ {self.backend} │ {self.tokens_per_s:,.0f} tok/s │ stream {self.stream_tokens:,} tok "
                        f"│ state {_size(self.state_bytes)} ")
        if self.activity:
            text.append(f"· {self.activity}", style="italic")
        return text


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count} B"


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.status = Status()

    def set(self, **changes) -> None:
        status = replace(self.status, **changes)
        if status != self.status:
            self.status = status
            # Drawn when the frame is: a model's command sets the bar two or
            # three times, and turning the line into Textual's content is the cost.
            self.refresh()

    def render(self) -> Text:
        return self.status.render()


class StreamView(ScrollView):
    """The stream's last ``STREAM_LINES`` lines, newest at the bottom.

    Its virtual height is fixed at the capacity (lines sit at the bottom,
    blank rows above them while it fills), so appending never changes the
    widget's size: a model emitting hundreds of commands a second costs a
    repaint of this pane, never a layout of the screen.
    """

    DEFAULT_CSS = """
    StreamView { background: $surface; overflow-x: hidden; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: deque[tuple[str, str]] = deque(maxlen=STREAM_LINES)
        self._styles: dict[str, Style] = {}
        self.following = True  # stays at the newest line until the reader scrolls up

    def on_mount(self) -> None:
        self.virtual_size = Size(1, STREAM_LINES)

    def on_resize(self) -> None:
        if self.following:
            self.scroll_end(animate=False, immediate=True)

    def on_mouse_scroll_up(self) -> None:
        self.following = False

    def on_mouse_scroll_down(self) -> None:
        self.following = self.scroll_y >= self.max_scroll_y - 1

    def append(self, line: str, style: str = "") -> None:
        self.lines.append((line, style))
        if self.following:
            self.refresh()
        elif self.scroll_y > 0:
            self.scroll_to(y=self.scroll_y - 1, animate=False, immediate=True)  # keep the reader's place

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = int(self.scroll_y) + y - (STREAM_LINES - len(self.lines))
        if not 0 <= index < len(self.lines):
            return Strip.blank(width, base)
        text, style = self.lines[index]
        rich_style = self._styles.get(style)
        if rich_style is None:
            rich_style = self._styles[style] = base + Style.parse(style) if style else base
        return Strip([Segment(text, rich_style)]).crop_extend(0, width, base)


class CommandStream(Vertical):
    """What the model emitted, what the tools answered, and the writer's edits."""

    DEFAULT_CSS = """
    CommandStream { height: 8; border-top: solid $panel; }
    CommandStream.empty { height: 1; border-top: none; }
    CommandStream.empty StreamView { display: none; }
    CommandStream StreamView { height: 1fr; }
    CommandStream #typing { height: 1; color: $secondary; background: $surface; }
    """

    EMPTY_HINT = "the model's commands and your edits appear here (ctrl+l hides)"

    def compose(self) -> ComposeResult:
        yield StreamView(id="stream-log")
        yield Static(self.EMPTY_HINT, id="typing", markup=False)

    _typed: str | None = None  # what the typing line shows (None: the hint)

    def on_mount(self) -> None:
        self.add_class("empty")  # one row until something is said

    # Found once: the model's every token and command reach these.
    @cached_property
    def _typing_line(self) -> Static:
        return self.query_one("#typing", Static)

    @cached_property
    def _view(self) -> StreamView:
        return self.query_one(StreamView)

    def typing(self, line: str) -> None:
        if line != self._typed:  # each applied command clears it: once is enough
            self._typed = line
            self._typing_line.update(f"> {line}" if line else "", layout=False)

    def add(self, line: str, style: str = "") -> None:
        if self.has_class("empty"):
            self.remove_class("empty")
            self.typing("")
        self._view.append(line, style)

    @property
    def lines(self) -> list[str]:
        return [text for text, _ in self._view.lines]


class OutlinePane(OptionList):
    """The draft's headings; choosing one moves the writer's cursor there."""

    DEFAULT_CSS = """
    OutlinePane { height: 1fr; border: none; background: $panel; }
    """

    class HeadingChosen(Message):
        def __init__(self, line: int) -> None:
            super().__init__()
            self.line = line  # 1-based, as the outline gives it

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: list[tuple[int, int, str]] | None = None

    def show(self, headings) -> None:
        shown = [(h.line, h.level, h.title) for h in headings]
        if shown == self._shown:
            return  # rebuilding a book's worth of options for nothing is not free
        self._shown = shown
        highlighted = self.highlighted
        self.clear_options()
        self.add_options(
            Option(f"{'  ' * (h.level - 1)}{h.title}", id=str(h.line)) for h in headings
        )
        if self.option_count:
            self.highlighted = min(highlighted or 0, self.option_count - 1)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.HeadingChosen(int(event.option.id)))


class NotesPane(Vertical):
    """The model's scratchpad, which the writer may edit (the whole text
    becomes one ``notes "…"`` version when they leave it), with a field
    below it to add a note of their own."""

    DEFAULT_CSS = """
    NotesPane { height: 1fr; background: $panel; }
    NotesPane TextArea { height: 1fr; border: none; padding: 0 1; background: $panel; }
    NotesPane Input { height: 1; border: none; padding: 0 1; background: $surface; }
    """

    class NoteAdded(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class EditingStarted(Message):
        """The writer moved into the notes: they hold the pen now."""

    class NotesEdited(Message):
        """The writer left the notes with a text that differs from the notes."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown = ""  # the session's notes as last shown
        # Kept, not queried: the app reads a pending edit while it unmounts.
        self._area = TextArea("", soft_wrap=True, id="notes-text")

    def compose(self) -> ComposeResult:
        yield self._area
        yield Input(placeholder="add a note…", id="note-input")

    def show(self, notes: str) -> None:
        """Show the session's notes, unless the writer is editing them."""
        area = self._area
        if area.has_focus and area.text != self._shown:
            return  # their edit is pending; it becomes a version when they leave
        self._shown = notes
        if area.text != notes:
            area.load_text(notes)

    def take_edit(self) -> str | None:
        """The writer's edited notes, if they differ from what was shown."""
        text = self._area.text
        if text == self._shown:
            return None
        self._shown = text
        return text

    def on_descendant_focus(self, event) -> None:
        if isinstance(event.widget, TextArea):
            self.post_message(self.EditingStarted())

    def on_descendant_blur(self, event) -> None:
        if isinstance(event.widget, TextArea) and (text := self.take_edit()) is not None:
            self.post_message(self.NotesEdited(text))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.post_message(self.NoteAdded(event.value.strip()))
        event.input.value = ""


class GoalScreen(ModalScreen[str | None]):
    """Asks for the model's goal: a new one starts it, a later one redirects it."""

    DEFAULT_CSS = """
    GoalScreen { align: center middle; }
    GoalScreen > Vertical { width: 70; max-width: 95%; height: auto; border: thick $accent;
                            background: $panel; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, current: str | None) -> None:
        super().__init__()
        self.current = current or ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Goal for the model (Enter starts it, Esc cancels):")
            yield Input(value=self.current, placeholder="e.g. Tighten the introduction", id="goal-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)
