"""The draft's bounds (issue 13, cases 3, 6 and 7 for drafts): regular
files only, never blocking, never unbounded; CRLF and CR kept; only our own
temporary files removed."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from infitool_edit.commands import ast
from infitool_edit.history import History
from infitool_edit.session.editing import EditingSession


def cli(*args, env=None, timeout=60):
    def limit_memory():  # an unbounded read must fail, not take the machine down
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    return subprocess.run([sys.executable, "-m", "infitool_edit", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, preexec_fn=limit_memory)


def assert_one_line(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def outline_script(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("outline\n")
    return script


def test_a_fifo_as_draft_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "draft.md"
    os.mkfifo(fifo)
    try:
        result = cli("apply", fifo, outline_script(tmp_path), timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("opening a FIFO as the draft blocked")
    assert_one_line(result, str(fifo), "FIFO", "regular file")


def test_a_link_to_dev_zero_is_refused(tmp_path):
    link = tmp_path / "draft.md"
    link.symlink_to("/dev/zero")
    result = cli("apply", link, outline_script(tmp_path), timeout=60)
    assert_one_line(result, "character device", "regular file")


def test_a_draft_over_the_size_limit_is_refused(tmp_path):
    draft = tmp_path / "draft.md"
    draft.write_text("word " * 1000)
    result = cli("apply", draft, outline_script(tmp_path), env={"INFITOOL_EDIT_MAX_DRAFT_MB": "0.001"})
    assert_one_line(result, str(draft), "limit", "INFITOOL_EDIT_MAX_DRAFT_MB")
    assert cli("apply", draft, outline_script(tmp_path)).returncode == 0  # 64 MB by default


@pytest.mark.parametrize("ending", ["\r\n", "\r"])
def test_line_endings_are_kept(tmp_path, ending):
    draft = tmp_path / "draft.md"
    original = ending.join(["# Title", "", "First line.", "Second line.", ""])
    draft.write_bytes(original.encode())
    with EditingSession.open(draft, author="writer") as session:
        session.execute(ast.Insert(ast.Line(3), "New line.\n"))
        session.execute(ast.Replace(ast.Search("Second"), "2nd"))
        session.execute(ast.Rewind(ast.VersionRef(2)))
    expected = ending.join(["# Title", "", "New line.", "First line.", "Second line.", ""])
    assert draft.read_bytes() == expected.encode()
    with History.open(draft) as history:
        # The history stores what the file holds.
        assert history.read(1).draft == original
        assert history.read(3).draft == expected.replace("Second", "2nd")
        assert history.read(history.count()).draft == expected


def test_opening_a_draft_keeps_the_writers_temporary_files(tmp_path):
    draft = tmp_path / "draft.md"
    draft.write_text("# Draft\n")
    theirs = [".draft.md.backup.tmp", ".draft.md.swp.tmp", ".draft.md.abc12345.tmp"]
    for name in theirs:
        (tmp_path / name).write_text("the writer's\n")
    result = cli("apply", draft, outline_script(tmp_path))
    assert result.returncode == 0, result.stderr
    assert all((tmp_path / name).read_text() == "the writer's\n" for name in theirs)
