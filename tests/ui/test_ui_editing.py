"""Editing as a writer expects, driven by a pilot on the whole app: the
selection, the clipboard, a bracketed paste, word motion, Home/End by
screen row, Tab, undo and redo as new versions, taking back a model run.
Each test asserts on the buffer and on the history."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events

from infitool_edit.ui.app import make_app
from helpers.pilot import wait_until

pytestmark = pytest.mark.anyio

DRAFT = "# Title\n\nThe method we propose is good.\n\n- one item\n"


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    path = tmp_path / "draft.md"
    path.write_text(DRAFT, encoding="utf-8")
    return path


def writer_messages(app) -> list[str]:
    return [v.message for v in reversed(app.history.log()) if v.author == "writer"]


async def test_shift_motion_selects_and_typing_replaces_the_selection(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        editor.set_writer_cursor((2, 4))
        await pilot.press(*["shift+right"] * 6)
        assert editor.selected_text == "method"
        await pilot.press("ctrl+shift+right", "ctrl+shift+left")
        assert editor.selected_text == "method "
        await pilot.press("shift+left")
        await pilot.press("w", "a", "y")
        assert editor.buffer.lines[2] == "The way we propose is good."
        await pilot.press("ctrl+s")
        assert app.session.workspace.text == editor.text
        assert writer_messages(app) == ['replace 3:5-3:11 "w"', 'insert 3:6 "ay"']
        await pilot.press("left")
        assert editor.selection is None and editor.writer_cursor == (2, 6)


async def test_ctrl_a_copy_cut_paste_use_both_clipboards(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        editor.set_writer_cursor((2, 0))
        await pilot.press("ctrl+shift+right", "ctrl+c")
        assert app.clipboard == "The"
        await pilot.press("ctrl+a")
        assert editor.selected_text == DRAFT
        await pilot.press("ctrl+x")
        assert editor.text == "" and app.clipboard == DRAFT
        await pilot.press("ctrl+v", "ctrl+v")
        assert editor.text == DRAFT + DRAFT
        assert app.session.workspace.text == editor.text
        assert writer_messages(app)[0].startswith("delete 1:1-6:1")
        assert len(writer_messages(app)) == 3  # the cut and each paste, one version each


async def test_a_bracketed_paste_is_one_version_over_the_selection(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        before = app.history.count()
        editor.select((2, 4), (2, 10))
        app.post_message(events.Paste("approach,\nin two lines,"))  # what the terminal's paste sends
        await pilot.pause()
        assert editor.buffer.lines[2:4] == ["The approach,", "in two lines, we propose is good."]
        assert app.history.count() == before + 1
        assert app.history.head().author == "writer"
        assert app.session.workspace.text == editor.text
        assert editor.writer_cursor == (3, 13)


async def test_word_motion_and_word_deletion(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        editor.set_writer_cursor((2, 0))
        await pilot.press("ctrl+right", "ctrl+right")
        assert editor.writer_cursor == (2, 10)
        await pilot.press("alt+left")
        assert editor.writer_cursor == (2, 4)
        await pilot.press("ctrl+delete")
        assert editor.buffer.lines[2] == "The  we propose is good."
        await pilot.press("end", "ctrl+backspace", "ctrl+backspace")
        assert editor.buffer.lines[2] == "The  we propose is "
        assert app.session.workspace.text == editor.text
        assert writer_messages(app) == ["delete 3:5-3:11", "delete 3:24-3:25", "delete 3:20-3:24"]


async def test_home_and_end_go_to_the_screen_row_first_then_the_line(tmp_path):
    path = tmp_path / "long.md"
    path.write_text("word " * 40, encoding="utf-8")  # wraps at the editor's width
    app = make_app(path)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = app.editor
        offsets = editor.buffer.lines[0] and __import__("infitool_edit.ui.wrap", fromlist=["x"]).wrap_offsets(
            editor.buffer.lines[0], editor._wrap_width)
        assert len(offsets) >= 2
        editor.set_writer_cursor((0, offsets[1] + 2))
        await pilot.press("home")
        assert editor.writer_cursor == (0, offsets[1])
        await pilot.press("home")
        assert editor.writer_cursor == (0, 0)
        await pilot.press("end")
        assert editor.writer_cursor == (0, offsets[1] - 1)
        await pilot.press("end")
        assert editor.writer_cursor == (0, len(editor.buffer.lines[0]))
        await pilot.press("shift+home")
        assert editor.selection is not None


async def test_mouse_drag_double_and_triple_click_select(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        app.query_one("#sidebar").display = False
        await pilot.pause()
        await pilot.mouse_down(editor, offset=(4, 2))
        await pilot.hover(editor, offset=(10, 2))
        await pilot.mouse_up(editor, offset=(10, 2))
        assert editor.selected_text == "method"
        await pilot.double_click(editor, offset=(11, 2))
        assert editor.selected_text == "we"
        await pilot.triple_click(editor, offset=(13, 2))
        assert editor.selected_text == "The method we propose is good.\n"


async def test_tab_nests_a_list_item_and_indents_elsewhere(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        editor.set_writer_cursor((4, 5))
        await pilot.press("tab")
        assert editor.buffer.lines[4] == "  - one item" and editor.writer_cursor == (4, 7)
        editor.set_writer_cursor((2, 0))
        await pilot.press("tab")
        assert editor.buffer.lines[2].startswith("    The")
        await pilot.press("ctrl+s")
        assert app.session.workspace.text == editor.text


async def test_undo_and_redo_are_new_versions_of_the_writers_steps(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        editor.set_writer_cursor((2, 0))
        await pilot.press(*"Now. ")  # one sentence: one version
        await pilot.press("ctrl+shift+right", "backspace")  # a deleted selection: one more
        assert editor.buffer.lines[2] == "Now.  method we propose is good."
        count = app.history.count()
        await pilot.press("ctrl+z")
        assert editor.buffer.lines[2] == "Now. The method we propose is good."
        await pilot.press("ctrl+z")
        assert editor.text == DRAFT
        assert app.history.count() == count + 2  # nothing lost: each undo is a version
        await pilot.press("ctrl+y")
        assert editor.buffer.lines[2] == "Now. The method we propose is good."
        assert app.session.workspace.text == editor.text
        assert app.history.read(count).draft.splitlines()[2] == "Now.  method we propose is good."
        await pilot.press("x", "ctrl+s")  # a new step clears what was left to redo
        assert app.undo.redo_steps == []
        await pilot.press("ctrl+z")
        assert editor.buffer.lines[2] == "Now. The method we propose is good."
        await pilot.press("ctrl+y")
        assert editor.buffer.lines[2] == "Now. xThe method we propose is good."
        assert app.session.workspace.text == editor.text


async def test_undo_steps_over_the_models_edits_and_never_undoes_them(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = app.editor
        editor.set_writer_cursor((4, 10))
        await pilot.press(*" added. ")
        executed = app.session.execute('insert 1:1 "Intro.\\n"', author="model:test")
        editor.apply_edit(executed.edit)  # what playback does with the model's edit
        await pilot.press("ctrl+z")
        assert editor.text == "Intro.\n" + DRAFT
        assert app.session.workspace.text == editor.text
        await pilot.press("ctrl+z")  # nothing of the writer's left: the model's insert stays
        assert editor.text == "Intro.\n" + DRAFT


async def test_f6_takes_back_the_models_run_as_one_version(draft):
    script = draft.parent / "script.txt"
    script.write_text('insert $ "\\nOne."\ndelete 3\ninsert $ "\\nTwo."\ndone "ok"\n', encoding="utf-8")
    app = make_app(draft, script=script, rate=50, goal="add lines")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.history.count() == 4 and app.holder == "writer")
        await pilot.pause(0.2)
        count = app.history.count()
        await pilot.press("f6")
        assert app.history.count() == count + 1
        assert app.history.head().back_to == 1
        assert app.editor.text == DRAFT == app.session.workspace.text
