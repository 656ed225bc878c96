"""The agent loop: the backend writes a command, the session applies it, the
observation goes back into the stream, and everything is recorded.

``Runner.run`` blocks, so the TUI calls it from a thread worker and receives
events through ``emit``; ``pause``, ``resume`` and ``stop`` may be called
from any other thread. While it runs, the runner listens to the session
(``Session.subscribe``): a command someone else executed (the writer's
edit, rewind or fork) reaches it as a typed ``Executed`` and goes into the
stream before the model writes on.

(Just over 400 lines, on purpose: the loop, the writer's events and the
stream's records are one state machine over one stream and one backend;
split in two, each half would reach into the other's state.)
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from infitool_edit.errors import InfitoolError
from infitool_edit.agent.backend import MODEL_PREFIX, Backend, Chunk, Turn
from infitool_edit.agent.deletion_guard import DELETION_SHARE, Answer, LargeDeletion, large_deletion, refusal
from infitool_edit.agent.held_back import held_back
from infitool_edit.agent.events import (
    CommandApplied,
    CommandFailed,
    CommandStarted,
    Event,
    Finished,
    Paused,
    Resumed,
    Stats,
    TokenDecided,
)
from infitool_edit.agent.stream import Record, StreamError, StreamLog, stream_dir_for
from infitool_edit.commands import CommandError, ast, parse
from infitool_edit.document import MAX_OBSERVATION_CHARS
from infitool_edit.errors import expected_errors, one_line

if TYPE_CHECKING:
    from infitool_edit.document import Workspace
    from infitool_edit.history import History
    from infitool_edit.session.editing import Executed

KEYFRAME_EVERY = 8
"""Store the backend's state with every 8th record; reopening replays at most
the 7 records since, which keeps the state file small for long sessions."""


class AgentError(InfitoolError, ValueError):
    """A one-line reason the agent cannot start (empty goal, no stream to resume)."""


class Session(Protocol):
    """What the runner needs of an editing session (``EditingSession`` is one)."""

    history: History
    workspace: Workspace
    goal: str | None

    @property
    def draft_path(self) -> Path: ...

    def execute(self, line_or_command: str | ast.Command, *, author: str | None = None) -> Executed: ...

    def removal(self, command: ast.Command) -> str: ...

    def subscribe(self, listener: Callable[[Executed], None]) -> Callable[[], None]: ...


def check_goal(goal: str | None) -> None:
    """``None`` continues a session; a given goal must say something."""
    if goal is not None and not goal.strip():
        raise AgentError("the goal is empty: say what the model should do")


def command_seed(seed: int, head_version: int | None, stream_tokens: int) -> int:
    """The seed of one command's sampling: a function of the run's seed and
    where in the stream the command starts, so a rewind to the same point
    samples the same command again."""
    key = f"{seed}:{head_version}:{stream_tokens}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def bounded(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """Any runtime text added to the stream in one piece is bounded, so one
    command's cost stays bounded whatever the session's length."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Runner:
    def __init__(
        self,
        session: Session,
        backend: Backend,
        goal: str | None = None,
        *,
        max_commands: int | None = None,
        emit: Callable[[Event], None] | None = None,
        seed: int | None = None,
        stream_dir: Path | None = None,
        keyframe_every: int = KEYFRAME_EVERY,
        ask_before_deleting: Callable[[LargeDeletion], Answer] | None = None,
        deletion_share: float = DELETION_SHARE,
    ) -> None:
        """``goal``: required for a new stream; for an existing one, a new
        goal is appended as an event and ``None`` continues the old one.
        ``seed``: of the sampling; ``None`` keeps the session's (0 at first).
        ``ask_before_deleting``: called (on the runner's thread, which waits
        for the answer) before a model's command that would delete more
        than ``deletion_share`` of the draft's words; None: never asks
        (see ``deletion_guard``)."""
        check_goal(goal)
        self.session = session
        self.backend = backend
        self.goal = goal.strip() if goal else None
        self.max_commands = max_commands
        self._seed = seed
        self.keyframe_every = keyframe_every
        self.ask_before_deleting = ask_before_deleting
        self.deletion_share = deletion_share
        self._emit = emit or (lambda event: None)
        self._stream_dir = Path(stream_dir or stream_dir_for(session.history)).resolve()
        self.author = f"model:{backend.name}"
        self._go = threading.Event()
        self._go.set()
        self._stopping = threading.Event()
        self._writer_events: queue.SimpleQueue[Executed] = queue.SimpleQueue()
        self._unsubscribe: Callable[[], None] | None = None
        self._opened_at = 0  # the newest version the stream held when it opened
        self._since_keyframe = 0
        self._ready = False
        self._tokens_per_s = 0.0  # of the last line, for Stats
        self._ending: bytes | None = None  # the line forced after a held one (agent/held_back.py)
        self._opens_goal = False  # the next line is the first since the goal was given
        self._state_size = 0  # bytes of the backend's stored state, for Stats

    # --- control, from any thread --------------------------------------------

    def pause(self) -> None:
        """Stop at the next token boundary."""
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        """End ``run`` at the next token boundary; a half-written command is
        dropped (it never reaches the stream)."""
        self._stopping.set()
        self._go.set()

    def _heard(self, executed: Executed) -> None:
        """The session executed a command (on whichever thread executed it):
        someone else's goes into the stream as ``@user …`` before the model
        writes on; the model's own are already there."""
        if executed.author != self.author:
            self._writer_events.put(executed)

    # --- the loop --------------------------------------------------------------

    def run(self, emit: Callable[[Event], None] | None = None) -> None:
        emit = emit or self._emit
        # One runner at a time per stream: a new run (the TUI redirecting the
        # model) waits here until the stopped one has let go, within a token.
        with _stream_lock(self._stream_dir):
            self._run(emit)

    def _run(self, emit: Callable[[Event], None]) -> None:
        self.open()
        commands = 0
        try:
            while not self._stopping.is_set():
                self._take_writer_events()
                if self.max_commands is not None and commands >= self.max_commands:
                    emit(Finished(f"reached the budget of {self.max_commands} commands"))
                    return
                self._wait_while_paused(emit)
                if self._stopping.is_set():
                    return
                self._take_writer_events()
                text = self._generate(emit)
                if text is None:
                    continue
                commands += 1
                summary = self._execute(text, emit)
                if summary is not None:
                    emit(Finished(summary))
                    return
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self.stream.close()
            self._ready = False

    def open(self) -> None:
        """Bring the stream and the backend to where the session stands:
        a new stream gets the goal and a view of the draft; an existing one
        is continued from its stored state."""
        if self._ready:
            return
        # Listen first: a writer's version made while the stream catches up
        # is either caught up or heard, and one heard twice is skipped.
        if self._unsubscribe is None:
            self._unsubscribe = self.session.subscribe(self._heard)
        self.stream = StreamLog(self._stream_dir)
        head = self.stream.head
        if head is None:
            if self.goal is None:
                raise AgentError("no session to resume: start one with a goal")
            self._save_meta(self.goal, self._seed or 0)
            prompt = self._prompt()
            self._opened_at = self._head_version() or 0
            self._append_runtime(prompt, head_version=self._opened_at or None)
            self._opens_goal = True
        else:
            self._load_backend(head)
            try:
                stored = self._stored_meta()
            except StreamError:
                if self.goal is None:
                    raise
                stored = {"goal": self.goal, "seed": self._seed or 0}  # a new goal rewrites it
            new_goal = self.goal is not None and self.goal != stored["goal"]
            self._save_meta(self.goal or stored["goal"], stored["seed"] if self._seed is None else self._seed)
            self._catch_up_with_history()
            if new_goal:
                # Opened as a new stream is, after what the writer did meanwhile: the goal, the
                # draft as it is now, the goal again. A bare goal line after `@done` asked a
                # model taught on such openings to act blind, and the built-in one rewrote
                # good text ("for forty" → "formatters") when asked to move a section.
                self._append_runtime(self._prompt())
                self._opens_goal = True
        meta = self._stored_meta()
        self.goal, self.seed = meta["goal"], meta["seed"]
        self.session.goal = self.goal
        self._ready = True

    # --- one command -------------------------------------------------------------

    def _generate(self, emit: Callable[[Event], None]) -> str | None:
        """The model's next line, or None if it was cut short (stop, or a
        writer edit during a pause); a cut line is undone in the backend."""
        mark = self.backend.snapshot()
        head = self.stream.head
        turn = Turn(
            line_count=self.session.workspace.line_count,
            head_version=head.head_version if head else None,
            seed=command_seed(self.seed, head.head_version if head else None, self.backend.stream_tokens),
            read_draft=lambda: self.session.workspace.text,
            read_headings=lambda: self.session.workspace.heading_slugs(),
            ending=self._ending,
            opens_goal=self._opens_goal,
        )
        emit(CommandStarted())
        tokens = self.backend.command(turn)
        text = ""
        count = 0
        started = time.perf_counter()
        try:
            for count, token in enumerate(tokens, 1):
                shown = len(text)
                text += token
                visible = text[len(MODEL_PREFIX) :].rstrip("\n")
                if len(visible) > max(0, shown - len(MODEL_PREFIX)):
                    emit(TokenDecided(visible[max(0, shown - len(MODEL_PREFIX)) :]))
                if not self._go.is_set():
                    self._wait_while_paused(emit)
                if self._stopping.is_set() or not self._writer_events.empty():
                    tokens.close()
                    self.backend.restore(mark)
                    emit(CommandFailed(visible, "cut short: the writer took the pen"))
                    return None
        finally:
            tokens.close()
        elapsed = time.perf_counter() - started
        self._tokens_per_s = count / elapsed if elapsed > 0 else 0.0
        return text

    def _execute(self, text: str, emit: Callable[[Event], None]) -> str | None:
        """Apply the model's line; returns the summary when it said ``done``."""
        line = text[len(MODEL_PREFIX) :].rstrip("\n")
        version = edit = summary = executed = None
        try:
            doubt = self.backend.doubt()
            refused = held_back(line, doubt)
            self._ending = doubt.ending if refused else None
            self._opens_goal = False
            refused = refused or self._ask_before_deleting(line, emit)
            if refused is not None:
                raise _Refused(refused)
            executed = self.session.execute(line, author=self.author)
        except (*expected_errors(), _Refused) as error:
            # OSError too: a name the file system refuses (a checkpoint ref
            # too long) is the model's mistake to read about, not a crash.
            observation = f"@error {one_line(error)}"
            emit(CommandFailed(line, one_line(error)))
        else:
            line, version, edit, observation = executed.line, executed.version, executed.edit, executed.observation
            if isinstance(executed.command, ast.Done):
                summary = executed.command.summary
        observation = bounded(observation.rstrip("\n")) + "\n"
        self.backend.feed(observation)
        self._append(text + observation, model_bytes=len(text.encode("utf-8")), version=version)
        if executed is not None:
            emit(CommandApplied(
                line, self.author, version, observation.rstrip("\n"), edit,
                executed.command, executed.scale, executed.notes_changed,
            ))
        emit(Stats(self._tokens_per_s, self.backend.stream_tokens, self._state_size))
        return summary

    def _ask_before_deleting(self, line: str, emit: Callable[[Event], None]) -> str | None:
        """Ask the writer before a large deletion; the refusal's reason, or
        None when the command may go ahead (small, allowed, or not asked)."""
        if self.ask_before_deleting is None:
            return None
        try:
            command = parse(line)
            removed = self.session.removal(command) if isinstance(command, _REMOVES) else ""
        except (*expected_errors(), CommandError):
            return None  # execute says what is wrong with it, in the same words
        question = large_deletion(line, removed, self.session.workspace.text, self.deletion_share)
        if question is None:
            return None
        answer = self.ask_before_deleting(question)  # the run waits here for the writer
        if answer is Answer.TAKE_PEN:
            self.pause()  # the loop waits at its next turn until the pen comes back
        return None if answer is Answer.ALLOW else refusal(question, answer)

    # --- writer events -----------------------------------------------------------

    def _take_writer_events(self) -> None:
        while not self._writer_events.empty():
            executed = self._writer_events.get()
            if executed.version is not None and executed.version <= self._opened_at:
                continue  # made while the stream opened: it is in the stream already
            self._ending = None  # the writer changed what the model looks at
            self._writer_version(executed.line, executed.version, executed.observation, executed.back_to)

    def _writer_version(self, line: str, version: int | None, observation: str, back_to: int | None) -> None:
        """A writer's command into the stream; a rewind or fork (``back_to``)
        also takes the model's mind back to that version. A version reads
        ``@ok vN`` whoever reports it (the live session or the history on
        resume), so both ways give the model the same stream."""
        if back_to is not None:
            self._rewind_to(back_to)
        answer = f"@ok v{version}" if version is not None else bounded(observation.rstrip("\n"))
        self._append_runtime(f"@user {_escape_newlines(line)}\n{answer}\n", version=version)

    def _rewind_to(self, version: int) -> None:
        record = self.stream.record_for_version(version)
        if record is None:
            return  # a version the model never saw (made before it started): its mind stays
        self.stream.move_head(record)
        self._load_backend(record)

    # --- the stream ---------------------------------------------------------------

    def _prompt(self) -> str:
        """The goal, the first view of the draft, and the goal again: a recurrent
        model reads the draft knowing what it is for, and decides its first
        command with the goal among the last bytes it read, not a page back."""
        view = self.session.execute("read", author=self.author)
        goal = f"@goal {_escape_newlines(self.goal or '')}\n"
        return (
            goal
            + f"@view {Path(self.session.draft_path).name}, {self.session.workspace.line_count} lines, cursor 1:1\n"
            + f"{bounded(view.observation.rstrip(chr(10)))}\n"
            + goal
        )

    def _append_runtime(self, text: str, *, version: int | None = None, head_version: int | None = None) -> Record:
        self.backend.feed(text)
        return self._append(text, model_bytes=0, version=version, head_version=head_version)

    def _append(
        self, text: str, *, model_bytes: int, version: int | None, head_version: int | None = None
    ) -> Record:
        if head_version is None:
            # The draft's newest version: numbers only grow (a rewind or fork
            # is a new version too), and a writer's edit may be taken into
            # the stream after a model command that came later.
            known = [v for v in (version, self.stream.head.head_version if self.stream.head else None) if v]
            head_version = max(known) if known else None
        keyframe = self.stream.head is None or self._since_keyframe + 1 >= self.keyframe_every
        state = self.backend.state_bytes() if keyframe else None
        if state is not None:
            self._state_size = len(state)
        self._since_keyframe = 0 if keyframe else self._since_keyframe + 1
        return self.stream.append(
            text,
            model_bytes=model_bytes,
            version=version,
            head_version=head_version,
            tokens=self.backend.stream_tokens,
            state=state,
        )

    def _load_backend(self, record: Record) -> None:
        chain = self.stream.chain(record, since_state=True)
        base = chain[0] if chain[0].state_slot is not None else None
        replay = chain[1:] if base is not None else chain
        self.backend.load(
            self.stream.state(base) if base is not None else None,
            [Chunk(self.stream.chunk(r), r.model_bytes) for r in replay],
            record.tokens,
            self.stream.tail_text(self.backend.context_chars) if self.backend.context_chars else "",
        )
        self._since_keyframe = len(replay)
        self._state_size = len(self.backend.state_bytes())

    def _catch_up_with_history(self) -> None:
        """Versions the history holds but the stream does not (a kill between
        the two writes, or writer edits made without the agent) go into the
        stream as events, so the model knows the draft it edits."""
        history = self.session.history
        head = self.stream.head
        known = head.head_version if head else None
        self._opened_at = known or 0
        if history.head() is None or history.head().number == known:
            return
        newer = [v for v in reversed(history.log(limit=1000)) if known is None or v.number > known]
        self._opened_at = max([self._opened_at, *(info.number for info in newer)])
        for info in newer:
            if info.author == self.author:
                self._append_runtime(
                    f"{MODEL_PREFIX}{_escape_newlines(info.message)}\n@ok v{info.number}\n", version=info.number
                )
            else:
                self._writer_version(info.message, info.number, "", info.back_to)

    def _head_version(self) -> int | None:
        head = self.session.history.head()
        return head.number if head is not None else None

    def _save_meta(self, goal: str, seed: int) -> None:
        path = self.stream.directory / "session.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"goal": goal, "seed": seed}), encoding="utf-8")
        os.replace(temporary, path)

    def _stored_meta(self) -> dict:
        path = self.stream.directory / "session.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(meta.get("goal"), str) or not isinstance(meta.get("seed"), int):
                raise ValueError
        except (OSError, ValueError, AttributeError):
            raise StreamError(
                f"{path} is damaged or missing; start again with `infitool-edit run DRAFT --goal ...` "
                "(a new goal rewrites it; the history keeps every version)"
            ) from None
        return meta

    def _wait_while_paused(self, emit: Callable[[Event], None]) -> None:
        if self._go.is_set():
            return
        emit(Paused())
        self._go.wait()
        if not self._stopping.is_set():
            emit(Resumed())


_REMOVES = (ast.Delete, ast.Replace, ast.Rewind)


class _Refused(Exception):
    """The writer refused a model's command: its reason becomes the observation."""

    def __str__(self) -> str:
        return self.args[0]


_stream_locks: dict[Path, threading.Lock] = {}
_stream_locks_guard = threading.Lock()


def _stream_lock(directory: Path) -> threading.Lock:
    with _stream_locks_guard:
        return _stream_locks.setdefault(directory, threading.Lock())


def _escape_newlines(text: str) -> str:
    """A line of the stream holds one line: its newlines are written ``\\n``."""
    return text.replace("\n", "\\n")
