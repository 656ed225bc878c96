"""Screenshots of the main screens (pytest-textual-snapshot). Update them
with `pytest tests/ui/test_ui_snapshots.py --snapshot-update` after a change
you have looked at."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from infitool_edit.ui.app import make_app

DRAFT = """\
# The River Book

A **slow** river carves the *valley*, and `time` does the rest.
See [the map](map.md) for the course of the water through the hills.

## Sources

- springs in the high meadows
- snow that melts in spring

> Water is patient.

```
# not a heading: code
print("flow")
```
"""


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    path = tmp_path / "river.md"
    path.write_text(DRAFT, encoding="utf-8")
    return path


def steady(pilot) -> None:
    """No blinking cursors, fixed clocks: the same screen on every run."""
    for field in pilot.app.query(Input):
        field.cursor_blink = False
    pilot.app.timeline.clock = lambda when: "12:00:00"
    pilot.app.timeline.refresh()


async def _steady(pilot) -> None:
    steady(pilot)
    await pilot.pause()


def test_main_screen_80x24(snap_compare, draft):
    assert snap_compare(make_app(draft), terminal_size=(80, 24), run_before=_steady)


def test_light_theme_with_markdown(snap_compare, draft):
    assert snap_compare(make_app(draft, theme="infitool-light"), terminal_size=(100, 30),
                        run_before=_steady)


def test_goal_prompt(snap_compare, draft):
    async def open_goal(pilot) -> None:
        await pilot.press("ctrl+g")
        from textual.widgets import Input

        for field in pilot.app.screen.query(Input):  # a blinking cursor makes the snapshot depend on timing
            field.cursor_blink = False
        await _steady(pilot)

    assert snap_compare(make_app(draft), terminal_size=(80, 24), run_before=open_goal)


def test_timeline_preview(snap_compare, draft):
    async def preview(pilot) -> None:
        app = pilot.app
        executed = app.session.execute('replace 3 "slow" "quick"', author="model:script")
        app.timeline.add_version(2, "model:script", executed.line, scale=executed.scale)
        app.resync()
        await pilot.press("ctrl+t", "down")
        app.version_preview.show(app.timeline.selected)  # now, not after the preview's debounce timer
        await _steady(pilot)

    assert snap_compare(make_app(draft), terminal_size=(100, 30), run_before=preview)
