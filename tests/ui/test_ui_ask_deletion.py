"""Before the model deletes a large part of the draft the editor pauses the
run and asks: allow, refuse (nothing applied), or take the pen."""

from __future__ import annotations

from pathlib import Path

import pytest

from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.stream import stream_dir_for
from infitool_edit.ui.app import make_app
from infitool_edit.ui.ask_deletion import DeletionScreen
from helpers.pilot import wait_until

pytestmark = pytest.mark.anyio

PARAGRAPH = "The river turns past the mill where the old wheel creaks in spring and the ducks wait."
DRAFT = "# Rivers\n\n" + "\n\n".join(f"{n}. {PARAGRAPH}" for n in range(1, 6)) + "\n"


def stream_text(app) -> str:
    """The stream as the runner has written it so far: the text file read as it is. (Opening a
    second StreamLog on a live stream would check, and cut back, records the runner is still
    writing.)"""
    path = stream_dir_for(app.history) / "stream.txt"
    return path.read_text(encoding="utf-8") if path.exists() else ""


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    path = tmp_path / "draft.md"
    path.write_text(DRAFT, encoding="utf-8")
    return path


def app_with(draft, script):
    backend = ScriptedBackend(script)
    return make_app(draft, backend_factory=lambda: backend, backend_name="script", goal="tidy",
                    ask_before_deleting=True)


@pytest.mark.parametrize("key, applied", [("r", False), ("a", True), ("p", False)])
async def test_the_model_waits_for_the_writer_before_a_large_deletion(draft, key, applied):
    app = app_with(draft, ["delete 3-9", 'insert 1:1 "After. "', 'done "ok"'])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DeletionScreen) and app.screen.is_mounted)
        await pilot.pause()
        shown = " ".join(str(w.render()) for w in app.screen.query("Static, Label"))
        assert "would delete 72 of the draft's 92 words (78%)" in shown and "1. The river" in shown
        await pilot.pause(0.3)
        assert app.session.workspace.text == DRAFT and app.history.count() == 1  # nothing yet: it waits
        await pilot.press(key)
        if key == "p":
            await wait_until(pilot, lambda: app.holder == "writer")
            await pilot.pause(0.3)
            assert app.session.workspace.text == DRAFT and app.history.count() == 1  # paused, nothing applied
            await pilot.press("f3")  # the pen back: the model reads that it was refused and goes on
        await wait_until(pilot, lambda: "@done" in stream_text(app))
        text = app.session.workspace.text
        assert text.startswith("After. ")
        assert ("1. The river" not in text) == applied
        stream = stream_text(app)
        if not applied:
            why = "took the pen" if key == "p" else "refused"
            assert f"> delete 3-9\n@error the writer {why}: this command would delete 72 of 92 words" in stream
            assert [v.message for v in app.history.log()][0] == 'insert 1:1 "After. "'
            assert "delete 3-9" not in [v.message for v in app.history.log()]


async def test_a_small_deletion_is_not_asked_about(draft):
    app = app_with(draft, ["delete 3", 'done "ok"'])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "@done" in stream_text(app))
        assert not isinstance(app.screen, DeletionScreen)
        assert "1. The river" not in app.session.workspace.text


async def test_quitting_while_asked_refuses_and_releases_the_run(draft):
    app = app_with(draft, ["delete 3-9", 'done "ok"'])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, DeletionScreen))
        await pilot.press("ctrl+q")
    assert draft.read_text(encoding="utf-8") == DRAFT
