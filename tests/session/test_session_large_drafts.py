"""A large draft edited through the session (issue 13): the compact buffer's
account of each edit (``Splice``) lets the history skip comparing chunks;
every version must still read back exactly, and git stay whole."""

from __future__ import annotations

import random
import subprocess

from infitool_edit.commands import ast
from infitool_edit.document import buffer as buffer_module
from infitool_edit.history import History
from infitool_edit.session.editing import EditingSession


def test_every_version_of_a_compact_draft_edited_through_the_session_reads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(buffer_module, "COMPACT_ABOVE", 0)  # the 50 MB form, on a 300 KB draft
    rng = random.Random(13)
    draft = tmp_path / "draft.md"
    draft.write_text("# Big\n\n" + "".join(f"Line {n} of prose, é and more.\n" for n in range(10_000)))
    expected = {}
    with EditingSession.open(draft, author="writer") as session:
        assert session.workspace._buffer.compact
        for step in range(40):
            line = rng.randrange(1, session.workspace.line_count + 1)
            command = rng.choice([
                ast.Insert(ast.Line(line), f"inserted {step}\n"),
                ast.Delete(ast.Line(line)),
                ast.Replace(ast.Line(line), f"replaced {step} ü\n"),
                ast.Insert(ast.End(), f"appended {step}\n"),
                ast.Delete(ast.Span(ast.Point(line, 1), ast.Point(min(line + 900, session.workspace.line_count), 1))),
            ])
            executed = session.execute(command)
            expected[executed.version] = session.file_text()
    assert draft.read_text() == expected[max(expected)]
    with History.open(draft) as history:
        for number, text in expected.items():
            assert history.read(number).draft == text, f"v{number}"
        fsck = subprocess.run(["git", "--git-dir", str(history.git_dir), "fsck", "--strict"],
                              capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
