"""Moving our refs the way git does: a ``<ref>.lock`` file, renamed into place.

Writing a loose ref by git's own protocol costs one small file and a rename,
where ``git update-ref`` costs a process. A concurrent git command (``git gc``
packing refs, say) honours the same ``.lock`` file, and the rename makes the
move atomic: a ref always names a complete commit, old or new. (Listing refs,
loose or packed, is left to GitPython.)

Moving a ref that already exists skips the rename: ext4 (``auto_da_alloc``)
flushes a file renamed over another one to disk before the rename returns,
which cost 2-3 ms per version here, more than everything else a version
does. Under the same ``.lock``, the new 41 bytes ``<sha>\n`` overwrite the
old 41 in place with one ``pwrite``: a single small write to the page cache
is never half done when a process is killed (a signal lands between system
calls), so a ref still names a complete commit, old or new. (A power cut
can tear it as it could tear an unsynced rename; ``repair`` rebuilds refs.)
A ref of any other shape (new, packed, symbolic) takes the rename path.

Taking the lock for an in-place move does not create a file either:
creating one (allocating an inode) costs 0.05-2 ms on ext4 under load, so
the lock is a hard link to a file kept for the purpose (``link`` is
exclusive like ``O_EXCL`` and costs tens of µs). Its content is never read:
the in-place path writes the ref itself. The rename path, which needs the
lock's own content, creates the lock file as git does.
"""

from __future__ import annotations

import os
import time

from .errors import HistoryError

# git holds a ref's lock for milliseconds; only the draft's lock holder writes
# our refs, so a lock older than this was left by a killed session of ours.
STALE_LOCK_S = 2.0
_GIVE_UP_S = 5.0


class RefWriter:
    def __init__(self, git_dir: str, lock_source: str | None = None):
        """``lock_source``: a file on git_dir's file system to hard-link
        locks to (made if missing); None creates every lock."""
        self._git_dir = git_dir
        self._made_dirs: set[str] = set()
        self._lock_source = lock_source

    def update(self, ref: str, sha: str) -> None:
        path = os.path.join(self._git_dir, ref)
        folder = os.path.dirname(path)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        lock = path + ".lock"
        line = f"{sha}\n".encode()
        if self._take_linked(lock, ref):
            try:
                if self._overwrite_in_place(path, line):
                    return
            finally:
                os.unlink(lock)
            # Not a loose ref of our length (new, packed, symbolic): the
            # rename path, under a lock of its own.
        fd = self._take(lock, ref)
        try:
            if self._overwrite_in_place(path, line):
                os.close(fd)
                fd = -1
                os.unlink(lock)
                return
            os.write(fd, line)
        finally:
            if fd >= 0:
                os.close(fd)
        os.replace(lock, path)

    def _take_linked(self, lock: str, ref: str) -> bool:
        """Take the lock as a hard link to the lock source; False when links
        are not possible here (the caller creates the lock instead)."""
        source = self._lock_source
        if source is None:
            return False
        deadline = time.monotonic() + _GIVE_UP_S
        while True:
            try:
                os.link(source, lock)
                return True
            except FileExistsError:
                if _is_link_to(lock, source) or _age(lock) > STALE_LOCK_S:
                    _remove(lock)
                elif time.monotonic() > deadline:
                    raise HistoryError(f"another git command keeps {ref} locked") from None
                else:
                    time.sleep(0.001)
            except FileNotFoundError:
                if not self._make_lock_source():
                    return False
            except OSError:  # no hard links on this file system, or across two
                self._lock_source = None
                return False

    def _make_lock_source(self) -> bool:
        try:
            os.close(os.open(self._lock_source, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
            return True
        except OSError:
            self._lock_source = None
            return False

    @staticmethod
    def _overwrite_in_place(path: str, line: bytes) -> bool:
        """Write ``line`` over a loose ref of exactly its length; False when
        there is none such (the caller renames the lock into place)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size != len(line):
                return False
            return os.pwrite(fd, line, 0) == len(line)
        finally:
            os.close(fd)

    def _take(self, lock: str, ref: str) -> int:
        deadline = time.monotonic() + _GIVE_UP_S
        while True:
            try:
                return os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if _age(lock) > STALE_LOCK_S:
                    _remove(lock)
                elif time.monotonic() > deadline:
                    raise HistoryError(f"another git command keeps {ref} locked") from None
                else:
                    time.sleep(0.001)


def _is_link_to(path: str, source: str) -> bool:
    """Whether ``path`` is the same file as ``source``: a lock linked by a
    session of ours. Only the holder of the draft's lock moves our refs and
    it holds such a lock only inside ``update``, so one found here was left
    by a killed session: stale, whatever its (the source's) age."""
    try:
        return os.path.samefile(path, source)
    except OSError:
        return False


def _age(path: str) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
