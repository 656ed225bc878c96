"""Empty files made ahead of need, so that storing a git object costs a
write and a rename, not the creation of a file.

On ext4 under load, creating a file (allocating its inode) costs 0.05-2 ms
of kernel time; a version writes three objects at least, so creating their
files was most of what a version cost. A small helper process keeps up to
``DEPTH`` empty files ready and names each one on its stdout as it makes
it; ``take`` opens the oldest one named (an existing file: microseconds)
and the caller renames it away, which is how the helper sees it was used.
With a core to spare the creation leaves the writer's path altogether; when
none is ready (a busy machine, a helper that could not start) ``take``
answers None and the caller creates its own file as before.

A process, not a thread: a thread creating files needs the GIL between its
system calls, and each hand-over of the GIL to it cost the writer up to a
scheduling slice on a loaded machine (profiled: 30% of the writer's time).
The helper starts only after ``START_AFTER`` takes, so a history that
records a few versions (a test, one CLI command) never starts one.

The helper also makes git's 256 fan-out folders of ``objects/`` that do not
exist yet, once its files are ready (each costs as much as a file; git makes
them on demand anyway, and ``git prune`` removes empty ones again, which the
writer of objects handles). It stops when its stdin closes (``close``) or
its parent dies, removing the files nobody took. Names are the caller's
(``objects/tmp_obj_*``, git's own prefix for temporary objects), so any
file left behind is one ``git fsck`` ignores and ``git gc`` removes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque

DEPTH = 24  # a few versions' worth: a burst of records finds them ready
START_AFTER = 32  # takes before the helper starts: about ten versions

_HELPER = r"""
import os, select, signal, sys
from collections import deque
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's terminal's ^C is the parent's
folder, prefix, depth = sys.argv[1], sys.argv[2], int(sys.argv[3])
parent = os.getppid()
ready = deque()  # names made and not yet taken, oldest first
number = fan_out = 0
idle = 0.002
while True:
    while ready and not os.path.exists(os.path.join(folder, ready[0])):
        ready.popleft()
        idle = 0.002
    if len(ready) < depth:
        name = prefix + str(number)
        number += 1
        try:
            os.close(os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
        except FileExistsError:
            continue  # left by an earlier process with our parent's pid: gc's to sweep
        except OSError:
            break
        ready.append(name)
        try:
            os.write(1, b"%d\n" % (number - 1))
        except OSError:  # the parent is gone
            break
        continue
    if fan_out < 256:
        try:
            os.mkdir(os.path.join(folder, "%02x" % fan_out))
        except OSError:
            pass
        fan_out += 1
        continue
    if select.select([0], [], [], idle)[0] and not os.read(0, 1):
        break
    if os.getppid() != parent:
        break
    idle = min(0.1, idle * 2)  # a writer who stopped costs ten wake-ups a second
for name in ready:
    try:
        os.unlink(os.path.join(folder, name))
    except OSError:
        pass
"""


class SpareFiles:
    def __init__(self, folder: str, prefix: str, depth: int = DEPTH, start_after: int = START_AFTER):
        self._folder = folder
        self._prefix = prefix
        self._depth = depth
        self._start_after = start_after
        self._takes = 0
        self._helper: subprocess.Popen | None = None
        self._named: deque[str] = deque()  # files the helper said are ready, oldest first
        self._unread = b""  # a name the helper has not finished writing
        self._closed = False

    def take(self) -> tuple[int, str] | None:
        """``(fd open for writing, path)`` of an empty file, or None when
        none is ready. The caller owns both: it closes the fd and renames
        the file away (or removes it)."""
        if self._closed:
            return None
        if self._helper is None:
            self._takes += 1
            if self._takes >= self._start_after:
                self._start()
            return None
        if not self._named:
            self._read_names()
        while self._named:
            path = os.path.join(self._folder, self._prefix + self._named.popleft())
            try:
                return os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW), path
            except OSError:  # removed under us (git prune): the next one
                continue
        return None

    def _read_names(self) -> None:
        try:
            data = os.read(self._helper.stdout.fileno(), 65536)
        except (BlockingIOError, OSError):
            return
        *names, self._unread = (self._unread + data).split(b"\n")
        self._named.extend(name.decode() for name in names)

    def _start(self) -> None:
        try:
            self._helper = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _HELPER, self._folder, self._prefix, str(self._depth)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                close_fds=True,
            )
            os.set_blocking(self._helper.stdout.fileno(), False)
        except (OSError, ValueError, subprocess.SubprocessError):
            self._helper = None
            self._closed = True  # no helper here: every file is the caller's own

    def close(self) -> None:
        """Stop the helper; it removes the files nobody took."""
        self._closed = True
        helper, self._helper = self._helper, None
        if helper is None:
            return
        try:
            helper.stdin.close()
        except OSError:
            pass
        try:
            helper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
        helper.stdout.close()
