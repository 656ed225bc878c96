"""The runner with the scripted backend: events, stream, pause, writer edits,
bad lines, resume. The session here is a small stand-in that speaks the
contract of docs/architecture.md (EditingSession.execute)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from infitool_edit.agent.events import (
    CommandApplied,
    CommandFailed,
    Finished,
    Paused,
    Resumed,
    TokenDecided,
)
from infitool_edit.agent.runner import AgentError, Runner
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.stream import StreamLog, stream_dir_for


@dataclass
class _Outcome:
    edit: object = None


@dataclass
class _Executed:
    line: str
    version: int | None
    outcome: _Outcome
    observation: str


class _Workspace:
    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    @property
    def line_count(self) -> int:
        return len(self.lines)


class LineSession:
    """Just enough of EditingSession: ``append "text"`` adds a line (a
    version), ``read a-b`` shows lines, anything else is refused."""

    def __init__(self, draft_path: Path) -> None:
        self.draft_path = draft_path
        self.workspace = _Workspace(draft_path.read_text())
        self.version = 0
        self.lock = threading.Lock()

    def execute(self, line: str, *, author: str | None = None) -> _Executed:
        with self.lock:
            verb, _, rest = line.partition(" ")
            if verb == "append" and rest.startswith('"') and rest.endswith('"'):
                self.workspace.lines.append(rest[1:-1])
                self.draft_path.write_text("\n".join(self.workspace.lines) + "\n")
                self.version += 1
                return _Executed(line, self.version, _Outcome(), f"@ok v{self.version}")
            if verb == "read":
                a, b = (int(x) for x in rest.split("-"))
                body = "\n".join(f"{i}│{self.workspace.lines[i - 1]}" for i in range(a, b + 1))
                return _Executed(line, None, _Outcome(), f"@text {a}-{b}\n{body}")
            raise ValueError("column 1: expected a command")


@pytest.fixture
def session(tmp_path: Path) -> LineSession:
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nFirst line.\n")
    return LineSession(draft)


def test_runs_a_script_to_done_and_records_the_stream(session: LineSession) -> None:
    events = []
    script = ['append "one"', 'append "two"', 'done "added two lines"']
    runner = Runner(session, ScriptedBackend(script), "Add two lines.", emit=events.append)
    runner.run()
    applied = [e for e in events if isinstance(e, CommandApplied)]
    assert [(e.line, e.version) for e in applied] == [('append "one"', 1), ('append "two"', 2), ('done "added two lines"', None)]
    assert events[-1] == Finished("added two lines")
    typed = "".join(e.text for e in events if isinstance(e, TokenDecided))
    assert typed == "".join(script)
    assert session.workspace.lines[-2:] == ["one", "two"]
    log = StreamLog(stream_dir_for(session.draft_path))
    text = log.tail_text()
    assert text.startswith("@goal Add two lines.\n@view draft.md, 3 lines, cursor 1:1\n@text 1-3\n1│# Title\n")
    assert text.endswith('> append "one"\n@ok v1\n> append "two"\n@ok v2\n> done "added two lines"\n@done\n')
    assert log.record_for_version(2).head_version == 2


def test_a_bad_line_becomes_the_observation_and_nothing_is_applied(session: LineSession) -> None:
    events = []
    Runner(session, ScriptedBackend(['explode 3', 'done "ok"']), "Try.", emit=events.append).run()
    failed = [e for e in events if isinstance(e, CommandFailed)]
    assert failed == [CommandFailed("explode 3", "column 1: expected a command")]
    assert session.version == 0
    text = StreamLog(stream_dir_for(session.draft_path)).tail_text()
    assert "> explode 3\n@error column 1: expected a command\n> done" in text


def test_empty_goal_and_nothing_to_resume_are_one_line_errors(session: LineSession) -> None:
    with pytest.raises(AgentError, match="goal is empty"):
        Runner(session, ScriptedBackend([]), "   ")
    with pytest.raises(AgentError, match="no session to resume"):
        Runner(session, ScriptedBackend([]), None).run()


def test_max_commands_ends_the_run(session: LineSession) -> None:
    events = []
    Runner(session, ScriptedBackend(['append "a"'] * 10), "Go.", max_commands=3, emit=events.append).run()
    assert session.version == 3
    assert events[-1] == Finished("reached the budget of 3 commands")


def test_resume_continues_the_script_and_the_stream(session: LineSession) -> None:
    script = [f'append "{i}"' for i in range(6)] + ['done "all"']
    Runner(session, ScriptedBackend(script), "Go.", max_commands=4, keyframe_every=3).run()
    events = []
    Runner(session, ScriptedBackend(script), None, emit=events.append, keyframe_every=3).run()
    assert [e.line for e in events if isinstance(e, CommandApplied)] == ['append "4"', 'append "5"', 'done "all"']
    assert session.workspace.lines[3:] == [str(i) for i in range(6)]
    assert StreamLog(stream_dir_for(session.draft_path)).tail_text().count("@goal") == 1


def test_pause_stops_within_a_token_and_writer_edits_go_in_first(session: LineSession) -> None:
    events: list = []
    paused = threading.Event()

    def emit(event) -> None:
        events.append(event)
        if isinstance(event, Paused):
            paused.set()

    backend = ScriptedBackend(['append "model line"', 'done "x"'])
    runner = Runner(session, backend, "Go.")
    pause_once = [True]

    def emit_and_pause_once(event) -> None:
        emit(event)
        if isinstance(event, TokenDecided) and pause_once:
            pause_once.clear()
            runner.pause()

    thread = threading.Thread(target=runner.run, args=(emit_and_pause_once,))
    thread.start()
    assert paused.wait(10)
    assert sum(isinstance(e, TokenDecided) for e in events) == 1  # paused within one token
    runner.writer_executed(session.execute('append "writer line"', author="writer"))
    runner.resume()
    thread.join(10)
    assert not thread.is_alive()
    assert any(isinstance(e, Resumed) for e in events)
    assert session.workspace.lines[-2:] == ["writer line", "model line"]
    text = StreamLog(stream_dir_for(session.draft_path)).tail_text()
    # the half-written line was dropped; the writer's edit came first
    assert text.count("> append") == 1
    assert '@user append "writer line"\n@ok v1\n> append "model line"\n@ok v2\n' in text


def test_stop_drops_the_half_written_command(session: LineSession) -> None:
    backend = ScriptedBackend(['append "never"'] * 5, rate=2)
    runner = Runner(session, backend, "Go.")
    thread = threading.Thread(target=runner.run)
    thread.start()
    runner.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert session.version == 0
    assert "> append" not in StreamLog(stream_dir_for(session.draft_path)).tail_text()
