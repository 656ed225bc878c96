"""Empty files made ahead of need, so that storing a git object costs a
write and a rename, not the creation of a file.

On ext4 under load, creating a file (allocating its inode) costs 0.05-2 ms
of kernel time; a version writes three objects at least, so creating their
files was most of what a version cost. A daemon thread keeps up to
``DEPTH`` empty files ready, each already open for writing; ``take`` hands
one over without a system call. On a machine with a core to spare the
creation leaves the writer's path altogether; on a busy one the thread
competes for the same core, and ``take`` finding none ready (``None``) is
the caller's cue to create its own file as before.

The thread also makes the 256 fan-out folders of ``objects/`` that do not
exist yet, once, after the first files are ready: each costs as much as a
file, and git makes them on demand anyway (``git prune`` removes empty ones
again, which the writer of objects handles).

The files are named by the caller (``objects/tmp_obj_*``, as git names its
own temporary objects), so a process killed with spares ready leaves empty
files that ``git fsck`` ignores and ``git gc`` removes; ``close`` removes
them.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque

DEPTH = 24  # a few versions' worth: a burst of records finds them ready


class SpareFiles:
    def __init__(self, folder: str, prefix: str, depth: int = DEPTH):
        self._folder = folder
        self._prefix = prefix
        self._depth = depth
        self._ready: deque[tuple[int, str]] = deque()
        self._wanted = threading.Condition()
        self._names = itertools.count()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failed = False  # creating failed once (a read-only folder…): stop trying

    def take(self) -> tuple[int, str] | None:
        """``(fd open for writing, path)`` of an empty file, or None when
        none is ready. The caller owns both: it closes the fd and renames or
        removes the file."""
        with self._wanted:
            if self._closing or self._failed:
                return None
            if self._thread is None:
                # Started on the first write, so a history only read costs no thread.
                self._thread = threading.Thread(target=self._fill, name="infitool-spare-files", daemon=True)
                self._thread.start()
            spare = self._ready.popleft() if self._ready else None
            if len(self._ready) <= self._depth // 2:
                self._wanted.notify()
            return spare

    def close(self) -> None:
        """Stop the thread and remove the files nobody took."""
        with self._wanted:
            self._closing = True
            self._wanted.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._wanted:
            left, self._ready = list(self._ready), deque()
        for fd, path in left:
            _discard(fd, path)

    def _fill(self) -> None:
        fan_outs = iter(range(256))
        while True:
            with self._wanted:
                while not self._closing and len(self._ready) >= self._depth and fan_outs is None:
                    self._wanted.wait()
                if self._closing:
                    return
                short = len(self._ready) < self._depth
            if short:
                spare = self._create()
                if spare is None:
                    return
                with self._wanted:
                    if self._closing:
                        _discard(*spare)
                        return
                    self._ready.append(spare)
            elif fan_outs is not None:
                fan_out = next(fan_outs, None)
                if fan_out is None:
                    fan_outs = None
                else:
                    _make_folder(os.path.join(self._folder, f"{fan_out:02x}"))

    def _create(self) -> tuple[int, str] | None:
        path = os.path.join(self._folder, f"{self._prefix}{next(self._names)}")
        try:
            # 0444: git's mode for objects, which these files become.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except OSError:
            with self._wanted:
                self._failed = True
            return None
        return fd, path


def _make_folder(path: str) -> None:
    try:
        os.mkdir(path)
    except OSError:
        pass  # there already, or not makeable: the writer makes it on demand


def _discard(fd: int, path: str) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
    try:
        os.unlink(path)
    except OSError:
        pass
