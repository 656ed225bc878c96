"""The editor paints before its session opens (issue 14): `infitool-edit DRAFT`
skips the command line's parser, the first frame imports no numpy,
tree-sitter grammar, git, session, history or torch, the session opens in a
thread after it, and what the writer does meanwhile is kept or refused,
never lost.

The opening thread is pinned in these tests: its ``opening`` waits on an
event the test sets, so "the writer types before the session is open" is
an exact point, not a race.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from infitool_edit.errors import InfitoolError
from infitool_edit.launch import SUBCOMMANDS, plain_draft
from infitool_edit.ui.app import OPENING_NOTE, InfitoolEditApp
from infitool_edit.ui.opening import Backend, Opened, open_session
from helpers.first_frame import DRAFT, probe
from helpers.pilot import wait_until

pytestmark = pytest.mark.anyio

def pinned_app(draft: Path, release: threading.Event, **options) -> InfitoolEditApp:
    """The editor as `infitool-edit DRAFT` opens it, its session opening
    only once ``release`` is set."""

    def opening() -> Opened:
        release.wait()
        return Opened(open_session(draft, "writer"), Backend(None, None, False))

    return InfitoolEditApp(opening, draft_path=draft, **options)


def test_launch_knows_every_subcommand_and_routes_only_a_bare_draft():
    from infitool_edit import cli

    assert SUBCOMMANDS == {command.name or command.callback.__name__ for command in cli.app.registered_commands}
    assert plain_draft(["essay.md"]) == "essay.md"
    assert plain_draft(["edit", "notes/essay.md"]) == "notes/essay.md"
    for through_the_parser in (["essay.md", "--goal", "x"], ["edit"], ["repair", "essay.md"], ["log", "e.md"],
                               ["--help"], [], ["edit", "edit"], ["essay.md", "other.md"]):
        assert plain_draft(through_the_parser) is None, through_the_parser


async def test_keys_typed_before_the_session_opens_land_once_it_is(draft):
    release = threading.Event()
    app = pinned_app(draft, release)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        # The first frame: the draft as its file holds it, the title bar, the status saying what waits.
        assert app.editor.text == DRAFT and not app.opened
        assert "essay.md" in str(app.query_one("#title-bar").render())
        assert OPENING_NOTE in str(app.status.render())
        await pilot.press("down", "down", "N", "o", "w", "space")  # motions act; the edits wait
        assert app.editor.writer_cursor == (2, 0) and app.editor.text == DRAFT
        await pilot.press("ctrl+t")  # the timeline needs the history: not before it is open
        assert not app.query_one("#timeline-pane").display
        release.set()
        await wait_until(pilot, lambda: app.opened and app.editor.held is None, timeout=120)
        app.writer_pen.flush()  # the typed run becomes its version (a sentence's end or a pause would)
        assert app.editor.text == app.session.workspace.text == "# Title\n\nNow Three words here.\n"
        assert app.history.head().author == "writer" and app.history.count() == 2
        assert "v2" in str(app.status.render())
        await pilot.press("ctrl+t")
        assert app.query_one("#timeline-pane").display
    app.finish_opening()


async def test_quitting_before_the_session_opens_closes_it_once_open(draft):
    release = threading.Event()
    app = pinned_app(draft, release)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
    assert not app.opened
    release.set()
    app.finish_opening()  # the session it opened meanwhile is closed: the draft opens again
    with open_session(draft, "writer") as session:
        assert session.workspace.text == DRAFT


async def test_a_draft_that_cannot_open_ends_the_editor_with_its_error(draft):
    def opening() -> Opened:
        raise InfitoolError("the draft is locked by another editor\nsecond line")

    app = InfitoolEditApp(opening, draft_path=draft)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.opening_error is not None, timeout=120)
    app.finish_opening()
    assert app.return_code == 1 and str(app.opening_error) == "the draft is locked by another editor"


HEAVY = ("numpy", "torch", "transformers", "tree_sitter_markdown", "git", "typer",
         "infitool_edit.session.editing", "infitool_edit.history", "infitool_edit.commands", "infitool_edit.agent")
FIRST_FRAME_PROBE = probe(HEAVY, """
from infitool_edit.ui.app import opening_app

async def main(draft):
    app = opening_app(Path(draft))
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(600):
            await pilot.pause(0.05)
            if app.opened:
                break
        opened = app.opened
        app.exit()
    app.finish_opening()
    painted = moments["painted"]
    print("before the first frame:", sorted(n for n in WATCHED if moments.get(n, painted + 1) < painted))
    print("opened" if opened else "never opened", "with", sorted(n for n in WATCHED if n in moments))

asyncio.run(main(sys.argv[1]))
""")


def test_the_first_frame_imports_nothing_heavy(draft):
    """Numpy, tree-sitter's markdown grammar, git, the session, the history,
    the command language, the agent (torch later still) all load after the
    draft is painted."""
    result = subprocess.run([sys.executable, "-c", FIRST_FRAME_PROBE, str(draft)],
                            capture_output=True, text=True, timeout=300)
    assert "before the first frame: []" in result.stdout, result.stdout + result.stderr[-2000:]
    # …and they did load, once the frame was up: the probe watched the right names.
    assert "opened with" in result.stdout and "'infitool_edit.session.editing'" in result.stdout, result.stdout


def test_a_bare_draft_opens_paints_and_saves_in_a_real_terminal(tmp_path: Path):
    """`infitool-edit DRAFT` through launch.py's own path (no Typer): the
    first frame, then the session, then the writer's sentence as a version."""
    import os
    import shlex
    import shutil
    import tempfile
    import time
    import uuid

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT, encoding="utf-8")
    boot = "import sys; sys.argv[0] = 'infitool-edit'; from infitool_edit.launch import main; main()"
    session = f"infitool-launch-{uuid.uuid4().hex[:8]}"
    socket = Path(tempfile.mkdtemp(prefix="tmux-")) / "server"  # short: a socket path has a length limit

    def tmux(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-S", str(socket), "-f", "/dev/null", *args],
                              check=check, capture_output=True, text=True)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", session).stdout

    def wait_for(condition, what: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen()}")
            time.sleep(0.1)

    env = {key: value for key, value in os.environ.items() if not key.startswith("TMUX")}
    subprocess.run(["tmux", "-S", str(socket), "-f", "/dev/null", "new-session", "-d", "-s", session,
                    "-x", "100", "-y", "30", "-c", str(tmp_path),
                    shlex.join([sys.executable, "-c", boot, str(draft)])], check=True, env=env)
    try:
        wait_for(lambda: "Three words here." in screen() and "draft.md" in screen(), "the first frame")
        wait_for(lambda: "saved automatically" in screen(), "the session open")
        tmux("send-keys", "-t", session, "C-End")
        tmux("send-keys", "-t", session, "-l", "Four. ")  # a sentence's end: one version
        wait_for(lambda: "Four." in screen(), "the writer's word on screen")
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: tmux("has-session", "-t", session, check=False).returncode != 0, "the editor to quit")
    finally:
        tmux("kill-server", check=False)
        shutil.rmtree(socket.parent, ignore_errors=True)
    assert draft.read_text(encoding="utf-8") == DRAFT + "Four. "
    with open_session(draft, "writer") as opened:
        head = opened.history.head()
        assert (head.author, head.number) == ("writer", 2)
