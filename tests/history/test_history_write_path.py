"""The cheap write path of a version: ref locks taken as hard links, zlib
windows that fit the object, fan-out folders that git may remove."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import zlib

from helpers.git_packs import pack_entry_data
from infitool_edit.history import History
from infitool_edit.history.store import REF_LOCK_SOURCE


def git(git_dir, *args):
    result = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_objects_use_a_window_that_fits_them_and_git_reads_them(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        info = history.record("short draft\n", "", "edit 1", "Ana")
        git_dir = history.git_dir
    raw = pack_entry_data(git_dir, info.commit)
    # The zlib header's CINFO (high nibble of the first byte) is log2(window) - 8:
    # a 512-byte window for a commit of a few hundred bytes, not zlib's 32 KB.
    assert raw[0] >> 4 == 1
    assert zlib.decompressobj().decompress(raw).startswith(b"tree ")
    assert "edit 1" in git(git_dir, "cat-file", "-p", info.commit)


def test_git_prune_under_an_open_history_removes_fan_out_folders_it_needs(tmp_path):
    """``git prune --expire=now`` deletes empty fan-out folders (and any
    tmp_obj_* file); the next records make the folders again."""
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        for number in range(1, 13):
            history.record(f"draft {number}\n", "", f"edit {number}", "Ana")
        objects = history.git_dir / "objects"
        git(history.git_dir, "repack", "-a", "-d", "-q")  # loose objects into a pack: fan-outs empty
        git(history.git_dir, "prune", "--expire=now")
        assert not [name for name in os.listdir(objects) if len(name) == 2]
        for number in range(13, 30):
            history.record(f"draft {number}\n", "", f"edit {number}", "Ana")
        git_dir = history.git_dir
    git(git_dir, "fsck", "--full", "--strict")
    with History.open(draft) as history:
        assert [history.read(n).draft for n in (2, 29)] == ["draft 2\n", "draft 29\n"]


def test_a_linked_ref_lock_left_by_a_killed_session_is_taken_over_at_once(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("one\n", "", "edit 1", "Ana")
        lock = history.git_dir / (history.branch_ref("main") + ".lock")
        source = history.folder / REF_LOCK_SOURCE
    assert source.exists() and not lock.exists()
    os.link(source, lock)  # what a session killed inside RefWriter.update leaves
    os.utime(source)  # its age says nothing: it is the source's
    with History.open(draft) as history:
        started = time.monotonic()
        assert history.record("two\n", "", "edit 2", "Ana").number == 2
        assert time.monotonic() - started < 1.0
    assert not lock.exists()


def test_a_ref_lock_held_by_git_is_waited_for(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("one\n", "", "edit 1", "Ana")
        history.flush()
        lock = history.git_dir / (history.branch_ref("main") + ".lock")
        lock.write_text("")  # git holds the ref: a fresh lock file of its own
        releaser = threading.Timer(0.2, lock.unlink)
        started = time.monotonic()
        releaser.start()
        assert history.record("two\n", "", "edit 2", "Ana").number == 2
        history.flush()  # the ref moves when the journal is published
        assert time.monotonic() - started >= 0.15
        releaser.join()
        git_dir, ref = history.git_dir, history.branch_ref("main")
    assert git(git_dir, "log", "--format=%s", ref).splitlines() == ["edit 2", "edit 1"]
