"""`infitool-edit run` and `resume`: the stream printed live, one-line
errors, and a run killed with SIGKILL that resumes with history and stream
in agreement."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from infitool_edit.stream_records import HEADER, RECORD_V2
from infitool_edit.agent.runner import Runner
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.ssm import random_tiny_model
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.cli import app
from infitool_edit.history import History
from infitool_edit.model.checkpoint import save_checkpoint
from infitool_edit.session.editing import EditingSession

from helpers import EXAMPLES


def _draft(tmp_path: Path) -> Path:
    draft = tmp_path / "draft.md"
    shutil.copy(EXAMPLES / "draft.md", draft)
    return draft


def test_run_a_script_prints_the_stream_and_edits_the_draft(tmp_path: Path) -> None:
    draft = _draft(tmp_path)
    result = CliRunner().invoke(
        app, ["run", str(draft), "--goal", "Tighten the introduction.", "--script", str(EXAMPLES / "tighten-intro.cmds")]
    )
    assert result.exit_code == 0, result.output
    assert '> replace 5 "Teh" "The"' in result.output
    assert "finished: Fixed a typo and tightened the introduction." in result.output
    assert "Teh lighthouse" not in draft.read_text()
    with History.open(draft) as history:
        assert history.head().author == "model:script"
        assert history.find_checkpoint("intro tightened") == history.head().number


def test_a_bad_scripted_line_is_reported_and_not_applied(tmp_path: Path) -> None:
    draft = _draft(tmp_path)
    result = CliRunner().invoke(app, ["run", str(draft), "--goal", "Fix.", "--script", str(EXAMPLES / "bad-line.cmds")])
    assert result.exit_code == 0, result.output
    assert '@error column 11: expected a quoted string' in result.output
    with History.open(draft) as history:
        assert [v.message for v in reversed(history.log())][1:] == ['replace 5 "Teh" "The"']


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    draft = _draft(tmp_path)
    runner = CliRunner()
    empty_goal = runner.invoke(app, ["run", str(draft), "--goal", " "])
    assert empty_goal.exit_code == 1
    assert empty_goal.output.strip() == "infitool-edit: the goal is empty: say what the model should do"
    nothing = runner.invoke(app, ["resume", str(draft)])
    assert nothing.exit_code == 1
    assert nothing.output.strip() == "infitool-edit: no session to resume: start one with a goal"
    from infitool_edit.model import MambaConfig, MambaLM

    save_checkpoint(MambaLM(MambaConfig(vocab_size=100, hidden_size=16, state_size=4, num_hidden_layers=1)), tmp_path / "bpe-sized")
    mismatch = runner.invoke(app, ["run", str(draft), "--goal", "Fix.", "--model", str(tmp_path / "bpe-sized")])
    assert mismatch.exit_code == 1
    assert mismatch.output.strip().endswith("the checkpoint has 100 token embeddings, the byte tokenizer needs 259")
    (tmp_path / "not-a-model").mkdir()
    bad_model = runner.invoke(app, ["run", str(draft), "--goal", "Fix.", "--model", str(tmp_path / "not-a-model")])
    assert bad_model.exit_code == 1
    assert len(bad_model.output.strip().splitlines()) == 1
    with EditingSession.open(draft, author="writer"):
        locked = runner.invoke(app, ["run", str(draft), "--goal", "Fix."])
    assert locked.exit_code == 1
    assert len(locked.output.strip().splitlines()) == 1 and "already open in another session" in locked.output


def test_a_checkpoint_folder_runs_and_resuming_with_another_backend_is_refused(tmp_path: Path) -> None:
    draft = _draft(tmp_path)
    save_checkpoint(random_tiny_model(5, hidden_size=16, layers=1), tmp_path / "tiny-model")
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(draft), "--goal", "Fix.", "--model", str(tmp_path / "tiny-model"), "--max-commands", "3"])
    assert ran.exit_code == 0, ran.output
    assert ran.output.startswith("> ") and "finished: " in ran.output
    with History.open(draft) as history:
        authors = {v.author for v in history.log()} - {"disk"}
    assert authors <= {"model:tiny-model"}
    scripted = runner.invoke(app, ["resume", str(draft), "--script", str(EXAMPLES / "tighten-intro.cmds")])
    assert scripted.exit_code == 1
    assert scripted.output.strip() == "infitool-edit: this session was run by a model, not a script: resume it with --model"
    other = runner.invoke(app, ["resume", str(draft)])  # the default model is another shape
    assert other.exit_code == 1
    assert other.output.strip().startswith("infitool-edit: this session was run by another backend than random-tiny-byte")
    again = runner.invoke(app, ["resume", str(draft), "--model", str(tmp_path / "tiny-model"), "--max-commands", "2"])
    assert again.exit_code == 0, again.output


def test_sigkill_during_run_then_resume_agrees_and_continues(tmp_path: Path) -> None:
    draft = _draft(tmp_path)
    script = tmp_path / "long.cmds"
    script.write_text("".join(f'insert $ "line {i}\\n"\nread 1-3\n' for i in range(400)))
    command = [sys.executable, "-m", "infitool_edit.cli", "run", str(draft), "--goal", "Grow.", "--script", str(script)]
    process = subprocess.Popen(
        [sys.executable, "-c", "from infitool_edit.cli import main; main()", *command[3:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    records = None
    deadline = time.monotonic() + 240  # a loaded machine starts python slowly
    while time.monotonic() < deadline:
        found = list(tmp_path.glob(".draft.md.infitool/**/agent/records.bin"))
        if found and found[0].stat().st_size >= len(HEADER) + 12 * RECORD_V2.itemsize:  # 12 records
            records = found[0]
            break
        time.sleep(0.02)
    assert records is not None, "the run never got going"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    with EditingSession.open(draft, author="writer") as session:
        runner = Runner(session, ScriptedBackend(script), None, max_commands=4)
        runner.run()
        log = StreamLog(stream_dir_for(session.history))
        in_stream = {r.version for r in log.chain(log.head) if r.version is not None}
        in_history = {v.number for v in session.history.log(limit=10_000)} - {1}
        assert in_stream == in_history
        text = log.tail_text(10**7)
        assert text.count("@goal") == 2  # the opening states it twice; resume adds none
        assert draft.read_text() == session.history.read(session.history.head().number).draft
        assert all(draft.read_text().count(f"line {i}\n") <= 1 for i in range(400))  # none applied twice
        assert session.history.count() > 8
