"""Git objects written and read in-process, as git itself lays them out.

A ``git commit`` subprocess per version costs milliseconds, and so does a
loose object file here (creating a file costs 0.4-1.1 ms under load): an
open history writes its objects as entries of the pack journal
(journal.py), one ``write`` per record, and reads those not yet published
from memory. Without a journal (``attach`` not called) objects are written
loose, each zlib-compressed into a temporary file beside its final place
and renamed there. Objects in packs are read through GitPython's object
database.

zlib's default window and hash (wbits 15, memLevel 8) make each compressor
allocate about 256 KB, whose page faults cost 0.1-0.5 ms under load here; a
window just larger than the object costs 30-80 µs and compresses it as well
(every match distance still fits). git inflates any window size.

Nothing is fsynced: a version is in the page cache when ``record``
returns, which a killed process cannot undo (see docs/history.md for what
a power cut can do and how ``repair`` answers it).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import struct
import zlib
from dataclasses import dataclass

import git

from .errors import HistoryDamaged, HistoryError
from .chunks import chunk_name
from .journal import PackJournal, entry_header

# Level 1 compresses a few-MB model state in milliseconds; git reads any level.
_COMPRESSION_LEVEL = 1
# Objects known to exist, so unchanged notes or state skip even the stat.
_KNOWN_LIMIT = 4096

FILE_MODE = b"100644"
TREE_MODE = b"40000"


@dataclass(frozen=True)
class Identity:
    """Who, when: one ``author`` or ``committer`` line of a commit."""

    name: str
    email: str
    time: int
    offset_minutes: int

    def encode(self) -> bytes:
        sign = "-" if self.offset_minutes < 0 else "+"
        hours, minutes = divmod(abs(self.offset_minutes), 60)
        return f"{self.name} <{self.email}> {self.time} {sign}{hours:02d}{minutes:02d}".encode()


@dataclass(frozen=True)
class ParsedCommit:
    tree: str
    parents: tuple[str, ...]
    author_name: str
    author_time: int
    message: str


class ObjectStore:
    """The object database of one repository (``objects/`` under its git dir)."""

    def __init__(self, repo: git.Repo):
        self._repo = repo
        self._objects = os.path.join(repo.common_dir, "objects")
        self._objects_prefix = self._objects + os.sep
        self._known: set[bytes] = set()
        self._temp_names = itertools.count()
        self._journal: PackJournal | None = None
        self._batch: list[tuple[bytes, bytes]] = []  # this record's pack entries
        self._numbered_prefixes: list[bytes] = []  # write_numbered_tree's entry prefixes
        # Objects in the journal, not yet in a pack git reads: (kind, body).
        self._pending: dict[bytes, tuple[bytes, bytes]] = {}

    # --- writing -------------------------------------------------------------

    def attach(self, journal: PackJournal) -> None:
        """Write through ``journal`` (see journal.py); without one, objects
        go loose, one file each (what repair and tools that only read use)."""
        self._journal = journal

    def write(self, kind: bytes, body: bytes) -> str:
        """Store one object (``blob``, ``tree`` or ``commit``); its hex sha.
        With a journal, the object waits in this record's batch until
        ``seal`` appends the batch (``write_commit`` seals: a commit is the
        last object of a record)."""
        header = b"%s %d\0" % (kind, len(body))
        digest = hashlib.sha1(header)
        digest.update(body)
        binsha = digest.digest()
        hexsha = binsha.hex()
        if binsha in self._known or binsha in self._pending:
            return hexsha
        if self._journal is None:
            self._write_loose_object(kind, hexsha, header, body)
            self._remember(binsha)
            return hexsha
        # A pack entry's zlib stream holds the body alone; its type and size
        # are in the entry's own header.
        data = _stored_zlib(body) if kind == b"tree" else _deflate(body)
        self._batch.append((binsha, entry_header(kind, len(body)) + data))
        self._pending[binsha] = (kind, body)
        return hexsha

    def seal(self) -> None:
        """Append this record's objects to the journal, in one write."""
        batch, self._batch = self._batch, []
        try:
            self._journal.append(batch)
        except BaseException:
            for binsha, _ in batch:
                self._pending.pop(binsha, None)
            raise

    def published(self) -> None:
        """The journal became a pack: git reads its objects from now on."""
        for binsha in self._pending:
            self._remember(binsha)
        self._pending.clear()

    def remember(self, hexsha: str) -> None:
        """``hexsha`` is in git already: writing it again does nothing."""
        self._remember(bytes.fromhex(hexsha))

    def _remember(self, binsha: bytes) -> None:
        if len(self._known) >= _KNOWN_LIMIT:
            self._known.clear()
        self._known.add(binsha)

    def _write_loose_object(self, kind: bytes, hexsha: str, header: bytes, body: bytes) -> None:
        # Plain concatenation, not os.path.join: seven joins and dirnames a version, each a
        # few Python calls, stood out in the profile of a small version.
        folder = self._objects_prefix + hexsha[:2]
        final = folder + os.sep + hexsha[2:]
        # A commit is always new (its message holds a fresh version number),
        # so only blobs and trees are worth the stat that finds one stored.
        if kind == b"commit" or not os.path.exists(final):
            self._write_loose(folder, final, header, body)

    def _write_loose(self, folder: str, final: str, header: bytes, body: bytes) -> None:
        if header.startswith(b"tree"):
            data = _stored(header, body)
        else:
            compressor = _compressor(len(header) + len(body))
            data = compressor.compress(header) + compressor.compress(body) + compressor.flush()
        # git's own prefix: fsck skips tmp_obj_* files and gc sweeps them.
        temp = f"{folder}{os.sep}tmp_obj_{os.getpid()}_{next(self._temp_names)}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except FileNotFoundError:
            # A new fan-out folder, or an empty one `git prune` removed since.
            os.makedirs(folder, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(temp, final)

    def write_blob(self, content: bytes) -> str:
        return self.write(b"blob", content)

    def write_tree(self, files: dict[str, str], folders: dict[str, str] | None = None) -> str:
        """A tree of regular files ``{name: blob hex sha}`` and of sub-trees
        ``{name: tree hex sha}``."""
        # git sorts a folder's entry as if its name ended in "/".
        entries = [(name.encode(), FILE_MODE, sha) for name, sha in files.items()]
        entries += [(name.encode(), TREE_MODE, sha) for name, sha in (folders or {}).items()]
        entries.sort(key=lambda entry: entry[0] + b"/" if entry[1] == TREE_MODE else entry[0])
        body = b"".join(
            mode + b" " + name + b"\0" + bytes.fromhex(sha) for name, mode, sha in entries
        )
        return self.write(b"tree", body)

    def write_numbered_tree(self, shas: list[str]) -> str:
        """The tree of a chunk folder: blobs named ``000000``, ``000001``, …
        (``chunks.chunk_name``) in that order, which is already git's order
        (fixed-width names), so the entries need no sorting; each entry's
        ``mode name\0`` prefix is made once per position and kept."""
        prefixes = self._numbered_prefixes
        while len(prefixes) < len(shas):
            prefixes.append(FILE_MODE + b" " + chunk_name(len(prefixes)).encode() + b"\0")
        fromhex = bytes.fromhex
        body = b"".join([prefix + fromhex(sha) for prefix, sha in zip(prefixes, shas)])
        return self.write(b"tree", body)

    def write_commit(
        self,
        tree: str,
        parents: list[str],
        author: Identity,
        committer: Identity,
        message: str,
    ) -> str:
        lines = [b"tree " + tree.encode()]
        lines += [b"parent " + parent.encode() for parent in parents]
        lines.append(b"author " + author.encode())
        lines.append(b"committer " + committer.encode())
        body = b"\n".join(lines) + b"\n\n" + message.encode("utf-8")
        sha = self.write(b"commit", body)
        if self._journal is not None:
            self.seal()
        return sha

    # --- reading -------------------------------------------------------------

    def read(self, hexsha: str) -> tuple[bytes, bytes]:
        """``(kind, body)`` of an object, in the journal, loose or packed;
        HistoryDamaged naming the file when it is truncated or garbled."""
        if self._pending:
            pending = self._pending.get(bytes.fromhex(hexsha))
            if pending is not None:
                return pending
        path = os.path.join(self._objects, hexsha[:2], hexsha[2:])
        try:
            with open(path, "rb") as handle:
                raw = zlib.decompress(handle.read())
        except FileNotFoundError:
            return self._read_packed(hexsha)
        except (zlib.error, OSError) as error:
            raise HistoryDamaged(f"object {path} is damaged ({_reason(error)})") from None
        try:
            header_end = raw.index(b"\0")
            kind, size = raw[:header_end].split(b" ")
            body = raw[header_end + 1 :]
            if int(size) != len(body) or kind not in (b"blob", b"tree", b"commit", b"tag"):
                raise ValueError("wrong size or kind")
        except ValueError:
            raise HistoryDamaged(f"object {path} is damaged (not a git object)") from None
        if hashlib.sha1(raw).hexdigest() != hexsha:
            raise HistoryDamaged(f"object {path} is damaged (its content does not match its name)")
        return kind, body

    def _read_packed(self, hexsha: str) -> tuple[bytes, bytes]:
        try:
            stream = self._repo.odb.stream(bytes.fromhex(hexsha))
        except ValueError:  # GitPython's word for "git has no such object"
            raise HistoryDamaged(
                f"object {hexsha} is missing from {self._repo.common_dir}"
            ) from None
        except Exception as error:  # a damaged pack: gitdb raises what it meets
            raise HistoryDamaged(f"object {hexsha} in {self._repo.common_dir} is unreadable ({_reason(error)})") from None
        return stream.type, stream.read()

    def read_tree(self, hexsha: str) -> dict[str, str]:
        """``{name: sha}`` of a flat tree."""
        kind, body = self.read(hexsha)
        if kind != b"tree":
            raise HistoryDamaged(f"object {hexsha} is a {kind.decode()}, not a tree")
        files: dict[str, str] = {}
        position = 0
        try:
            while position < len(body):
                name_start = body.index(b" ", position) + 1
                name_end = body.index(b"\0", name_start)
                sha = body[name_end + 1 : name_end + 21]
                files[body[name_start:name_end].decode()] = sha.hex()
                position = name_end + 21
        except (ValueError, UnicodeDecodeError):
            raise HistoryDamaged(f"tree {hexsha} is damaged") from None
        return files

    def read_commit(self, hexsha: str) -> ParsedCommit:
        kind, body = self.read(hexsha)
        if kind != b"commit":
            raise HistoryDamaged(f"object {hexsha} is a {kind.decode()}, not a commit")
        try:
            return _parse_commit(body)
        except (ValueError, IndexError, UnicodeDecodeError):
            raise HistoryDamaged(f"commit {hexsha} is damaged") from None


def _deflate(data: bytes) -> bytes:
    compressor = _compressor(len(data))
    return compressor.compress(data) + compressor.flush()


def _stored(header: bytes, body: bytes) -> bytes:
    return _stored_zlib(header + body)


def _stored_zlib(data: bytes) -> bytes:
    """A zlib stream of stored (uncompressed) deflate blocks: what trees get.

    A tree is mostly 20-byte shas, which do not compress: a 1 MB draft's chunk folder (64
    entries, 2.2 KB) took 73 µs of CPU at level 1 to save 600 bytes, and 6 µs stored (measured
    here, load 10). Commits (text, 200 of 300 bytes kept) and blobs stay at level 1. git,
    GitPython and every inflater read stored blocks like any others. The header names a window
    that just holds the object, as ``_compressor``'s do (a stored block refers back to nothing)."""
    window_bits = max(9, min(15, (len(data) - 1).bit_length()))
    cmf = (window_bits - 8) << 4 | 8  # deflate, that window
    parts = [bytes((cmf, (31 - (cmf << 8) % 31) % 31))]  # FLEVEL 0 (fastest), no dictionary
    view = memoryview(data)
    for start in range(0, max(len(data), 1), _STORED_BLOCK):
        block = view[start : start + _STORED_BLOCK]
        last = start + _STORED_BLOCK >= len(data)
        parts.append(struct.pack("<BHH", last, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(parts)


_STORED_BLOCK = 0xFFFF  # the most a stored block holds


def _compressor(size: int):
    """A level-1 compressor whose window just holds ``size`` bytes (see the
    module docstring): 512 bytes up to zlib's 32 KB."""
    window_bits = max(9, min(15, (size - 1).bit_length()))
    return zlib.compressobj(_COMPRESSION_LEVEL, zlib.DEFLATED, window_bits, max(1, window_bits - 7))


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.splitlines()[0] if text else type(error).__name__


def _parse_commit(body: bytes) -> ParsedCommit:
    headers, _, message = body.partition(b"\n\n")
    tree = ""
    parents: list[str] = []
    author_name = ""
    author_time = 0
    for line in headers.split(b"\n"):
        key, _, value = line.partition(b" ")
        if key == b"tree":
            tree = value.decode()
        elif key == b"parent":
            parents.append(value.decode())
        elif key == b"author":
            name, _, rest = value.decode().partition(" <")
            author_name = name
            author_time = int(rest.rsplit(" ", 2)[1])
    if len(tree) != 40:
        raise ValueError("no tree")
    return ParsedCommit(tree, tuple(parents), author_name, author_time, message.decode())
