"""The stream's records carry checksums (issue 13): a record, its text or
its state damaged in place, without changing any size, is detected on open
and the stream is cut back to the last good record with one warning line;
a stream written before the checksums is still read, and rewritten with
them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from infitool_edit.agent.stream import StreamLog
from infitool_edit.stream_records import HEADER, RECORD_V1, RECORD_V2

CHUNKS = ["@goal g\n", "> a\n@ok v2\n", "> b\n@ok v3\n", "> c\n@ok v4\n"]
SLOT = 8 + 16  # a 16-byte state in states.bin: its length, then its bytes


def four_records(folder: Path) -> None:
    log = StreamLog(folder)
    for n, text in enumerate(CHUNKS):
        log.append(text, tokens=n + 1, version=n + 1 if n else None, head_version=n + 1, state=bytes([n]) * 16)
    log.close()


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def reopened(folder: Path, caplog) -> tuple[StreamLog, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="infitool_edit"):
        log = StreamLog(folder)
    return log, [r.getMessage() for r in caplog.records]


def record_offset(index: int, field: str) -> int:
    return len(HEADER) + index * RECORD_V2.itemsize + RECORD_V2.fields[field][1]


@pytest.mark.parametrize(
    "damage, what",
    [
        # version 3 -> 2: still a plausible record, so only a checksum sees it
        (lambda folder: flip(folder / "records.bin", record_offset(2, "version")), "record 2 fails its checksum"),
        (lambda folder: flip(folder / "stream.txt", len("".join(CHUNKS[:2])) + 2), "record 2's text"),
        (lambda folder: flip(folder / "states.bin", 2 * SLOT + 8 + 5), "record 2's state"),
    ],
    ids=["record", "text", "state"],
)
def test_damage_in_place_is_detected_and_cut_back_to_the_last_good_record(tmp_path, caplog, damage, what):
    four_records(tmp_path)
    damage(tmp_path)
    log, warnings = reopened(tmp_path, caplog)
    assert len(log) == 2, "the damaged record and everything after it are dropped"
    assert log.tail_text() == "".join(CHUNKS[:2])
    assert log.record_for_version(3) is None
    assert len(warnings) == 1 and "\n" not in warnings[0] and what in warnings[0], warnings
    log.close()
    # The files were cut, never extended or mended: what is left is a prefix.
    assert (tmp_path / "stream.txt").read_bytes() == "".join(CHUNKS[:2]).encode()
    assert (tmp_path / "states.bin").read_bytes() == b"".join(
        (16).to_bytes(8, "little") + bytes([n]) * 16 for n in range(2)
    )
    again, warnings = reopened(tmp_path, caplog)
    assert len(again) == 2 and warnings == []
    again.append("> d\n@ok v5\n", tokens=9, version=5)
    again.close()
    assert len(StreamLog(tmp_path)) == 3


def test_a_stream_without_checksums_is_read_and_rewritten_with_them(tmp_path, caplog):
    """The format main wrote before: no header, 64-byte records."""
    text = b""
    rows = np.zeros(len(CHUNKS), dtype=RECORD_V1)
    for n, chunk in enumerate(CHUNKS):
        start = len(text)
        text += chunk.encode()
        rows[n] = (n - 1, start, len(text), 0, n + 1 if n else -1, n + 1, n + 1, n)
    (tmp_path / "stream.txt").write_bytes(text)
    (tmp_path / "states.bin").write_bytes(b"".join(bytes([n]) * 16 for n in range(len(CHUNKS))))
    (tmp_path / "state-size").write_text("16")
    (tmp_path / "records.bin").write_bytes(rows.tobytes())
    log, warnings = reopened(tmp_path, caplog)
    assert warnings == []
    assert len(log) == 4 and log.tail_text() == "".join(CHUNKS)
    assert log.state(log.record_for_version(3)) == bytes([2]) * 16
    log.close()
    records = (tmp_path / "records.bin").read_bytes()
    assert records.startswith(HEADER) and len(records) == len(HEADER) + 4 * RECORD_V2.itemsize
    # Now checksummed: damage in place is seen.
    flip(tmp_path / "stream.txt", len("".join(CHUNKS[:3])) + 1)
    log, warnings = reopened(tmp_path, caplog)
    assert len(log) == 3 and len(warnings) == 1 and "record 3's text" in warnings[0]
    log.close()


def test_a_damaged_header_alone_is_put_back(tmp_path, caplog):
    four_records(tmp_path)
    flip(tmp_path / "records.bin", 3)
    log, warnings = reopened(tmp_path, caplog)
    assert len(log) == 4 and warnings == []
    log.close()
    assert (tmp_path / "records.bin").read_bytes().startswith(HEADER)
