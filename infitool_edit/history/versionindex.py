"""An append-only index of versions beside the repository, for O(1) lookups.

Git is the truth; this index only makes "version 73,512" and "the newest
1,000 versions" cost the same whatever the history's length, which walking
commits from a ref cannot. It is two files:

- ``versions.idx``: a header, then one fixed-size record per version
  (record *n* is version *n*): commit sha, parent number, time, where the
  version's text lies in ``versions.text``, and two CRCs.
- ``versions.text``: per version, JSON ``[line name, author, message]``, then
  the scale and the version a rewind went back to when there are (an index
  written before them holds three fields; they read as None).

Both are appended with single unbuffered ``write`` calls, text first, so a
killed process leaves at worst a torn last record (dropped on open) or
unreferenced text (harmless). Anything else that does not check out raises
``IndexCorrupt`` and the history rebuilds the index from git.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass

_MAGIC = b"infitool-edit version index 1\n"
# sha, parent (0 = none), time, text offset, text length, text crc, record crc
_RECORD = struct.Struct("<20sIdQII")
_CRC = struct.Struct("<I")
RECORD_SIZE = _RECORD.size + _CRC.size
_HEADER = _MAGIC.ljust(RECORD_SIZE, b"\0")

INDEX_FILE = "versions.idx"
TEXT_FILE = "versions.text"


class IndexCorrupt(Exception):
    """The index does not match what it should hold; rebuild it from git."""


@dataclass(frozen=True)
class IndexEntry:
    number: int
    commit: str
    parent: int | None
    branch: str
    author: str
    message: str
    time: float
    scale: str | None = None
    back_to: int | None = None


class VersionIndex:
    """The index files in ``folder``, open for reading and appending."""

    def __init__(self, folder: str):
        self._index_path = os.path.join(folder, INDEX_FILE)
        self._text_path = os.path.join(folder, TEXT_FILE)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        self._index_fd = os.open(self._index_path, flags, 0o644)
        self._text_fd = os.open(self._text_path, flags, 0o644)
        try:
            self._count = self._check_layout()
            self._text_size = os.fstat(self._text_fd).st_size
            if self._count:
                self.entry(self._count)  # the newest record is the one a crash can hurt
        except BaseException:
            self.close()
            raise

    def _check_layout(self) -> int:
        size = os.fstat(self._index_fd).st_size
        if size == 0:
            os.write(self._index_fd, _HEADER)
            return 0
        if os.pread(self._index_fd, RECORD_SIZE, 0) != _HEADER:
            raise IndexCorrupt("the index header is not ours")
        count, torn = divmod(size - RECORD_SIZE, RECORD_SIZE)
        if torn:
            # A write cut short by a kill: that version's ref was already
            # written, so reconciling with git brings the entry back.
            os.ftruncate(self._index_fd, RECORD_SIZE * (count + 1))
        return count

    @property
    def count(self) -> int:
        return self._count

    def append(self, entry: IndexEntry) -> None:
        if entry.number != self._count + 1:
            raise IndexCorrupt(f"version {entry.number} appended after {self._count}")
        values = [entry.branch, entry.author, entry.message]
        if entry.scale is not None or entry.back_to is not None:
            values += [entry.scale, entry.back_to]
        text = json.dumps(values, ensure_ascii=False).encode("utf-8")
        os.write(self._text_fd, text)
        offset = self._text_size
        self._text_size += len(text)
        fields = _RECORD.pack(
            bytes.fromhex(entry.commit),
            entry.parent or 0,
            entry.time,
            offset,
            len(text),
            zlib.crc32(text),
        )
        os.write(self._index_fd, fields + _CRC.pack(zlib.crc32(fields)))
        self._count += 1

    def commit_of(self, number: int) -> str:
        """Only the sha, without touching the text file."""
        return self._records(number, number + 1)[0][0].hex()

    def entry(self, number: int) -> IndexEntry:
        return self.entries(number, number + 1)[0]

    def entries(self, start: int, stop: int) -> list[IndexEntry]:
        """Versions ``start`` up to (not including) ``stop``, oldest first."""
        records = self._records(start, stop)
        if not records:
            return []
        text_start = records[0][3]
        last = records[-1]
        blob = os.pread(self._text_fd, last[3] + last[4] - text_start, text_start)
        entries = []
        for number, (sha, parent, time, offset, length, text_crc) in enumerate(records, start):
            text = blob[offset - text_start : offset - text_start + length]
            if len(text) != length or zlib.crc32(text) != text_crc:
                raise IndexCorrupt(f"the text of version {number} is damaged")
            branch, author, message, *graded = json.loads(text)
            scale, back_to = graded if graded else (None, None)
            entries.append(
                IndexEntry(
                    number, sha.hex(), parent or None, branch, author, message, time,
                    scale, back_to,
                )
            )
        return entries

    def _records(self, start: int, stop: int) -> list[tuple]:
        if not 1 <= start <= stop <= self._count + 1:
            raise IndexError(f"versions {start}..{stop - 1} are outside 1..{self._count}")
        raw = os.pread(self._index_fd, RECORD_SIZE * (stop - start), RECORD_SIZE * start)
        records = []
        for position in range(0, len(raw), RECORD_SIZE):
            fields = raw[position : position + _RECORD.size]
            (crc,) = _CRC.unpack_from(raw, position + _RECORD.size)
            if zlib.crc32(fields) != crc:
                raise IndexCorrupt(f"the record of version {start + len(records)} is damaged")
            records.append(_RECORD.unpack(fields))
        if len(records) != stop - start:
            raise IndexCorrupt("the index is shorter than it claims")
        return records

    def close(self) -> None:
        for fd in (self._index_fd, self._text_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def write_index(folder: str, entries: list[IndexEntry]) -> None:
    """Replace the index in ``folder`` with ``entries`` (numbered 1, 2, 3 …)."""
    temp = os.path.join(folder, "rebuild.tmp")
    os.makedirs(temp, exist_ok=True)
    for name in (INDEX_FILE, TEXT_FILE):
        try:
            os.unlink(os.path.join(temp, name))
        except FileNotFoundError:
            pass
    fresh = VersionIndex(temp)
    try:
        for entry in entries:
            fresh.append(entry)
    finally:
        fresh.close()
    # Text before index: a kill in between leaves an index whose text does
    # not match, which the next open detects and rebuilds again.
    os.replace(os.path.join(temp, TEXT_FILE), os.path.join(folder, TEXT_FILE))
    os.replace(os.path.join(temp, INDEX_FILE), os.path.join(folder, INDEX_FILE))
    os.rmdir(temp)
