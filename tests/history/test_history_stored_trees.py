"""Trees are written as stored (uncompressed) deflate blocks; git reads them like any others."""

from __future__ import annotations

import subprocess
import zlib

import pytest

from helpers.git_packs import pack_entry_data
from infitool_edit.history import History
from infitool_edit.history.objects import _stored


def git(git_dir, *args):
    result = subprocess.run(["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("size", [0, 1, 300, 65_534, 65_535, 65_536, 200_000])
def test_a_stored_stream_inflates_to_the_object(size):
    header, body = b"tree %d\0" % size, bytes(range(256)) * (size // 256) + bytes(size % 256)
    data = _stored(header, body)
    assert zlib.decompress(data) == header + body
    assert (data[0] << 8 | data[1]) % 31 == 0  # a valid zlib header
    assert data[2] & 0b110 == 0  # BTYPE 00: stored


def test_git_reads_the_stored_trees_of_a_chunked_draft(tmp_path):
    draft = tmp_path / "draft.md"
    text = "".join(f"Line {n} of a long draft, written out.\n" for n in range(3000))  # ~120 KB: chunked
    with History.open(draft) as history:
        first = history.record(text, "notes\n", "edit 1", "Ana")
        second = history.record(text.replace("Line 1500 ", "Line MMD "), "notes\n", "edit 2", "Ana")
        git_dir = history.git_dir
    tree = git(git_dir, "rev-parse", f"{second.commit}^{{tree}}").strip()
    raw = pack_entry_data(git_dir, tree)
    assert raw[2] & 0b110 == 0  # stored, as written
    assert "draft.md.chunks" in git(git_dir, "cat-file", "-p", tree)
    git(git_dir, "fsck", "--full", "--strict")
    assert git(git_dir, "show", f"{first.commit}:draft.md.chunks/000000").startswith("Line 0 ")
    with History.open(draft) as history:
        assert history.read(second.number).draft == text.replace("Line 1500 ", "Line MMD ")
