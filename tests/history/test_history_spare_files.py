"""Writing objects without creating files on the writer's path: spare files
made ahead by a helper process, ref locks taken as hard links, small zlib
windows."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import zlib

from infitool_edit.history import History
from infitool_edit.history.spare import SpareFiles
from infitool_edit.history.store import REF_LOCK_SOURCE


def git(git_dir, *args):
    result = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def spares_in(git_dir):
    return sorted(name for name in os.listdir(git_dir / "objects") if name.startswith("tmp_obj_"))


def wait_for_spares(history, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not spares_in(history.git_dir) and time.monotonic() < deadline:
        time.sleep(0.01)


def take_one(spares, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        taken = spares.take()
        if taken is not None:
            return taken
        time.sleep(0.005)
    raise AssertionError("no spare file became ready")


def test_spare_files_are_empty_open_files_and_close_removes_the_unused(tmp_path):
    spares = SpareFiles(str(tmp_path), "tmp_obj_test_", depth=4, start_after=2)
    assert spares.take() is None  # too few takes yet to start a helper
    fd, path = take_one(spares)
    assert os.path.dirname(path) == str(tmp_path) and os.path.getsize(path) == 0
    os.write(fd, b"mine")
    os.close(fd)
    os.rename(path, tmp_path / "taken")  # as an object is moved into place
    second = take_one(spares)  # the helper saw the first go and made another
    os.close(second[0])
    os.unlink(second[1])
    spares.close()
    files = sorted(name for name in os.listdir(tmp_path) if (tmp_path / name).is_file())
    assert files == ["taken"]  # the helper removed the ones nobody took
    # Once its files were ready, the helper made git's fan-out folders.
    folders = {name for name in os.listdir(tmp_path) if (tmp_path / name).is_dir()}
    assert folders <= {f"{n:02x}" for n in range(256)}
    assert spares.take() is None  # closed: callers make their own


def test_a_spare_removed_under_the_taker_is_skipped(tmp_path):
    spares = SpareFiles(str(tmp_path), "tmp_obj_test_", depth=3, start_after=1)
    spares.take()
    deadline = time.monotonic() + 10
    while len([n for n in os.listdir(tmp_path) if n.startswith("tmp_obj_")]) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    first = sorted(n for n in os.listdir(tmp_path) if n.startswith("tmp_obj_"))[0]
    os.unlink(tmp_path / first)  # what git prune --expire=now does
    fd, path = take_one(spares)
    os.close(fd)
    assert os.path.basename(path) != first and os.path.exists(path)
    os.unlink(path)
    spares.close()


def test_records_use_spares_and_leave_no_temporary_files(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        for number in range(1, 13):  # enough takes to start the helper
            history.record(f"draft {number}\n", "", f"edit {number}", "Ana")
        wait_for_spares(history)
        assert spares_in(history.git_dir)  # the helper made them ahead of need
        for number in range(13, 40):
            history.record(f"line {number}\n" * 50, f"notes {number}", f"edit {number}", "Ana")
        git_dir = history.git_dir
    assert spares_in(git_dir) == []
    git(git_dir, "fsck", "--full", "--strict")
    with History.open(draft) as history:
        assert history.read(39).draft == "line 39\n" * 50


def test_objects_use_a_window_that_fits_them_and_git_reads_them(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        info = history.record("short draft\n", "", "edit 1", "Ana")
        git_dir = history.git_dir
    path = git_dir / "objects" / info.commit[:2] / info.commit[2:]
    raw = path.read_bytes()
    # The zlib header's CINFO (high nibble of the first byte) is log2(window) - 8:
    # a 512-byte window for a commit of a few hundred bytes, not zlib's 32 KB.
    assert raw[0] >> 4 == 1
    assert zlib.decompress(raw).startswith(b"commit ")
    assert "edit 1" in git(git_dir, "cat-file", "-p", info.commit)


def test_git_prune_under_an_open_history_takes_its_spares_and_folders(tmp_path):
    """``git prune --expire=now`` deletes every tmp_obj_* file and every
    empty fan-out folder; the next records make their own and go on."""
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        for number in range(1, 13):
            history.record(f"draft {number}\n", "", f"edit {number}", "Ana")
        wait_for_spares(history)
        git(history.git_dir, "prune", "--expire=now")
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
        lock = history.git_dir / (history.branch_ref("main") + ".lock")
        lock.write_text("")  # git holds the ref: a fresh lock file of its own
        releaser = threading.Timer(0.2, lock.unlink)
        started = time.monotonic()
        releaser.start()
        assert history.record("two\n", "", "edit 2", "Ana").number == 2
        assert time.monotonic() - started >= 0.15
        releaser.join()
        git_dir, ref = history.git_dir, history.branch_ref("main")
    assert git(git_dir, "log", "--format=%s", ref).splitlines() == ["edit 2", "edit 1"]
