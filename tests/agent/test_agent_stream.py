"""The stored stream on its own: records, branches, and what a kill leaves."""

from __future__ import annotations

from pathlib import Path

from infitool_edit.agent.stream import RECORD_DTYPE, StreamLog
from infitool_edit.stream_records import HEADER


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
    assert (tmp_path / "states.bin").read_bytes() == b"S0S1"
    assert (tmp_path / "stream.txt").read_bytes().endswith(b"@ok v4\n")
    assert (tmp_path / "records.bin").stat().st_size == len(HEADER) + 4 * RECORD_DTYPE.itemsize
