"""The stored stream on its own: records, branches, and what a kill leaves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from infitool_edit.agent.stream import RECORD_DTYPE, StreamError, StreamLog
from infitool_edit.stream_records import HEADER, crc, seal


def sized(state: bytes) -> bytes:
    """A state as states.bin stores it: its length, then its bytes."""
    return len(state).to_bytes(8, "little") + state


def test_a_torn_tail_is_cut_and_branches_keep_their_text(tmp_path: Path) -> None:
    log = StreamLog(tmp_path)
    log.append("@goal g\n", tokens=8, state=b"S0", head_version=1)
    first = log.append("> a\n@ok v2\n", model_bytes=4, version=2, tokens=19)
    log.append("> b\n@ok v3\n", model_bytes=4, version=3, tokens=30, state=b"S1")
    log.move_head(first)  # a rewind to v2: the next chunk branches from there
    log.append("@user rewind v2\n@ok v4\n", version=4, head_version=4, tokens=42)
    log.close()
    # A kill mid-write: text and a state past the last record, half a record.
    with open(tmp_path / "stream.txt", "ab") as f:
        f.write(b"> half a li")
    with open(tmp_path / "states.bin", "ab") as f:
        f.write(b"S2")
    with open(tmp_path / "records.bin", "ab") as f:
        f.write(b"\x01" * (RECORD_DTYPE.itemsize // 2))

    reopened = StreamLog(tmp_path)
    assert len(reopened) == 4
    assert reopened.tail_text() == "@goal g\n> a\n@ok v2\n@user rewind v2\n@ok v4\n"
    assert reopened.head.head_version == 4 and reopened.head.tokens == 42
    assert [r.index for r in reopened.chain(reopened.head, since_state=True)] == [0, 1, 3]
    assert reopened.state(reopened.record_for_version(3)) == b"S1"
    assert (tmp_path / "states.bin").read_bytes() == sized(b"S0") + sized(b"S1")
    assert (tmp_path / "stream.txt").read_bytes().endswith(b"@ok v4\n")
    assert (tmp_path / "records.bin").stat().st_size == len(HEADER) + 4 * RECORD_DTYPE.itemsize


def test_states_may_grow_and_each_is_read_back_whole(tmp_path: Path) -> None:
    """A hybrid's attention window fills before it wraps, so its states grow; each keeps its length."""
    states = [bytes([n]) * (10 + 7 * n) for n in range(4)]
    log = StreamLog(tmp_path)
    for n, state in enumerate(states):
        log.append(f"> c{n}\n", tokens=n + 1, version=n + 1, state=state)
    log.close()
    assert (tmp_path / "state-size").read_text() == "sized"
    assert (tmp_path / "states.bin").read_bytes() == b"".join(sized(s) for s in states)
    reopened = StreamLog(tmp_path)
    assert [reopened.state(reopened.record_for_version(n + 1)) for n in range(4)] == states
    reopened.append("> c4\n", tokens=5, version=5, state=b"\x07" * 3)  # and may shrink again (a new model)
    reopened.close()
    last = StreamLog(tmp_path)
    assert last.state(last.head) == b"\x07" * 3
    last.close()


def test_a_stream_with_fixed_slots_is_read_and_continued_as_it_is(tmp_path: Path) -> None:
    """Streams written before states carried their length: ``state-size`` holds the slot size."""
    log = StreamLog(tmp_path)
    log.append("@goal g\n", tokens=1, head_version=1, state=b"A" * 16)
    log.close()
    (tmp_path / "state-size").write_text("16")  # as the older code wrote it, slot 0 at byte 0
    (tmp_path / "states.bin").write_bytes(b"A" * 16)
    records = np.fromfile(tmp_path / "records.bin", dtype=RECORD_DTYPE, offset=len(HEADER))
    records[0]["state_crc"] = crc(b"A" * 16)
    seal(records[0:1])
    (tmp_path / "records.bin").write_bytes(HEADER + records.tobytes())

    old = StreamLog(tmp_path)
    assert len(old) == 1 and old.state(old.head) == b"A" * 16
    old.append("> a\n@ok v2\n", tokens=2, version=2, state=b"B" * 16)
    with pytest.raises(StreamError, match="delete the folder") as caught:
        old.append("> b\n@ok v3\n", tokens=3, version=3, state=b"C" * 20)
    assert "\n" not in str(caught.value)
    old.close()
    again = StreamLog(tmp_path)
    assert len(again) == 2 and again.state(again.head) == b"B" * 16
    assert (tmp_path / "states.bin").read_bytes() == b"A" * 16 + b"B" * 16
    assert (tmp_path / "state-size").read_text() == "16"
    again.close()


def test_a_state_length_that_overruns_states_bin_ends_the_valid_prefix(tmp_path: Path) -> None:
    log = StreamLog(tmp_path)
    for n in range(3):
        log.append(f"> c{n}\n", tokens=n + 1, version=n + 1, state=bytes([n]) * 12)
    log.close()
    states = bytearray((tmp_path / "states.bin").read_bytes())
    states[2 * 20 + 7] = 0x40  # record 2's length: 2**62 bytes
    (tmp_path / "states.bin").write_bytes(bytes(states))
    before = (tmp_path / "states.bin").stat().st_size
    reopened = StreamLog(tmp_path)
    assert len(reopened) == 2 and reopened.state(reopened.head) == bytes([1]) * 12
    reopened.close()
    assert (tmp_path / "states.bin").stat().st_size == 2 * 20 < before


def test_a_stream_this_process_closed_is_reopened_without_checking_every_record_again(tmp_path, monkeypatch):
    """A runner per goal reopens the session's stream: records this process wrote, in files not
    changed since, are taken as they are (checking them all made every new goal cost the length
    of the session). Damage after the close, even the same size, is checked in full."""
    log = StreamLog(tmp_path)
    for n in range(5):
        log.append(f"> c{n}\n@ok v{n + 2}\n", model_bytes=5, version=n + 2, tokens=10 * (n + 1),
                   state=bytes([n]) * 4 if n % 2 == 0 else None)
    log.close()
    checked = []
    real = StreamLog._valid_prefix
    monkeypatch.setattr(StreamLog, "_valid_prefix", lambda self, *a: checked.append(1) or real(self, *a))

    again = StreamLog(tmp_path)
    assert checked == [] and len(again) == 5 and again.state(again.head) == bytes([4]) * 4
    again.append("> c5\n", model_bytes=5, tokens=60)
    again.close()
    assert len(StreamLog(tmp_path)) == 6 and checked == []  # what it wrote since is its own too

    text = tmp_path / "stream.txt"
    damaged = bytearray(text.read_bytes())
    damaged[damaged.index(b"c3")] = ord("x")  # the same size, in place
    text.write_bytes(bytes(damaged))
    reopened = StreamLog(tmp_path)
    assert checked == [1] and len(reopened) == 3  # record 3's text fails its checksum: 3 and after dropped
