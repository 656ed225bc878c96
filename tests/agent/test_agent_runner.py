"""The runner with the scripted backend over a real EditingSession: events,
the stored stream, pause, writer edits, bad lines, resume."""

from __future__ import annotations

import threading
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
from infitool_edit.session.editing import EditingSession


@pytest.fixture
def session(tmp_path: Path):
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nFirst line.\n")
    with EditingSession.open(draft, author="writer") as session:
        yield session


def _stream(session: EditingSession) -> str:
    return StreamLog(stream_dir_for(session.history)).tail_text()


def _add(word: str) -> str:
    return f'insert $ "{word}\\n"'


def test_runs_a_script_to_done_and_records_the_stream(session: EditingSession) -> None:
    events = []
    script = [_add("one"), _add("two"), 'done "added two lines"']
    Runner(session, ScriptedBackend(script), "Add two lines.", emit=events.append).run()
    applied = [e for e in events if isinstance(e, CommandApplied)]
    assert [(e.line, e.version, e.author) for e in applied] == [
        (_add("one"), 2, "model:script"), (_add("two"), 3, "model:script"), ('done "added two lines"', None, "model:script")
    ]
    assert applied[0].edit is not None
    assert events[-1] == Finished("added two lines")
    assert "".join(e.text for e in events if isinstance(e, TokenDecided)) == "".join(script)
    assert session.draft_path.read_text().endswith("First line.\none\ntwo\n")
    assert session.history.head().author == "model:script"
    log = StreamLog(stream_dir_for(session.history))
    text = log.tail_text()
    assert text.startswith("@goal Add two lines.\n@view draft.md, 3 lines, cursor 1:1\n@text 1-3 of 3\n1│# Title\n")
    assert text.endswith(f'> {_add("one")}\n@ok v2 5:1\n> {_add("two")}\n@ok v3 6:1\n> done "added two lines"\n@done\n')
    assert log.record_for_version(3).head_version == 3


def test_tokens_per_command_splits_each_line(session: EditingSession) -> None:
    events = []
    Runner(session, ScriptedBackend([_add("abcdef"), 'done "x"'], tokens_per_command=3), "Go.", emit=events.append).run()
    typed = [e.text for e in events if isinstance(e, TokenDecided)]
    assert typed[:3] == ["insert ", '$ "abcd', 'ef\\n"']  # 19 characters in 3 tokens of up to 7


def test_a_bad_line_becomes_the_observation_and_nothing_is_applied(session: EditingSession) -> None:
    events = []
    Runner(session, ScriptedBackend(["explode 3", 'replace "absent" "x"', 'done "ok"']), "Try.", emit=events.append).run()
    failed = [e for e in events if isinstance(e, CommandFailed)]
    assert [e.line for e in failed] == ["explode 3", 'replace "absent" "x"']
    assert failed[0].message.startswith("column 1: expected `insert`")
    assert session.history.count() == 1  # only the version made on opening
    text = _stream(session)
    assert f"> explode 3\n@error {failed[0].message}\n> replace" in text
    assert f'> replace "absent" "x"\n@error {failed[1].message}\n> done' in text


def test_empty_goal_and_nothing_to_resume_are_one_line_errors(session: EditingSession) -> None:
    with pytest.raises(AgentError, match="goal is empty"):
        Runner(session, ScriptedBackend([]), "   ")
    with pytest.raises(AgentError, match="no session to resume"):
        Runner(session, ScriptedBackend([]), None).run()


def test_max_commands_ends_the_run(session: EditingSession) -> None:
    events = []
    Runner(session, ScriptedBackend([_add("a")] * 10), "Go.", max_commands=3, emit=events.append).run()
    assert session.history.count() == 4
    assert events[-1] == Finished("reached the budget of 3 commands")


def test_the_goal_command_reads_the_goal_back(session: EditingSession) -> None:
    Runner(session, ScriptedBackend(["goal", 'done "x"']), "Tighten the intro.").run()
    assert "> goal\n@goal Tighten the intro.\n" in _stream(session)


def test_resume_continues_the_script_and_the_stream(session: EditingSession) -> None:
    script = [_add(str(i)) for i in range(6)] + ['done "all"']
    Runner(session, ScriptedBackend(script), "Go.", max_commands=4, keyframe_every=3).run()
    events = []
    Runner(session, ScriptedBackend(script), None, emit=events.append, keyframe_every=3).run()
    assert [e.line for e in events if isinstance(e, CommandApplied)] == [_add("4"), _add("5"), 'done "all"']
    assert session.draft_path.read_text().endswith("First line.\n0\n1\n2\n3\n4\n5\n")
    assert _stream(session).count("@goal") == 2  # the opening states it twice; resume adds none


def test_versions_made_without_the_agent_enter_the_stream_on_resume(session: EditingSession) -> None:
    Runner(session, ScriptedBackend([_add("a")]), "Go.", max_commands=1).run()
    session.execute(_add("by hand"), author="writer")
    Runner(session, ScriptedBackend([]), None, max_commands=0).run()
    assert _stream(session).endswith(f'@user {_add("by hand")}\n@ok v3\n')


def test_a_new_goal_opens_the_stream_again_after_the_writers_edits(session: EditingSession) -> None:
    """As a new stream opens: the goal, the draft as it is now, the goal again, after the
    events the stream missed. A bare goal line after ``@done`` left the model acting blind."""
    Runner(session, ScriptedBackend(['done "ok"']), "Go.").run()
    session.execute(_add("by hand"), author="writer")
    Runner(session, ScriptedBackend([]), "Tidy it.", max_commands=0).run()
    tail = _stream(session).split('> done "ok"\n@done\n')[1]
    assert tail == (f'@user {_add("by hand")}\n@ok v2\n@goal Tidy it.\n@view draft.md, 4 lines, cursor 1:1\n'
                    "@text 1-4 of 4\n1│# Title\n2│\n3│First line.\n4│by hand\n@goal Tidy it.\n")


def test_a_model_version_missing_from_the_stream_is_not_replayed(session: EditingSession) -> None:
    script = [_add("a"), _add("b"), _add("c"), 'done "abc"']
    Runner(session, ScriptedBackend(script), "Go.", max_commands=1).run()
    session.execute(_add("b"), author="model:script")  # a kill after the history write, before the stream's
    Runner(session, ScriptedBackend(script), None).run()
    assert session.draft_path.read_text().endswith("First line.\na\nb\nc\n")
    assert _stream(session).endswith(f'> {_add("b")}\n@ok v3\n> {_add("c")}\n@ok v4 7:1\n> done "abc"\n@done\n')


def test_pause_stops_within_a_token_and_writer_edits_go_in_first(session: EditingSession) -> None:
    events: list = []
    paused = threading.Event()
    runner = Runner(session, ScriptedBackend([_add("model line"), 'done "x"']), "Go.")
    pause_once = [True]

    def emit(event) -> None:
        events.append(event)
        if isinstance(event, Paused):
            paused.set()
        if isinstance(event, TokenDecided) and pause_once:
            pause_once.clear()
            runner.pause()

    thread = threading.Thread(target=runner.run, args=(emit,))
    thread.start()
    assert paused.wait(10)
    assert sum(isinstance(e, TokenDecided) for e in events) == 1  # paused within one token
    session.execute(_add("writer line"), author="writer")  # the runner hears it from the session
    runner.resume()
    thread.join(10)
    assert not thread.is_alive()
    assert any(isinstance(e, Resumed) for e in events)
    assert session.draft_path.read_text().endswith("writer line\nmodel line\n")
    text = _stream(session)
    # the half-written line was dropped; the writer's edit came first
    assert text.count("> insert") == 1
    assert f'@user {_add("writer line")}\n@ok v2\n> {_add("model line")}\n@ok v3 6:1\n' in text


def test_stop_drops_the_half_written_command(session: EditingSession) -> None:
    runner = Runner(session, ScriptedBackend([_add("never")] * 5, rate=2), "Go.")
    thread = threading.Thread(target=runner.run)
    thread.start()
    runner.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert session.history.count() == 1
    assert "> insert" not in _stream(session)


def test_a_script_file_splits_at_newlines_only(session: EditingSession, tmp_path: Path) -> None:
    # str.splitlines would also break at U+2028 and U+0085, cutting the insert in two
    script = tmp_path / "script.txt"
    script.write_text('// a comment\ninsert $ "a\u2028b\x85c\\n"\n\ndone "added"\n', encoding="utf-8")
    Runner(session, ScriptedBackend(script), "Add a line.", emit=lambda event: None).run()
    assert session.draft_path.read_text(encoding="utf-8").endswith("First line.\na\u2028b\x85c\n")
