"""The editor pane on its own: buffer edits, wrapping, highlighting, keys."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from infitool_edit.document.edits import TextEdit
from infitool_edit.ui.buffer import DraftBuffer
from infitool_edit.ui.editor import DraftEditor
from infitool_edit.ui.highlight import highlight_line
from infitool_edit.ui.wrap import wrap_offsets

pytestmark = pytest.mark.anyio


def test_buffer_applies_edits_to_the_lines_they_touch():
    buffer = DraftBuffer("# Title\n\nHello world.\nSecond line.")
    changed = buffer.apply(TextEdit((2, 6), (3, 6), "there,\nthird"))
    assert buffer.text == "# Title\n\nHello there,\nthird line."
    assert (changed.first, changed.removed, changed.added) == (2, 2, 2)
    buffer.apply(TextEdit((2, 6), (3, 5), "world.\nSecond"))
    assert buffer.text == "# Title\n\nHello world.\nSecond line."


def test_buffer_tracks_code_fences_through_edits():
    buffer = DraftBuffer("a\n```\ncode\n```\nb")
    assert [buffer.in_code_block(n) for n in range(5)] == [False, False, True, False, False]
    buffer.apply(TextEdit((0, 0), (0, 0), "new\n"))
    assert buffer.fences == [2, 4]
    assert buffer.in_code_block(3)
    buffer.apply(TextEdit((2, 0), (4, 3), "plain"))
    assert buffer.fences == []
    assert not buffer.in_code_block(3)


def test_wrap_breaks_after_spaces_and_hard_breaks_long_words():
    assert wrap_offsets("one two three", 8) == (0, 8)
    assert wrap_offsets("x" * 25, 10) == (0, 10, 20)
    assert wrap_offsets("", 10) == (0,)


def test_highlight_names_markdown_spans():
    assert highlight_line("## Method", False) == ((0, 9, "heading2"),)
    spans = highlight_line("- a **bold** and `code`", False)
    assert (0, 2, "list") in spans and (4, 12, "strong") in spans and (17, 23, "code") in spans
    assert highlight_line("# not a heading", True) == ((0, 15, "code"),)


class EditorApp(App):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.edits: list[TextEdit] = []

    def compose(self) -> ComposeResult:
        yield DraftEditor(self.text)

    def on_draft_editor_writer_edited(self, message: DraftEditor.WriterEdited) -> None:
        self.edits.append(message.edit)


async def test_typing_edits_the_buffer_and_reports_each_edit():
    app = EditorApp("Hello world\nsecond")
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(DraftEditor)
        editor.focus()
        await pilot.press("end", "exclamation_mark", "enter", "a", "backspace", "backspace", "down", "home", "delete")
        assert editor.text == "Hello world!\necond"
        assert app.edits[0] == TextEdit((0, 11), (0, 11), "!")
        assert app.edits[1] == TextEdit((0, 12), (0, 12), "\n")
        assert editor.writer_cursor == (1, 0)


async def test_model_edit_moves_cursors_and_rewraps_only_changed_lines():
    app = EditorApp("first line\n" + "word " * 30 + "\nlast")
    async with app.run_test(size=(40, 10)) as pilot:
        editor = app.query_one(DraftEditor)
        rows_before = editor.virtual_size.height
        editor.writer_cursor = (2, 2)
        editor.model_cursor = (0, 0)
        editor.apply_edit(TextEdit((0, 0), (0, 0), "new\n"))
        await pilot.pause()
        assert editor.writer_cursor == (3, 2)
        assert editor.model_cursor == (0, 0)  # at the insertion point: stays before it
        assert editor.virtual_size.height == rows_before + 1
        first_row = "".join(segment.text for segment in editor.render_line(0))
        assert first_row.startswith("new")


async def test_read_only_editor_ignores_typing():
    app = EditorApp("text")
    async with app.run_test() as pilot:
        editor = app.query_one(DraftEditor)
        editor.read_only = True
        editor.focus()
        await pilot.press("x", "backspace")
        assert editor.text == "text" and app.edits == []
