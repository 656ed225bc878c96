"""The editor application: panes wired to one EditingSession and, when the
writer gives a goal, the model working in a thread.

The app holds no editing logic: every change is a command executed by the
session (the writer's keystrokes through ``WriterPen``, the model's through
its runner), and the panes are views of what the session and the history
say. The app listens to the session for the writer's versions; the
model's arrive as the runner's events and are paced by ``Playback``. Its
jobs live beside it: ``model_pen`` (the model's backend, thread, inbox),
``playback`` (showing the model's events), ``preview`` (older versions,
rewind, fork). ``make_app`` builds it with its session open (the tests,
the benches); ``opening_app``, which ``run_editor`` runs for the command
line, builds it to paint first.

The first frame comes before the session (``opening_app``): this module
imports only Textual and the panes, the draft is shown as its file holds
it, and the session (the document engine, git, the history) and the
model's backend open in a thread once that frame is up (``opening.py``);
the writer's keys meanwhile wait in the editor and land once it is open.
Everything that needs the session imports it where it is used.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from infitool_edit.errors import expected_errors, one_line
from infitool_edit.ui.editor import DraftEditor
from infitool_edit.ui.find import FindBar
from infitool_edit.ui.firstscreen import HelpScreen, TitleBar, word_count
from infitool_edit.ui.holder import Holder
from infitool_edit.ui.opening import Backend, Opened, choose_backend, first_text, open_session
from infitool_edit.ui.panes import CommandStream, GoalScreen, NotesPane, OutlinePane, StatusBar
from infitool_edit.ui.themes import builtin_theme_folder, install_themes
from infitool_edit.ui.timeline import TimelineView

if TYPE_CHECKING:
    from infitool_edit.agent.deletion_guard import Answer, LargeDeletion
    from infitool_edit.commands import ast
    from infitool_edit.document.edits import TextEdit
    from infitool_edit.document.positions import Position
    from infitool_edit.session.editing import EditingSession, Executed

WRITER = "writer"
AUTOSAVE_NOTE = "saved automatically; every change is a version"  # said once, at the start
NARROW = 100  # below this many columns the sidebar starts hidden (ctrl+o shows it)
TIMELINE_TITLE = "Timeline  (Enter rewind · f fork · a/s filter · r replay)"
OPENING_NOTE = "opening the draft's history…"  # while the session opens, after the first frame
IDLE_FLUSH_S = 2.0  # a run of typing becomes a version after this pause
OUTLINE_REFRESH_S = 0.5  # the outline follows the draft at most this often


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
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),  # only where "?" is not text
        Binding("f8", "toggle_details", "Details", show=False),
        # A priority binding runs before the keys behind it reach the editor, and the bar
        # takes the focus at once: ctrl+f and a word typed in one breath find the word.
        Binding("ctrl+f", "find", "Find", priority=True),
        Binding("ctrl+r", "replace", "Replace", show=False),
        Binding("ctrl+z", "undo", "Undo", show=False),
        Binding("ctrl+y,ctrl+shift+z", "redo", "Redo", show=False),
        Binding("f6", "reject_run", "Take back the model's run", show=False),
        Binding("escape", "leave_preview", "Back to draft", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    # What needs the session; before it is open (the first frame) these wait.
    SESSION_ACTIONS = frozenset({
        "save", "goal", "take_pen", "hand_back", "toggle_timeline", "find", "replace", "undo", "redo",
        "reject_run", "leave_preview",
    })

    class SessionOpened(Message):
        """From the opening thread: the session and backend, or why not."""

        def __init__(self, opened: Opened | None, error: BaseException | None) -> None:
            super().__init__()
            self.opened = opened
            self.error = error

    def __init__(
        self,
        opening: Opened | Callable[[], Opened],
        *,
        draft_path: Path | None = None,
        goal: str | None = None,
        writer: str = WRITER,
        theme: str | None = None,
        theme_folders: Iterable[Path] = (),
    ) -> None:
        """``opening``: the session and backend, opened; or how to open them,
        called in a thread after the first frame (which shows ``draft_path``'s
        file)."""
        super().__init__()
        self.writer = writer
        self.goal = goal
        self.holder = Holder.WRITER  # who holds the pen
        self.session: EditingSession | None = None
        self.history = None
        self.opening_error: BaseException | None = None  # the session could not open: the app ended
        self._opening = None if isinstance(opening, Opened) else opening
        self._opening_thread: threading.Thread | None = None
        self._opened_in_thread: Opened | None = None
        self.run_start: int | None = None  # the version before the model's run, for reject_run
        self._flush_timer = None
        self._outline_dirty = True
        self._sidebar_wanted = True  # the timeline hides the sidebar while it is open
        self._sidebar_chosen = False  # the writer toggled it: the width no longer decides
        # Set before the app runs: set in on_mount, the theme would build the stylesheet a second time.
        self._theme_warnings = install_themes(self, tuple(theme_folders), theme)
        self._unsubscribe: Callable[[], None] = lambda: None
        self._panes: dict[str, Any] = {}
        if isinstance(opening, Opened):
            self._take(opening)
            self._draft_path = opening.session.draft_path
        else:
            assert draft_path is not None, "an app that opens its draft later needs the draft's path"
            self._draft_path = Path(draft_path)
            # Read (and checked) before the app runs: a draft the session would refuse is one line
            # in the shell, never a painted screen.
            self._first_text = first_text(self._draft_path)

    def _take(self, opened: Opened) -> None:
        """The session's parts (the pens, playback, preview, undo). Imported
        here: they bring the command language, the agent's events and the
        session, which the first frame does without."""
        from infitool_edit.ui.model_pen import ModelPen
        from infitool_edit.ui.pen import WriterPen
        from infitool_edit.ui.playback import Playback
        from infitool_edit.ui.preview import VersionPreview
        from infitool_edit.ui.undo import WriterUndo

        session, backend = opened.session, opened.backend
        self.session = session
        self.history = session.history
        self.model_pen = ModelPen(self, backend.factory, backend.name,
                                  ask_before_deleting=backend.ask_before_deleting)
        self.writer_pen = WriterPen(self.execute_for_writer)
        self.playback = Playback(self)
        self.version_preview = VersionPreview(self)
        self.undo = WriterUndo(self.writer, self.execute_for_writer)
        self._unsubscribe = session.subscribe(self._session_executed)

    # --- building ----------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TitleBar(id="title-bar")
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                yield Label("Outline", classes="pane-title")
                yield OutlinePane(id="outline")
                yield Label("Notes", classes="pane-title")
                yield NotesPane(id="notes", disabled=not self.opened)  # its edits need the session
            with Vertical(id="center"):
                yield Static("", id="preview-banner", markup=False)
                yield FindBar(id="find-bar")
                if self.session is not None:
                    yield DraftEditor(self.session.workspace.text, id="editor")
                else:
                    editor = DraftEditor(self._first_text, id="editor")
                    editor.held = []  # the writer's edits wait for the session
                    yield editor
            with Vertical(id="timeline-pane"):
                yield Label(TIMELINE_TITLE, id="timeline-title", classes="pane-title")
                if self.history is not None:
                    yield TimelineView(self.history, id="timeline")
        yield CommandStream(id="stream")
        yield StatusBar(id="status")
        yield Footer()

    @property
    def closing(self) -> bool:
        """The app is exiting (its screens may already be gone)."""
        return self._exit or not self.screen_stack

    @property
    def opened(self) -> bool:
        """The session is open (from the first frame on when ``make_app`` built the app)."""
        return self.session is not None

    @property
    def _main_screen(self) -> Screen:
        """The editor's screen, also while a dialog (help, goal, a question) is
        on top of it and the model's events still arrive."""
        return self.screen_stack[0] if self.screen_stack else self.screen

    def _pane(self, selector: str, kind: type):
        """One of the editor screen's panes, found once: they are never
        replaced, and every model command reaches several of them."""
        pane = self._panes.get(selector)
        if pane is None:
            pane = self._panes[selector] = self._main_screen.query_one(selector, kind)
        return pane

    @property
    def editor(self) -> DraftEditor:
        return self._pane("#editor", DraftEditor)

    @property
    def timeline(self) -> TimelineView:
        return self._pane("#timeline", TimelineView)

    @property
    def status(self) -> StatusBar:
        return self._pane("#status", StatusBar)

    @property
    def stream(self) -> CommandStream:
        return self._pane("#stream", CommandStream)

    # The model pen's parts, by the names playback and the tests use.
    inbox = property(lambda self: self.model_pen.inbox)
    runner = property(lambda self: self.model_pen.runner)
    backend_name = property(lambda self: self.model_pen.backend_name)

    @property
    def preview(self) -> int | None:
        """The version shown read-only, or None while the live draft is."""
        return self.version_preview.number

    def on_mount(self) -> None:
        for warning in self._theme_warnings:
            self.notify(warning, severity="warning", timeout=8)
        # Kept: timers and modal screens must reach these whatever screen is on top.
        self.outline_pane = self.query_one(OutlinePane)
        self.notes_pane = self.query_one(NotesPane)
        editor = self.editor
        editor.before_writer_edit = self.writer_takes_pen
        editor.writer_edited = self._writer_edited
        editor.focus()
        self.set_interval(OUTLINE_REFRESH_S, self._refresh_outline)
        if self.opened:
            self._show_session()
            return
        self.status.set(pen=self.holder, activity=OPENING_NOTE)
        self.show_title()

    def on_ready(self) -> None:
        """Textual's word that the first frame is on the screen: now the
        session opens (its imports and git would have delayed that frame)."""
        if self._opening is None or self._opening_thread is not None:
            return
        self._opening_thread = threading.Thread(target=self._open_in_thread, name="open-draft", daemon=True)
        self._opening_thread.start()

    def _open_in_thread(self) -> None:
        try:
            opened, error = self._opening(), None
        except Exception as exc:  # expected ones become one line; a bug still ends the app in one line
            opened, error = None, exc
        self._opened_in_thread = opened  # for finish_opening, should the app end before it is taken
        with contextlib.suppress(RuntimeError):  # the app ended meanwhile (its loop is closed)
            self.post_message(self.SessionOpened(opened, error))

    def finish_opening(self) -> None:
        """After the app has run: wait for the opening thread (a session half
        opened must not be cut off: git writes while it opens) and close the
        session it opened if the app ended before taking it."""
        if self._opening_thread is None:
            return
        self._opening_thread.join()
        opened = self._opened_in_thread
        if opened is not None and self.session is not opened.session:
            opened.session.close()

    def on_infitool_edit_app_session_opened(self, message: SessionOpened) -> None:
        if message.error is not None:
            self.opening_error = message.error
            self.exit(return_code=1)
        elif not self.closing and self.session is None:
            self._take(message.opened)
            self._show_session()

    def _show_session(self) -> None:
        """The session is open: the panes show it, and the writer's edits made
        meanwhile land in it."""
        session = self.session
        if not self.query("#timeline"):
            self.query_one("#timeline-pane").mount(TimelineView(self.history, id="timeline"))
        editor = self.editor
        if editor.text != session.workspace.text:  # the file changed, or the session recovered it
            editor.load(session.workspace.text)
        self.status.set(backend=self.backend_name, versions=self.history.count(), pen=self.holder,
                        activity=AUTOSAVE_NOTE)
        self.show_title()
        self.notes_pane.show(session.workspace.notes)
        self.notes_pane.disabled = False
        self._refresh_outline()
        editor.release_held()
        if self.goal:
            # After the first frame: the draft is on screen before the model
            # (and torch) load in the worker, the status bar saying so.
            self.call_after_refresh(self._start_model, self.goal)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Before the session is open only what needs no draft: help, panes, quit.
        return self.opened or action not in self.SESSION_ACTIONS

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if binding.description and binding.action != "quit":
                yield SystemCommand(binding.description, f"{binding.description} ({binding.key})",
                                    lambda action=binding.action: self.run_action(action))

    # --- versions, as the session publishes them -----------------------------

    def _session_executed(self, executed: Executed) -> None:
        """The session's listener. The writer's versions show at once (this
        runs on the UI thread, inside the writer's own command); the
        model's come through its runner's events, paced by playback."""
        self.undo.record(executed)
        if executed.author != self.writer:
            return
        self.stream.add(f"@user {executed.line}", style="bold")
        self.show_version(executed.version, executed.author, executed.line, command=executed.command,
                          scale=executed.scale, notes_changed=executed.notes_changed, back_to=executed.back_to)

    def show_version(self, version: int | None, author: str, line: str, *, command: ast.Command | None,
                     scale: str | None, notes_changed: bool, back_to: int | None = None) -> None:
        from infitool_edit.commands import ast  # loaded with the session: here, a dictionary lookup

        if version is None:
            return
        checkpoint = command.name if isinstance(command, ast.Checkpoint) else None
        self.timeline.add_version(version, author, line, checkpoint=checkpoint, scale=scale, back_to=back_to)
        self.status.set(versions=version)
        if self.status.status.activity == AUTOSAVE_NOTE:
            self.status.set(activity="")  # said once is enough
        self._outline_dirty = True
        if notes_changed:
            self.notes_pane.show(self.session.workspace.notes)

    # --- the writer --------------------------------------------------------

    def execute_for_writer(self, command: ast.Command) -> Executed | None:
        if self.session is None:  # nothing reaches here before the session opens; should it, it is said
            self.notify("the draft is still opening", severity="warning")
            return None
        try:
            return self.session.execute(command, author=self.writer)
        except expected_errors() as error:
            self.notify(one_line(error), severity="error")
            self.resync()
            return None

    def action_find(self) -> None:
        self.query_one(FindBar).open(replace=False)

    def action_replace(self) -> None:
        self.query_one(FindBar).open(replace=True)

    def action_undo(self) -> None:
        """Take back the writer's last step, as a new version."""
        self._replay_step(self.undo.undo, "nothing of yours to undo")

    def action_redo(self) -> None:
        self._replay_step(self.undo.redo, "nothing to redo")

    def _replay_step(self, replay, nothing: str) -> None:
        if self.preview is not None:
            return
        self.writer_takes_pen()
        self.writer_pen.flush()
        dropped = self.undo.dropped
        executed = replay()
        if self.undo.dropped != dropped:
            self.notify("the model has since edited your earlier text: the timeline goes back past it",
                        severity="warning")
        if executed is None:
            self.notify(nothing)
            return
        if executed.edit is not None:
            editor = self.editor
            editor.clear_selection()
            end = editor.apply_edit(executed.edit)
            editor.set_writer_cursor(end)
            editor.scroll_to_position(end)

    def action_reject_run(self) -> None:
        """Take back everything since the goal was given to the model, as one new version."""
        if self.run_start is None:
            self.notify("the model has not run since the draft was opened")
            return
        self.action_take_pen()
        self.writer_pen.flush()
        self.action_leave_preview()
        from infitool_edit.commands import ast

        executed = self.execute_for_writer(ast.Rewind(ast.VersionRef(self.run_start)))
        if executed is not None:
            self.notify(f"took back the model's run: v{executed.version} equals v{self.run_start}")
            self.resync()

    def writer_takes_pen(self) -> None:
        """Before the writer's first keystroke lands: stop the model and bring
        the view up to date, so the writer edits the draft the session holds."""
        if self.holder == Holder.MODEL:
            self.action_take_pen()

    def writer_caught_up(self) -> None:
        """The model's edit landed after the writer took the pen: show the session's text."""
        self.writer_pen.flush()
        self.resync()

    def model_cursor(self) -> Position:
        return self.session.workspace.model_cursor

    def _writer_edited(self, edit: TextEdit, alone: bool) -> None:
        """The writer's edit, just applied in the view: to the pen at once (a
        message could arrive after a reload of the view and lose the edit)."""
        self.writer_pen.edit(edit, alone=alone)
        if self._flush_timer is not None:
            self._flush_timer.stop()
        pen = self.writer_pen
        self._flush_timer = self.set_timer(IDLE_FLUSH_S, pen.flush) if pen.pending else None

    def resync(self) -> None:
        """Reload the view from the session (after an error or a race with the model)."""
        self.playback.forget_ghost()
        self.editor.load(self.session.workspace.text)

    def on_notes_pane_editing_started(self, message: NotesPane.EditingStarted) -> None:
        self.writer_takes_pen()

    def on_notes_pane_notes_edited(self, message: NotesPane.NotesEdited) -> None:
        self._commit_notes(message.text)

    def _commit_notes(self, text: str | None) -> None:
        """The writer's edit of the notes, as one version."""
        from infitool_edit.commands import ast

        if text is not None:
            self.execute_for_writer(ast.Notes(text))

    def on_notes_pane_note_added(self, message: NotesPane.NoteAdded) -> None:
        from infitool_edit.commands import ast

        self.writer_pen.flush()
        self.execute_for_writer(ast.Note(message.text))

    def on_outline_pane_heading_chosen(self, message: OutlinePane.HeadingChosen) -> None:
        editor = self.editor
        editor.set_writer_cursor((message.line - 1, 0))
        editor.scroll_to(y=editor.row_of(editor.writer_cursor), animate=False, immediate=True)
        editor.focus()

    def _refresh_outline(self) -> None:
        outline = self.outline_pane
        if self._outline_dirty and outline.is_attached and self.opened:
            self._outline_dirty = False
            outline.show(self.session.outline())
            self.show_title()

    def show_title(self) -> None:
        """File, model, word count and goal, in the title bar."""
        bar = self.query("#title-bar")
        if bar:
            # Before the session opens: the file's words, and the model named once it is chosen.
            model = (self.model_pen.backend_name or "none") if self.opened else "…"
            bar.first(TitleBar).show(self._draft_path.name, model, word_count(self.editor.text), self.goal)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_details(self) -> None:
        self.status.set(verbose=not self.status.status.verbose)

    def on_resize(self, event) -> None:
        # Narrow terminals give the prose the width: the sidebar starts hidden.
        narrow = event.size.width < NARROW
        if narrow and self._sidebar_wanted and not self._sidebar_chosen:
            self._sidebar_wanted = False
            self.query_one("#sidebar").display = False
        # …and the rows: the command stream becomes an overlay (ctrl+l shows
        # it over the draft's lower rows), hidden on entering the narrow
        # layout and shown again on leaving it.
        stream = self.stream
        if narrow != stream.has_class("overlay"):
            stream.set_class(narrow, "overlay")
            stream.display = not narrow

    def action_save(self) -> None:
        self.writer_pen.flush()
        self._commit_notes(self.notes_pane.take_edit())
        try:
            self.session.save()
        except expected_errors() as error:
            self.notify(one_line(error), severity="error")
            return
        head = self.history.head()
        self.notify(f"saved {self.session.draft.path.name}" + (f" (v{head.number})" if head else ""))

    # --- the pen -----------------------------------------------------------

    def action_take_pen(self) -> None:
        self.playback.stop_holding()
        self.playback.take_events(at_once=True)  # apply what the model already did before it stops
        self.model_pen.pause()
        self.playback.clear_ghost()
        self.set_holder(Holder.WRITER)

    def action_hand_back(self) -> None:
        self.writer_pen.flush()
        self.action_leave_preview()
        if not self.model_pen.running:
            if self.goal:
                self._start_model(None)
            else:
                self.action_goal()
            return
        self.model_pen.resume()
        self.editor.follow_model = True
        self.set_holder(Holder.MODEL)

    def set_holder(self, holder: Holder) -> None:
        self.holder = holder
        self.status.set(pen=holder)

    def ask_about_deletion(self, question: LargeDeletion, reply: Callable[[Answer], None]) -> None:
        """The runner waits: the model's command would delete a large part of the draft."""
        from infitool_edit.agent.deletion_guard import Answer
        from infitool_edit.ui.ask_deletion import DeletionScreen

        self.stream.add(f"@asking the writer: {question.describe()}", style="italic")
        self.status.set(activity="the model waits: allow the deletion? (a/r/p)")

        def answered(answer: Answer | None) -> None:
            answer = answer or Answer.REFUSE
            self.status.set(activity="")
            if answer is Answer.TAKE_PEN:
                self.action_take_pen()
            reply(answer)

        self.push_screen(DeletionScreen(question), answered)

    def action_goal(self) -> None:
        def chosen(goal: str | None) -> None:
            if goal:
                self.goal = goal
                self.show_title()
                self._start_model(goal)

        self.push_screen(GoalScreen(self.goal), chosen)

    def _start_model(self, goal: str | None) -> None:
        if not self.model_pen.available:
            self.notify("no model to hand the pen to: open the draft with a backend (e.g. --script)",
                        severity="warning")
            return
        self.writer_pen.flush()
        if goal is not None or self.run_start is None:
            head = self.history.head()
            self.run_start = head.number if head else None
        self.set_holder(Holder.MODEL)
        self.editor.follow_model = True
        self.model_pen.start(goal)

    def on_events_waiting(self, message: EventsWaiting) -> None:
        if not self.playback.holding:  # while a removal is shown, its timer drains the rest
            self.playback.take_events()

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
            self._sidebar_chosen = True

    def action_toggle_dark(self) -> None:
        self.theme = "infitool-light" if self.theme == "infitool-dark" else "infitool-dark"

    def on_timeline_view_selected(self, message: TimelineView.Selected) -> None:
        self.version_preview.select(message.number)

    def action_leave_preview(self) -> None:
        self.version_preview.leave()

    def on_timeline_view_rewind_requested(self, message: TimelineView.RewindRequested) -> None:
        self.version_preview.rewind(message.number)

    def on_timeline_view_fork_requested(self, message: TimelineView.ForkRequested) -> None:
        self.version_preview.fork(message.number)

    def on_timeline_view_filter_changed(self, message: TimelineView.FilterChanged) -> None:
        title = TIMELINE_TITLE if not message.description else f"Timeline · only {message.description}  (a/s filter)"
        self.query_one("#timeline-title", Label).update(title)

    def on_timeline_view_replay_toggled(self, message: TimelineView.ReplayToggled) -> None:
        self.status.set(activity=f"replay ×{message.speed:g}" if message.playing else "")

    # --- leaving -----------------------------------------------------------

    async def action_quit(self) -> None:
        """Save the writer's pending word, stop the model, release the draft."""
        if self.opened:
            self.writer_pen.flush()
            self.model_pen.stop()
            await self.model_pen.wait()
        self.exit()

    def on_unmount(self) -> None:
        # However the app ends: the writer's word is saved and the runner's
        # thread is released (from a pause, or from a full inbox).
        if not self.opened:
            return  # ended before the session opened: finish_opening closes it
        self._unsubscribe()  # the panes are going: the last versions need no showing
        self.writer_pen.flush()
        self.version_preview.cancel()  # the history closes below
        self._commit_notes(self.notes_pane.take_edit())
        self.model_pen.stop()
        self.model_pen.wait_finished(timeout=5)
        self.session.close()


def make_app(
    draft_path: Path,
    *,
    goal: str | None = None,
    writer: str = WRITER,
    theme: str | None = None,
    theme_folders: Iterable[Path] = (),
    **backend_options: Any,
) -> InfitoolEditApp:
    """The app on ``draft_path``, its session open before it runs (tests,
    benches); ``backend_options``: ``choose_backend``'s (the model: the
    built-in SSM, a checkpoint, a hub id, a script or any backend factory).
    A model is loaded in a thread when it first gets the pen, with progress
    in the status bar."""
    backend = choose_backend(**backend_options)
    session = open_session(Path(draft_path), writer)
    return InfitoolEditApp(Opened(session, backend), goal=goal, writer=writer, theme=theme,
                           theme_folders=theme_folders)


def opening_app(draft_path: Path, *, goal: str | None = None, writer: str = WRITER, theme: str | None = None,
                theme_folders: Iterable[Path] = (), **backend_options: Any) -> InfitoolEditApp:
    """The app on ``draft_path`` that paints first and opens its session (and
    the default model's name) in a thread after that frame (``run_editor``).
    A backend the writer named (``script``, ``model``, ``quantize``) is checked here, so a
    missing or wrong one is one line before the screen opens."""
    path = Path(draft_path)
    named = any(backend_options.get(option) is not None for option in ("script", "model", "quantize"))
    backend: Backend | None = choose_backend(**backend_options) if named else None

    def opening() -> Opened:
        return Opened(open_session(path, writer), backend or choose_backend(**backend_options))

    return InfitoolEditApp(opening, draft_path=path, goal=goal, writer=writer, theme=theme,
                           theme_folders=theme_folders)


def run_editor(draft_path: Path, **options: Any) -> None:
    """Open the editor on ``draft_path`` in this terminal (``infitool-edit
    DRAFT``; ``options``: ``opening_app``'s). A draft that cannot be opened
    ends the editor and is raised here, to become one line in the shell."""
    app = opening_app(draft_path, **options)
    try:
        app.run()
    finally:
        app.finish_opening()
    if app.opening_error is not None:
        raise app.opening_error
