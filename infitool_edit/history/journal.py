"""A pack file in the making: each version's objects appended to one file,
published to git as a real pack (``objects/pack/pack-*.pack`` and its
``.idx``) every so often.

Why: creating a file (allocating an inode) costs 0.4-1.1 ms of kernel time
on this machine's ext4 under load, where appending a few KB to an open file
costs about 6 µs. A loose object is a file of its own, so a version written
as three or four loose objects cost 1.5-4 ms whatever its size; appended
here it costs one ``write`` of the bytes the edit changed.

The journal, ``pack.journal`` in the draft's own folder (which git ignores),
is laid out as a pack already: the 12-byte header ``PACK``, version 2, an
object count (filled in when published), then one entry per object: git's
type-and-size varint, then the object's body as a zlib stream. Entries are
never deltas, so each stands alone. A record appends all of its objects with
one ``write`` (at most a torn last record when the process is killed, which
recovery cuts off: every entry is checked as it is read back).

Publishing (``publish``) writes the count and the SHA-1 trailer, writes the
index (``.idx`` version 2) to a temporary file, hard-links the journal into
``objects/pack/pack-<checksum>.pack`` (a link: no copy, no new inode) and
renames the index beside it; git sees a pack when its index appears. The
caller then moves the refs and calls ``restart``, which unlinks the journal
name. A kill anywhere in between leaves the journal in place, and
``recover`` publishes it again (the same bytes give the same pack name), so
its commits are never lost.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib

from .errors import HistoryError

JOURNAL_FILE = "pack.journal"
_INDEX_TEMP = "pack.idx.tmp"
_HEADER = struct.Struct(">4sII")
_HEADER_SIZE = _HEADER.size
TYPE_CODES = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
KINDS = {code: kind for kind, code in TYPE_CODES.items()}
# An index's 4-byte offsets reach 2 GB; the journal is published long before.
_MAX_OFFSET = 0x7FFFFFFF


def entry_header(kind: bytes, size: int) -> bytes:
    """git's pack entry header: 3 bits of type, then the size, 4 bits in the
    first byte and 7 in each one after (the top bit says "more")."""
    first = TYPE_CODES[kind] << 4 | (size & 0x0F)
    size >>= 4
    out = bytearray()
    while size:
        out.append(first | 0x80)
        first = size & 0x7F
        size >>= 7
    out.append(first)
    return bytes(out)


class PackJournal:
    """The journal of one open history: appends, then publishes as a pack."""

    def __init__(self, folder: str, pack_dir: str):
        self._path = os.path.join(folder, JOURNAL_FILE)
        self._index_temp = os.path.join(folder, _INDEX_TEMP)
        self._pack_dir = pack_dir
        self._fd = -1
        self._size = 0
        self._pieces: list[bytes] = []  # everything after the header, for the trailer's hash
        self._entries: list[tuple[bytes, int, int]] = []  # sha, offset, crc32
        self._published: str | None = None  # the pack it became, until ``restart``

    @property
    def size(self) -> int:
        """Bytes appended since the last publish."""
        return self._size - _HEADER_SIZE if self._fd >= 0 else 0

    @property
    def empty(self) -> bool:
        return not self._entries

    def open(self) -> None:
        """Start a new journal file (a leftover one must have been recovered)."""
        if self._fd >= 0:
            return
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, _HEADER.pack(b"PACK", 2, 0))
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._size = fd, _HEADER_SIZE
        self._pieces, self._entries = [], []

    @property
    def published(self) -> bool:
        return self._published is not None

    def append(self, objects: list[tuple[bytes, bytes]]) -> None:
        """``[(binary sha, pack entry bytes)]`` of one record, in one write."""
        if not objects:
            return
        if self._published is not None:
            # Published, but moving the refs failed: the pack must not grow.
            self.restart(reopen=False)
        self.open()
        data = b"".join(entry for _, entry in objects)
        if self._size + len(data) > _MAX_OFFSET:
            raise HistoryError("the history's pack journal is full; close and reopen the draft")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        offset = self._size
        for sha, entry in objects:
            self._entries.append((sha, offset, zlib.crc32(entry)))
            offset += len(entry)
        self._pieces.append(data)
        self._size += len(data)

    def publish(self) -> str | None:
        """Make the journal a pack git reads; its name, or None when empty."""
        if self._published is not None:
            return self._published
        if self._fd < 0 or not self._entries:
            return None
        header, checksum = _pack_ends(len(self._entries), self._pieces)
        os.pwrite(self._fd, header, 0)
        os.pwrite(self._fd, checksum, self._size)
        try:
            self._published = _install(self._path, self._index_temp, self._pack_dir, self._entries, checksum)
        except BaseException:
            os.ftruncate(self._fd, self._size)  # the next record appends where the trailer was
            raise
        self._size += len(checksum)
        return self._published

    def restart(self, *, reopen: bool) -> None:
        """Drop the published journal's name; ``reopen`` starts the next one
        now (off the record path) rather than at the next append."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._pieces, self._entries, self._size = [], [], 0
        self._published = None
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        if reopen:
            self.open()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def recover(folder: str, pack_dir: str) -> list[tuple[str, bytes, bytes]]:
    """Publish a journal a killed session left behind; ``[(hex sha, kind,
    body)]`` of the objects it held (empty when there was none). A torn or
    damaged tail is cut off: only the entries before it count."""
    path = os.path.join(folder, JOURNAL_FILE)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return []
    objects, entries, end = _parse(data)
    if entries:
        header, checksum = _pack_ends(len(entries), [memoryview(data)[_HEADER_SIZE:end]])
        finished = header + data[_HEADER_SIZE:end] + checksum
        if data != finished:
            os.chmod(path, 0o644)  # a journal is left read-only only once finished
            with open(path, "r+b") as handle:
                handle.write(finished)
                handle.truncate(len(finished))
        _install(path, os.path.join(folder, _INDEX_TEMP), pack_dir, entries, checksum)
    os.unlink(path)
    return objects


def _pack_ends(count: int, entries) -> tuple[bytes, bytes]:
    """A pack's header for ``count`` objects and its trailer (the SHA-1 of
    the header and the entries' bytes, given in pieces)."""
    header = _HEADER.pack(b"PACK", 2, count)
    digest = hashlib.sha1(header)
    for piece in entries:
        digest.update(piece)
    return header, digest.digest()


def _parse(data: bytes) -> tuple[list[tuple[str, bytes, bytes]], list[tuple[bytes, int, int]], int]:
    """The whole entries at the front of a journal: objects, index entries,
    and where the last whole entry ends."""
    if len(data) < _HEADER_SIZE or data[:8] != b"PACK\0\0\0\x02":
        return [], [], _HEADER_SIZE
    objects, entries, seen = [], [], set()
    position = _HEADER_SIZE
    while position < len(data):
        try:
            kind, body, end = _read_entry(data, position)
        except (ValueError, KeyError, IndexError, zlib.error):
            break  # a torn or damaged tail (or the trailer): nothing after it counts
        sha = hashlib.sha1(b"%s %d\0" % (kind, len(body)) + body).digest()
        if sha in seen:
            break  # never written twice: not ours
        seen.add(sha)
        objects.append((sha.hex(), kind, body))
        entries.append((sha, position, zlib.crc32(memoryview(data)[position:end])))
        position = end
    return objects, entries, position


def _read_entry(data: bytes, position: int) -> tuple[bytes, bytes, int]:
    byte = data[position]
    kind = KINDS[(byte >> 4) & 7]
    size, shift = byte & 0x0F, 4
    position += 1
    while byte & 0x80:
        byte = data[position]
        size |= (byte & 0x7F) << shift
        shift += 7
        position += 1
    inflater = zlib.decompressobj()
    body = inflater.decompress(data[position:])
    if not inflater.eof or len(body) != size:
        raise ValueError("a torn entry")
    return kind, body, len(data) - len(inflater.unused_data)


def _install(journal: str, index_temp: str, pack_dir: str, entries: list[tuple[bytes, int, int]],
             checksum: bytes) -> str:
    """Link a finished journal into the pack folder and put its index beside
    it (git's own order: the pack, then the index that makes it visible)."""
    name = f"pack-{checksum.hex()}"
    index = _index_bytes(entries, checksum)
    fd = os.open(index_temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o444)
    try:
        os.write(fd, index)
    finally:
        os.close(fd)
    os.makedirs(pack_dir, exist_ok=True)
    try:
        os.link(journal, os.path.join(pack_dir, name + ".pack"))
    except FileExistsError:
        pass  # published before a kill: the same bytes, the same name
    os.chmod(journal, 0o444)  # git's packs are read-only
    os.replace(index_temp, os.path.join(pack_dir, name + ".idx"))
    return name


def _index_bytes(entries: list[tuple[bytes, int, int]], checksum: bytes) -> bytes:
    """A version 2 pack index: fan-out, sorted names, CRCs, offsets, checksums."""
    ordered = sorted(entries)
    fanout = [0] * 256
    for sha, _, _ in ordered:
        fanout[sha[0]] += 1
    running = 0
    for byte in range(256):
        running += fanout[byte]
        fanout[byte] = running
    parts = [b"\377tOc", struct.pack(">I", 2), struct.pack(">256I", *fanout)]
    parts += [sha for sha, _, _ in ordered]
    parts.append(struct.pack(f">{len(ordered)}I", *(crc for _, _, crc in ordered)))
    parts.append(struct.pack(f">{len(ordered)}I", *(offset for _, offset, _ in ordered)))
    parts.append(checksum)
    body = b"".join(parts)
    return body + hashlib.sha1(body).digest()
