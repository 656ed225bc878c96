"""The draft on disk: read it strictly and boundedly, write it atomically,
and never lose a change another program made.

The draft file is the writer's, not ours: we read it only as UTF-8 text from
a regular file no larger than a limit (a FIFO, a device or a link to one is
refused without blocking), replace it only whole (a temporary file in the
same folder, flushed, then renamed over it, so a reader or a crash sees the
old file or the new one and never half of one; fsynced on save and on
close), and never overwrite a change someone else made since we last read or
wrote it.

Change detection compares what ``fstat`` says (inode, size, mtime) with what
we saw last; when they differ we compare the bytes before calling it a
change, so a ``touch`` or a rewrite with identical bytes is not a conflict.

A write is a compare-and-swap, as close to one as POSIX allows without the
other program's cooperation (see ``PendingWrite``): the old file is held
open from the check to after the rename, checked again just before the
rename and once more after it. A program that opened the old file before
the rename can still write to it after, for as long as it keeps its handle:
so every replaced inode stays open and watched (``check_replaced``, at
every command and on close) until the kernel says that no other program
holds it open any more (a write lease on it is granted only then) and its
bytes are still the ones we replaced. Whatever such a program wrote
reaches the caller as ``DraftRaced`` with their bytes, never silently
dropped with the replaced inode.

The window that remains (see docs/session.md): where a lease cannot be
taken (a draft owned by another user, a file system without leases, a
replaced file with another hard link) a replaced inode is watched for
``_UNPROVEN_WATCH_S`` seconds only; a program holding it longer than that
and writing after loses that write. And a same-size overwrite of the
current file within one tick of the file system's clock after our own
write is not seen by the stat comparison (an append always is: it changes
the size).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from infitool_edit.errors import InfitoolError

_TEMP_SUFFIX = ".tmp"
# Our temporary files are `.<draft name>.infitool-<pid>-<16 hex digits>.tmp`;
# only names of exactly that shape are ever removed as leftovers of ours.
_TEMP_MARK = "infitool"
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
# Mode of a draft we create, before the umask (what `open(..., "w")` uses).
_NEW_FILE_MODE = 0o666
# How long a replaced inode is watched when the kernel cannot tell us that
# nobody else holds it open (no lease possible); see the module docstring.
_UNPROVEN_WATCH_S = 10.0
# At most this many replaced inodes are watched; past it the oldest is let go
# (each is one file descriptor; only programs that hold old handles for long
# make more than one or two).
_MAX_WATCHED = 64

MAX_DRAFT_MB_ENV = "INFITOOL_EDIT_MAX_DRAFT_MB"
DEFAULT_MAX_DRAFT_BYTES = 64 * 2**20  # a long book is 2-3 MB; a draft past this is not prose


def max_draft_bytes() -> int:
    """The size limit of a draft: ``$INFITOOL_EDIT_MAX_DRAFT_MB`` megabytes
    (a positive number), else 64 MB."""
    value = os.environ.get(MAX_DRAFT_MB_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_DRAFT_BYTES
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = -1.0
    if not 0 < megabytes < 2**40:
        raise DraftError(f"{MAX_DRAFT_MB_ENV}={value!r} is not a positive number of megabytes")
    return int(megabytes * 2**20)


class DraftError(InfitoolError, ValueError):
    """The draft cannot be read or written; ``str()`` is one line naming the
    file and the problem. A ValueError like the command language's and the
    document's errors, so a caller can treat every refusal alike."""


class DraftChanged(DraftError):
    """Another program changed the draft since we last read or wrote it."""


class DraftRaced(DraftChanged):
    """Another program wrote the draft while we were replacing it.

    ``base`` is what the file held when we last knew it, ``theirs`` what the
    other program made of it (read from the file, or from the inode our
    rename replaced). ``replaced`` says whether our bytes are now in the file
    (their change landed in the old inode) or not (we stopped before the
    rename). Either way their bytes are here, for the caller to keep.

    A write found in a replaced inode is reported again, by every check,
    until the caller has kept it and called ``settle``: a caller that only
    sees a refused command (this is a DraftChanged) cannot drop it."""

    def __init__(self, message: str, *, base: bytes, theirs: bytes, replaced: bool,
                 settle: Callable[[], None] | None = None):
        super().__init__(message)
        self.base = base
        self.theirs = theirs
        self.replaced = replaced
        self._settle = settle

    def settle(self) -> None:
        """Their bytes are kept: stop reporting this write."""
        if self._settle is not None:
            self._settle()
            self._settle = None


class DraftReadOnly(DraftError):
    """The draft is read-only: it can be read, not edited."""


class DraftTooLarge(DraftError):
    """The draft is larger than the configured limit."""


@dataclass(frozen=True)
class DiskStamp:
    """What we last saw on disk; ``None`` fields mean the file did not exist."""

    inode: int | None
    size: int | None
    mtime_ns: int | None
    # The content itself, not a hash of it: it is compared only when the
    # stat changed, and hashing a 1 MB draft on every write cost more than
    # the rare comparison it served. Either the bytes, or the text they are
    # the UTF-8 of: the editor's own string, so a 50 MB draft is not held
    # a second time as bytes (see ``Content``).
    content: Content | None

    @classmethod
    def missing(cls) -> DiskStamp:
        return cls(None, None, None, None)

    def same_stat(self, st: os.stat_result | None) -> bool:
        if st is None:
            return self.inode is None
        return (self.inode, self.size, self.mtime_ns) == (
            st.st_ino, st.st_size, st.st_mtime_ns
        )


# What a file held or will hold: its bytes, or the text they are the UTF-8 of.
Content = bytes | str
# Text is compared with bytes and written this many characters at a time,
# so a 50 MB draft is never encoded whole.
_ENCODE_PIECE = 1 << 20


def content_bytes(content: Content | None) -> bytes:
    """The bytes of a content (b'' for None); encodes text, for the rare
    paths (a race) that hand bytes on."""
    if content is None:
        return b""
    return content if isinstance(content, bytes) else content.encode("utf-8")


def same_content(content: Content | None, data: bytes) -> bool:
    """Whether ``data`` are the bytes of ``content``, comparing text a piece
    at a time (no whole encoded copy)."""
    if content is None:
        return data == b""
    if isinstance(content, bytes):
        return data == content
    view = memoryview(data)
    offset = 0
    for start in range(0, len(content), _ENCODE_PIECE):
        piece = content[start : start + _ENCODE_PIECE].encode("utf-8")
        if view[offset : offset + len(piece)] != piece:
            return False
        offset += len(piece)
    return offset == len(data)


def _encoded_pieces(content: Content):
    if isinstance(content, bytes):
        yield content
        return
    for start in range(0, len(content), _ENCODE_PIECE):
        yield content[start : start + _ENCODE_PIECE].encode("utf-8")


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


# --- line endings -------------------------------------------------------------

_LINE_ENDS = re.compile(r"\r\n|\r|\n")


def line_ending_of(text: str) -> str:
    """The line ending a draft uses: ``\\r\\n``, ``\\r`` or ``\\n``, whichever
    ends most of its lines (``\\n`` for a text with none, and on a tie)."""
    if "\r" not in text:
        return "\n"
    crlf = text.count("\r\n")
    counts = {"\n": text.count("\n") - crlf, "\r\n": crlf, "\r": text.count("\r") - crlf}
    return max(("\n", "\r\n", "\r"), key=lambda ending: counts[ending])


def with_line_ending(text: str, ending: str) -> str:
    """``text`` (lines ended by ``\\n``) with every line ended by ``ending``."""
    return text if ending == "\n" else text.replace("\n", ending)


def _describe(path: Path, exc: OSError, doing: str) -> DraftError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EACCES:
        reason = "permission denied"
    return DraftError(f"{path}: cannot {doing}: {reason}")


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _same_file_state(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns
    )


@dataclass
class _Replaced:
    """An inode one of our renames replaced, held open: a program that opened
    it before the rename may still write to it."""

    fd: int
    seen: os.stat_result
    base: Content  # what it held when we last looked
    replaced_at: float  # time.monotonic() of the rename

    def written_since_seen(self, now: os.stat_result) -> bool:
        # Size and mtime: our own rename changes the old inode's ctime.
        return (now.st_size, now.st_mtime_ns) != (self.seen.st_size, self.seen.st_mtime_ns)


def _held_by_nobody_else(fd: int, st: os.stat_result) -> bool | None:
    """Whether no other open file (any process's) refers to this inode:
    True or False as the kernel says, None where it cannot say.

    A write lease is granted only while ours is the only open file on the
    inode (Linux's check_conflicting_open), and released at once. Taken only
    on an inode with no name left (``st_nlink == 0``): nobody can open it
    while we hold the lease, so no lease-break signal (SIGIO, whose default
    action ends the process) can come."""
    lease = getattr(fcntl, "F_SETLEASE", None)
    if lease is None or st.st_nlink != 0:
        return None
    try:
        fcntl.fcntl(fd, lease, fcntl.F_WRLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return False
        return None  # EACCES (not our file), EINVAL (no leases here), ...
    try:
        fcntl.fcntl(fd, lease, fcntl.F_UNLCK)
    except OSError:
        pass
    return True


class DraftFile:
    """One draft on disk and what we last knew about it."""

    def __init__(self, path: Path, *, max_bytes: int | None = None):
        self.path = Path(path)
        self.max_bytes = max_draft_bytes() if max_bytes is None else max_bytes
        self._unsynced = False  # a write whose bytes may still sit in the page cache
        self._stamp: DiskStamp | None = None  # None until the first read
        self._replaced: list[_Replaced] = []  # oldest first

    # --- reading ----------------------------------------------------------

    def read(self) -> str:
        """The draft's text ('' for a draft that does not exist yet, whose
        folder does); remembers what it saw for change detection."""
        opened = self._open_existing()
        if opened is None:
            self._stamp = DiskStamp.missing()
            return ""
        fd, st = opened
        try:
            data = self._read_fd(fd, st)
        finally:
            os.close(fd)
        text = decode_draft(self.path, data)
        del data  # strict UTF-8 both ways: the text stands for its bytes
        self._stamp = DiskStamp(st.st_ino, st.st_size, st.st_mtime_ns, text)
        return text

    def peek(self, limit: int) -> str:
        """The text of the draft's first ``limit`` bytes ('' for a draft that
        does not exist yet), held to what ``read`` holds the whole to: a
        regular file within the size limit (never blocking on a FIFO), UTF-8
        without NUL bytes in what is read (a character cut by the limit is
        left out). Remembers nothing: the editor's first frame, before the
        session reads the draft."""
        opened = self._open_existing()
        if opened is None:
            return ""
        fd, _ = opened
        try:
            data = os.pread(fd, limit, 0)
        except OSError as exc:
            raise _describe(self.path, exc, "read") from None
        finally:
            os.close(fd)
        if len(data) == limit:
            for cut in range(min(3, len(data)), 0, -1):  # a multi-byte character cut by the limit
                if data[-cut] >= 0xC0:
                    data = data[:-cut]
                    break
        return decode_draft(self.path, data)

    def _open_existing(self) -> tuple[int, os.stat_result] | None:
        """The draft opened for reading, checked to be a regular file within
        the limit; None when it does not exist. Never blocks: O_NONBLOCK
        makes opening a FIFO return at once, and it is refused before any
        read."""
        folder = self.path.parent
        try:
            if not folder.is_dir():
                raise DraftError(f"{self.path}: folder {folder} does not exist")
        except OSError as exc:
            raise _describe(self.path, exc, "read") from None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise DraftError(f"{self.path}: is a directory, not a draft") from None
        except OSError as exc:
            raise _describe(self.path, exc, "read") from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise DraftError(f"{self.path}: is a directory, not a draft")
            if not stat.S_ISREG(st.st_mode):
                raise DraftError(f"{self.path}: is {_kind(st.st_mode)}; a draft must be a regular file")
            self._check_size(st.st_size)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise DraftTooLarge(
                f"{self.path}: {size / 2**20:.1f} MB is over the {self.max_bytes / 2**20:g} MB limit "
                f"for a draft (raise it with {MAX_DRAFT_MB_ENV})"
            )

    def _read_fd(self, fd: int, st: os.stat_result) -> bytes:
        """At most the limit, from the start, whatever the file claims."""
        chunks = []
        total = 0
        offset = 0
        while True:
            try:
                chunk = os.pread(fd, min(1 << 22, self.max_bytes + 1 - total), offset)
            except OSError as exc:
                raise _describe(self.path, exc, "read") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            offset += len(chunk)
            if total > self.max_bytes:
                self._check_size(total)
        return b"".join(chunks)

    def _read_bytes(self) -> bytes | None:
        opened = self._open_existing()
        if opened is None:
            return None
        fd, st = opened
        try:
            return self._read_fd(fd, st)
        finally:
            os.close(fd)

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _describe(self.path, exc, "stat") from None

    # --- state ------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @property
    def last_known(self) -> bytes:
        """The bytes we last read or wrote (b'' for a missing file)."""
        if self._stamp is None:
            raise RuntimeError("last_known before read()")
        return content_bytes(self._stamp.content)

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
        opened = self._open_existing()
        if opened is None:
            return True
        fd, st = opened
        try:
            data = self._read_fd(fd, st)
        finally:
            os.close(fd)
        if not same_content(self._stamp.content, data):
            return True
        # Same bytes, new stat (touched, or rewritten identically): adopt it
        # so the next check is cheap again. The stat taken before reading,
        # never one taken after: a write between the read and a later stat
        # would be taken as seen.
        self._stamp = DiskStamp(st.st_ino, st.st_size, st.st_mtime_ns, self._stamp.content)
        return False

    def adopt(self, expected: bytes) -> None:
        """Take the file as ours to build on if it holds ``expected``;
        DraftRaced with what it holds otherwise."""
        opened = self._open_existing()
        if opened is None:
            raise DraftRaced(f"{self.path}: deleted by another program as it was being written",
                             base=expected, theirs=b"", replaced=False)
        fd, st = opened
        try:
            data = self._read_fd(fd, st)
        finally:
            os.close(fd)
        if data != expected:
            raise DraftRaced(f"{self.path}: changed by another program as it was being written",
                             base=expected, theirs=data, replaced=False)
        self._stamp = DiskStamp(st.st_ino, st.st_size, st.st_mtime_ns, data)

    def race_with_disk(self) -> DraftRaced | None:
        """What the file holds now against what we last knew, as a race
        lost before the rename (their bytes in the file, ours not); None
        when the file is gone."""
        theirs = self._read_bytes()
        if theirs is None:
            return None
        return DraftRaced(f"{self.path}: changed by another program as a late write was kept",
                          base=self.last_known, theirs=theirs, replaced=False)

    def check_unchanged(self) -> None:
        """Raise DraftRaced if a program wrote to the inode our last write
        replaced, DraftChanged if another program changed the draft."""
        self.check_replaced()
        if self.changed_on_disk():
            raise DraftChanged(
                f"{self.path}: changed on disk by another program since it was "
                "loaded; not overwriting it (reopen the draft to record the file "
                "as it is now as a new version)"
            )

    def check_replaced(self) -> None:
        """A program that opened the draft before one of our renames and
        wrote to it after wrote into a replaced inode, which only we still
        hold: hand their bytes over (DraftRaced, one inode at a time; the
        inode stays watched) instead of losing them. An inode is let go only
        once nobody else holds it open and it holds what we replaced."""
        for replaced in list(self._replaced):
            # Asked before looking at the inode: once nobody else holds it (it
            # has no name left), nothing can write to it any more, so what the
            # stat after this answer shows is final. A stat taken before the
            # answer would miss a program that wrote and closed in between.
            try:
                free = _held_by_nobody_else(replaced.fd, os.fstat(replaced.fd))
                if free is None:
                    free = time.monotonic() - replaced.replaced_at > _UNPROVEN_WATCH_S
                now = os.fstat(replaced.fd)
            except OSError:
                self._let_go(replaced)
                continue
            if replaced.written_since_seen(now):
                try:
                    theirs = self._read_fd(replaced.fd, now)
                except BaseException:
                    self._let_go(replaced)
                    raise
                if not same_content(replaced.base, theirs):
                    # Still watched after this (their handle may write again);
                    # reported again until the caller settles it.
                    raise DraftRaced(
                        f"{self.path}: another program wrote to the draft as it was being replaced",
                        base=content_bytes(replaced.base), theirs=theirs, replaced=True,
                        settle=lambda: self._settle(replaced, now, theirs),
                    )
                replaced.seen = now  # touched, or rewritten with the same bytes
            if free:
                self._let_go(replaced)

    @staticmethod
    def _settle(replaced: _Replaced, seen: os.stat_result, theirs: bytes) -> None:
        replaced.seen = seen
        replaced.base = theirs

    def _watch_replaced(self, fd: int, seen: os.stat_result, base: Content) -> None:
        self._replaced.append(_Replaced(fd, seen, base, time.monotonic()))
        # Past the limit the oldest inodes that still hold what we last saw
        # are let go; one holding a write not yet kept stays until it is.
        for replaced in list(self._replaced):
            if len(self._replaced) <= _MAX_WATCHED:
                break
            try:
                now = os.fstat(replaced.fd)
            except OSError:
                now = None
            if now is None or not replaced.written_since_seen(now):
                self._let_go(replaced)

    def _let_go(self, replaced: _Replaced) -> None:
        self._replaced.remove(replaced)
        try:
            os.close(replaced.fd)
        except OSError:
            pass

    def _forget_replaced(self) -> None:
        for replaced in list(self._replaced):
            self._let_go(replaced)

    # --- writing ----------------------------------------------------------

    def write(self, text: str, *, durable: bool = True) -> None:
        """Replace the draft with ``text`` atomically, keeping its mode and
        (where allowed) its owner. Refuses (DraftChanged) if someone else
        changed it first, and (DraftReadOnly) if it is read-only; raises
        DraftRaced, with their bytes, when someone wrote it during the write.

        Every write is atomic (a crash or SIGKILL leaves the old file or the
        new one). ``durable=False`` skips the fsyncs, which cost milliseconds
        per write and would cap a fast model at a few hundred commands a
        second; ``sync()`` (on save and on close) makes such a write survive
        a power cut too."""
        self.prepare(text, durable=durable).commit()

    def prepare(self, data: Content, *, durable: bool = True) -> PendingWrite:
        """The first half of a write: check that nobody changed the draft,
        hold the file open, write our bytes to a temporary file. Nothing is
        visible until ``commit``; ``abandon`` removes the temporary file.
        ``data`` may be text, written as UTF-8 a piece at a time and kept
        as the string itself (no encoded copy of a large draft)."""
        if self._stamp is None:
            raise RuntimeError("prepare() before read()")
        self.check_unchanged()
        if self.read_only:
            raise DraftReadOnly(f"{self.path}: the draft is read-only; not writing it")
        self._check_size(len(data))  # for text a lower bound; the bytes written are checked too
        target = self._target
        old_fd = old_st = None
        try:
            old_fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _describe(self.path, exc, "write") from None
        try:
            if old_fd is not None:
                old_st = os.fstat(old_fd)
                if not stat.S_ISREG(old_st.st_mode):
                    raise DraftError(f"{self.path}: is {_kind(old_st.st_mode)}; a draft must be a regular file")
                if not self._stamp.same_stat(old_st) and not same_content(self._stamp.content,
                                                                          self._read_fd(old_fd, old_st)):
                    raise DraftChanged(f"{self.path}: changed on disk by another program; not overwriting it")
            elif self._stamp.inode is not None:
                raise DraftChanged(f"{self.path}: deleted by another program; not recreating it")
            temp_name, written = self._write_temporary(target, data, old_st, durable=durable)
        except BaseException:
            if old_fd is not None:
                os.close(old_fd)
            raise
        return PendingWrite(self, target, temp_name, old_fd, old_st, data, written, durable)

    def _write_temporary(
        self, target: Path, data: Content, old: os.stat_result | None, *, durable: bool
    ) -> tuple[str, os.stat_result]:
        """Our bytes in a new temporary file beside the draft: its name, and
        its stat as we left it (what the draft's stat is after the rename,
        until someone else writes it)."""
        temp_name = str(target.parent / f"{self._temporary_prefix(target)}{os.getpid()}-{secrets.token_hex(8)}{_TEMP_SUFFIX}")
        try:
            fd = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _describe(self.path, exc, "write") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                for piece in _encoded_pieces(data):
                    handle.write(piece)
                handle.flush()
                written = os.fstat(handle.fileno())
                self._check_size(written.st_size)
                _copy_ownership(handle.fileno(), old)
                if durable:
                    os.fsync(handle.fileno())
                written = os.fstat(handle.fileno())
        except OSError as exc:
            _remove_quietly(temp_name)
            raise _describe(self.path, exc, "write") from None
        except BaseException:
            _remove_quietly(temp_name)
            raise
        return temp_name, written

    def sync(self) -> None:
        """Make the last write durable, if it is not yet."""
        if not self._unsynced:
            return
        target = self._target
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise _describe(self.path, exc, "write") from None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_folder(target.parent)
        self._unsynced = False

    @property
    def watching_replaced(self) -> int:
        """How many replaced inodes another program may still write to."""
        return len(self._replaced)

    def close(self) -> None:
        """Stop watching the inodes our writes replaced (check them first:
        ``check_replaced``)."""
        self._forget_replaced()

    @property
    def _target(self) -> Path:
        """The file a write replaces: through a symlink, the file it points
        to, so the writer's link stays a link."""
        return Path(os.path.realpath(self.path))

    def _temporary_prefix(self, target: Path) -> str:
        return f".{target.name}.{_TEMP_MARK}-"

    def is_our_temporary(self, name: str) -> bool:
        """Whether a file name has exactly the shape of our temporary files."""
        prefix = self._temporary_prefix(self._target)
        return re.fullmatch(re.escape(prefix) + r"[0-9]+-[0-9a-f]{16}" + re.escape(_TEMP_SUFFIX), name) is not None

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete temporary files a killed write of ours left beside the
        draft: regular files named exactly as our writer names them, nothing
        else. Only safe while holding the draft's lock (no other write of
        ours is under way)."""
        target = self._target
        removed = []
        try:
            candidates = [entry for entry in os.scandir(target.parent) if self.is_our_temporary(entry.name)]
        except OSError:
            return removed
        for entry in candidates:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            _remove_quietly(entry.path)
            removed.append(Path(entry.path))
        return removed


class PendingWrite:
    """A write between ``DraftFile.prepare`` and ``commit``: our bytes in a
    temporary file, the old file held open."""

    def __init__(self, draft: DraftFile, target: Path, temp_name: str, old_fd: int | None,
                 old_st: os.stat_result | None, data: Content, written: os.stat_result, durable: bool):
        self._draft = draft
        self._target = target
        self._temp = temp_name
        self._old_fd = old_fd
        self._old_st = old_st
        self._data = data
        self._written = written
        self._durable = durable
        self._done = False

    def abandon(self) -> None:
        if self._done:
            return
        self._done = True
        _remove_quietly(self._temp)
        if self._old_fd is not None:
            os.close(self._old_fd)

    def commit(self) -> None:
        """Put our bytes in place, unless the draft changed since ``prepare``
        (DraftRaced, nothing replaced); if someone wrote the old file during
        the rename itself, ours is in place and theirs is in the DraftRaced."""
        if self._done:
            raise RuntimeError("a write committed twice")
        draft = self._draft
        base = (draft._stamp.content or b"") if draft._stamp else b""  # bytes only if a race needs them
        raced: DraftRaced | None = None
        try:
            self._check_still_old(base)
            if self._old_fd is None:
                # Create only if still absent: link fails where rename would clobber.
                try:
                    os.link(self._temp, self._target)
                except FileExistsError:
                    theirs = draft._read_bytes() or b""
                    raise DraftRaced(f"{draft.path}: created by another program as it was being written",
                                     base=content_bytes(base), theirs=theirs, replaced=False) from None
                _remove_quietly(self._temp)
            else:
                self._swap_in(base)
        except DraftRaced as exc:
            if not exc.replaced:
                self.abandon()
                raise
            raced = exc
        except OSError as exc:
            self.abandon()
            raise _describe(draft.path, exc, "write") from None
        except BaseException:
            self.abandon()
            raise
        self._done = True
        if self._durable:
            _fsync_folder(self._target.parent)
        # The stamp is our temporary file's stat as we wrote it, not a stat
        # of the path taken now: a program appending to the new file between
        # the rename and such a stat would have its append taken as ours.
        written = self._written
        draft._stamp = DiskStamp(written.st_ino, written.st_size, written.st_mtime_ns, self._data)
        draft._unsynced = not self._durable
        # Watch the replaced inode until nobody else can write to it.
        if self._old_fd is not None:
            draft._watch_replaced(self._old_fd, self._old_st, base)
        if raced is not None:
            raise raced
        draft.check_replaced()  # a write that landed during the rename itself

    def _swap_in(self, base: Content) -> None:
        """Rename our file over the draft. Where Linux allows, the two are
        exchanged atomically (renameat2 RENAME_EXCHANGE), so the file that was
        really at the path at that instant ends up under our temporary name:
        had another program renamed its own version in after our last check,
        we find it there instead of destroying it."""
        if not _exchange(self._temp, str(self._target)):
            os.replace(self._temp, self._target)
            return
        try:
            was = os.stat(self._temp)
            if was.st_ino == self._old_st.st_ino:
                return
            with open(self._temp, "rb") as handle:
                theirs = handle.read(self._draft.max_bytes + 1)
        finally:
            _remove_quietly(self._temp)
        raise DraftRaced(f"{self._draft.path}: replaced by another program as it was being written",
                         base=content_bytes(base), theirs=theirs, replaced=True)

    def _check_still_old(self, base: Content) -> None:
        """Just before the rename: the path still names the file we checked,
        and that file is as we checked it."""
        draft = self._draft
        try:
            current = os.stat(self._target)
        except FileNotFoundError:
            current = None
        if self._old_fd is None:
            if current is None:
                return
        elif current is not None and _same_file_state(os.fstat(self._old_fd), self._old_st) and \
                current.st_ino == self._old_st.st_ino:
            return
        theirs = draft._read_bytes() or b""
        raise DraftRaced(f"{draft.path}: changed by another program as it was being written",
                         base=content_bytes(base), theirs=theirs, replaced=False)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _load_renameat2():
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically; False where the system cannot (then the
    caller renames)."""
    if _renameat2 is None:
        return False
    result = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    import ctypes

    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(error, os.strerror(error), b)


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
