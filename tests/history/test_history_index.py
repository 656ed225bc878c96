"""The index beside the repository and the refs it mirrors: lost, damaged or odd, git restores it."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from infitool_edit.history import History, HistoryError
from infitool_edit.history.refnames import decode_component, encode_component
from infitool_edit.history.versionindex import INDEX_FILE, RECORD_SIZE, TEXT_FILE


def build(draft):
    """A history with two forks, a restore, states and a checkpoint; its full log."""
    with History.open(draft) as history:
        for number in range(1, 8):
            history.record(f"text {number}\n", f"notes {number}", f"edit {number}", "model:tiny",
                           state=b"s%d" % number if number % 2 else None)
        history.fork(3, "Ana")
        history.record("forked\n", "", 'insert 1 "x"', "Ana")
        history.rewind(6, "Ana")
        history.fork(9, "Ana")
        history.record("second fork\n", "", "edit 12", "model:tiny")
        history.checkpoint("end")
        return history.log(), _index_folder(history)


def _index_folder(history):
    return history.folder


def snapshot_all(history):
    return [(history.read(n), history.state(n)) for n in range(1, history.count() + 1)]


def test_a_deleted_index_is_rebuilt_from_git_and_equal(tmp_path):
    draft = tmp_path / "draft.md"
    log, folder = build(draft)
    with History.open(draft) as history:
        contents = snapshot_all(history)
    os.unlink(os.path.join(folder, INDEX_FILE))
    os.unlink(os.path.join(folder, TEXT_FILE))
    with History.open(draft) as history:
        assert history.log() == log
        assert snapshot_all(history) == contents
        assert history.record("after\n", "", "edit 13", "Ana").number == 13


@pytest.mark.parametrize("damage", ["garbage header", "flipped record", "flipped text", "empty"])
def test_a_damaged_index_is_rebuilt_from_git(tmp_path, damage):
    draft = tmp_path / "draft.md"
    log, folder = build(draft)
    index_path = os.path.join(folder, INDEX_FILE)
    text_path = os.path.join(folder, TEXT_FILE)
    if damage == "garbage header":
        _flip(index_path, 3)
    elif damage == "flipped record":
        _flip(index_path, RECORD_SIZE * 4 + 25)  # the middle of version 4's record
    elif damage == "flipped text":
        _flip(text_path, 10)
    else:
        open(index_path, "wb").close()
    with History.open(draft) as history:
        assert history.log() == log


def test_a_torn_last_record_is_recovered_from_the_ref(tmp_path):
    """A kill between writing the ref and the index leaves the index one short."""
    draft = tmp_path / "draft.md"
    log, folder = build(draft)
    index_path = os.path.join(folder, INDEX_FILE)
    size = os.path.getsize(index_path)
    os.truncate(index_path, size - RECORD_SIZE // 2)
    with History.open(draft) as history:
        assert history.log() == log
    os.truncate(index_path, size - RECORD_SIZE)
    with History.open(draft) as history:
        assert history.log() == log


def test_refs_are_the_truth_when_the_index_claims_more(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        first = history.record("one\n", "", "edit 1", "Ana")
        history.record("two\n", "", "edit 2", "Ana")
        ref_path = history.git_dir / history.branch_ref("main")
    # The ref moves back to version 1 (as if someone reset it) while the index
    # still claims version 2: the history refuses rather than start version 2
    # again over the old one (issue 13), and `repair` brings version 2 back.
    ref_path.write_text(first.commit + "\n")
    with pytest.raises(HistoryError, match="repair"):
        History.open(draft)
    from infitool_edit.history.repair import repair

    assert "v2" in repair(draft)
    with History.open(draft) as history:
        assert [info.message for info in history.log()] == ["edit 2", "edit 1"]
        assert history.record("three\n", "", "edit 3", "Ana").number == 3


def test_foreign_commits_on_our_refs_are_reported_in_one_line(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("one\n", "", "edit 1", "Ana")
        git_dir, ref = history.git_dir, history.branch_ref("main")
    tree = subprocess.run(["git", "--git-dir", str(git_dir), "mktree"], input="",
                          capture_output=True, text=True, check=True).stdout.strip()
    foreign = subprocess.run(
        ["git", "--git-dir", str(git_dir), "-c", "user.name=x", "-c", "user.email=x@y",
         "commit-tree", tree, "-m", "not ours"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    subprocess.run(["git", "--git-dir", str(git_dir), "update-ref", ref, foreign], check=True)
    with pytest.raises(HistoryError) as caught:
        History.open(draft)
    assert "not an infitool-edit version" in str(caught.value)
    assert "\n" not in str(caught.value)


def _flip(path, offset):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_a_ref_to_a_missing_commit_is_reported_in_one_line(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("one\n", "", "edit 1", "Ana")
        ref_path = history.git_dir / history.branch_ref("main")
    ref_path.write_text("1" * 40 + "\n")
    with pytest.raises(HistoryError) as caught:
        History.open(draft)
    assert "missing" in str(caught.value) and "\n" not in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_any_name_becomes_one_legal_reversible_ref_component(name):
    component = encode_component(name)
    assert "/" not in component and decode_component(component) == name
    checked = subprocess.run(
        ["git", "check-ref-format", f"refs/infitool-edit/{component}/checkpoints/{component}"],
        capture_output=True,
    )
    assert checked.returncode == 0, component
