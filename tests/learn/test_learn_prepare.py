"""The training folder: prose, checked streams, a manifest; resumable."""

import json
import random

import pytest

from infitool_edit.learn import corpus, prepare

WORDS = ("keeper lamp light ships weather winter harbour glass signal night storm log entries family "
         "coast boat oil watch morning evening fog rocks").split()


def small_corpus(split="train", *, sources=None):
    """A few made-up documents with sections, so the test does not read the bundles."""
    rng = random.Random(split)
    out = []
    for d in range(8):
        parts = [f"# Chapter {d}"]
        for s in range(4):
            parts.append(f"## Part {d} {s} of the Year")
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 11))).capitalize() + "."
                         for _ in range(rng.randint(3, 5))]
            parts.append(" ".join(sentences))
        out.append(corpus.Document("made-up", f"doc{d}.md", "\n\n".join(parts) + "\n", "CC0-1.0"))
    return out


def test_prepare_builds_a_folder_of_checked_streams_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "documents", small_corpus)
    monkeypatch.setattr(prepare, "SHARD_STREAMS", 6)
    out = tmp_path / "data"
    manifest = prepare.prepare(out, streams=30, seed=3, jobs=1, bundles=())
    streams = [json.loads(line) for line in (out / "streams.jsonl").read_text().splitlines()]
    assert len(streams) == manifest["counts"]["total"] == 30
    assert {s["task"] for s in streams} == {"typos", "mechanics", "clean", "structure", "process"}
    for record in streams:
        assert set(record) == {"stream", "task", "source", "path"}
        assert record["stream"].startswith("@goal ") and "\n> done " in record["stream"]
    prose = [json.loads(line) for line in (out / "prose.jsonl").read_text().splitlines()]
    assert prose and all(set(p) == {"text", "source", "path", "licence"} for p in prose)
    assert manifest["replay_failures"] == 0 and manifest["seed"] == 3
    assert "sha256" in manifest["split"] and {s["source"] for s in manifest["sources"]} >= {"rust-book", "peps"}
    assert json.loads((out / "manifest.json").read_text())["counts"] == manifest["counts"]

    # The validation streams come from the held-out documents only (the corpus stand-in gives each
    # split its own text), in the same mix, with held-out prose beside them.
    heldout = [json.loads(line) for line in (out / "heldout" / "streams.jsonl").read_text().splitlines()]
    assert len(heldout) == manifest["heldout_counts"]["total"] == 30
    assert {s["task"] for s in heldout} == {s["task"] for s in streams}
    train_drafts = {s["stream"].split("\n> ", 1)[0] for s in streams}
    assert not train_drafts & {s["stream"].split("\n> ", 1)[0] for s in heldout}
    heldout_prose = (out / "heldout" / "prose.jsonl").read_text()
    assert heldout_prose and not {json.loads(line)["text"] for line in heldout_prose.splitlines()} & {p["text"] for p in prose}

    # A second run finds every shard whole and only merges: the same folder.
    before = (out / "streams.jsonl").read_text()
    shard = next((out / "parts").glob("typos-*.jsonl"))
    stamp = shard.stat().st_mtime_ns
    again = prepare.prepare(out, streams=30, seed=3, jobs=1, bundles=())
    assert shard.stat().st_mtime_ns == stamp and (out / "streams.jsonl").read_text() == before
    assert again["counts"] == manifest["counts"]
    merged = prepare.prepare(out, streams=30, seed=3, bundles=(), merge_only=True)
    assert merged["counts"] == manifest["counts"]


def test_merging_shards_keeps_a_row_whole_when_its_text_holds_a_unicode_line_separator(tmp_path):
    # shard rows are written with ensure_ascii=False: U+2028 and U+0085 stand raw inside a row
    (tmp_path / "parts").mkdir()
    rows = [{"task": "clean", "stream": "@goal Fix it.\n1│a\u2028b\x85c\n"}, {"task": "typos", "stream": "x"}]
    (tmp_path / "parts" / "p0.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    shard = prepare.Shard(name="p0.jsonl", kind="clean", count=2, seed="s")
    counts = prepare._merge(tmp_path, [shard], 10, 0)
    merged = (tmp_path / "streams.jsonl").read_text(encoding="utf-8").split("\n")
    assert counts == {"total": 2, "clean": 1, "typos": 1}
    assert sorted(json.loads(line)["stream"] for line in merged if line) == sorted(row["stream"] for row in rows)


def test_a_mix_given_by_the_caller_sets_the_kinds_and_their_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "documents", small_corpus)
    monkeypatch.setattr(prepare, "SHARD_STREAMS", 6)
    mix = prepare.parse_mix("typos=2, structure=1")
    assert mix == {"typos": 2.0, "structure": 1.0}
    manifest = prepare.prepare(tmp_path / "data", streams=12, seed=3, jobs=1, mix=mix)  # no traces asked: no bundle read
    assert manifest["counts"] == {"total": 12, "structure": 4, "typos": 8} and manifest["mix"] == mix
    assert prepare.parse_mix("asks=1,typos=2") == {"asks": 1.0, "typos": 2.0}  # named, never in the default mix
    assert "asks" not in prepare.MIX
    for bad, said in [("typos=two", "a share is a number"), ("spelling=3", "unknown task kind 'spelling'"),
                      ("typos=0", "a share above 0"), ("", "a share above 0")]:
        with pytest.raises(prepare.PrepareError, match=said):
            prepare.parse_mix(bad)


def test_real_commit_lessons_are_asked_for_by_name_and_read_a_slice_of_each_bundle(tmp_path):
    mix = prepare.parse_mix("decline=1,typos=1")
    shards = prepare.plan_shards(40, 0, mix=mix)
    declines = [s for s in shards if s.kind == "decline"]
    assert {(s.bundle, s.part) for s in declines} == {(b, p) for b, n in prepare.TRACE_PARTS.items() for p in range(n)}
    assert sum(s.count for s in declines) >= 20 and not [s for s in shards if s.kind == "traces"]
    if not (corpus.data_dir() / "rust-rfcs.bundle").is_file():
        pytest.skip(f"rust-rfcs.bundle is not in {corpus.data_dir()}")
    shard = prepare.Shard("decline-rust-rfcs-0.jsonl", "decline", 2, "0:decline", "rust-rfcs", 0, 3, max_pairs=400)
    (tmp_path / "parts").mkdir()
    summary = prepare.build_shard((shard, str(tmp_path)))
    rows = [json.loads(line) for line in (tmp_path / "parts" / shard.name).read_text().splitlines()]
    assert summary["streams"] == len(rows) == 2 and {r["task"] for r in rows} == {"decline"}
    assert all(r["stream"].endswith("@done\n") and r["path"].startswith("decline/") for r in rows)


def test_copy_drills_join_the_prose_and_every_command_in_them_copies_its_goal(tmp_path, monkeypatch):
    from infitool_edit.commands import parse
    from infitool_edit.learn.drill import copy_drill

    monkeypatch.setattr(corpus, "documents", small_corpus)
    monkeypatch.setattr(prepare, "_POOLS", {})
    manifest = prepare.prepare(tmp_path / "data", streams=6, seed=3, jobs=1, mix={"typos": 1.0}, copy_drill_mb=0.02)
    records = [json.loads(line) for line in (tmp_path / "data" / "prose.jsonl").read_text().splitlines()]
    drills = [r for r in records if r["source"] == "copy-drill"]
    assert drills and manifest["prose"]["copy-drill"] == len(drills)
    assert manifest["prose"]["copy_drill_bytes"] >= 20_000
    assert any(s["source"] == "copy-drill" for s in manifest["sources"])

    # The held-out drills (from held-out headings) are what train measures copying on: only the
    # names the commands copy are learnt there.
    from infitool_edit.learn.dataset import DataFolder
    from infitool_edit.learn.drill import copy_mask
    from infitool_edit.learn.train import CONFIGS, heldout_sets

    folder = DataFolder.load(tmp_path / "data")
    assert folder.heldout_copy is not None
    line = b'> replace "## Part 1" "## Winter \\"Storms\\""\n> insert #a "## Keepers Today\\n\\n"\n'
    assert bytes(memoryview(line)[i] for i in copy_mask(line).nonzero()[0]) == b'Winter \\"Storms\\"Keepers Today'
    ids, mask = heldout_sets(folder, CONFIGS["smoke"])["copy"]
    assert 0 < mask.sum() < 0.5 * mask.numel()

    # The same seed, the same drill; each goal's new name comes back exactly in its command.
    titles = ["Part 1 of the Year", "Winter Storms", "The Harbour Light"]
    again = list(copy_drill(random.Random(5), titles, 0.01))
    assert again == list(copy_drill(random.Random(5), titles, 0.01))
    commands = 0
    for line in "".join(r["text"] for r in again).splitlines():
        if line.startswith("> "):
            parse(line[2:])  # a real command line
            commands += 1
    assert commands > 100
    goal, copies = "", 0
    for line in again[0]["text"].splitlines():
        if line.startswith("@goal "):
            goal = line
        elif line.startswith(("> insert", "> replace")):
            assert any(f"## {name}" in line for name in goal.split('"')[1::2]), (goal, line)
            copies += 1
    assert copies > 20
