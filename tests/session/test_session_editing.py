"""The editing session over the real document engine, real git history and
real files."""

from __future__ import annotations

import subprocess
import threading

import pytest

from infitool_edit.commands import CommandError
from infitool_edit.document import ApplyError
from infitool_edit.history import DraftLocked, History, UnknownVersion
from infitool_edit.session.draftfile import DraftChanged, DraftError, DraftReadOnly
from infitool_edit.session.editing import (
    DISK_AUTHOR,
    HISTORY_LINES,
    HISTORY_MESSAGE_CHARS,
    OPEN_MESSAGE,
    RELOAD_MESSAGE,
    EditingSession,
)


def state_of(session: EditingSession) -> tuple:
    """Everything an error must leave as it was."""
    head = session.history.head()
    return (
        session.draft.path.read_bytes() if session.draft.path.exists() else None,
        session.workspace.text,
        session.workspace.notes,
        session.history.count(),
        head.commit if head else None,
    )


def apply_text_edit(text: str, edit) -> str:
    lines = text.split("\n")

    def offset(position: tuple[int, int]) -> int:
        line, col = position
        return sum(len(before) + 1 for before in lines[:line]) + col

    return text[: offset(edit.start)] + edit.text + text[offset(edit.end) :]


def test_first_open_records_the_initial_text_as_version_1(example_draft):
    initial = example_draft.read_text()
    with EditingSession.open(example_draft, author="ana") as session:
        head = session.history.head()
        assert (head.number, head.message, head.author) == (1, OPEN_MESSAGE, DISK_AUTHOR)
        assert session.history.read(1).draft == initial
        assert session.workspace.text == initial


def test_an_edit_records_one_version_and_writes_the_draft(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        executed = session.execute('replace 5 "Teh" "The"')
        assert executed.version == 2
        assert executed.observation.startswith("@ok v2")
        assert executed.edit is not None
        assert executed.author == "ana"
        on_disk = example_draft.read_text()
        assert "The lighthouse on Carrow Point" in on_disk
        assert session.history.read(2).draft == on_disk == session.workspace.text
        head = session.history.head()
        assert (head.message, head.author) == ('replace 5 "Teh" "The"', "ana")


def test_fix_records_one_version_with_what_check_found_fixed(example_draft):
    with EditingSession.open(example_draft, author="model") as session:
        assert '5│"Teh" "The"' in session.execute("check").observation
        executed = session.execute("fix")
        assert executed.version == 2 and executed.edit is not None
        on_disk = example_draft.read_text()
        assert "The lighthouse on Carrow Point" in on_disk
        assert session.history.read(2).draft == on_disk == apply_text_edit(session.history.read(1).draft, executed.edit)
        assert session.history.head().message == "fix"
        assert session.execute("check").observation.endswith("nothing found")


def test_author_can_be_given_per_command(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        executed = session.execute('insert $ "More.\\n"', author="model:tiny")
        assert executed.author == "model:tiny"
        assert session.history.head().author == "model:tiny"


def test_looking_makes_no_version_and_does_not_write(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        session.goal = "Fix the typos."
        before = state_of(session)
        mtime = example_draft.stat().st_mtime_ns
        for line in ("outline", "read 1-5", 'find "lamp"', "jump #winter", "notes", "history"):
            assert session.execute(line).version is None, line
        assert session.execute("goal").observation == "@goal Fix the typos."
        assert session.execute('done "nothing to do"').version is None
        assert state_of(session) == before
        assert example_draft.stat().st_mtime_ns == mtime


def test_a_note_is_a_version_that_leaves_the_file_alone(example_draft):
    with EditingSession.open(example_draft, author="model") as session:
        mtime = example_draft.stat().st_mtime_ns
        executed = session.execute('note "cut the second paragraph"')
        assert executed.version == 2
        assert "cut the second paragraph" in session.history.read(2).notes
        assert example_draft.stat().st_mtime_ns == mtime
    with EditingSession.open(example_draft, author="model") as reopened:
        assert "cut the second paragraph" in reopened.workspace.notes
        assert reopened.history.count() == 2


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('replace 5 "Teh', CommandError),  # unterminated string
        ("frobnicate 3", CommandError),
        ('insert 9999 "x"', ApplyError),  # past the end
        ('replace "no such text anywhere" "x"', ApplyError),
        ("read #no-such-heading", ApplyError),
        ("fix 1", ApplyError),  # the title has no slip: nothing to fix
        ("rewind v99", UnknownVersion),
        ('rewind "never named"', UnknownVersion),
    ],
)
def test_every_error_leaves_draft_notes_and_history_as_they_were(example_draft, line, error):
    with EditingSession.open(example_draft, author="ana") as session:
        session.execute('note "keep me"')
        before = state_of(session)
        with pytest.raises(error) as caught:
            session.execute(line)
        assert "\n" not in str(caught.value)
        assert state_of(session) == before


def test_rewind_makes_a_new_version_with_the_old_text(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        original = session.workspace.text
        session.execute('replace 5 "Teh" "The"')
        session.execute("delete 7")
        before_rewind = session.workspace.text
        executed = session.execute("rewind v1")
        assert executed.version == 4
        assert apply_text_edit(before_rewind, executed.edit) == original  # what views apply
        assert example_draft.read_text() == original == session.workspace.text
        assert session.history.count() == 4  # nothing destroyed
        assert "The lighthouse" in session.history.read(2).draft


def test_checkpoint_names_a_version_that_rewind_finds(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        session.execute('replace 5 "Teh" "The"')
        named = session.execute('checkpoint "typo fixed"')
        assert named.version == 3
        assert session.history.find_checkpoint("typo fixed") == 3
        session.execute("delete 5")
        session.execute('rewind "typo fixed"')
        assert "The lighthouse" in example_draft.read_text()
        assert session.history.count() == 5


def test_a_checkpoint_name_is_used_once_and_a_refused_one_records_nothing(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        session.execute('checkpoint "first"')
        before = state_of(session)
        for line in ('checkpoint "first"', 'checkpoint ""', f'checkpoint "{"é" * 200}"'):
            with pytest.raises(ValueError):
                session.execute(line)
        assert state_of(session) == before


def test_history_observation_is_bounded(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        for n in range(HISTORY_LINES + 10):
            session.execute(f'note "n{n}"')
        observation = session.execute("history").observation
        lines = observation.splitlines()
        assert len(lines) == HISTORY_LINES + 1
        assert lines[1] == f'v{HISTORY_LINES + 11} ana note "n{HISTORY_LINES + 9}"'
        # A long message is cut to HISTORY_MESSAGE_CHARS, the last one an ellipsis.
        long = "x" * (HISTORY_MESSAGE_CHARS + 40)
        session.execute(f'note "{long}"')
        newest = session.execute("history").observation.splitlines()[1]
        message = newest.removeprefix(f"v{HISTORY_LINES + 12} ana ")
        assert message == f'note "{long}'[: HISTORY_MESSAGE_CHARS - 1] + "…"


def test_a_second_session_on_the_same_draft_is_refused(example_draft):
    with EditingSession.open(example_draft, author="ana"):
        with pytest.raises(DraftLocked) as caught:
            EditingSession.open(example_draft, author="bo")
        assert "\n" not in str(caught.value)
    with EditingSession.open(example_draft, author="bo") as later:
        assert later.history.count() == 1


def test_reopening_an_unchanged_draft_records_nothing(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        session.execute('replace 5 "Teh" "The"')
    with EditingSession.open(example_draft, author="ana") as session:
        assert session.history.count() == 2
        assert session.workspace.text == example_draft.read_text()


def test_change_on_disk_is_refused_then_adopted_as_a_disk_version(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        theirs = example_draft.read_text() + "\nA line another editor added.\n"
        example_draft.write_text(theirs)
        before_count = session.history.count()
        with pytest.raises(DraftChanged):
            session.execute('replace 5 "Teh" "The"')
        assert example_draft.read_text() == theirs
        assert session.history.count() == before_count

        adopted = session.adopt_disk()
        head = session.history.head()
        assert adopted == head.number == before_count + 1
        assert (head.author, head.message) == (DISK_AUTHOR, RELOAD_MESSAGE)
        assert session.workspace.text == theirs
        session.execute('replace 5 "Teh" "The"')
        assert example_draft.read_text().endswith("A line another editor added.\n")


def test_reopen_records_a_change_made_while_closed(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        session.execute('replace 5 "Teh" "The"')
    example_draft.write_text("# Rewritten elsewhere\n")
    with EditingSession.open(example_draft, author="ana") as session:
        head = session.history.head()
        assert (head.number, head.author) == (3, DISK_AUTHOR)
        assert session.history.read(3).draft == "# Rewritten elsewhere\n"
        assert "The lighthouse" in session.history.read(2).draft  # nothing lost


def test_reopen_finishes_a_write_interrupted_after_the_version_was_recorded(example_draft):
    with EditingSession.open(example_draft, author="ana"):
        pass
    # A crash between `record` and the file write leaves exactly this.
    with History.open(example_draft) as history:
        newer = example_draft.read_text().replace("Teh", "The")
        history.record(newer, "", 'replace 5 "Teh" "The"', "ana")
    with EditingSession.open(example_draft, author="ana") as session:
        assert session.history.count() == 2
        assert example_draft.read_text() == newer == session.workspace.text


def test_missing_draft_is_created_on_the_first_edit(tmp_path):
    draft = tmp_path / "new.md"
    with EditingSession.open(draft, author="ana") as session:
        assert not draft.exists()
        assert session.history.read(1).draft == ""
        session.execute('insert $ "# Title\\n"')
        assert draft.read_text() == "# Title\n"


def test_draft_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(DraftError, match="does not exist"):
        EditingSession.open(tmp_path / "no" / "draft.md", author="ana")


def test_read_only_draft_opens_for_reading_and_refuses_edits(example_draft):
    example_draft.chmod(0o444)
    with EditingSession.open(example_draft, author="ana") as session:
        assert session.read_only
        assert session.execute("read 1-3").version is None
        assert session.execute('note "notes live in the history"').version == 2
        before = state_of(session)
        for line in ('replace 5 "Teh" "The"', "rewind v1"):
            with pytest.raises(DraftReadOnly, match="read-only"):
                session.execute(line)
        assert state_of(session) == before


def test_fork_starts_a_new_line_from_an_old_version(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        original = session.workspace.text
        session.execute('replace 5 "Teh" "The"')
        forked = session.fork(1)
        assert example_draft.read_text() == original
        lines = {info.number: info.branch for info in session.history.log()}
        assert lines[forked.version] != lines[2]  # a line of its own
        session.execute('insert $ "Forked.\\n"')
        assert session.history.head().parent == forked.version


def test_the_model_and_the_writer_executing_at_once_make_one_version_per_command(example_draft):
    per_thread = 40
    with EditingSession.open(example_draft, author="ana") as session:
        def type_lines(who: str) -> None:
            for n in range(per_thread):
                session.execute(f'insert $ "{who} {n}\\n"', author=who)

        threads = [threading.Thread(target=type_lines, args=(who,)) for who in ("model:m", "ana")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        history = session.history
        assert history.count() == 1 + 2 * per_thread
        for info in history.log(limit=history.count()):
            added = history.read(info.number).draft.count(" ") - history.read(1).draft.count(" ")
            assert added == info.number - 1  # each version is exactly one more insert
        assert example_draft.read_text() == session.workspace.text == history.read(history.count()).draft


def test_looking_still_works_while_the_file_was_changed_elsewhere(example_draft):
    with EditingSession.open(example_draft, author="ana") as session:
        example_draft.write_text("# Changed elsewhere\n")
        assert session.execute("read 1-2").observation.startswith("@text")
        assert session.execute('note "still fine"').version == 2
        with pytest.raises(DraftChanged):
            session.execute("delete 1")
        assert example_draft.read_text() == "# Changed elsewhere\n"


def test_a_draft_in_the_writers_repository_leaves_their_git_state_alone(example_draft):
    folder = example_draft.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              check=True).stdout

    git("init", "-q", "-b", "main")
    git("-c", "user.name=W", "-c", "user.email=w@example.org", "add", "draft.md")
    git("-c", "user.name=W", "-c", "user.email=w@example.org", "commit", "-q", "-m", "mine")
    before = (git("rev-parse", "HEAD"), git("branch", "--list"), git("ls-files", "--stage"))
    with EditingSession.open(example_draft, author="ana") as session:
        session.execute('replace 5 "Teh" "The"')
        session.execute('note "n"')
    assert (git("rev-parse", "HEAD"), git("branch", "--list"), git("ls-files", "--stage")) == before
    assert git("status", "--porcelain") == " M draft.md\n"
    assert git("log", "--format=%s", "--glob=refs/infitool-edit/*").splitlines()[:2] == [
        'note "n"', 'replace 5 "Teh" "The"'
    ]


def test_edits_are_written_at_once_and_made_durable_on_save_and_close(example_draft, monkeypatch):
    """Each command replaces the file atomically but without an fsync (which
    would cap a fast model at a few hundred commands a second); save and
    close fsync the draft once."""
    import os

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    with EditingSession.open(example_draft, author="writer") as session:
        synced.clear()
        for word in ("One", "Two", "Three"):
            session.execute(f'insert 1 "{word} "')
        assert example_draft.read_text().startswith("Three Two One ")  # on disk at once
        assert synced == []
        session.save()
        assert len(synced) == 2  # the file and its folder
        session.execute('insert 1 "Four "')
        synced.clear()
    assert len(synced) == 2  # close made the last edit durable
