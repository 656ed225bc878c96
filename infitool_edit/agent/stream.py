"""The session's stream, stored beside the history so a session can reopen.

The stream is the model's whole input: ``@goal``, ``@view``, the model's
lines ``> command``, the observations ``@…`` and the writer's events
``@user …``. It is consumed once, recurrently, so reopening a session must
never re-read it: what the model needs to continue is its recurrent state at
the last record plus, at most, the few records since the last stored state.

On disk (one folder per draft, beside its history: :func:`stream_dir_for`):

- ``stream.txt`` — append-only UTF-8 text, every chunk in the order written.
- ``records.bin`` — a header, then append-only fixed-size records, one per
  chunk (a turn: the model's line with its observation, or a runtime event).
  A record names its parent record, so after a rewind the logical stream is
  the parent chain (the text of a forked line is a prefix of the old one plus
  new chunks). Each record carries CRC-32s of itself, of its chunk's text and
  of its state slot (layout: ``infitool_edit/stream_records.py``); a stream
  written before the checksums is read as it was and rewritten with them.
- ``states.bin`` — the recurrent state after every ``keyframe_every``-th
  record (the records between are replayed exactly), each as its length (8
  bytes, little-endian) and its bytes; a record's ``state_slot`` is the byte
  offset where its state starts. States may grow: a hybrid's attention
  window fills before it wraps. ``state-size`` says which form a stream
  uses: ``sized`` for this one, a number for the fixed-size slots (slot
  index × size) that streams were written with before, which are read and
  continued as they are.

Writes go text, then state, then record: the record is the commit point. On
open, anything written after the last whole record (a kill mid-write) is cut
off, so the three files always agree.

Repairs only shrink: on open the records are checked in order (their own
checksum, parent before them, text where the previous chunk ended, inside
``stream.txt`` and matching its checksum, state slots in sequence, inside
``states.bin`` and matching theirs); the first that does not check out ends
the valid prefix, everything from it on is cut off and reported in one
warning line. A file is never extended, whatever a damaged record claims,
and nothing is made up: a damaged record is dropped, never mended.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infitool_edit import stream_records
from infitool_edit.errors import InfitoolError
from infitool_edit.stream_records import HEADER, RECORD_V1, RECORD_V2, STREAM_FOLDER

RECORD_DTYPE = RECORD_V2  # what this code writes


log = logging.getLogger("infitool_edit")
# A recurrent state bigger than this is not one we wrote (a 7B Mamba's is ~40 MB).
MAX_STATE_BYTES = 1 << 30
# ``state-size`` of a stream whose states carry their own length.
SIZED = "sized"
LENGTH = struct.Struct("<Q")


class StreamError(InfitoolError, ValueError):
    """The stream's files cannot be used as they are; one line naming the
    file and what to do."""


def stream_dir_for(history) -> Path:
    """Where a draft's stream lives: in the history's own folder for the
    draft, which git ignores (never in the writer's tree)."""
    return Path(history.folder, STREAM_FOLDER)


@dataclass(frozen=True)
class Record:
    """One chunk of the stream (see ``RECORD_DTYPE`` for the fields)."""

    index: int
    parent: int
    start: int
    end: int
    model_bytes: int
    version: int | None
    head_version: int | None
    tokens: int
    state_slot: int | None


# Streams this process closed: directory -> (the files as they were then, `_files_as_they_are`,
# and how many records they held). Every one of those records was checked when the stream was
# opened or written here since, and the tails past them cut, so opening the stream again in this
# process (a runner per goal, in one editing session) takes them as they are when the files have
# not changed since, instead of checking every record again: that made each new goal cost time
# in proportion to the whole session (bench agent's soak: a runner opened 369 times in 10,000
# commands, 1.57x slower per command by the end). A file changed since, by size, inode or
# modification time (nanoseconds, as precise as the file system's clock), is checked in full.
_CLOSED: dict[Path, tuple[tuple, int]] = {}


class StreamLog:
    """The append-only stream of one draft. Not thread-safe: the runner's
    thread is its only writer."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._text_path = self.directory / "stream.txt"
        self._records_path = self.directory / "records.bin"
        self._states_path = self.directory / "states.bin"
        self._state_size_path = self.directory / "state-size"
        found = self._files_as_they_are()  # before touch() sets their times
        for path in (self._text_path, self._records_path, self._states_path):
            path.touch(exist_ok=True)
        self._state_size = self._load_state_size()  # None: states carry their length (SIZED)
        self._records = self._load_records(found)
        self._repair_tails()
        versions = self._records["version"][: self._count]
        made = np.nonzero(versions >= 0)[0]
        self._versions = dict(zip(versions[made].tolist(), made.tolist()))
        self._text = open(self._text_path, "ab")
        self._states = open(self._states_path, "ab")
        self._index = open(self._records_path, "ab")
        self.head_index = self._count - 1

    # --- reading -----------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def record(self, index: int) -> Record:
        row = self._records[index]
        return Record(
            index=index,
            parent=int(row["parent"]),
            start=int(row["start"]),
            end=int(row["end"]),
            model_bytes=int(row["model_bytes"]),
            version=int(row["version"]) if row["version"] >= 0 else None,
            head_version=int(row["head_version"]) if row["head_version"] >= 0 else None,
            tokens=int(row["tokens"]),
            state_slot=int(row["state_slot"]) if row["state_slot"] >= 0 else None,
        )

    @property
    def head(self) -> Record | None:
        """The record the stream continues from (the last one written, or the
        one a rewind moved to)."""
        return self.record(self.head_index) if self.head_index >= 0 else None

    def record_for_version(self, version: int) -> Record | None:
        index = self._versions.get(version)
        return self.record(index) if index is not None else None

    def chunk(self, record: Record) -> str:
        with open(self._text_path, "rb") as f:
            f.seek(record.start)
            data = f.read(record.end - record.start)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StreamError(
                f"{self._text_path} is damaged at bytes {record.start}-{record.end}; delete the folder "
                f"{self.directory} to start the model's stream afresh (the history keeps every version)"
            ) from None

    def chain(self, record: Record | None, *, since_state: bool = False) -> list[Record]:
        """The records from the start of the logical stream (or, with
        ``since_state``, from the last one holding a state) to ``record``."""
        out = []
        while record is not None:
            out.append(record)
            if since_state and record.state_slot is not None:
                break
            record = self.record(record.parent) if record.parent >= 0 else None
        out.reverse()
        return out

    def tail_text(self, max_chars: int = 20_000) -> str:
        """The end of the logical stream up to the head (for display, and for
        backends that are shown the stream again when loaded)."""
        parts, size = [], 0
        record = self.head
        while record is not None and size < max_chars:
            text = self.chunk(record)
            parts.append(text)
            size += len(text)
            record = self.record(record.parent) if record.parent >= 0 else None
        return "".join(reversed(parts))[-max_chars:]

    def state(self, record: Record) -> bytes:
        if record.state_slot is None:
            raise LookupError(f"record {record.index} holds no state")
        with open(self._states_path, "rb") as f:
            stored = self._stored_state(f, record.state_slot, os.fstat(f.fileno()).st_size)
        if stored is None:  # checked on open; only a change to the file since then gets here
            raise StreamError(
                f"{self._states_path} lost record {record.index}'s state; delete the folder {self.directory} "
                "to start the model's stream afresh (the history keeps every version)"
            )
        return stored if self._state_size is not None else stored[LENGTH.size:]

    # --- writing -----------------------------------------------------------

    def append(
        self,
        text: str,
        *,
        model_bytes: int = 0,
        version: int | None = None,
        head_version: int | None = None,
        tokens: int,
        state: bytes | None = None,
    ) -> Record:
        """Append a chunk after the head and make it the new head."""
        data = text.encode("utf-8")
        start = self._text.tell()
        self._text.write(data)
        self._text.flush()
        slot, stored = -1, None
        if state is not None:
            if not self._state_size_path.exists():
                temporary = self._state_size_path.with_suffix(".tmp")
                temporary.write_text(SIZED)
                os.replace(temporary, self._state_size_path)  # never half a word
            if self._state_size is None:
                slot, stored = self._states.tell(), LENGTH.pack(len(state)) + state
            elif len(state) == self._state_size:
                slot, stored = self._states.tell() // self._state_size, state
            else:
                raise StreamError(
                    f"{self.directory} holds states of {self._state_size} bytes (fixed slots, an older stream) and "
                    f"this model's is {len(state)}: delete the folder to start the model's stream afresh "
                    "(the history keeps every version)"
                )
            self._states.write(stored)
            self._states.flush()
        row = np.zeros(1, dtype=RECORD_DTYPE)
        row[0] = (
            self.head_index,
            start,
            start + len(data),
            model_bytes,
            -1 if version is None else version,
            -1 if head_version is None else head_version,
            tokens,
            slot,
            stream_records.crc(data),
            stream_records.crc(stored) if stored is not None else 0,
            0,
            0,
        )
        stream_records.seal(row)
        self._index.write(row.tobytes())
        self._index.flush()
        self._grow(row)
        self.head_index = self._count - 1
        if version is not None:
            self._versions[version] = self.head_index
        return self.record(self.head_index)

    def move_head(self, record: Record) -> None:
        """Continue the stream from an earlier record (a rewind or a fork).
        Nothing is lost: the next append names this record as its parent."""
        self.head_index = record.index

    def close(self) -> None:
        for f in (self._text, self._states, self._index):
            f.close()
        files = self._files_as_they_are()
        if files is not None:
            _CLOSED[self.directory.resolve()] = (files, self._count)

    def _files_as_they_are(self) -> tuple | None:
        """(size, inode, modification time) of the three files, None where one is missing."""
        try:
            stats = [os.stat(path) for path in (self._records_path, self._text_path, self._states_path)]
        except OSError:
            return None
        return tuple((stat.st_size, stat.st_ino, stat.st_mtime_ns) for stat in stats)

    # --- internals ---------------------------------------------------------

    def _load_records(self, found: tuple | None) -> np.ndarray:
        raw = self._records_path.read_bytes()
        form, rows, offset = stream_records.parse(raw)
        if found is not None and form == 2 and _CLOSED.get(self.directory.resolve()) == (found, len(rows)):
            valid, reason = len(rows), ""  # closed by this process and not changed since (_CLOSED)
        else:
            valid, reason = self._valid_prefix(rows, raw, offset)
        if valid < len(rows):
            log.warning(
                "warning: %s: dropped %d of %d stream records from record %d on (%s); the history keeps every version",
                self.directory, len(rows) - valid, len(rows), valid, reason,
            )
        if form == 2:
            records = rows[:valid].copy()
            if not raw.startswith(HEADER):  # only the header was damaged: put it back, nothing else changes
                self._rewrite_records(records)
        else:
            records = self._with_checksums(rows[:valid])
            self._rewrite_records(records)
        self._count = len(records)
        return records

    def _valid_prefix(self, rows: np.ndarray, raw: bytes, offset: int) -> tuple[int, str]:
        """How many leading records are consistent with each other and with
        the files (and, for records with checksums, match them), and why the
        next one is not.

        The checks of each record on its own and against stream.txt run over
        all records at once (numpy, one CRC call a record); only the records
        with a state are walked one by one, since each slot must follow the
        last. The reason is then `_record_problem`'s, record by record."""
        checked = rows.dtype == RECORD_V2
        text = self._text_path.read_bytes()
        text_view = memoryview(text)
        limit = stream_records.first_inconsistent_row(2 if checked else 1, rows, raw, offset)
        head = rows[:limit]
        impossible = ((head["end"] > len(text)) | (head["model_bytes"] < 0)
                      | (head["model_bytes"] > head["end"] - head["start"]) | (head["tokens"] < 0))
        if checked:
            text_crcs = np.fromiter(
                (zlib.crc32(text_view[start:end]) for start, end in zip(head["start"].tolist(), head["end"].tolist())),
                dtype=np.uint32, count=len(head))
            impossible |= text_crcs != head["text_crc"]
        hits = np.flatnonzero(impossible)
        limit = int(hits[0]) if len(hits) else limit
        states_size = self._states_path.stat().st_size
        next_slot = 0
        with open(self._states_path, "rb") as states:
            for index in np.flatnonzero(rows["state_slot"][:limit] != -1).tolist():
                row, slot = rows[index], int(rows["state_slot"][index])
                stored = self._stored_state(states, slot, states_size) if slot == next_slot else None
                if stored is None:
                    return index, f"record {index} names state slot {slot}, which states.bin lacks"
                if checked and stream_records.crc(stored) != int(row["state_crc"]):
                    return index, f"record {index}'s state (slot {slot} of states.bin) fails its checksum"
                next_slot = self._slot_after(slot, stored)
        if limit == len(rows):
            return limit, ""
        return limit, self._record_problem(limit, rows, raw, offset, text_view)

    @staticmethod
    def _record_problem(index: int, rows: np.ndarray, raw: bytes, offset: int, text_view: memoryview) -> str:
        """Why record ``index`` fails a check of its own or against stream.txt (the records
        before it pass them), in the order the checks are made."""
        row = rows[index]
        parent, start, end, model_bytes, version, head_version, tokens, _ = (int(row[name]) for name in RECORD_V1.names)
        size = rows.dtype.itemsize
        checked = rows.dtype == RECORD_V2
        text_end = int(rows["end"][index - 1]) if index else 0
        if checked and not stream_records.row_checks_out(raw[offset + index * size: offset + (index + 1) * size], row):
            return f"record {index} fails its checksum"
        if not -1 <= parent < index:
            return f"record {index} names parent {parent}"
        if start != text_end or not start <= end <= len(text_view):
            return f"record {index} claims bytes {start}-{end} of a {len(text_view)}-byte stream.txt"
        if not 0 <= model_bytes <= end - start or version < -1 or head_version < -1 or tokens < 0:
            return f"record {index} holds impossible counts"
        return f"record {index}'s text (bytes {start}-{end} of stream.txt) fails its checksum"

    def _with_checksums(self, old: np.ndarray) -> np.ndarray:
        """Records of a stream written before the checksums, as checksummed
        ones: the checksums are of the files as they are now (already
        checked for consistency; nothing older is known to compare with)."""
        records = np.zeros(len(old), dtype=RECORD_V2)
        for name in RECORD_V1.names:
            records[name] = old[name]
        text = memoryview(self._text_path.read_bytes())
        with open(self._states_path, "rb") as states:
            states_size = os.fstat(states.fileno()).st_size
            for index in range(len(records)):
                row = records[index : index + 1]
                row["text_crc"] = stream_records.crc(text[int(row["start"][0]): int(row["end"][0])])
                slot = int(row["state_slot"][0])
                if slot >= 0:
                    row["state_crc"] = stream_records.crc(self._stored_state(states, slot, states_size))
                stream_records.seal(row)
        return records

    def _rewrite_records(self, records: np.ndarray) -> None:
        """records.bin as the header and ``records``, replaced atomically
        (a kill leaves the old file or the new one)."""
        temporary = self._records_path.with_name("records.bin.tmp")
        with open(temporary, "wb") as f:
            f.write(HEADER)
            f.write(records.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self._records_path)

    def _stored_state(self, states, slot: int, states_size: int) -> bytes | None:
        """State slot ``slot`` as stored (for a sized stream its length, then
        its bytes: what ``state_crc`` covers), or None where ``states.bin``
        (``states_size`` bytes) does not hold it whole."""
        if self._state_size is not None:
            if not 0 <= slot < states_size // self._state_size:
                return None
            states.seek(slot * self._state_size)
            return states.read(self._state_size)
        if not 0 <= slot <= states_size - LENGTH.size:
            return None
        states.seek(slot)
        head = states.read(LENGTH.size)
        (length,) = LENGTH.unpack(head)
        if length > min(MAX_STATE_BYTES, states_size - slot - LENGTH.size):
            return None
        return head + states.read(length)

    def _slot_after(self, slot: int, stored: bytes) -> int:
        """The slot the next state goes to."""
        return slot + 1 if self._state_size is not None else slot + len(stored)

    def _end_of_state(self, slot: int) -> int:
        """Where a state the records were checked against ends in ``states.bin``: for a sized
        stream its length is read, not the state (a 7B model's is ~40 MB)."""
        if self._state_size is not None:
            return (slot + 1) * self._state_size
        with open(self._states_path, "rb") as states:
            states.seek(slot)
            (length,) = LENGTH.unpack(states.read(LENGTH.size))
        return slot + LENGTH.size + length

    def _load_state_size(self) -> int | None:
        """The fixed slot size of an older stream, or None for a sized one
        (or a new one, which will be sized)."""
        if not self._state_size_path.exists():
            return None
        try:
            content = self._state_size_path.read_text(encoding="ascii").strip()
            size = None if content == SIZED else int(content)
        except (ValueError, UnicodeDecodeError, OSError):
            size = 0
        if size is None:
            return None
        if not 0 < size <= MAX_STATE_BYTES:
            raise StreamError(
                f"{self._state_size_path} is damaged (not a state size); delete the folder {self.directory} "
                "to start the model's stream afresh (the history keeps every version)"
            )
        return size

    def _repair_tails(self) -> None:
        """Cut what a kill (or damage) left after the last valid record;
        never extend a file."""
        n = len(self._records)
        text_end = int(self._records["end"].max()) if n else 0
        slots = self._records["state_slot"]
        state_end = self._end_of_state(int(slots.max())) if n and slots.max() >= 0 else 0
        for path, size in (
            (self._records_path, len(HEADER) + n * RECORD_DTYPE.itemsize),
            (self._text_path, text_end),
            (self._states_path, state_end),
        ):
            if path.stat().st_size > size:
                os.truncate(path, size)

    def _grow(self, row: np.ndarray) -> None:
        # Amortized growth: appending one row to a large array would copy it
        # every command, which makes a long session slower the longer it runs.
        if self._count == len(self._records):
            bigger = np.zeros(max(1024, 2 * len(self._records)), dtype=RECORD_DTYPE)
            bigger[: self._count] = self._records[: self._count]
            self._records = bigger
        self._records[self._count] = row[0]
        self._count += 1
