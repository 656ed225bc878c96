"""The history checks itself against the agent's stream also when its refs
exist (issue 13, case 2): a main ref moved back while the index is gone
would restart the numbering under versions the stream already names."""

from __future__ import annotations

import os
import subprocess
import sys

from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.history import History
from infitool_edit.history.versionindex import INDEX_FILE, TEXT_FILE


def cli(*args):
    return subprocess.run([sys.executable, "-m", "infitool_edit", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def a_history_with_a_stream(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        for n in range(1, 4):
            history.record(f"# Draft\n{n}\n", "", f"step {n}", "writer")
        first = history.log()[-1].commit
        ref = history.git_dir / history.branch_ref("main")
        folder = history.folder
        log = StreamLog(stream_dir_for(history))
    for n in range(1, 4):
        log.append(f"> step {n}\n@ok v{n}\n", tokens=n, version=n, head_version=n)
    log.close()
    return draft, ref, first, folder


def move_the_ref_back(ref, commit, folder):
    ref.write_text(commit + "\n")
    for name in (INDEX_FILE, TEXT_FILE):
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass


def test_a_ref_moved_back_under_the_streams_versions_refuses_and_repair_mends_it(tmp_path):
    draft, ref, first, folder = a_history_with_a_stream(tmp_path)
    move_the_ref_back(ref, first, folder)
    result = cli("log", draft)
    assert result.returncode == 1, result.stdout
    line = result.stderr.strip()
    assert "\n" not in line and "agent stream names v3" in line and "v1" in line and "repair" in line, line
    repaired = cli("repair", draft)
    assert repaired.returncode == 0 and "v3" in repaired.stdout, repaired.stderr
    with History.open(draft) as history:
        assert history.count() == 3 and history.read(3).draft == "# Draft\n3\n"


def test_repair_sets_aside_a_stream_naming_versions_that_are_gone(tmp_path):
    draft, ref, first, folder = a_history_with_a_stream(tmp_path)
    log = StreamLog(os.path.join(folder, "agent"))
    log.append("> step 9\n@ok v9\n", tokens=9, version=9, head_version=9)  # no commit holds v9
    log.close()
    assert "agent stream names v9" in cli("log", draft).stderr
    repaired = cli("repair", draft)
    assert repaired.returncode == 0 and "moved to" in repaired.stdout, repaired.stderr
    assert os.path.isdir(os.path.join(folder, "agent.before-repair"))
    assert cli("log", draft).returncode == 0


def test_a_garbled_stream_record_is_not_evidence(tmp_path):
    draft, ref, first, folder = a_history_with_a_stream(tmp_path)
    records = os.path.join(folder, "agent", "records.bin")
    with open(records, "r+b") as f:  # the last record's version field: v3 -> a huge number
        f.seek(-80 + 4 * 8 + 7, os.SEEK_END)
        f.write(b"\x40")
    with History.open(draft) as history:
        assert history.count() == 3
