"""Screenshots of the screens issue 11 added: help, the find bar, the
timeline with its selection and a fork, the title bar at 80x24. Update with
`pytest tests/ui/test_ui_snapshots_firstscreen.py --snapshot-update` after
a change you have looked at. Clocks and cursors are fixed so every run
paints the same screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from infitool_edit.ui.app import make_app

DRAFT = "# The River Book\n\nA slow river carves the valley, and time does the rest.\n\n## Sources\n\n- springs\n"


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    path = tmp_path / "river.md"
    path.write_text(DRAFT, encoding="utf-8")
    return path


async def _steady(pilot) -> None:
    for field in pilot.app.query(Input):
        field.cursor_blink = False
    pilot.app.timeline.clock = lambda when: "12:00:00"
    pilot.app.timeline.refresh()
    await pilot.pause()


def test_help_screen(snap_compare, draft):
    async def help_(pilot) -> None:
        await pilot.press("f1")
        await _steady(pilot)

    assert snap_compare(make_app(draft), terminal_size=(100, 34), run_before=help_)


def test_find_bar_with_a_match(snap_compare, draft):
    async def find(pilot) -> None:
        await pilot.press("ctrl+f", *"river")
        await _steady(pilot)

    assert snap_compare(make_app(draft), terminal_size=(100, 24), run_before=find)


def test_timeline_with_selection_and_a_fork(snap_compare, draft):
    async def timeline(pilot) -> None:
        app = pilot.app
        app.session.execute('replace 3 "slow" "quick"', author="model:script")
        app.session.execute('insert $ "\\n- snow"', author="model:script")
        app.session.fork(2, author="writer")
        app.timeline.total = app.history.count()
        app.timeline.forget_rows()
        app.resync()
        await pilot.press("ctrl+t")
        app.timeline.cursor = 1  # selected, not previewed: no timer to race the screenshot
        await _steady(pilot)

    assert snap_compare(make_app(draft), terminal_size=(100, 24), run_before=timeline)


def test_title_bar_at_80x24(snap_compare, draft):
    assert snap_compare(make_app(draft, backend_name="script demo"), terminal_size=(80, 24), run_before=_steady)
