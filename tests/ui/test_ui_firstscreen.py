"""The first screen: title bar, plain status, help, the stream pane's one
row, the narrow layout, and ``?`` typed in text but opening help elsewhere."""

from __future__ import annotations


import pytest

from infitool_edit.ui.app import make_app
from infitool_edit.ui.firstscreen import HelpScreen
from helpers.first_frame import probe

pytestmark = pytest.mark.anyio

async def test_title_bar_status_and_help(draft):
    app = make_app(draft, goal=None)
    async with app.run_test(size=(120, 30)) as pilot:
        title = str(app.query_one("#title-bar").render())
        assert "essay.md" in title and "5 words" in title and "no goal yet" in title
        status = str(app.status.render())
        assert "✎ writer" in status and "v1" in status and "saved automatically" in status
        assert "tok/s" not in status
        await pilot.press("f8")
        assert "tok/s" in str(app.status.render())
        assert app.stream.size.height == 1  # nothing said yet: one row
        await pilot.press("question_mark")  # in the editor "?" is text
        assert app.editor.text.startswith("?")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "ctrl+t", "question_mark")  # in the timeline it is help
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")


async def test_narrow_terminal_starts_without_the_sidebar(draft):
    app = make_app(draft)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.query_one("#sidebar").display
        assert app.editor.size.width >= 70
        await pilot.press("ctrl+o")
        assert app.query_one("#sidebar").display


FIRST_PAINT_PROBE = probe(("torch",), """
from infitool_edit.ui.app import make_app

async def main(draft):
    app = make_app(Path(draft), goal="tighten it")  # the default model: torch, when it loads
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.exit()
    torch = moments.get("torch", float("inf"))
    print("painted first" if moments["painted"] < torch else "torch first", flush=True)

asyncio.run(main(sys.argv[1]))
""")


def test_the_draft_is_on_screen_before_torch_is_imported(draft):
    """The model (and torch with it) loads in the worker after the first
    frame; opening the editor, even with a goal, imports no torch before it."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", FIRST_PAINT_PROBE, str(draft)],
                            capture_output=True, text=True, timeout=300)
    assert "painted first" in result.stdout, result.stdout + result.stderr[-2000:]


async def test_below_100_columns_the_stream_is_an_overlay_that_ctrl_l_opens(draft, tmp_path):
    script = tmp_path / "script.txt"
    script.write_text('insert $ "\\nA line from the model."\n', encoding="utf-8")
    app = make_app(draft, script=script, goal="add a line")
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):  # the scripted model's one command, shown
            await pilot.pause(0.05)
            if "A line from the model." in app.editor.text:
                break
        assert "A line from the model." in app.editor.text
        stream, editor = app.stream, app.editor
        assert not stream.display  # hidden: the prose keeps the rows
        rows_alone = editor.size.height
        assert rows_alone >= 19  # 24 less the title, status and footer rows, and the editor's border
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert stream.display and stream.region.height >= 8
        # Over the draft, not beside it: the editor keeps its rows, and the
        # stream lies on them, above the status bar and the footer.
        assert editor.size.height == rows_alone
        assert stream.region.overlaps(editor.region)
        assert stream.region.bottom <= app.status.region.y
        assert any("A line from the model." in line for line in stream.lines)
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert not stream.display
    wide = make_app(tmp_path / "wide.md")
    async with wide.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        assert wide.stream.display and not wide.stream.has_class("overlay")
        assert not wide.stream.region.overlaps(wide.editor.region)  # its own rows at 120 columns
