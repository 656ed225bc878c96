"""End to end: the real `infitool-edit` command in a real terminal (tmux).

The model (a slow script) writes, the writer takes the pen and types, hands
it back, opens the timeline, restores an older version and quits; the draft
on disk and the history's `git log` must show all of it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from infitool_edit.history import History

REPOSITORY = Path(__file__).resolve().parents[next(
    i for i, folder in enumerate(Path(__file__).resolve().parents) if (folder / "pyproject.toml").is_file()
)]

# Runs the editor of this checkout, whatever is installed or on PYTHONPATH:
# the checkout goes first on sys.path, and first on infitool_edit's own path so
# that infitool_edit.model, .kernels and .themes (top-level folders that the
# install maps into the package) come from it too. It writes down which files
# it imported, so the test can check.
BOOT = """
import sys
repository, imported = sys.argv.pop(1), sys.argv.pop(1)
sys.path.insert(0, repository)
import infitool_edit
infitool_edit.__path__.append(repository)
import infitool_edit.cli, infitool_edit.model, infitool_edit.kernels, infitool_edit.themes
modules = (infitool_edit.cli, infitool_edit.model, infitool_edit.kernels, infitool_edit.themes)
open(imported, "w").write("\\n".join(module.__file__ for module in modules))
sys.argv[0] = "infitool-edit"
infitool_edit.cli.main()
"""

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

DRAFT = "# Notes on rivers\n\nRivers carve valleys.\n"


def tmux(socket: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """tmux on the test's own server (its own socket, no user config), never
    on one the writer or another test already runs, with its own environment."""
    return subprocess.run(["tmux", "-S", str(socket), "-f", "/dev/null", *args],
                          check=check, capture_output=True, text=True)


def wait_for(condition, what: str, screen=None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            shown = f"; the screen:\n{screen()}" if screen is not None else ""
            raise AssertionError(f"timed out waiting for {what}{shown}")
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
    socket = Path(tempfile.mkdtemp(prefix="tmux-")) / "server"  # short: a socket path has a length limit
    imported = tmp_path / "imported.txt"
    command = shlex.join([sys.executable, "-c", BOOT, str(REPOSITORY), str(imported), str(draft),
                          "--script", str(script), "--rate", "4", "--goal", "add lines"])
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "TMUX"))}
    subprocess.run(["tmux", "-S", str(socket), "-f", "/dev/null", "new-session", "-d", "-s", session,
                    "-x", "100", "-y", "30", "-c", str(tmp_path), command], check=True, env=env)
    send = lambda *keys: tmux(socket, "send-keys", "-t", session, *keys)  # noqa: E731
    screen = lambda: tmux(socket, "capture-pane", "-p", "-t", session).stdout  # noqa: E731
    try:
        # Starting Python, Textual and the editor on a loaded shared machine can take a while.
        wait_for(lambda: "The model adds line 3." in screen(), "the model's third line on screen", screen, 120)
        files = imported.read_text().splitlines()
        assert len(files) == 4 and all(Path(f).resolve().is_relative_to(REPOSITORY) for f in files), files
        send("F2")  # take the pen
        wait_for(lambda: "✎ writer" in screen(), "the pen in the writer's hand")
        send("C-Home")
        send("-l", "Draft: ")  # a word and a space: one version
        wait_for(lambda: "Draft: # Notes on rivers" in screen(), "the writer's words on screen")
        shown_lines = screen().count("The model adds line")
        time.sleep(1.0)
        assert screen().count("The model adds line") == shown_lines, "the model kept writing while paused"
        send("F3")  # hand the pen back
        wait_for(lambda: f"The model adds line {shown_lines + 2}." in screen(), "the model writing again")
        send("F2")
        send("C-t")  # the timeline
        wait_for(lambda: "Timeline" in screen() and "✎ disk" in screen(), "the timeline", screen)
        send("End")  # the oldest version (the draft as opened)
        wait_for(lambda: "v1 by disk" in screen(), "the preview of v1")
        send("Enter")  # restore it
        wait_for(lambda: "now at v" in screen(), "the restore")
        send("C-q")
        wait_for(lambda: tmux(socket, "has-session", "-t", session, check=False).returncode != 0,
                 "the editor to quit")
    finally:
        tmux(socket, "kill-server", check=False)
        shutil.rmtree(socket.parent, ignore_errors=True)

    assert draft.read_text(encoding="utf-8") == DRAFT  # v1, restored
    log = git_log(draft)
    authors = [author for author, _ in log]
    messages = [message for _, message in log]
    assert log[0][1] == "rewind v1" and log[0][0] == "writer"
    assert ("writer", 'insert 1:1 "Draft: "') in log
    assert authors.count("model:script") >= shown_lines
    newest_writer_insert = messages.index('insert 1:1 "Draft: "')
    assert any(a == "model:script" for a, _ in log[:newest_writer_insert]), "the model never resumed"


def test_paste_undo_find_and_rewind_in_a_real_terminal(tmp_path: Path):
    """Issue 11 as a new user tries it: a bracketed paste is one version, ctrl+z
    takes it back as a new version, ctrl+f finds, the timeline rewinds."""
    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT, encoding="utf-8")
    session = f"infitool-i11-{uuid.uuid4().hex[:8]}"
    socket = Path(tempfile.mkdtemp(prefix="tmux-")) / "server"  # the test's own server, as above
    installed = Path(sys.executable).parent / "infitool-edit"
    program = [str(installed)] if installed.exists() else [sys.executable, "-m", "infitool_edit"]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "TMUX"))}
    subprocess.run(["tmux", "-S", str(socket), "-f", "/dev/null", "new-session", "-d", "-s", session,
                    "-x", "120", "-y", "40", "-c", str(tmp_path), shlex.join([*program, str(draft)])],
                   check=True, env=env)
    send = lambda *keys: tmux(socket, "send-keys", "-t", session, *keys)  # noqa: E731
    screen = lambda: tmux(socket, "capture-pane", "-p", "-t", session).stdout  # noqa: E731
    try:
        wait_for(lambda: "Notes on rivers" in screen() and "F1 help" in screen(), "the first screen", screen, 120)
        tmux(socket, "set-buffer", "-b", "i11", "Pasted line one.\nPasted line two.\n")
        tmux(socket, "paste-buffer", "-p", "-b", "i11", "-t", session)  # bracketed, as a terminal's paste
        wait_for(lambda: "│Pasted line two." in screen(), "the paste on screen", screen)
        wait_for(lambda: "v2" in screen(), "the paste as one version", screen)
        send("C-z")
        # (the stream pane below still shows the paste as the command it was)
        wait_for(lambda: "│Pasted line" not in screen() and "v3" in screen(), "the undo as a new version", screen)
        send("C-f")
        send("-l", "valley")
        wait_for(lambda: "1/1" in screen(), "the match count", screen)
        send("Escape")
        send("C-t")
        wait_for(lambda: "▶" in screen(), "the timeline's selected row", screen)
        send("Down")  # v2: the paste
        wait_for(lambda: "v2 by writer" in screen(), "the preview of v2", screen)
        send("Enter")
        wait_for(lambda: "now at v4" in screen(), "the rewind", screen)
        send("C-q")
        wait_for(lambda: tmux(socket, "has-session", "-t", session, check=False).returncode != 0,
                 "the editor to quit", screen)
    finally:
        tmux(socket, "kill-server", check=False)
        shutil.rmtree(socket.parent, ignore_errors=True)
    assert draft.read_text(encoding="utf-8") == "Pasted line one.\nPasted line two.\n" + DRAFT
    messages = [message for _, message in git_log(draft)]
    assert messages[0] == "rewind v2"
    assert messages[2].startswith('insert 1:1 "Pasted line one.')  # the paste: one version
    assert messages[1].startswith("delete 1:1-3:1")  # the undo: a version too
