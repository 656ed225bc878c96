"""The draft on disk: read it strictly, write it atomically, notice when
another program changed it.

The draft file is the writer's, not ours: we read it only as UTF-8 text,
replace it only whole (a temporary file in the same folder, flushed, then
renamed over it, so a reader or a crash sees the old file or the new one and
never half of one; fsynced on save and on close), and never overwrite a
change someone else made since we last read or wrote it.

Change detection compares what ``os.stat`` says (inode, size, mtime) with
what we saw last; when they differ we compare the bytes before calling it a
change, so a ``touch`` or a rewrite with identical bytes is not a conflict.
An in-place rewrite of the same size inside one mtime tick would go
unnoticed; every editor we know of either changes the size, lands in a later
tick, or replaces the file (a new inode).
"""

from __future__ import annotations

import errno
import glob
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infitool_edit.errors import InfitoolError

_TEMP_SUFFIX = ".tmp"
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
# Mode of a draft we create, before the umask (what `open(..., "w")` uses).
_NEW_FILE_MODE = 0o666


class DraftError(InfitoolError, ValueError):
    """The draft cannot be read or written; ``str()`` is one line naming the
    file and the problem. A ValueError like the command language's and the
    document's errors, so a caller can treat every refusal alike."""


class DraftChanged(DraftError):
    """Another program changed the draft since we last read or wrote it."""


class DraftReadOnly(DraftError):
    """The draft is read-only: it can be read, not edited."""


@dataclass(frozen=True)
class DiskStamp:
    """What we last saw on disk; ``None`` fields mean the file did not exist."""

    inode: int | None
    size: int | None
    mtime_ns: int | None
    # The bytes themselves, not a hash of them: they are compared only when
    # the stat changed, and hashing a 1 MB draft on every write cost more
    # than the rare comparison it served.
    content: bytes | None

    @classmethod
    def missing(cls) -> DiskStamp:
        return cls(None, None, None, None)

    def same_stat(self, st: os.stat_result | None) -> bool:
        if st is None:
            return self.inode is None
        return (self.inode, self.size, self.mtime_ns) == (
            st.st_ino, st.st_size, st.st_mtime_ns
        )


def decode_draft(path: Path, data: bytes) -> str:
    """The text of a draft's bytes, or a DraftError saying why it is not
    text."""
    if b"\0" in data:
        raise DraftError(f"{path}: binary file (contains NUL bytes), not a text draft")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DraftError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"
        ) from None


def _describe(path: Path, exc: OSError, doing: str) -> DraftError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EACCES:
        reason = "permission denied"
    return DraftError(f"{path}: cannot {doing}: {reason}")


class DraftFile:
    """One draft on disk and what we last knew about it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._unsynced = False  # a write whose bytes may still sit in the page cache
        self._stamp: DiskStamp | None = None  # None until the first read

    # --- reading ----------------------------------------------------------

    def read(self) -> str:
        """The draft's text ('' for a draft that does not exist yet, whose
        folder does); remembers what it saw for change detection."""
        data = self._read_bytes()
        if data is None:
            self._stamp = DiskStamp.missing()
            return ""
        text = decode_draft(self.path, data)
        self._stamp = self._stamp_for(data)
        return text

    def _read_bytes(self) -> bytes | None:
        folder = self.path.parent
        try:
            if not folder.is_dir():
                raise DraftError(f"{self.path}: folder {folder} does not exist")
        except OSError as exc:
            raise _describe(self.path, exc, "read") from None
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise DraftError(f"{self.path}: is a directory, not a draft") from None
        except OSError as exc:
            raise _describe(self.path, exc, "read") from None

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _describe(self.path, exc, "stat") from None

    def _stamp_for(self, data: bytes) -> DiskStamp:
        st = self._stat()
        if st is None:  # deleted between the read and the stat
            return DiskStamp.missing()
        return DiskStamp(st.st_ino, st.st_size, st.st_mtime_ns, data)

    # --- state ------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def read_only(self) -> bool:
        """True when the writer marked the draft read-only (no write bit at
        all) or its folder cannot take our temporary file. Mode bits rather
        than ``os.access``, because as root ``os.access`` says yes to
        everything and we would overwrite a file the writer protected."""
        st = self._stat()
        if st is not None and not st.st_mode & _WRITE_BITS:
            return True
        return not os.access(self._target.parent, os.W_OK | os.X_OK)

    def changed_on_disk(self) -> bool:
        """Whether the file differs from what we last read or wrote."""
        if self._stamp is None:
            raise RuntimeError("changed_on_disk() before read()")
        st = self._stat()
        if self._stamp.same_stat(st):
            return False
        if st is None or self._stamp.inode is None:
            return True  # appeared or disappeared
        data = self._read_bytes()
        if data is None:
            return True
        if data != self._stamp.content:
            return True
        # Same bytes, new stat (touched, or rewritten identically): adopt it
        # so the next check is cheap again.
        self._stamp = self._stamp_for(data)
        return False

    def check_unchanged(self) -> None:
        """Raise DraftChanged if another program changed the draft."""
        if self.changed_on_disk():
            raise DraftChanged(
                f"{self.path}: changed on disk by another program since it was "
                "loaded; not overwriting it (reopen the draft to record the file "
                "as it is now as a new version)"
            )

    # --- writing ----------------------------------------------------------

    def write(self, text: str, *, durable: bool = True) -> None:
        """Replace the draft with ``text`` atomically, keeping its mode and
        (where allowed) its owner. Refuses (DraftChanged) if someone else
        changed it first, and (DraftReadOnly) if it is read-only.

        Every write is atomic (a crash or SIGKILL leaves the old file or the
        new one). ``durable=False`` skips the fsyncs, which cost milliseconds
        per write and would cap a fast model at a few hundred commands a
        second; ``sync()`` (on save and on close) makes such a write survive
        a power cut too."""
        self.check_unchanged()
        if self.read_only:
            raise DraftReadOnly(f"{self.path}: the draft is read-only; not writing it")
        data = text.encode("utf-8")
        self._replace_with(data, self._stat(), durable=durable)
        self._stamp = self._stamp_for(data)
        self._unsynced = not durable

    def sync(self) -> None:
        """Make the last write durable, if it is not yet."""
        if not self._unsynced:
            return
        target = self._target
        try:
            fd = os.open(target, os.O_RDONLY)
        except OSError as exc:
            raise _describe(self.path, exc, "write") from None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_folder(target.parent)
        self._unsynced = False

    @property
    def _target(self) -> Path:
        """The file a write replaces: through a symlink, the file it points
        to, so the writer's link stays a link."""
        return Path(os.path.realpath(self.path))

    def _temporary_prefix(self, target: Path) -> str:
        return f".{target.name}."

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete temporary files a killed write left beside the draft. Only
        safe while holding the draft's lock (no other write is under way)."""
        target = self._target
        pattern = f"{glob.escape(self._temporary_prefix(target))}*{_TEMP_SUFFIX}"
        removed = []
        for candidate in target.parent.glob(pattern):
            _remove_quietly(str(candidate))
            removed.append(candidate)
        return removed

    def _replace_with(self, data: bytes, old: os.stat_result | None, *, durable: bool) -> None:
        target = self._target
        try:
            fd, temp_name = tempfile.mkstemp(
                dir=target.parent, prefix=self._temporary_prefix(target), suffix=_TEMP_SUFFIX
            )
        except OSError as exc:
            raise _describe(self.path, exc, "write") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                _copy_ownership(handle.fileno(), old)
                if durable:
                    os.fsync(handle.fileno())
            os.replace(temp_name, target)
        except OSError as exc:
            _remove_quietly(temp_name)
            raise _describe(self.path, exc, "write") from None
        except BaseException:
            _remove_quietly(temp_name)
            raise
        if durable:
            _fsync_folder(target.parent)


def _copy_ownership(fd: int, old: os.stat_result | None) -> None:
    """Give the new file the old one's mode, and its owner when we may (as
    root, editing someone else's draft must not hand it to root)."""
    if old is None:
        os.fchmod(fd, _NEW_FILE_MODE & ~_UMASK)
        return
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)
        except PermissionError:
            pass  # only root may give a file away; the mode below still holds
    os.fchmod(fd, stat.S_IMODE(old.st_mode))  # after chown, which clears setuid bits


def _current_umask() -> int:
    # os.umask can only be read by setting it; do that once, at import, rather
    # than on every write while other threads may be creating files.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _current_umask()


def _remove_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (the new directory entry)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data is safe
    finally:
        os.close(fd)
