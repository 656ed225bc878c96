"""A model's move in the editor: applied at once (it takes nothing out, so
nothing is struck through), the buffer equal to the session's draft."""

from __future__ import annotations

from pathlib import Path

import pytest

from infitool_edit.agent.events import CommandApplied
from infitool_edit.ui.app import make_app

pytestmark = pytest.mark.anyio

DRAFT = "# T\n\n## A\n\npara a\n\n## B\n\npara b\n"


async def test_a_move_is_not_struck_through_and_lands_in_the_buffer(tmp_path: Path):
    draft = tmp_path / "draft.md"
    draft.write_text(DRAFT, encoding="utf-8")
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        app.holder = "model"
        executed = app.session.execute("move #a #b", author="model:test")
        app.inbox.put(CommandApplied(executed.line, "model:test", executed.version, executed.observation,
                                     executed.edit, command=executed.command, scale=executed.scale))
        app.playback.take_events()  # what the inbox's wake-up message does, now
        assert app.editor.struck is None and not app.playback.holding
        await pilot.pause()
        assert app.editor.text == app.session.workspace.text == "# T\n\n## B\n\npara b\n\n## A\n\npara a\n"
