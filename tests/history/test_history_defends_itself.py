"""The history defends itself (issue 13, cases 2, 8 and 9): a lost or
damaged ref refuses with one line naming `repair`, `repair` brings every
version back, a damaged head commit falls back to its parent with one
warning, and damaged files are named, never an "internal error"."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

from helpers.git_packs import unpack_to_loose
from infitool_edit.history import History


def cli(*args):
    return subprocess.run([sys.executable, "-m", "infitool_edit", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def one_line(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0] and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def three_versions(tmp_path):
    draft = tmp_path / "draft.md"
    draft.write_text("# One\n")
    script = tmp_path / "script.txt"
    script.write_text('insert $ "two\\n"\ninsert $ "three\\n"\n')
    assert cli("apply", draft, script).returncode == 0
    with History.open(draft) as history:
        assert history.count() == 3
        found = draft, history.git_dir, history.branch_ref("main"), history.log()[0].commit
    unpack_to_loose(found[1])  # so that one object alone can be damaged
    return found


def append_script(tmp_path, text="more\\n"):
    script = tmp_path / "more.txt"
    script.write_text(f'insert $ "{text}"\n')
    return script


def test_a_deleted_main_ref_refuses_and_repair_brings_every_version_back(tmp_path):
    draft, git_dir, ref, _ = three_versions(tmp_path)
    os.unlink(git_dir / ref)
    one_line(cli("apply", draft, append_script(tmp_path)), "lost versions", "infitool-edit repair")
    one_line(cli("log", draft), "repair")
    repaired = cli("repair", draft)
    assert repaired.returncode == 0 and "v3" in repaired.stdout, repaired.stderr
    assert cli("apply", draft, append_script(tmp_path)).returncode == 0
    with History.open(draft) as history:
        assert history.count() == 4
        assert history.read(4).draft == "# One\ntwo\nthree\nmore\n"


def test_an_emptied_or_garbage_ref_is_one_line_naming_repair(tmp_path):
    draft, git_dir, ref, _ = three_versions(tmp_path)
    for content in ("", "garbage\n"):
        (git_dir / ref).write_text(content)
        one_line(cli("log", draft), "repair")
    assert cli("repair", draft).returncode == 0
    assert "three" in cli("show", draft, "v3").stdout


def test_a_damaged_head_commit_falls_back_to_its_parent_with_one_warning(tmp_path):
    draft, git_dir, ref, head = three_versions(tmp_path)
    loose = git_dir / "objects" / head[:2] / head[2:]
    data = loose.read_bytes()
    loose.chmod(0o644)
    loose.write_bytes(data[: len(data) // 2])
    result = cli("log", draft)
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1 and "damaged" in warnings[0] and "v2" in warnings[0], result.stderr
    # The file still holds v3's text: the next session keeps it as a version.
    assert cli("apply", draft, append_script(tmp_path)).returncode == 0
    assert draft.read_text() == "# One\ntwo\nthree\nmore\n"


def test_a_truncated_object_is_named(tmp_path):
    draft, git_dir, ref, _ = three_versions(tmp_path)
    with History.open(draft) as history:
        tree = history._objects.read_commit(history.log()[1].commit).tree
        blob = history._objects.read_tree(tree)["draft.md"]
    loose = git_dir / "objects" / blob[:2] / blob[2:]
    loose.chmod(0o644)
    loose.write_bytes(zlib.compress(b"blob 100\0short")[:10])
    one_line(cli("show", draft, "v2"), blob[2:], "damaged")


def test_digits_are_ascii_and_a_checkpoint_named_17_is_reachable(tmp_path):
    draft, *_ = three_versions(tmp_path)
    one_line(cli("show", draft, "٣"), "no checkpoint")
    one_line(cli("rewind", draft, "³"), "no checkpoint")
    script = tmp_path / "cp.txt"
    script.write_text('checkpoint "17"\ninsert $ "after\\n"\n')
    assert cli("apply", draft, script).returncode == 0
    assert cli("show", draft, "17").stdout == "# One\ntwo\nthree\n"  # the checkpoint, v4
    one_line(cli("show", draft, "v17"), "no version 17")


def test_diff_splits_lines_only_at_newlines(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("page one\fpage two\u2028same line\n", "", "a", "Ana")
        history.record("page one\fpage two\u2028same line\nnew\n", "", "b", "Ana")
        diff = history.diff(1, 2)
    assert diff.splitlines(keepends=False) != []
    body = [line for line in diff.split("\n") if line[:1] in ("+", "-", " ") and not line.startswith(("+++", "---"))]
    assert body == [" page one\fpage two\u2028same line", "+new"]
