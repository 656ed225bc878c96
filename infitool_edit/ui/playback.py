"""Showing what the model does, at a pace a writer can follow.

The agent's events arrive in the inbox in bursts. ``Playback`` drains it
and shows each event: the command typed token by token as a ghost where an
insert will land, then applied; a delete or replace (not a move, which
takes nothing out) first shown struck through for a moment (``REMOVAL_SHOWN_S``), holding the events behind it,
unless the model is too fast to watch (a backlog) or the writer needs the
draft now. It acts on the editor through the editor's public methods and
on the app through ``PlaybackHost``.
"""

from __future__ import annotations

from typing import Protocol

from infitool_edit.agent.events import (
    CommandApplied, CommandFailed, CommandStarted, Event, Finished, Paused, Resumed, Stats,
    TokenDecided,
)
from infitool_edit.commands import ast
from infitool_edit.commands.partial import read_partial_insert
from infitool_edit.document.positions import Position
from infitool_edit.ui.editor import DraftEditor
from infitool_edit.ui.inbox import EventInbox
from infitool_edit.ui.panes import CommandStream, StatusBar
from infitool_edit.ui.pen import Holder

REMOVAL_SHOWN_S = 0.25  # a delete or replace shows its text struck through this long
HOLD_BACKLOG_LIMIT = 50  # …unless this many events wait: then the model is too fast to watch
MAX_STRUCK_LINES = 40  # a rewind's whole-draft replacement is not worth striking through


class PlaybackHost(Protocol):
    """What playback needs of the app."""

    editor: DraftEditor
    stream: CommandStream
    status: StatusBar
    inbox: EventInbox
    holder: Holder
    preview: int | None
    closing: bool  # exiting: the panes may be gone

    def set_timer(self, delay: float, callback): ...
    def set_holder(self, holder: Holder) -> None: ...
    def model_cursor(self) -> Position: ...
    def writer_caught_up(self) -> None: ...
    def show_version(self, version: int | None, author: str, line: str, *, command: ast.Command | None,
                     scale: str | None, notes_changed: bool) -> None: ...


class Playback:
    """The hold / strike / ghost state machine between the inbox and the view."""

    def __init__(self, host: PlaybackHost) -> None:
        self.host = host
        self.typing = ""  # the model's command line as typed so far
        self._held: list[Event] = []  # events waiting while a removal is shown
        self._struck_event: Event | None = None
        self._hold_timer = None
        self._ghost_text = ""

    @property
    def holding(self) -> bool:
        """A removal is on show; its timer drains the rest."""
        return self._hold_timer is not None

    def stop_holding(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.stop()

    def take_events(self, *, at_once: bool = False) -> None:
        """Show what the agent did. A delete or replace is first shown struck
        through for a moment, then applied, unless the model is too fast for
        that (events piling up) or the writer needs the draft now (``at_once``)."""
        host = self.host
        self._hold_timer = None
        if host.closing:
            return  # the panes are going: events still arriving need no showing
        events = self._held + host.inbox.take_all()
        self._held = []
        for index, event in enumerate(events):
            if (not at_once and event is not self._struck_event and self._removes_text(event)
                    and len(events) - index + host.inbox.waiting < HOLD_BACKLOG_LIMIT):
                self._struck_event = event
                host.editor.set_struck((event.edit.start, event.edit.end))
                self._held = events[index:]
                self._hold_timer = host.set_timer(REMOVAL_SHOWN_S, self.take_events)
                return
            if isinstance(event, TokenDecided) and index + 1 < len(events) and isinstance(
                    events[index + 1], (TokenDecided, CommandApplied, CommandFailed)):
                # More of the same command follows in this batch: only the frame
                # shows the typing line and the ghost, so they follow the last token.
                self.typing += event.text
                continue
            self.show(event)

    def _removes_text(self, event: Event) -> bool:
        # A move takes nothing out: striking through the stretch it rearranges would say it did.
        return (isinstance(event, CommandApplied) and event.edit is not None
                and not isinstance(event.command, ast.Move)
                and event.edit.start != event.edit.end and self.host.holder == Holder.MODEL
                and self.host.preview is None
                and event.edit.end[0] - event.edit.start[0] < MAX_STRUCK_LINES)

    def show(self, event: Event) -> None:
        host = self.host
        stream = host.stream
        if isinstance(event, CommandStarted):
            self.typing = ""
        elif isinstance(event, TokenDecided):
            self.typing += event.text
            stream.typing(self.typing)
            if host.holder == Holder.MODEL and host.preview is None:
                self._type_ghost()
        elif isinstance(event, CommandApplied):
            self.clear_ghost()
            stream.typing("")
            stream.add(f"> {event.line}", style="bold")
            stream.add(event.observation.split("\n", 1)[0], style="dim")
            self._show_model_edit(event)
            host.show_version(event.version, event.author, event.line, command=event.command,
                              scale=event.scale, notes_changed=event.notes_changed)
            host.status.set(commands=host.status.status.commands + 1)
        elif isinstance(event, CommandFailed):
            self.clear_ghost()
            stream.typing("")
            stream.add(f"> {event.line}", style="bold")
            stream.add(f"@error {event.message}", style="red")
        elif isinstance(event, Paused):
            stream.add("@paused: the writer holds the pen", style="italic")
        elif isinstance(event, Resumed):
            stream.add("@resumed: the model holds the pen", style="italic")
        elif isinstance(event, Finished):
            stream.add(f"@done {event.summary}", style="italic")
            host.status.set(activity=f"done: {event.summary}"[:60])
            host.set_holder(Holder.WRITER)
        elif isinstance(event, Stats):
            host.status.set(tokens_per_s=event.tokens_per_s, stream_tokens=event.stream_tokens,
                            state_bytes=event.state_bytes)

    def _show_model_edit(self, event: CommandApplied) -> None:
        host = self.host
        if host.preview is not None:
            return  # the live draft is reloaded when the preview ends
        editor = host.editor
        if host.holder == Holder.WRITER:
            # The model finished a command just as the writer took the pen:
            # the session holds both edits in the order they really happened,
            # so show the session's text rather than patch the view.
            host.writer_caught_up()
        elif event.edit is not None:
            editor.set_struck(None)
            new_end = editor.apply_edit(event.edit)
            editor.set_model_cursor(new_end)
            editor.set_marks([(event.edit.start, new_end)] if event.edit.text else [])
            if editor.follow_model:
                editor.scroll_to_position(new_end)
        else:
            editor.set_model_cursor(host.model_cursor())
            if editor.follow_model and editor.model_cursor is not None:
                editor.scroll_to_position(editor.model_cursor)

    def _type_ghost(self) -> None:
        """Show the insert being typed, token by token, where it will land."""
        partial = read_partial_insert(self.typing)
        if partial is None or len(partial.text) <= len(self._ghost_text):
            return
        editor = self.host.editor
        end = editor.extend_ghost(self._landing(partial.at), partial.text[len(self._ghost_text):])
        self._ghost_text = partial.text
        editor.set_model_cursor(end)
        if editor.follow_model:
            editor.scroll_to_position(end)

    def _landing(self, at: ast.PointAddress) -> Position:
        """Where an insert's text will land, as far as the view can tell
        without the document engine (a heading or a search shows at the
        model's cursor until the command is applied)."""
        editor = self.host.editor
        if isinstance(at, ast.End):
            return editor.buffer.end()
        if isinstance(at, ast.Line):
            return (at.line - 1, 0)
        if isinstance(at, ast.Point):
            return (at.line - 1, at.col - 1)
        return editor.model_cursor or editor.writer_cursor

    def clear_ghost(self) -> None:
        editor = self.host.editor
        start = editor.clear_ghost()
        if start is not None:
            editor.set_model_cursor(start)
        self._ghost_text = ""

    def forget_ghost(self) -> None:
        """The view was reloaded: the ghost went with the old text."""
        self._ghost_text = ""
