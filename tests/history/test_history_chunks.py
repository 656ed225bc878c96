"""Large drafts stored as chunk blobs: every version reads back exactly,
git sees a clean repository, an edit writes only the chunks it touched,
histories written one blob per draft still read, and repair finds chunked
versions."""

from __future__ import annotations

import os
import random
import subprocess
import zlib
from pathlib import Path

import pytest

from infitool_edit.history import History
from infitool_edit.history import store as history_store
from infitool_edit.history.chunks import CHUNK_MAX, CHUNK_MIN, DraftChunker
from infitool_edit.history.repair import repair


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True)


def _book(rng: random.Random, lines: int) -> str:
    return "".join(f"line {n} " + "word " * rng.randrange(20) + "é\n" for n in range(lines))


def _edit(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    kind = rng.random()
    if kind < 0.4:
        return text[:at] + "inserted ü\n" * rng.randrange(1, 40) + text[at:]
    if kind < 0.8:
        return text[:at] + text[at + rng.randrange(1, 3 * CHUNK_MAX) :]
    return text[:at] + "CHANGED" + text[at + 7 :]


def test_every_version_of_an_edited_large_draft_reads_back_and_fsck_is_clean(tmp_path):
    rng = random.Random(14)
    draft = tmp_path / "book.md"
    text = _book(rng, 12_000)  # about 400 KB: several chunks
    kept = []
    with History.open(draft) as history:
        for step in range(120):
            text = _edit(rng, text)
            if len(text) < 2 * CHUNK_MAX:
                text += _book(rng, 3_000)
            if step == 60:
                text = text[:100]  # small again: one blob, then large again
            kept.append((history.record(text, "notes", f"edit {step}", "Writer").number, text))
        for number, expected in kept:
            assert history.read(number).draft == expected, number
        git_dir, ref = history.git_dir, history.branch_ref("main")
    fsck = _git(git_dir, "fsck", "--full", "--strict")
    assert fsck.returncode == 0 and b"error" not in fsck.stderr, fsck.stderr
    # The whole draft out of git alone, as docs/history.md shows.
    archived = subprocess.run(
        f"git --git-dir '{git_dir}' archive '{ref}' book.md.chunks | tar -xO",
        shell=True, capture_output=True, check=True,
    ).stdout
    assert archived.decode("utf-8") == text


def test_a_one_line_edit_to_a_1mb_draft_writes_a_few_small_objects(tmp_path, monkeypatch):
    monkeypatch.setattr(history_store, "PUBLISH_AFTER_S", 3600.0)  # the journal holds them all
    rng = random.Random(5)
    draft = tmp_path / "book.md"
    text = _book(rng, 30_000)
    assert len(text) > 1_000_000
    with History.open(draft) as history:
        history.record(text, "", "first", "Writer")
    with History.open(draft) as history:  # the chunks of the head are reused after reopening
        journal = history.folder / "pack.journal"
        for n in range(3):
            before = journal.stat().st_size if journal.exists() else 12
            middle = len(text) // 2
            text = text[:middle] + f"a new line {n}\n" + text[middle:]
            number = history.record(text, "", f"insert {n}", "Writer").number
            written = _journal_objects(journal.read_bytes(), before)
            # one chunk, the chunk folder, the root tree, the commit
            assert sorted(kind for kind, _ in written) == ["blob", "commit", "tree", "tree"], written
            assert sum(size for _, size in written) < CHUNK_MAX
            assert history.read(number).draft == text


def _journal_objects(data: bytes, start: int) -> list[tuple[str, int]]:
    """(kind, bytes in the journal) of each pack entry from ``start`` on."""
    kinds = {1: "commit", 2: "tree", 3: "blob"}
    found = []
    while start < len(data):
        kind = kinds[(data[start] >> 4) & 7]
        position = start
        while data[position] & 0x80:
            position += 1
        inflater = zlib.decompressobj()
        inflater.decompress(data[position + 1:])
        end = len(data) - len(inflater.unused_data)
        found.append((kind, end - start))
        start = end
    return found


def test_a_history_written_one_blob_per_draft_still_reads_and_grows(tmp_path, monkeypatch):
    rng = random.Random(7)
    draft = tmp_path / "book.md"
    text = _book(rng, 8_000)
    monkeypatch.setattr(history_store, "CHUNK_MAX", 10**12)  # the old layout
    with History.open(draft) as history:
        history.record(text, "n", "old one", "Writer")
        git_dir, ref = history.git_dir, history.branch_ref("main")
    assert _git(git_dir, "show", f"{ref}:book.md").stdout.decode() == text
    monkeypatch.undo()
    with History.open(draft) as history:
        newer = text + "the end\n"
        history.record(newer, "n", "new one", "Writer")
        assert history.read(1).draft == text
        assert history.read(2).draft == newer
        assert history.diff(1, 2).endswith("+the end\n")


def test_repair_finds_chunked_versions(tmp_path):
    rng = random.Random(9)
    draft = tmp_path / "book.md"
    text = _book(rng, 8_000)
    with History.open(draft) as history:
        history.record(text, "", "one", "Writer")
        history.record(text + "two\n", "", "two", "Writer")
        git_dir, ref = history.git_dir, history.branch_ref("main")
    os.unlink(git_dir / ref)
    assert "v2" in repair(draft)
    with History.open(draft) as history:
        assert history.read(2).draft == text + "two\n"


@pytest.mark.parametrize("seed", range(20))
def test_the_chunker_joins_back_to_every_draft_and_keeps_chunks_bounded(seed):
    rng = random.Random(seed)
    written: dict[str, bytes] = {}

    def write_blob(data: bytes) -> str:
        key = f"{len(written):040x}"
        written[key] = data
        return key

    chunker = DraftChunker(write_blob)
    text = _book(rng, 6_000)
    for _ in range(30):
        text = _edit(rng, text) or "x"
        shas = chunker.store(text)
        chunks = [written[sha] for sha in shas]
        assert b"".join(chunks).decode("utf-8") == text
        assert all(0 < len(chunk.decode("utf-8")) <= CHUNK_MAX for chunk in chunks)
        # Small chunks only where an edit has not yet been merged: few.
        assert sum(len(chunk) < CHUNK_MIN for chunk in chunks) <= 3


@pytest.mark.parametrize("seed", range(10))
def test_a_splice_from_the_editor_stands_in_for_comparing_the_chunks(seed):
    """The buffer's account of an edit (Splice) stands in for comparing
    the chunks: every draft joins back exactly, and an edit writes about as
    few chunks as the comparison finds (it may write one or two more: the
    comparison also keeps a chunk an edit changed back to what it was).
    A splice that names another string than the chunker's is not trusted."""
    from infitool_edit.document.buffer import _spliced_text
    from infitool_edit.history.chunks import Splice

    rng = random.Random(seed)
    blobs: dict[str, bytes] = {}
    writes = {"told": 0, "compared": 0}

    def writer(name: str):
        def write_blob(data: bytes) -> str:
            writes[name] += 1
            sha = f"{len(blobs):040x}"
            blobs[sha] = data
            return sha
        return write_blob

    told, compared = DraftChunker(writer("told")), DraftChunker(writer("compared"))
    text = _book(rng, 6_000)
    told.store(text), compared.store(text)
    for step in range(30):
        begin = rng.randrange(len(text) + 1)
        stop = min(len(text), begin + rng.choice([0, 1, 50, 20_000]))
        new_text = rng.choice(["", "x", "new line\n", "long " * 5_000])
        result = _spliced_text(text, begin, stop, new_text)
        lying = step % 7 == 3  # another string of the same text, and a wrong account of the edit
        base = text[:1] + text[1:] if lying else text
        splice = Splice(base, result, 0 if lying else begin, len(text) if lying else stop,
                        len(result) if lying else begin + len(new_text))
        before = dict(writes)
        for chunker, given in ((told, splice), (compared, None)):
            shas = chunker.store(result, given)
            assert b"".join(blobs[sha] for sha in shas) == result.encode("utf-8")
        assert writes["told"] - before["told"] <= writes["compared"] - before["compared"] + 2
        text = result
