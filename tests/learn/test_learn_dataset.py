"""Which stream bytes the model learns, checked on real streams from scripted runs, and the
data folder's reader."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from infitool_edit.agent.backend import MODEL_PREFIX
from infitool_edit.agent.headless import run_headless
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.learn.dataset import DataError, DataFolder, command_mask, pack_streams, sample_windows
from infitool_edit.session.editing import EditingSession

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def scripted_stream(tmp_path: Path, script: str, goal: str) -> tuple[bytes, list]:
    """Run the real session and runner on a copy of examples/draft.md with a command script
    (what `infitool-edit run --script` does); return the stored stream and its records."""
    draft = tmp_path / script / "draft.md"
    draft.parent.mkdir()
    shutil.copyfile(EXAMPLES / "draft.md", draft)
    run_headless(draft, goal, backend=ScriptedBackend(EXAMPLES / script), console=Console(file=io.StringIO()))
    with EditingSession.open(draft, author="writer") as session:
        log = StreamLog(stream_dir_for(session.history))
        records = log.chain(log.head)
        text = b"".join(log.chunk(r).encode("utf-8") for r in records)
        log.close()
    return text, records


@pytest.mark.parametrize("script", ["tighten-intro.cmds", "bad-line.cmds"])
def test_the_mask_is_exactly_the_bytes_the_model_generated(tmp_path, script):
    stream, records = scripted_stream(tmp_path, script, "Tighten the introduction.")
    expected = np.zeros(len(stream), dtype=bool)
    offset, model_lines = 0, 0
    for record in records:
        size = record.end - record.start
        if record.model_bytes:
            # The runtime steps the prefix in; the model samples from there through the newline.
            assert stream[offset : offset + len(MODEL_PREFIX)] == MODEL_PREFIX.encode()
            expected[offset + len(MODEL_PREFIX) : offset + record.model_bytes] = True
            assert stream[offset + record.model_bytes - 1 : offset + record.model_bytes] == b"\n"
            model_lines += 1
        offset += size
    assert model_lines >= 4
    mask = command_mask(stream)
    assert np.array_equal(mask, expected)
    learnt = bytes(np.frombuffer(stream, dtype=np.uint8)[mask])
    assert b'replace 5 "Teh" "The"\n' in learnt
    assert b"\n@" not in learnt  # no runtime line is learnt
    assert b"Teh lighthouse" not in learnt  # the draft shown in observations is never learnt


def test_a_line_cut_short_is_learnt_to_its_end():
    assert command_mask(b"@goal x\n> done").tolist() == [False] * 10 + [True] * 4


def test_a_data_folder_is_read_and_sampled(tmp_path):
    (tmp_path / "prose.jsonl").write_text(
        "\n".join(json.dumps({"text": t, "source": "s", "path": p, "licence": "MIT"}) for t, p in [("Alpha.", "a"), ("Beta.", "b")])
    )
    (tmp_path / "streams.jsonl").write_text(json.dumps({"stream": "@goal g\n> done\n@done\n", "task": "clean"}) + "\n")
    data = DataFolder.load(tmp_path)
    assert bytes(data.prose.tokens) == b"Alpha.\n\nBeta.\n\n"
    assert data.streams.learnt_bytes == len(b"done\n")
    ids, mask = sample_windows(data.streams, 3, 8, np.random.default_rng(0), at_starts=1.0)
    assert ids.shape == mask.shape == (3, 9)
    assert bytes(ids[0].astype(np.uint8)).startswith(b"@goal g\n>")
    (tmp_path / "streams.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="streams.jsonl:1: not JSON"):
        DataFolder.load(tmp_path)


def test_windows_at_decisions_hold_each_streams_first_command():
    # A first command past a window read from the stream's start (a long draft before it) is
    # what at_decisions is for: each such window ends in the stream's first command, not a later one.
    long_draft = "@text 1-1 of 1\n1│" + "word " * 40 + "\n"
    streams = [f"@goal g{n}\n{long_draft}> first{n}\n@ok\n> second{n}\n@ok\n> done\n@done\n" for n in range(3)]
    packed = pack_streams(streams)
    assert [bytes(packed.tokens[d:d + 6]) for d in packed.decisions] == [b"first0", b"first1", b"first2"]
    ids, mask = sample_windows(packed, 64, 64, np.random.default_rng(0), at_decisions=1.0)
    for row, learnt in zip(ids, mask):
        assert row[np.flatnonzero(learnt)[0]] == ord("f")  # the first learnt byte: the first command's
    with pytest.raises(DataError, match="add up past 1"):
        sample_windows(packed, 2, 64, np.random.default_rng(0), at_starts=0.5, at_decisions=0.6)
