"""The runner asks the writer before a model's command deletes more than a
share of the draft (agent/deletion_guard.py): allow, refuse, take the pen."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from infitool_edit.agent.deletion_guard import Answer, LargeDeletion, large_deletion
from infitool_edit.agent.events import CommandApplied, CommandFailed, Finished
from infitool_edit.agent.runner import Runner
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.session.editing import EditingSession

RUNS = itertools.count()
PARAGRAPH = "The river turns past the mill where the old wheel creaks in spring and the ducks wait."
DRAFT = "# Rivers\n\n" + "\n\n".join(f"{n}. {PARAGRAPH}" for n in range(1, 6)) + "\n"  # 5 paragraphs, 92 words


@pytest.fixture
def session(tmp_path: Path):
    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT)
    with EditingSession.open(draft, author="writer") as session:
        yield session


def run(session, script, answer: Answer | None, **options) -> tuple[list, list[LargeDeletion]]:
    asked: list[LargeDeletion] = []

    def ask(question: LargeDeletion) -> Answer:
        asked.append(question)
        return answer

    events: list = []
    # A stream of its own per run: a scripted backend continues its script
    # where the stream it resumes stopped.
    stream_dir = Path(session.draft_path).parent / f"stream-{next(RUNS)}"
    Runner(session, ScriptedBackend(script), "Tidy.", emit=events.append, stream_dir=stream_dir,
           ask_before_deleting=ask if answer is not None else None, **options).run()
    return events, asked


def test_a_small_deletion_goes_unasked(session):
    _, asked = run(session, ['delete 3', 'replace 4 "river" "stream"', 'done "ok"'], Answer.REFUSE)
    assert asked == []  # one paragraph of five: 20%, not more
    assert "1. The river" not in session.workspace.text and "2. The stream" in session.workspace.text


def test_refusing_a_large_deletion_applies_nothing_and_tells_the_model(session):
    before = session.history.count()
    events, asked = run(session, ["delete 3-9", 'done "ok"'], Answer.REFUSE)
    [question] = asked
    assert question.line == "delete 3-9" and question.draft_words == 92 and question.removed_words == 72
    assert question.removed.startswith("1. The river")
    assert session.workspace.text == DRAFT and Path(session.draft_path).read_text() == DRAFT
    assert session.history.count() == before  # no version either
    failed = [e for e in events if isinstance(e, CommandFailed)]
    assert failed and "the writer refused" in failed[0].message
    stream = StreamLog(sorted(Path(session.draft_path).parent.glob("stream-*"))[-1]).tail_text()
    assert "> delete 3-9\n@error the writer refused: this command would delete 72 of 92 words; nothing was applied\n" in stream
    assert events[-1] == Finished("ok")  # the run went on


def test_allowing_applies_it(session):
    _, asked = run(session, ["delete 3-9", 'done "ok"'], Answer.ALLOW)
    assert len(asked) == 1
    assert session.workspace.text == "# Rivers\n\n\n5. " + PARAGRAPH + "\n"


def test_a_replace_or_rewind_that_replaces_most_of_the_draft_asks_too(session):
    _, asked = run(session, ['replace 3-11 "Gone."', 'done "ok"'], Answer.REFUSE)
    assert [q.line for q in asked] == ['replace 3-11 "Gone."'] and session.workspace.text == DRAFT
    run(session, ["delete 3-9", 'done "ok"'], Answer.ALLOW)
    short = session.history.head().number
    # Back to the whole draft: a rewind that restores text removes little, unasked…
    _, asked = run(session, ["rewind v1", 'done "ok"'], Answer.REFUSE)
    assert asked == [] and session.workspace.text == DRAFT
    # …and forward to the short one again would remove 72 words: asked, refused.
    _, asked = run(session, [f"rewind v{short}", 'done "ok"'], Answer.REFUSE)
    assert [(q.line, q.removed_words) for q in asked] == [(f"rewind v{short}", 72)]
    assert session.workspace.text == DRAFT


def test_taking_the_pen_refuses_and_pauses_the_run(session):
    import threading

    events: list = []
    runner = Runner(session, ScriptedBackend(["delete 3-9", 'done "ok"']), "Tidy.", emit=events.append,
                    ask_before_deleting=lambda question: Answer.TAKE_PEN)
    thread = threading.Thread(target=runner.run)
    thread.start()
    thread.join(timeout=3)
    assert thread.is_alive(), "the run should wait for the pen to come back"
    assert session.workspace.text == DRAFT
    runner.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert not any(isinstance(e, CommandApplied) and e.line == "delete 3-9" for e in events)
    assert "@error the writer took the pen: this command would delete" in StreamLog(
        stream_dir_for(session.history)).tail_text()


def test_the_share_is_configurable_and_tiny_drafts_are_never_asked_about():
    assert large_deletion("delete 1", "one two three", "one two three") is None  # under 10 words
    words = " ".join(["word"] * 100)
    assert large_deletion("delete 1", " ".join(["word"] * 21), words) is not None
    assert large_deletion("delete 1", " ".join(["word"] * 20), words) is None
    assert large_deletion("delete 1", " ".join(["word"] * 21), words, share=0.5) is None


def test_headless_run_refuses_when_told_or_nobody_can_answer_and_asks_on_a_terminal(tmp_path):
    from typer.testing import CliRunner

    from infitool_edit.agent.headless import large_deletion_answerer
    from infitool_edit.cli import app

    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT)
    script = tmp_path / "wipe.cmds"
    script.write_text('delete 3-9\ndone "wiped"\n')
    refused = CliRunner().invoke(app, ["run", str(draft), "--goal", "Tidy.", "--script", str(script),
                                       "--large-deletions", "refuse"])
    assert refused.exit_code == 0, refused.output
    assert "@error the writer refused: this command would delete 72 of 92 words" in refused.output
    assert draft.read_text() == DRAFT
    bad = CliRunner().invoke(app, ["run", str(draft), "--goal", "Tidy.", "--large-deletions", "maybe"])
    assert bad.exit_code == 1 and "--large-deletions is one of ask, allow, refuse" in bad.output
    question = large_deletion("delete 3-9", DRAFT[10:], DRAFT)
    replies = iter(["what?", "a"])
    assert large_deletion_answerer("ask", read=lambda prompt: next(replies))(question) is Answer.ALLOW
    assert large_deletion_answerer("ask", read=lambda prompt: "")(question) is Answer.REFUSE
    assert large_deletion_answerer("allow") is None
