"""The agent loop: the backend writes a command, the session applies it, the
observation goes back into the stream, and everything is recorded.

``Runner.run`` blocks, so the TUI calls it from a thread worker and receives
events through ``emit``; ``pause``, ``resume``, ``stop`` and ``writer_executed``
may be called from any other thread.
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
from typing import Any

from infitool_edit.agent.backend import MODEL_PREFIX, Backend, Chunk, Turn
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

MAX_OBSERVATION_CHARS = 4000
"""A bound on any runtime text added to the stream in one piece, so one
command's cost stays bounded whatever the session's length."""

KEYFRAME_EVERY = 8
"""Store the backend's state with every 8th record; reopening replays at most
the 7 records since, which keeps the state file small for long sessions."""


class AgentError(ValueError):
    """A one-line reason the agent cannot start (empty goal, no stream to resume)."""


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
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Runner:
    def __init__(
        self,
        session: Any,
        backend: Backend,
        goal: str | None = None,
        *,
        max_commands: int | None = None,
        emit: Callable[[Event], None] | None = None,
        seed: int | None = None,
        stream_dir: Path | None = None,
        keyframe_every: int = KEYFRAME_EVERY,
    ) -> None:
        """``goal``: required for a new stream; for an existing one, a new
        goal is appended as an event and ``None`` continues the old one.
        ``seed``: of the sampling; ``None`` keeps the session's (0 at first)."""
        check_goal(goal)
        self.session = session
        self.backend = backend
        self.goal = goal.strip() if goal else None
        self.max_commands = max_commands
        self._seed = seed
        self.keyframe_every = keyframe_every
        self._emit = emit or (lambda event: None)
        self._stream_dir = Path(stream_dir or stream_dir_for(session.history)).resolve()
        self.author = f"model:{backend.name}"
        self._go = threading.Event()
        self._go.set()
        self._stopping = threading.Event()
        self._writer_events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._since_keyframe = 0
        self._ready = False
        self._tokens_per_s = 0.0  # of the last line, for Stats
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

    def writer_executed(self, executed: Any) -> None:
        """The writer applied a command (``session.execute``'s result): it
        goes into the stream as ``@user …`` before the model writes on."""
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
            self.stream.close()
            self._ready = False

    def open(self) -> None:
        """Bring the stream and the backend to where the session stands:
        a new stream gets the goal and a view of the draft; an existing one
        is continued from its stored state."""
        if self._ready:
            return
        self.stream = StreamLog(self._stream_dir)
        head = self.stream.head
        if head is None:
            if self.goal is None:
                raise AgentError("no session to resume: start one with a goal")
            self._save_meta(self.goal, self._seed or 0)
            self._append_runtime(self._prompt(), head_version=_head_version(self.session))
        else:
            self._load_backend(head)
            try:
                stored = self._stored_meta()
            except StreamError:
                if self.goal is None:
                    raise
                stored = {"goal": self.goal, "seed": self._seed or 0}  # a new goal rewrites it
            if self.goal is not None and self.goal != stored["goal"]:
                self._append_runtime(f"@goal {_one_line(self.goal)}\n")
            self._save_meta(self.goal or stored["goal"], stored["seed"] if self._seed is None else self._seed)
            self._catch_up_with_history()
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
            line_count=_line_count(self.session),
            head_version=head.head_version if head else None,
            seed=command_seed(self.seed, head.head_version if head else None, self.backend.stream_tokens),
            read_draft=lambda: self.session.workspace.text,
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
        version = edit = summary = None
        failed = False
        try:
            executed = self.session.execute(line, author=self.author)
        except (ValueError, LookupError, OSError) as error:
            # OSError too: a name the file system refuses (a checkpoint ref
            # too long) is the model's mistake to read about, not a crash.
            failed = True
            observation = f"@error {_one_line(str(error))}"
            emit(CommandFailed(line, str(error)))
        else:
            line, version, edit, observation = executed.line, executed.version, executed.edit, executed.observation
            if executed.done:
                summary = parse(line).summary
        observation = bounded(observation.rstrip("\n")) + "\n"
        self.backend.feed(observation)
        self._append(text + observation, model_bytes=len(text.encode("utf-8")), version=version)
        if not failed:
            emit(CommandApplied(line, self.author, version, observation.rstrip("\n"), edit))
        emit(Stats(self._tokens_per_s, self.backend.stream_tokens, self._state_size))
        return summary

    # --- writer events -----------------------------------------------------------

    def _take_writer_events(self) -> None:
        while not self._writer_events.empty():
            executed = self._writer_events.get()
            self._writer_version(executed.line, executed.version, executed.observation)

    def _writer_version(self, line: str, version: int | None, observation: str) -> None:
        """A writer's command into the stream; a rewind or fork also takes
        the model's mind back to that version. A version reads ``@ok vN``
        whoever reports it (the live session or the history on resume), so
        both ways give the model the same stream."""
        restored = _restored_version(line, self.session.history)
        if restored is not None:
            self._rewind_to(restored)
        answer = f"@ok v{version}" if version is not None else bounded(observation.rstrip("\n"))
        self._append_runtime(f"@user {_one_line(line)}\n{answer}\n", version=version)

    def _rewind_to(self, version: int) -> None:
        record = self.stream.record_for_version(version)
        if record is None:
            return  # a version the model never saw (made before it started): its mind stays
        self.stream.move_head(record)
        self._load_backend(record)

    # --- the stream ---------------------------------------------------------------

    def _prompt(self) -> str:
        view = self.session.execute("read", author=self.author)
        return (
            f"@goal {_one_line(self.goal or '')}\n"
            f"@view {_draft_path(self.session).name}, {_line_count(self.session)} lines, cursor 1:1\n"
            f"{bounded(view.observation.rstrip(chr(10)))}\n"
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
        if history.head() is None or history.head().number == known:
            return
        newer = [v for v in reversed(history.log(limit=1000)) if known is None or v.number > known]
        for info in newer:
            if info.author == self.author:
                self._append_runtime(f"{MODEL_PREFIX}{_one_line(info.message)}\n@ok v{info.number}\n", version=info.number)
            else:
                self._writer_version(info.message, info.number, "")

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


_stream_locks: dict[Path, threading.Lock] = {}
_stream_locks_guard = threading.Lock()


def _stream_lock(directory: Path) -> threading.Lock:
    with _stream_locks_guard:
        return _stream_locks.setdefault(directory, threading.Lock())


# --- what the runner needs from the session, in one place ------------------


def _draft_path(session: Any) -> Path:
    return Path(session.draft_path)


def _line_count(session: Any) -> int:
    return session.workspace.line_count


def _head_version(session: Any) -> int | None:
    head = session.history.head()
    return head.number if head is not None else None


def _restored_version(line: str, history: Any) -> int | None:
    """The version a writer's ``rewind`` or ``fork`` went back to, else None."""
    if line.startswith("fork v"):
        return int(line.removeprefix("fork v"))
    if not line.startswith("rewind "):
        return None
    try:
        target = parse(line).to
    except CommandError:
        return None  # not a command line (a message written by another tool)
    return target.number if isinstance(target, ast.VersionRef) else history.find_checkpoint(target.name)


def _one_line(text: str) -> str:
    return text.replace("\n", "\\n")
