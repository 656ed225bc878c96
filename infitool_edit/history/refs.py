"""Moving our refs the way git does: a ``<ref>.lock`` file, renamed into place.

Writing a loose ref by git's own protocol costs one small file and a rename,
where ``git update-ref`` costs a process. A concurrent git command honours
the same ``.lock`` file, and the rename makes the move atomic: a ref always
names a complete commit, old or new. (Listing refs, loose or packed, is left
to GitPython.)
"""

from __future__ import annotations

import os


class RefWriter:
    def __init__(self, git_dir: str):
        self._git_dir = git_dir
        self._made_dirs: set[str] = set()

    def update(self, ref: str, sha: str) -> None:
        path = os.path.join(self._git_dir, ref)
        folder = os.path.dirname(path)
        if folder not in self._made_dirs:
            os.makedirs(folder, exist_ok=True)
            self._made_dirs.add(folder)
        lock = path + ".lock"
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"{sha}\n".encode())
        finally:
            os.close(fd)
        os.replace(lock, path)

    def clear_stale_locks(self, prefix: str) -> None:
        """Remove ``.lock`` files a killed session left under ``prefix``.

        Only the holder of the draft's lock writes these refs, so once we
        hold it any ``.lock`` there is a dead session's.
        """
        for folder, _dirs, files in os.walk(os.path.join(self._git_dir, prefix)):
            for name in files:
                if name.endswith(".lock"):
                    os.unlink(os.path.join(folder, name))
