"""The editor application: panes wired to one EditingSession and, when the
writer gives a goal, an agent Runner working in a thread.

The app holds no editing logic: every change is a command executed by the
session (the writer's keystrokes through ``WriterPen``, the model's through
the Runner), and the panes are views of what the session and the history
say. ``make_app`` builds it for the CLI and the tests alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from infitool_edit.agent.events import (
    CommandApplied, CommandFailed, CommandStarted, Event, Finished, Paused, Resumed, Stats,
    TokenDecided,
)
from infitool_edit.commands import ast
from infitool_edit.document.edits import TextEdit
from infitool_edit.session.draftfile import DraftError
from infitool_edit.session.editing import EditingSession, Executed
from infitool_edit.ui.editor import DraftEditor
from infitool_edit.ui.ghost import read_partial_insert
from infitool_edit.ui.inbox import EventInbox, EventsWaiting
from infitool_edit.ui.panes import CommandStream, GoalScreen, NotesPane, OutlinePane, StatusBar
from infitool_edit.ui.pen import WriterPen
from infitool_edit.ui.themes import DEFAULT_THEME, builtin_theme_folder, load_themes
from infitool_edit.ui.timeline import TimelineView
from infitool_edit.ui.worddiff import position_of, word_diff

WRITER = "writer"
IDLE_FLUSH_S = 1.0  # a typed word becomes a version after this pause
OUTLINE_REFRESH_S = 0.5  # the outline follows the draft at most this often
PREVIEW_DELAY_S = 0.05
REMOVAL_SHOWN_S = 0.25  # a delete or replace shows its text struck through this long
HOLD_BACKLOG_LIMIT = 50  # …unless this many events wait: then the model is too fast to watch
MAX_STRUCK_LINES = 40  # a rewind's whole-draft replacement is not worth striking through  # holding a key in the timeline previews only where it stops
# What a command that cannot run raises: bad syntax, an address that does not
# resolve, an unknown version, a draft changed on disk, an unwritable file.
COMMAND_ERRORS = (ValueError, LookupError, OSError)

BackendFactory = Callable[[], Any]


class InfitoolEditApp(App):
    CSS_PATH = str(builtin_theme_folder() / "app.tcss")
    TITLE = "infitool-edit"

    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+g", "goal", "Goal"),
        Binding("f2", "take_pen", "Take pen"),
        Binding("f3", "hand_back", "Hand back"),
        Binding("ctrl+t", "toggle_timeline", "Timeline"),
        Binding("ctrl+o", "toggle_pane('sidebar')", "Outline"),
        Binding("ctrl+l", "toggle_pane('stream')", "Stream"),
        Binding("f4", "toggle_dark", "Light/dark"),
        Binding("escape", "leave_preview", "Back to draft", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        session: EditingSession,
        *,
        backend_factory: BackendFactory | None = None,
        backend_name: str | None = None,
        goal: str | None = None,
        writer: str = WRITER,
        theme: str | None = None,
        theme_folders: Iterable[Path] = (),
    ) -> None:
        super().__init__()
        self.session = session
        self.history = session.history
        self.writer = writer
        self.backend_factory = backend_factory
        self.backend: Any = None
        self.backend_name = backend_name or ("no model" if backend_factory is None else "model")
        self.goal = goal
        self.runner: Any = None
        self._run_finished = threading.Event()
        self._run_finished.set()
        self.agent_worker = None
        self.inbox = EventInbox(lambda: self.post_message(EventsWaiting()))
        self.pen = WriterPen(self._execute_for_writer)
        self.holder = WRITER  # who holds the pen
        self.preview: int | None = None
        self._typing = ""  # the model's command line as typed so far
        self._held: list[Event] = []  # events waiting while a removal is shown
        self._struck_event: Event | None = None
        self._hold_timer = None
        self._ghost_text = ""
        self._flush_timer = None
        self._preview_timer = None
        self._outline_dirty = True
        self._sidebar_wanted = True  # the timeline hides the sidebar while it is open
        self._theme_choice = theme
        self._theme_folders = tuple(theme_folders)

    # --- building ----------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                yield Label("Outline", classes="pane-title")
                yield OutlinePane(id="outline")
                yield Label("Notes", classes="pane-title")
                yield NotesPane(id="notes")
            with Vertical(id="center"):
                yield Static("", id="preview-banner", markup=False)
                yield DraftEditor(self.session.workspace.text, id="editor")
            with Vertical(id="timeline-pane"):
                yield Label("Timeline  (Enter restore · f fork · a/s filter · r replay)", classes="pane-title")
                yield TimelineView(self.history, id="timeline")
        yield CommandStream(id="stream")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def editor(self) -> DraftEditor:
        return self.query_one("#editor", DraftEditor)

    @property
    def timeline(self) -> TimelineView:
        return self.query_one("#timeline", TimelineView)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def stream(self) -> CommandStream:
        return self.query_one("#stream", CommandStream)

    def on_mount(self) -> None:
        themes, errors = load_themes(*self._theme_folders)
        for theme in themes:
            self.register_theme(theme)
        for error in errors:
            self.notify(error, severity="warning", timeout=8)
        wanted = self._theme_choice or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.notify(f"unknown theme {wanted!r}; using {DEFAULT_THEME}", severity="warning")
            wanted = DEFAULT_THEME
        self.theme = wanted
        # Kept: timers and modal screens must reach these whatever screen is on top.
        self.outline_pane = self.query_one(OutlinePane)
        self.notes_pane = self.query_one(NotesPane)
        editor = self.editor
        editor.before_writer_edit = self._writer_takes_pen
        editor.focus()
        self.status.set(backend=self.backend_name, versions=self.history.count(), pen=self.holder)
        self.notes_pane.show(self.session.workspace.notes)
        self.set_interval(OUTLINE_REFRESH_S, self._refresh_outline)
        self._refresh_outline()
        if self.goal:
            self._start_agent(self.goal)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if binding.description and binding.action != "quit":
                yield SystemCommand(binding.description, f"{binding.description} ({binding.key})",
                                    lambda action=binding.action: self.run_action(action))

    # --- the writer --------------------------------------------------------

    def _writer_takes_pen(self) -> None:
        """Before the writer's first keystroke lands: stop the model and bring
        the view up to date, so the writer edits the draft the session holds."""
        if self.holder == "model":
            self.action_take_pen()

    def on_draft_editor_writer_edited(self, message: DraftEditor.WriterEdited) -> None:
        self.pen.edit(message.edit)
        if self._flush_timer is not None:
            self._flush_timer.stop()
        self._flush_timer = self.set_timer(IDLE_FLUSH_S, self.pen.flush) if self.pen.pending else None

    def _execute_for_writer(self, command: ast.Command | str) -> Executed | None:
        try:
            executed = self.session.execute(command, author=self.writer)
        except COMMAND_ERRORS as error:
            self.notify(str(error).splitlines()[0], severity="error")
            self._resync()
            return None
        if self.runner is not None:
            self.runner.writer_executed(executed)
        self.stream.add(f"@user {executed.line}", style="bold")
        self._version_recorded(executed.version, executed.author, executed.line)
        return executed

    def _version_recorded(self, version: int | None, author: str, line: str) -> None:
        if version is None:
            return
        self.timeline.add_version(version, author, line)
        self.status.set(versions=version)
        self._outline_dirty = True
        if line.startswith(("note", "rewind", "fork")):
            self.notes_pane.show(self.session.workspace.notes)

    def _resync(self) -> None:
        """Reload the view from the session (after an error or a race with the model)."""
        self.editor.ghost = None
        self._ghost_text = ""
        self.editor.load(self.session.workspace.text)

    def on_notes_pane_editing_started(self, message: NotesPane.EditingStarted) -> None:
        self._writer_takes_pen()

    def on_notes_pane_notes_edited(self, message: NotesPane.NotesEdited) -> None:
        self._commit_notes(message.text)

    def _commit_notes(self, text: str | None, *, show: bool = True) -> None:
        """The writer's edit of the notes, as one version."""
        if text is not None:
            self._execute_for_writer(ast.Notes(text))
            if show:
                self.notes_pane.show(self.session.workspace.notes)

    def on_notes_pane_note_added(self, message: NotesPane.NoteAdded) -> None:
        self.pen.flush()
        self._execute_for_writer(ast.Note(message.text))
        self.notes_pane.show(self.session.workspace.notes)

    def on_outline_pane_heading_chosen(self, message: OutlinePane.HeadingChosen) -> None:
        editor = self.editor
        editor._set_writer_cursor((message.line - 1, 0))
        editor.scroll_to(y=editor.row_of(editor.writer_cursor), animate=False, immediate=True)
        editor.focus()

    def _refresh_outline(self) -> None:
        outline = self.outline_pane
        if self._outline_dirty and outline.is_attached:
            self._outline_dirty = False
            outline.show(self.session.outline())

    def action_save(self) -> None:
        self.pen.flush()
        self._commit_notes(self.notes_pane.take_edit())
        try:
            self.session.save()
        except DraftError as error:
            self.notify(str(error), severity="error")
            return
        head = self.history.head()
        self.notify(f"saved {self.session.draft.path.name}" + (f" (v{head.number})" if head else ""))

    # --- the pen -----------------------------------------------------------

    def action_take_pen(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.stop()
        self._take_events(at_once=True)  # apply what the model already did before it stops
        if self.runner is not None:
            self.runner.pause()
        self._clear_ghost()
        self._set_holder(WRITER)

    def action_hand_back(self) -> None:
        self.pen.flush()
        self.action_leave_preview()
        if self.runner is None or (self.agent_worker is not None and self.agent_worker.is_finished):
            if self.goal:
                self._start_agent(None)
            else:
                self.action_goal()
            return
        self.runner.resume()
        self.editor.follow_model = True
        self._set_holder("model")

    def _set_holder(self, holder: str) -> None:
        self.holder = holder
        self.status.set(pen=holder)

    def action_goal(self) -> None:
        def chosen(goal: str | None) -> None:
            if goal:
                self.goal = goal
                self._start_agent(goal)

        self.push_screen(GoalScreen(self.goal), chosen)

    # --- the model ---------------------------------------------------------

    def _start_agent(self, goal: str | None) -> None:
        if self.backend_factory is None:
            self.notify("no model to hand the pen to: open the draft with a backend (e.g. --script)",
                        severity="warning")
            return
        self.pen.flush()
        self._set_holder("model")
        self.editor.follow_model = True
        self._run_agent(goal)

    @work(thread=True, exclusive=True, exit_on_error=False, group="agent")
    def _run_agent(self, goal: str | None) -> None:
        from infitool_edit.agent.runner import AgentError, Runner

        if self.runner is not None:
            self.runner.stop()  # redirect: the old run ends at its next token…
            self._run_finished.wait()  # …and lets go of the backend before the new one takes it
        self._run_finished.clear()
        try:
            if self.backend is None:
                self.call_from_thread(self.status.set, activity="loading model…")
                self.backend = self.backend_factory()
                self.call_from_thread(self.status.set, activity="", backend=self.backend_name)
            runner = Runner(self.session, self.backend, goal)
        except (AgentError, OSError, ValueError) as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            self.call_from_thread(self._set_holder, WRITER)
            self._run_finished.set()
            return
        self.runner = runner
        try:
            runner.run(self.inbox.put)
        except (AgentError, OSError, ValueError) as error:
            self.call_from_thread(self.notify, str(error).splitlines()[0], severity="error")
            self.call_from_thread(self._set_holder, WRITER)
        finally:
            self._run_finished.set()

    def on_worker_state_changed(self, event) -> None:
        if event.worker.group == "agent":
            self.agent_worker = event.worker

    def on_events_waiting(self, message: EventsWaiting) -> None:
        if self._hold_timer is None:  # while a removal is shown, its timer drains the rest
            self._take_events()

    def _take_events(self, *, at_once: bool = False) -> None:
        """Show what the agent did. A delete or replace is first shown struck
        through for a moment, then applied, unless the model is too fast for
        that (events piling up) or the writer needs the draft now (``at_once``)."""
        self._hold_timer = None
        events = self._held + self.inbox.take_all()
        self._held = []
        for index, event in enumerate(events):
            if (not at_once and event is not self._struck_event and self._removes_text(event)
                    and len(events) - index + self.inbox.waiting < HOLD_BACKLOG_LIMIT):
                self._struck_event = event
                self.editor.set_struck((event.edit.start, event.edit.end))
                self._held = events[index:]
                self._hold_timer = self.set_timer(REMOVAL_SHOWN_S, self._take_events)
                return
            self._show_event(event)

    def _removes_text(self, event: Event) -> bool:
        return (isinstance(event, CommandApplied) and event.edit is not None
                and event.edit.start != event.edit.end and self.holder == "model"
                and self.preview is None
                and event.edit.end[0] - event.edit.start[0] < MAX_STRUCK_LINES)

    def _show_event(self, event: Event) -> None:
        if isinstance(event, CommandStarted):
            self._typing = ""
        elif isinstance(event, TokenDecided):
            self._typing += event.text
            self.stream.typing(self._typing)
            if self.holder == "model" and self.preview is None:
                self._type_ghost()
        elif isinstance(event, CommandApplied):
            self._clear_ghost()
            self.stream.typing("")
            self.stream.add(f"> {event.line}", style="bold")
            self.stream.add(event.observation.split("\n", 1)[0], style="dim")
            self._show_model_edit(event)
            self._version_recorded(event.version, event.author, event.line)
        elif isinstance(event, CommandFailed):
            self._clear_ghost()
            self.stream.typing("")
            self.stream.add(f"> {event.line}", style="bold")
            self.stream.add(f"@error {event.message}", style="red")
        elif isinstance(event, Paused):
            self.stream.add("@paused: the writer holds the pen", style="italic")
        elif isinstance(event, Resumed):
            self.stream.add("@resumed: the model holds the pen", style="italic")
        elif isinstance(event, Finished):
            self.stream.add(f"@done {event.summary}", style="italic")
            self.status.set(activity=f"done: {event.summary}"[:60])
            self._set_holder(WRITER)
        elif isinstance(event, Stats):
            self.status.set(tokens_per_s=event.tokens_per_s, stream_tokens=event.stream_tokens,
                            state_bytes=event.state_bytes)

    def _show_model_edit(self, event: CommandApplied) -> None:
        if self.preview is not None:
            return  # the live draft is reloaded when the preview ends
        editor = self.editor
        if self.holder == WRITER:
            # The model finished a command just as the writer took the pen:
            # the session holds both edits in the order they really happened,
            # so show the session's text rather than patch the view.
            self.pen.flush()
            self._resync()
        elif event.edit is not None:
            editor.set_struck(None)
            new_end = editor.apply_edit(event.edit)
            editor.set_model_cursor(new_end)
            editor.set_marks([(event.edit.start, new_end)] if event.edit.text else [])
            if editor.follow_model:
                editor.scroll_to_position(new_end)
        else:
            editor.set_model_cursor(self.session.workspace.model_cursor)
            if editor.follow_model and editor.model_cursor is not None:
                editor.scroll_to_position(editor.model_cursor)

    def _type_ghost(self) -> None:
        """Show the insert being typed, token by token, where it will land."""
        partial = read_partial_insert(self._typing)
        if partial is None or len(partial.text) <= len(self._ghost_text):
            return
        editor = self.editor
        if editor.ghost is None:
            if partial.at_end:
                at = editor.buffer.end()
            elif partial.line is not None:
                at = editor.buffer.clamp((partial.line, partial.col or 0))
            else:
                at = editor.model_cursor or editor.writer_cursor
            editor.ghost = (at, at)
        new_text = partial.text[len(self._ghost_text):]
        ghost_start, ghost_end = editor.ghost
        end = editor.apply_edit(TextEdit(ghost_end, ghost_end, new_text))
        editor.ghost = (ghost_start, end)
        self._ghost_text = partial.text
        editor.set_model_cursor(end)
        if editor.follow_model:
            editor.scroll_to_position(end)

    def _clear_ghost(self) -> None:
        editor = self.editor
        if editor.ghost is not None:
            start, end = editor.ghost
            editor.ghost = None
            editor.apply_edit(TextEdit(start, end, ""))
            editor.set_model_cursor(start)
        self._ghost_text = ""

    # --- the timeline ------------------------------------------------------

    def action_toggle_timeline(self) -> None:
        # Display is set on the widgets themselves: a class on the screen would
        # restyle every node, which costs more than painting the pane.
        pane = self.query_one("#timeline-pane")
        pane.display = not pane.display
        self.query_one("#sidebar").display = not pane.display and self._sidebar_wanted
        if pane.display:
            self.timeline.focus()
        else:
            self.action_leave_preview()
            self.editor.focus()

    def action_toggle_pane(self, pane_id: str) -> None:
        pane = self.query_one(f"#{pane_id}")
        pane.display = not pane.display
        if pane_id == "sidebar":
            self._sidebar_wanted = pane.display

    def action_toggle_dark(self) -> None:
        self.theme = "infitool-light" if self.theme == "infitool-dark" else "infitool-dark"

    def on_timeline_view_selected(self, message: TimelineView.Selected) -> None:
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(PREVIEW_DELAY_S, lambda: self.show_preview(message.number))

    def show_preview(self, number: int) -> None:
        """Show version ``number`` read-only, its change marked word by word."""
        if self.preview is None:
            self.pen.flush()
            self.action_take_pen()  # the writer is reviewing: the model waits
        self.preview = number
        info = self.timeline.row(number)
        new = self.history.read(number).draft
        parent_number = self.history.log(limit=1, before=number + 1)[0].parent
        old = self.history.read(parent_number).draft if parent_number else ""
        diff = word_diff(old, new)
        editor = self.editor
        editor.read_only = True
        editor.load(new)
        editor.marks = [(position_of(new, a), position_of(new, b)) for a, b in diff.inserted]
        if editor.marks:
            editor.scroll_to_position(editor.marks[0][0])
        removed = " · ".join(word.strip() for word in diff.removed if word.strip())[:120]
        banner = self.query_one("#preview-banner", Static)
        banner.update(f"v{number} by {info.author}: {info.message.splitlines()[0] if info.message else ''}"
                      + (f"  — removed: {removed}" if removed else "")
                      + "   (Enter restores · f forks · Esc back)")
        banner.add_class("shown")

    def action_leave_preview(self) -> None:
        if self.preview is None:
            return
        self.preview = None
        editor = self.editor
        editor.read_only = False
        editor.marks = []
        self.query_one("#preview-banner").remove_class("shown")
        self._resync()

    def on_timeline_view_restore_requested(self, message: TimelineView.RestoreRequested) -> None:
        self._restore(lambda: self._execute_for_writer(ast.Rewind(ast.VersionRef(message.number))))

    def on_timeline_view_fork_requested(self, message: TimelineView.ForkRequested) -> None:
        def fork() -> Executed | None:
            try:
                executed = self.session.fork(message.number, author=self.writer)
            except COMMAND_ERRORS as error:
                self.notify(str(error).splitlines()[0], severity="error")
                return None
            if self.runner is not None:
                self.runner.writer_executed(executed)
            self.stream.add(f"@user {executed.line}", style="bold")
            self._version_recorded(executed.version, executed.author, executed.line)
            return executed

        self._restore(fork)

    def _restore(self, make_version: Callable[[], Executed | None]) -> None:
        self.action_take_pen()
        self.action_leave_preview()
        executed = make_version()
        if executed is not None:
            self.notify(f"now at v{executed.version} ({executed.line})")
            self._resync()

    def on_timeline_view_replay_toggled(self, message: TimelineView.ReplayToggled) -> None:
        self.status.set(activity=f"replay ×{message.speed:g}" if message.playing else "")

    # --- leaving -----------------------------------------------------------

    async def action_quit(self) -> None:
        """Save the writer's pending word, stop the model, release the draft."""
        self.pen.flush()
        if self.runner is not None:
            self.runner.stop()
        self.inbox.close()
        if self.agent_worker is not None and not self.agent_worker.is_finished:
            await self.agent_worker.wait()
        self.exit()

    def on_unmount(self) -> None:
        # However the app ends: the writer's word is saved and the runner's
        # thread is released (from a pause, or from a full inbox).
        self.pen.flush()
        self._commit_notes(self.notes_pane.take_edit(), show=False)
        if self.runner is not None:
            self.runner.stop()
        self.inbox.close()
        self._run_finished.wait(timeout=5)
        self.session.close()


def make_app(
    draft_path: Path,
    *,
    script: Path | None = None,
    rate: float | None = None,
    model: Path | None = None,
    backend_factory: BackendFactory | None = None,
    backend_name: str | None = None,
    goal: str | None = None,
    writer: str = WRITER,
    theme: str | None = None,
    theme_folders: Iterable[Path] = (),
) -> InfitoolEditApp:
    """The app on ``draft_path``. The model is the built-in SSM (``model``: a
    checkpoint folder; none: the default model), or ``script``, a command
    file the scripted backend replays (``rate`` commands per second), or any
    backend ``backend_factory`` builds. A model is loaded in a thread when it
    first gets the pen, with progress in the status bar."""
    if backend_factory is None:
        from infitool_edit.agent.headless import make_backend

        if script is not None:
            scripted = make_backend(script=Path(script), rate=rate)  # a missing script fails here, in one line
            backend_factory = lambda: scripted  # noqa: E731
            backend_name = backend_name or f"script {Path(script).name}"
        else:
            backend_factory = lambda: make_backend(model=model)  # noqa: E731
            from infitool_edit.agent.default_model import default_model_description

            backend_name = backend_name or f"ssm {Path(model).name if model else default_model_description()}"
    session = EditingSession.open(Path(draft_path), author=writer)
    return InfitoolEditApp(
        session, backend_factory=backend_factory, backend_name=backend_name, goal=goal,
        writer=writer, theme=theme, theme_folders=theme_folders,
    )


def run_editor(draft_path: Path, **options: Any) -> None:
    """Open the editor on ``draft_path`` in this terminal (``infitool-edit DRAFT``)."""
    make_app(Path(draft_path), **options).run()
