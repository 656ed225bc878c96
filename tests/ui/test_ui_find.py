"""Find and replace, driven by a pilot: next/previous with a match count,
replace one, replace all as one version (and one undo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infitool_edit.ui.app import make_app
from infitool_edit.ui.find import find_all, replaced_stretch

pytestmark = pytest.mark.anyio

DRAFT = "# River\n\nThe river bends. A river is slow.\n\nRivers end in the sea.\n"


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    path = tmp_path / "draft.md"
    path.write_text(DRAFT, encoding="utf-8")
    return path


def test_find_is_smart_case_and_replace_all_is_one_stretch():
    assert find_all(DRAFT, "river") == [2, 13, 28, 44]
    assert find_all(DRAFT, "River") == [2, 44]
    first, last, new = replaced_stretch("a x b x c", [2, 6], 1, "yy")
    assert (first, last, new) == (2, 7, "yy b yy")


async def test_ctrl_f_finds_next_and_previous_with_a_count(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        app.editor.set_writer_cursor((2, 5))
        await pilot.press("ctrl+f", *"river")
        bar = app.query_one("#find-bar")
        assert str(bar.query_one("#find-count").render()) == "3/4"  # the first after the cursor
        assert app.editor.selection == ((2, 19), (2, 24))
        await pilot.press("enter")
        assert app.editor.selection == ((4, 0), (4, 5))
        await pilot.press("enter")  # round to the first
        assert app.editor.selection == ((0, 2), (0, 7))
        await pilot.press("up")
        assert str(bar.query_one("#find-count").render()) == "4/4"
        await pilot.press("escape")
        assert app.focused is app.editor and app.editor.selected_text == "River"
        assert app.history.count() == 1  # finding changes nothing


async def test_replace_one_then_all_as_one_version_undone_at_once(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+r", *"river", "tab", *"stream", "enter")
        assert app.editor.text.startswith("# stream\n")
        assert app.history.count() == 2
        await pilot.press("ctrl+r")  # replace all the others: one version
        assert app.editor.text == "# stream\n\nThe stream bends. A stream is slow.\n\nstreams end in the sea.\n"
        assert app.history.count() == 3
        assert app.session.workspace.text == app.editor.text
        await pilot.press("escape", "ctrl+z")
        assert app.editor.text == "# stream\n" + DRAFT[len("# River\n"):]
        assert app.session.workspace.text == app.editor.text


async def test_keys_typed_right_after_ctrl_f_go_to_the_find_field_not_the_draft(draft):
    """A writer who types ctrl+f and the word at once (one read of the
    terminal: every key already queued before the bar opens) finds the word;
    none of it lands in the draft."""
    from textual import events

    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        for key, character in [("ctrl+f", None), *((c, c) for c in "river")]:
            app.post_message(events.Key(key, character))
        await pilot.pause()
        assert app.query_one("#find-field").value == "river"
        assert app.editor.text == DRAFT and app.history.count() == 1
