"""A version's objects go into the pack journal (history/journal.py) and reach git as a
real pack when it is published: on flush, on a checkpoint, on close, by a timer. A
killed session's journal is published by the next open (or by repair). A kill is
simulated by copying the open history's folder: what a SIGKILL leaves is what the
page cache holds, which a copy reads."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from infitool_edit.history import History
from infitool_edit.history import store as history_store
from infitool_edit.history.journal import JOURNAL_FILE
from infitool_edit.history.repair import repair


def git(git_dir, *args, check=True):
    result = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def fsck_clean(git_dir):
    result = git(git_dir, "fsck", "--full", "--strict", check=False)
    assert result.returncode == 0 and "error" not in result.stderr, result.stderr


@pytest.fixture
def no_timer(monkeypatch):
    """Nothing is published unless the test says so."""
    monkeypatch.setattr(history_store, "PUBLISH_AFTER_S", 3600.0)


def killed_copy(tmp_path, name="copy"):
    """The folder as a SIGKILL now would leave it."""
    copy = tmp_path / name
    shutil.copytree(tmp_path / "work", copy, symlinks=True)
    return copy / "draft.md"


def draft_text(number):
    return f"draft at {number}\n" * 30


def test_versions_reach_git_when_published_and_a_checkpoint_publishes_first(tmp_path, no_timer):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        git_dir, ref = history.git_dir, history.branch_ref("main")
        for number in range(1, 4):
            history.record(draft_text(number), "", f"edit {number}", "Ana")
        assert git(git_dir, "rev-parse", "--verify", "-q", ref, check=False).returncode != 0
        assert history.read(2).draft == draft_text(2)  # read from the journal
        history.flush()
        assert git(git_dir, "rev-parse", ref).stdout.strip() == history.head().commit
        assert git(git_dir, "show", f"{ref}:draft.md").stdout == draft_text(3)
        assert (history.folder / JOURNAL_FILE).stat().st_size == 12  # the next one, header only
        fsck_clean(git_dir)
        fourth = history.record(draft_text(4), "n\n", "edit 4", "Ana")
        history.checkpoint("four")
        checkpoint = f"{history.ref_prefix}/checkpoints/four"
        assert git(git_dir, "rev-parse", checkpoint, ref).stdout.split() == [fourth.commit] * 2
        fsck_clean(git_dir)
        assert history.read(2).draft == draft_text(2)  # now read from the pack
    packs = sorted(p.name for p in (git_dir / "objects" / "pack").iterdir())
    assert len(packs) == 4 and all(name.endswith((".pack", ".idx")) for name in packs), packs
    for pack in (git_dir / "objects" / "pack").glob("*.pack"):
        git(git_dir, "verify-pack", str(pack.with_suffix(".idx")))


def test_the_timer_publishes_without_a_flush(tmp_path, monkeypatch):
    monkeypatch.setattr(history_store, "PUBLISH_AFTER_S", 0.01)
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        info = history.record("one\n", "", "edit 1", "Ana")
        git_dir, ref = history.git_dir, history.branch_ref("main")
        for _ in range(3000):  # up to 30 s on a loaded machine; done at once on an idle one
            if git(git_dir, "rev-parse", "--verify", "-q", ref, check=False).stdout.strip() == info.commit:
                break
            time.sleep(0.01)
        assert git(git_dir, "rev-parse", ref).stdout.strip() == info.commit


def test_a_killed_sessions_journal_is_published_by_the_next_open(tmp_path, no_timer):
    (tmp_path / "work").mkdir()
    draft = tmp_path / "work" / "draft.md"
    with History.open(draft) as history:
        history.record(draft_text(1), "", "edit 1", "Ana")
        history.flush()
        history.record(draft_text(2), "", "edit 2", "Ana")
        history.record(draft_text(3), "", "edit 3", "Ana", state=b"s" * 5000)
        history.fork(2, "Ana")
        history.record(draft_text(5), "", "edit 5", "Ana")
        assert (history.folder / JOURNAL_FILE).exists()
        copy = killed_copy(tmp_path)
        main, fork = history.version(3).commit, history.version(5).commit
    with History.open(copy) as history:
        assert history.count() == 5
        assert [history.read(n).draft for n in (1, 2, 3, 4, 5)] == [
            draft_text(n) for n in (1, 2, 3, 2, 5)
        ]
        assert history.state(3) == b"s" * 5000
        assert history.current_branch == "fork-1"
        git_dir = history.git_dir
        assert not (history.folder / JOURNAL_FILE).exists()
        refs = [history.branch_ref("main"), history.branch_ref("fork-1")]
    assert git(git_dir, "rev-parse", *refs).stdout.split() == [main, fork]
    fsck_clean(git_dir)


def with_versions(tmp_path, count: int) -> History:
    """The history of a new draft in ``tmp_path/work`` with versions 1 to ``count`` recorded."""
    (tmp_path / "work").mkdir()
    history = History.open(tmp_path / "work" / "draft.md")
    for number in range(1, count + 1):
        history.record(draft_text(number), "", f"edit {number}", "Ana")
    return history


def test_a_torn_last_record_is_cut_off_and_the_rest_kept(tmp_path, no_timer):
    with with_versions(tmp_path, 3) as history:
        journal = history.folder / JOURNAL_FILE
        three = journal.stat().st_size
        copy = killed_copy(tmp_path)  # versions 1-3, their index entries
        history.record(draft_text(4), "", "edit 4", "Ana")
        four = journal.read_bytes()
    # Killed halfway through the write of version 4's objects: its index entry never came.
    copied_journal = copy.parent / ".draft.md.infitool" / "infitool-edit" / "draft.md" / JOURNAL_FILE
    assert copied_journal.exists()
    copied_journal.write_bytes(four[: three + (len(four) - three) // 2])
    with History.open(copy) as history:
        assert history.count() == 3
        assert [history.read(n).draft for n in (1, 2, 3)] == [draft_text(n) for n in (1, 2, 3)]
        history.record(draft_text(4), "", "edit 4 again", "Ana")
        git_dir = history.git_dir
    fsck_clean(git_dir)


def test_a_kill_after_the_pack_is_linked_publishes_it_again(tmp_path, no_timer):
    with with_versions(tmp_path, 2) as history:
        history._journal.publish()  # the pack is in git; the refs have not moved yet
        copy = killed_copy(tmp_path)
        head = history.head().commit
    with History.open(copy) as history:
        assert history.count() == 2 and history.read(2).draft == draft_text(2)
        git_dir, ref = history.git_dir, history.branch_ref("main")
    assert git(git_dir, "rev-parse", ref).stdout.strip() == head
    assert len(list((git_dir / "objects" / "pack").glob("*.pack"))) == 1
    fsck_clean(git_dir)


def test_repair_publishes_a_journal_left_behind(tmp_path, no_timer):
    with with_versions(tmp_path, 3) as history:
        copy = killed_copy(tmp_path)
    said = repair(copy)
    assert "newest version v3" in said, said
    with History.open(copy) as history:
        assert history.count() == 3 and history.read(3).draft == draft_text(3)


@pytest.mark.parametrize("count", [1, 10, 1001])
def test_a_chunk_folder_tree_is_the_tree_git_would_sort(tmp_path, count):
    from infitool_edit.history.chunks import chunk_name
    from infitool_edit.history.objects import ObjectStore

    git(tmp_path / "repo.git", "init", "-q", "--bare", check=False)
    import git as gitpython

    store = ObjectStore(gitpython.Repo(tmp_path / "repo.git"))
    shas = [store.write_blob(f"chunk {n}\n".encode()) for n in range(count)]
    by_name = store.write_tree({chunk_name(n): sha for n, sha in enumerate(reversed(shas))})
    numbered = store.write_numbered_tree(list(reversed(shas)))
    assert numbered == by_name
    assert git(tmp_path / "repo.git", "ls-tree", numbered).stdout.count("\n") == count


def fails_once(real, error: OSError):
    """``real`` that raises ``error`` the first time it is called."""
    failures = iter([error])

    def wrapper(*args):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(*args)

    return wrapper


def versions_past_a_failed_flush(draft):
    """Version 1, a flush that fails, version 2, a flush that works: git
    names version 2, is clean, and a reopened history reads both. Returns
    the git folder."""
    with History.open(draft) as history:
        history.record(draft_text(1), "", "edit 1", "Ana")
        with pytest.raises(OSError):
            history.flush()
        history.record(draft_text(2), "", "edit 2", "Ana")
        history.flush()
        git_dir, ref = history.git_dir, history.branch_ref("main")
        assert git(git_dir, "rev-parse", ref).stdout.strip() == history.head().commit
    fsck_clean(git_dir)
    with History.open(draft) as history:
        assert [history.read(n).draft for n in (1, 2)] == [draft_text(1), draft_text(2)]
    return git_dir


def test_a_publish_that_fails_is_retried_and_loses_nothing(tmp_path, no_timer, monkeypatch):
    from infitool_edit.history import journal

    real_install = journal._install
    monkeypatch.setattr(journal, "_install", fails_once(real_install, OSError(28, "No space left on device")))
    versions_past_a_failed_flush(tmp_path / "draft.md")


def test_a_failed_ref_move_after_publishing_does_not_grow_the_pack(tmp_path, no_timer, monkeypatch):
    from infitool_edit.history.refs import RefWriter

    real_update = RefWriter.update
    monkeypatch.setattr(RefWriter, "update", fails_once(real_update, OSError(5, "Input/output error")))
    git_dir = versions_past_a_failed_flush(tmp_path / "draft.md")
    for pack in (git_dir / "objects" / "pack").glob("*.pack"):
        git(git_dir, "verify-pack", str(pack.with_suffix(".idx")))
