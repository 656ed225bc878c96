"""The layout of the agent stream's ``records.bin``, in one place.

The stream (``agent/stream.py``) writes and repairs these records; the
history (``history/store.py``) only reads the versions they name, as
evidence that its refs lost versions. Neither may import the other's
package (the data flows agent -> history), so the layout lives here, beside
``errors.py``.

Two formats:

- **v2** (written since the records carry checksums): ``records.bin`` starts
  with ``HEADER`` (one record long), then ``RECORD_V2`` rows. Each row holds
  the CRC-32 of its chunk's bytes in ``stream.txt`` (``text_crc``), of its
  state slot in ``states.bin`` (``state_crc``, 0 without one), and of its own
  first 72 bytes (``crc``): a record damaged anywhere, or whose text or state
  was damaged, is detected.
- **v1** (older streams): no header, ``RECORD_V1`` rows, no checksums. Read
  as before (structural checks only) and rewritten as v2 on open.
"""

from __future__ import annotations

import os
import zlib

import numpy as np

_FIELDS = [
    ("parent", "<i8"),  # record index, -1 for the first
    ("start", "<i8"),  # byte offsets of the chunk in stream.txt
    ("end", "<i8"),
    ("model_bytes", "<i8"),  # leading bytes of the chunk the model generated
    ("version", "<i8"),  # history version made by this chunk, -1 if none
    ("head_version", "<i8"),  # the draft's version after the chunk, -1 if none
    ("tokens", "<i8"),  # stream tokens along the chain, up to the chunk's end
    ("state_slot", "<i8"),  # slot in states.bin holding the state after it, -1 if none
]
RECORD_V1 = np.dtype(_FIELDS)
RECORD_V2 = np.dtype(
    _FIELDS
    + [
        ("text_crc", "<u4"),  # CRC-32 of stream.txt[start:end]
        ("state_crc", "<u4"),  # CRC-32 of the state slot, 0 without one
        ("crc", "<u4"),  # CRC-32 of this row's bytes before this field
        ("zero", "<u4"),  # always 0 (keeps rows 8-byte aligned)
    ]
)
CHECKED_BYTES = RECORD_V2.fields["crc"][1]  # the row's bytes its own crc covers
HEADER = b"infitool-edit stream records v2\n".ljust(RECORD_V2.itemsize, b"\0")


def crc(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def row_checks_out(raw_row: bytes | memoryview, row) -> bool:
    """Whether a v2 row's own checksum matches its bytes."""
    return int(row["zero"]) == 0 and crc(raw_row[:CHECKED_BYTES]) == int(row["crc"])


def seal(row: np.ndarray) -> None:
    """Fill in a v2 row's own checksum (``row`` is a 1-element array)."""
    row["zero"] = 0
    row["crc"] = crc(row.tobytes()[:CHECKED_BYTES])


def parse(raw: bytes) -> tuple[int, np.ndarray, int]:
    """``(format, rows, offset of the first row)`` of a records.bin's bytes;
    a torn last row is left out. Format 2 also when only the header is
    damaged but the first row checks out as v2."""
    if raw.startswith(HEADER) or (raw and _first_row_is_v2(raw)):
        body = memoryview(raw)[len(HEADER):]
        whole = len(body) // RECORD_V2.itemsize * RECORD_V2.itemsize
        return 2, np.frombuffer(body[:whole], dtype=RECORD_V2), len(HEADER)
    whole = len(raw) // RECORD_V1.itemsize * RECORD_V1.itemsize
    return 1, np.frombuffer(raw[:whole], dtype=RECORD_V1), 0


def _first_row_is_v2(raw: bytes) -> bool:
    first = raw[len(HEADER): len(HEADER) + RECORD_V2.itemsize]
    if len(first) < RECORD_V2.itemsize:
        return False
    row = np.frombuffer(first, dtype=RECORD_V2)[0]
    return row_checks_out(first, row)


def rows_check_out(raw: bytes, rows: np.ndarray, offset: int) -> np.ndarray:
    """Per v2 row of ``raw`` (``rows`` parsed from it, the first at ``offset``): whether its own
    checksum matches its bytes. One CRC call a row, no other Python work: a 100,000-record
    stream is opened in a few tens of milliseconds."""
    size = rows.dtype.itemsize
    body = np.frombuffer(raw, dtype=np.uint8, count=len(rows) * size, offset=offset).reshape(len(rows), size)
    computed = np.fromiter((zlib.crc32(row) for row in body[:, :CHECKED_BYTES]), dtype=np.uint32, count=len(rows))
    return (computed == rows["crc"]) & (rows["zero"] == 0)


def first_inconsistent_row(form: int, rows: np.ndarray, raw: bytes, offset: int) -> int:
    """The index of the first row that does not check out on its own (its checksum in v2;
    parents and text offsets in order, versions not below -1, in both formats), or len(rows)."""
    index = np.arange(len(rows))
    ends_before = np.concatenate(([0], rows["end"][:-1]))  # each row's text starts where the last ended
    bad = ((rows["parent"] < -1) | (rows["parent"] >= index) | (rows["start"] != ends_before)
           | (rows["end"] < rows["start"]) | (rows["version"] < -1) | (rows["head_version"] < -1))
    if form == 2:
        bad |= ~rows_check_out(raw, rows, offset)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else len(rows)


def self_consistent_prefix(raw: bytes) -> np.ndarray:
    """The leading rows of a records.bin that check out on their own
    (`first_inconsistent_row`), without looking at stream.txt or states.bin:
    what the history may take as evidence of the versions the stream saw."""
    form, rows, offset = parse(raw)
    return rows[:first_inconsistent_row(form, rows, raw, offset)]


def newest_version_named(raw: bytes) -> int:
    """The newest history version the stream's self-consistent records name
    (0 when none)."""
    rows = self_consistent_prefix(raw)
    if not len(rows):
        return 0
    return int(max(rows["version"].max(), rows["head_version"].max(), 0))


# Where a draft's stream lives inside its history's folder (the history's
# folder for the draft, which git ignores).
STREAM_FOLDER = "agent"
RECORDS_FILE = "records.bin"


def records_path(history_folder) -> str:
    return os.path.join(history_folder, STREAM_FOLDER, RECORDS_FILE)


def _read_records(history_folder) -> bytes:
    try:
        with open(records_path(history_folder), "rb") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return b""


def newest_version_in_stream(history_folder) -> int:
    """The newest version named by the stream stored in a history's folder
    (0 when it has none, or no stream)."""
    return newest_version_named(_read_records(history_folder))


def stream_has_records(history_folder) -> bool:
    """Whether a stream with anything past its header is stored there."""
    raw = _read_records(history_folder)
    return bool(raw) and raw != HEADER
