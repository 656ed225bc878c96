"""The history API on its own: record, read, log, restore, fork, checkpoints, state."""

from __future__ import annotations

import pytest

from infitool_edit.history import (
    CheckpointExists,
    History,
    HistoryError,
    Snapshot,
    UnknownVersion,
)


@pytest.fixture
def history(tmp_path):
    with History.open(tmp_path / "draft.md") as opened:
        yield opened


def test_an_empty_history_has_no_head(history):
    assert history.count() == 0
    assert history.head() is None
    assert history.log() == []
    with pytest.raises(UnknownVersion):
        history.read(1)


def test_each_record_is_one_numbered_version(history):
    first = history.record("# Title\n", "", 'insert 1 "# Title\\n"', "model:tiny")
    second = history.record("# Title\n\nBody.\n", "todo", 'insert $ "\\nBody.\\n"', "Ana")
    assert (first.number, first.parent, first.branch) == (1, None, "main")
    assert (second.number, second.parent) == (2, 1)
    assert second.author == "Ana"
    assert second.message == 'insert $ "\\nBody.\\n"'
    assert len(second.commit) == 40 and second.commit != first.commit
    assert history.count() == 2
    assert history.head() == second
    assert history.read(1) == Snapshot("# Title\n", "")
    assert history.read(2) == Snapshot("# Title\n\nBody.\n", "todo")


def test_text_survives_byte_for_byte(history):
    tricky = "crlf\r\nno final newline ✓ \t \u2028 é"
    history.record(tricky, "notes\r\n", "replace 1 \"a\" \"b\"", "model:tiny")
    assert history.read(1) == Snapshot(tricky, "notes\r\n")


def test_log_is_newest_first_and_pages_with_before(history):
    for number in range(1, 26):
        history.record(f"v{number}\n", "", f"edit {number}", "model:tiny")
    assert [info.number for info in history.log(limit=5)] == [25, 24, 23, 22, 21]
    assert [info.number for info in history.log(limit=3, before=21)] == [20, 19, 18]
    assert [info.number for info in history.log(limit=10, before=3)] == [2, 1]
    assert history.log(limit=0) == []
    assert len(history.log()) == 25
    assert [info.message for info in history.log(limit=2)] == ["edit 25", "edit 24"]


def test_restore_makes_a_new_version_and_destroys_nothing(history):
    history.record("one\n", "n1", "edit 1", "model:tiny", state=b"mind-1")
    history.record("two\n", "n2", "edit 2", "model:tiny", state=b"mind-2")
    restored = history.rewind(1, "Ana")
    assert (restored.number, restored.parent, restored.message) == (3, 2, "rewind v1")
    assert restored.author == "Ana"
    assert history.read(3) == Snapshot("one\n", "n1")
    assert history.state(3) == b"mind-1"  # rewinding the text rewinds the model's mind
    assert history.read(2) == Snapshot("two\n", "n2")
    with pytest.raises(UnknownVersion):
        history.rewind(9, "Ana")


def test_fork_starts_a_new_line_that_later_records_continue(history):
    for number in range(1, 4):
        history.record(f"main {number}\n", "", f"edit {number}", "model:tiny")
    forked = history.fork(2, "Ana")
    assert (forked.number, forked.parent, forked.message) == (4, 2, "fork v2")
    assert forked.branch != "main"
    assert history.read(4).draft == "main 2\n"
    later = history.record("forked further\n", "", "edit 5", "model:tiny")
    assert (later.number, later.parent, later.branch) == (5, 4, forked.branch)
    again = history.fork(3, "Ana")
    assert again.branch not in ("main", forked.branch)
    assert again.number == 6  # numbers are global across lines
    assert history.rewind(5, "Ana").branch == again.branch


def test_checkpoints_name_the_head_once(history):
    with pytest.raises(UnknownVersion):
        history.checkpoint("too early")
    history.record("a\n", "", "edit 1", "model:tiny")
    named = history.checkpoint("draft one")
    assert (named.number, named.checkpoint) == (1, "draft one")
    history.record("b\n", "", "edit 2", "model:tiny")
    history.checkpoint("../odd: name.lock")
    assert history.find_checkpoint("draft one") == 1
    assert history.find_checkpoint("../odd: name.lock") == 2
    assert history.log()[1].checkpoint == "draft one"
    with pytest.raises(CheckpointExists, match="draft one"):
        history.checkpoint("draft one")
    with pytest.raises(UnknownVersion, match="nope"):
        history.find_checkpoint("nope")
    with pytest.raises(HistoryError):
        history.checkpoint("")


def test_state_is_stored_per_version_and_large_states_work(history):
    big = bytes(range(256)) * (4 * 1024 * 1024 // 256)  # 4 MB
    history.record("a\n", "", "edit 1", "model:tiny")
    history.record("b\n", "", "edit 2", "model:tiny", state=big)
    history.record("c\n", "", "edit 3", "model:tiny", state=big)
    assert history.state(1) is None
    assert history.state(2) == big and history.state(3) == big
    blobs = {_tree_entry(history, number, "draft.md.state") for number in (2, 3)}
    assert len(blobs) == 1  # unchanged state is one git object, stored once


def _tree_entry(history, number, name):
    import subprocess

    history.flush()  # git sees the newest versions once they are published
    commit = history.log(limit=1, before=number + 1)[0].commit
    listing = subprocess.run(
        ["git", "--git-dir", str(history.git_dir), "ls-tree", commit, name],
        capture_output=True, text=True, check=True,
    ).stdout
    return listing.split()[2]


def test_diff_is_a_unified_diff_of_the_draft(history):
    history.record("# T\n\nold line\n", "", "edit 1", "model:tiny")
    history.record("# T\n\nnew line", "", "edit 2", "model:tiny")
    diff = history.diff(1, 2)
    assert diff.startswith("--- v1/draft.md\n+++ v2/draft.md\n")
    assert "-old line\n" in diff and "+new line\n\\ No newline at end of file\n" in diff
    assert history.diff(2, 2) == ""


def test_everything_survives_a_restart(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("one\n", "", "edit 1", "model:tiny", state=b"s1")
        history.fork(1, "Ana")
        history.record("two\n", "n", "edit 3", "Ana")
        history.checkpoint("kept")
        before = history.log()
    with History.open(draft) as history:
        assert history.log() == before
        assert history.read(3) == Snapshot("two\n", "n")
        assert history.state(1) == b"s1"
        assert history.find_checkpoint("kept") == 3
        following = history.record("three\n", "", "edit 4", "model:tiny")
        assert (following.number, following.branch) == (4, before[0].branch)


def test_a_closed_history_refuses_work(tmp_path):
    history = History.open(tmp_path / "draft.md")
    history.close()
    history.close()  # closing twice is harmless
    with pytest.raises(HistoryError, match="closed"):
        history.record("x", "", "edit", "Ana")


def test_unknown_versions_are_one_line_errors(history):
    history.record("a\n", "", "edit 1", "model:tiny")
    for bad in (0, -1, 2):
        with pytest.raises(UnknownVersion) as caught:
            history.read(bad)
        assert "\n" not in str(caught.value)
    with pytest.raises(UnknownVersion):
        history.state(5)
    with pytest.raises(UnknownVersion):
        history.fork(3, "Ana")
