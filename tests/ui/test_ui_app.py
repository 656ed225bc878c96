"""The whole editor driven by a pilot: watching the model, taking over,
the timeline, panes, themes, saving and quitting."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, TextArea

from infitool_edit.agent.events import CommandApplied, CommandStarted, Paused, TokenDecided
from infitool_edit.document.edits import TextEdit
from infitool_edit.history import History
from infitool_edit.ui.app import make_app
from infitool_edit.ui.inbox import EventsWaiting
from infitool_edit.ui.panes import OutlinePane
from infitool_edit.ui.timeline import TimelineView
from helpers.pilot import wait_until

pytestmark = pytest.mark.anyio

DRAFT = "# Title\n\nTeh method we propose is good.\n\n## Method\n\nWe do things.\n"
SCRIPT = """\
replace 3 "Teh" "The"
insert 3:1 "Indeed, "
note "fixed a typo"
insert $ "\\n## Results\\n\\nIt works."
checkpoint "first"
done "ok"
"""


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    path = tmp_path / "draft.md"
    path.write_text(DRAFT, encoding="utf-8")
    return path


def write_script(folder: Path, text: str = SCRIPT) -> Path:
    path = folder / "script.txt"
    path.write_text(text, encoding="utf-8")
    return path


async def test_model_edits_stream_into_the_buffer_and_the_history(draft):
    messages = []
    app = make_app(draft, script=write_script(draft.parent), goal="fix the typo")
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await wait_until(pilot, lambda: app.holder == "writer" and app.history.count() == 6)
        await pilot.pause()
        assert app.editor.text == app.session.workspace.text
        assert app.editor.text.startswith("# Title\n\nIndeed, The method")
        assert app.editor.text.endswith("## Results\n\nIt works.")
        authors = {info.author for info in app.history.log() if info.number > 1}
        assert authors == {"model:script"}
        assert any(isinstance(m, EventsWaiting) for m in messages)
        assert "fixed a typo" in app.session.workspace.notes
        assert app.timeline.row(6).checkpoint == "first"
        assert '> replace 3 "Teh" "The"' in app.stream.lines and "@done ok" in app.stream.lines
        shown = app.editor.text
        await pilot.press("ctrl+q")
    assert draft.read_text(encoding="utf-8") == shown


async def test_an_insert_is_typed_in_token_by_token_then_applied(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        app.holder = "model"
        app.playback.show(CommandStarted())
        for token in ['insert 3:1 "', "Ind", "eed", ",\\n"]:
            app.playback.show(TokenDecided(token))
        await pilot.pause()
        assert app.editor.buffer.lines[2] == "Indeed,"
        assert app.editor.buffer.lines[3].startswith("Teh method")
        assert app.editor.ghost == ((2, 0), (3, 0))
        executed = app.session.execute('insert 3:1 "Indeed, "', author="model:test")
        app.playback.show(CommandApplied(executed.line, "model:test", executed.version,
                                       executed.observation, executed.edit))
        await pilot.pause()
        assert app.editor.ghost is None
        assert app.editor.text == app.session.workspace.text
        assert app.editor.model_cursor == (2, 8)
        assert app.editor.marks == [((2, 0), (2, 8))]


async def test_a_removal_is_shown_struck_through_then_applied(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        app.holder = "model"
        executed = app.session.execute('delete 3:1-3:5', author="model:test")
        app.inbox.put(CommandApplied(executed.line, "model:test", executed.version,
                                     executed.observation, executed.edit))
        app.playback.take_events()  # what the inbox's wake-up message does, now (no race with its timer)
        assert app.editor.struck == ((2, 0), (2, 4))
        assert app.editor.buffer.lines[2] == "Teh method we propose is good."  # not yet
        await wait_until(pilot, lambda: app.editor.struck is None)
        assert app.editor.text == app.session.workspace.text
        assert app.editor.buffer.lines[2] == "method we propose is good."


async def test_writer_typing_pauses_the_model_and_becomes_writer_versions(draft):
    lines = "".join(f'insert $ "\\nline {n}"\n' for n in range(200))
    events = []
    app = make_app(draft, script=write_script(draft.parent, lines), rate=40, goal="add lines")
    async with app.run_test(size=(100, 30)) as pilot:
        original_put = app.inbox.put
        app.inbox.put = lambda event: (events.append(event), original_put(event))
        await wait_until(pilot, lambda: app.history.count() >= 3)
        app.editor.focus()
        await pilot.press("ctrl+home", "H", "i", "full_stop", "space")
        assert app.holder == "writer"
        await wait_until(pilot, lambda: any(isinstance(e, Paused) for e in events))
        count_when_paused = app.history.count()
        await pilot.pause(0.3)
        assert app.history.count() == count_when_paused  # the model stays paused
        # One word, one version — unless a model command landed between the
        # first keystroke and the pause, which flushes the word typed so far.
        writer_messages = [v.message for v in reversed(app.history.log(limit=20)) if v.author == "writer"]
        assert app.history.head().author == "writer"
        assert writer_messages in (['insert 1:1 "Hi. "'], ['insert 1:1 "H"', 'insert 1:2 "i. "'])
        assert app.editor.text.startswith("Hi. # Title")
        await pilot.press("f3")
        assert app.holder == "model"
        await wait_until(pilot, lambda: app.history.count() >= count_when_paused + 2)
        await pilot.press("f2")
        await pilot.pause(0.2)
        assert app.editor.text == app.session.workspace.text
        assert app.session.workspace.text.startswith("Hi. # Title")
        await pilot.press("ctrl+q")


async def test_typed_words_coalesce_into_one_version_each(draft):
    app = make_app(draft)
    async with app.run_test() as pilot:
        before = app.history.count()
        await pilot.press("ctrl+end", *"new words", "backspace", "backspace", "s")
        assert app.history.count() == before  # a run of typing waits for a sentence end or a pause
        await pilot.press("ctrl+s")
        messages = [info.message for info in app.history.log(limit=2)]
        assert messages[0] == 'insert 8:1 "new wors"' and app.history.count() == before + 1
        assert draft.read_text(encoding="utf-8").endswith("\nnew wors")


async def test_backspace_outside_a_pending_word_is_a_delete_version(draft):
    app = make_app(draft)
    async with app.run_test() as pilot:
        await pilot.press("down", "down", "end", "backspace")
        assert app.history.head().message == "delete 3:30-3:31"
        assert app.session.workspace.lines[2] == "Teh method we propose is good"


async def test_quitting_saves_the_pending_word(draft):
    app = make_app(draft)
    async with app.run_test() as pilot:
        await pilot.press("x", "y", "ctrl+q")
    assert draft.read_text(encoding="utf-8").startswith("xy# Title")
    with History.open(draft) as history:
        assert history.head().author == "writer"


async def test_timeline_previews_restores_and_forks(draft):
    app = make_app(draft, script=write_script(draft.parent), goal="fix")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.holder == "writer" and app.history.count() == 6)
        await pilot.press("ctrl+t")
        assert app.focused is app.timeline
        await pilot.press("down", "down", "down", "down")  # v6 → v2 (replace Teh → The)
        await wait_until(pilot, lambda: app.preview == 2)
        assert app.editor.read_only
        assert app.editor.buffer.lines[2] == "The method we propose is good."
        assert app.editor.marks == [((2, 0), (2, 3))]  # the word that changed
        await pilot.press("enter")
        await pilot.pause()
        head = app.history.head()
        assert head.number == 7 and head.message == "rewind v2" and head.author == "writer"
        assert app.preview is None and not app.editor.read_only
        assert app.editor.text == app.history.read(2).draft == draft.read_text(encoding="utf-8")
        app.timeline.focus()
        await pilot.press("end", "f")  # fork the very first version
        await pilot.pause()
        fork = app.history.head()
        assert fork.number == 8 and fork.branch != head.branch
        assert app.editor.text == DRAFT


async def test_timeline_filters_by_author_and_scale_and_replays(draft):
    messages = []
    app = make_app(draft, script=write_script(draft.parent), goal="fix")
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await wait_until(pilot, lambda: app.holder == "writer" and app.history.count() == 6)
        await pilot.press("ctrl+end", *"end. ")  # a sentence: one writer version
        await pilot.press("ctrl+t", "a")  # model only
        await pilot.pause()
        timeline = app.timeline
        assert [timeline.number_at(i) for i in range(timeline.row_count)] == [6, 5, 4, 3, 2]
        await pilot.press("a")  # writer only
        assert [timeline.number_at(i) for i in range(timeline.row_count)] == [7]
        await pilot.press("a", "s", "s")  # all authors; scale: paragraph
        await pilot.press("s")  # sentence
        await pilot.press("s")  # word
        assert timeline.scale_filter == "word"
        assert {timeline.row(timeline.number_at(i)).scale for i in range(timeline.row_count)} == {"word"}
        await pilot.press("s")  # back to all
        await pilot.press("end", "plus", "plus", "plus")
        del messages[:]
        await pilot.press("r")
        # At ×16 the replay of seven versions may be over before the next
        # line runs on a loaded machine; its messages say what happened.
        # The preview follows each step PREVIEW_DELAY_S later (a timer of its
        # own): wait until the replay has stopped and the preview settled on
        # the newest version, instead of reading it when the replay stops.
        def seen(kind):  # the hook sees a message at every node it bubbles through: once each
            return list({id(m): m for m in messages if isinstance(m, kind)}.values())

        toggles = lambda: [(m.playing, m.speed) for m in seen(TimelineView.ReplayToggled)]
        await wait_until(pilot, lambda: toggles() == [(True, 16), (False, 16)])
        await wait_until(pilot, lambda: app.preview == 7)
        assert not timeline.replaying and timeline.number_at(timeline.cursor) == 7
        stepped = [m.number for m in seen(TimelineView.Selected)]
        assert stepped == list(range(2, 8))  # oldest to newest, one version per step


async def test_outline_jumps_and_notes_are_editable(draft):
    app = make_app(draft)
    async with app.run_test(size=(100, 30)) as pilot:
        outline = app.query_one(OutlinePane)
        await wait_until(pilot, lambda: outline.option_count == 2)
        outline.focus()
        await pilot.press("down", "enter")
        assert app.editor.writer_cursor == (4, 0)
        assert app.focused is app.editor
        note = app.query_one("#note-input", Input)
        note.focus()
        await pilot.press(*"check the method", "enter")
        assert "check the method" in app.session.workspace.notes
        assert app.history.head().message == 'note "check the method"'
        # The scratchpad itself is editable: leaving it makes one version.
        area = app.query_one("#notes-text", TextArea)
        area.focus()
        await pilot.press("ctrl+home", *"todo: x", "backspace")
        assert app.history.head().message == 'note "check the method"'  # nothing yet
        note.focus()
        await wait_until(pilot, lambda: app.history.head().message.startswith("notes "))  # the blur's version
        head = app.history.head()
        assert (head.author, head.message) == ("writer", r'notes "todo: check the method\n"')
        assert app.session.workspace.notes == "todo: check the method\n"
        assert area.text == app.session.workspace.notes


async def test_panes_toggle_and_the_layout_fits_80x24(draft):
    app = make_app(draft)
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.editor.size.width >= 40 and app.editor.size.height >= 8
        # Below 100 columns the sidebar starts hidden, and the stream too (ctrl+l overlays it).
        assert not app.query_one("#sidebar").display and not app.query_one("#stream").display
        assert app.editor.size.width >= 75
        await pilot.press("ctrl+t")
        assert app.timeline.display and app.timeline.size.width > 30


async def test_themes_load_from_files_and_a_broken_one_is_reported(draft, tmp_path):
    themes = tmp_path / "mythemes"
    themes.mkdir()
    (themes / "broken.toml").write_text('name = "broken"\nprimary = "not a colour"\n')
    (themes / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\ndark = true\n')
    app = make_app(draft, theme_folders=[themes])
    async with app.run_test() as pilot:
        assert app.theme == "infitool-dark"
        assert {"infitool-light", "mine"} <= set(app.available_themes)
        assert "broken" not in app.available_themes
        assert any("broken.toml" in n.message for n in app._notifications)
        await pilot.press("f4")
        assert app.theme == "infitool-light"


async def test_bindings_are_in_the_command_palette(draft):
    app = make_app(draft)
    async with app.run_test() as pilot:
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {"Save", "Goal", "Take pen", "Hand back", "Timeline"} <= titles
        await pilot.pause()


async def test_goal_prompt_starts_the_model(draft):
    app = make_app(draft, script=write_script(draft.parent))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+g", *"fix the typo", "enter")
        await wait_until(pilot, lambda: app.history.count() == 6 and app.holder == "writer")
        assert app.goal == "fix the typo"
        assert app.editor.text == app.session.workspace.text


async def test_an_edit_the_session_refuses_is_reported_and_the_view_resyncs(draft):
    app = make_app(draft)
    async with app.run_test() as pilot:
        draft.write_text("changed behind our back\n", encoding="utf-8")
        await pilot.press("x", "ctrl+s")
        assert app.editor.text == app.session.workspace.text == DRAFT
        assert any(n.severity == "error" for n in app._notifications)


async def test_the_builtin_model_loads_in_a_thread_and_can_be_redirected(draft):
    app = make_app(draft)  # no script: the built-in SSM backend
    async with app.run_test(size=(100, 30)) as pilot:
        assert app.backend_name.startswith("ssm ")
        await pilot.press("ctrl+g", *"tighten it", "enter")
        # The first load imports torch, in the worker (the screen is up meanwhile): slow on a busy machine.
        await wait_until(pilot, lambda: app.runner is not None and app.runner.backend.stream_tokens > 0, 120)
        first_runner = app.runner
        await pilot.press("ctrl+g", "end", "ctrl+u", *"now the ending", "enter")  # redirect
        await wait_until(pilot, lambda: app.runner is not first_runner)
        assert app.goal == "now the ending"
        await pilot.press("f2")
        await pilot.pause(0.2)
        assert app.holder == "writer"
        assert app.editor.text == app.session.workspace.text
        await pilot.press("ctrl+q")
