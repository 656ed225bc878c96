"""move through the editing session: one version with the command as its
message, the file on disk written, the writer's undo (the inverse, executed
as a new version) giving the draft back byte for byte, and a refused move
leaving file, history and notes as they were."""

from __future__ import annotations

import subprocess

import pytest

from infitool_edit.commands import serialize
from infitool_edit.document import ApplyError
from infitool_edit.session.editing import EditingSession

DRAFT = "# T\n\n## A\n\npara a\n\n## B\n\npara b\n\n## C\n\npara c\n"
MOVED = "# T\n\n## B\n\npara b\n\n## C\n\npara c\n\n## A\n\npara a\n"


@pytest.fixture
def draft(tmp_path):
    path = tmp_path / "draft.md"
    path.write_bytes(DRAFT.encode())
    return path


def test_a_move_is_one_version_named_by_its_command_and_undone_exactly(draft):
    with EditingSession.open(draft, author="model") as session:
        executed = session.execute("move #a #c")
        assert executed.version == 2 and session.history.count() == 2
        assert executed.observation == "@ok v2 11:1"  # the moved section's heading is line 11 now
        head = session.history.head()
        assert (head.number, head.message, head.author) == (2, "move #a #c", "model")
        assert draft.read_bytes() == MOVED.encode() == session.history.read(2).draft.encode()

        undo = session.execute(serialize(executed.outcome.inverse), author="writer")
        assert undo.version == 3
        assert draft.read_bytes() == DRAFT.encode() == session.history.read(3).draft.encode()
    fsck = subprocess.run(["git", "--git-dir", str(session.history.git_dir), "fsck", "--strict"],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


@pytest.mark.parametrize("line", ["move #b #a", "move #t #b", "move #nowhere $", "move 3-6 4"])
def test_a_refused_move_makes_no_version_and_writes_nothing(draft, line):
    with EditingSession.open(draft, author="model") as session:
        session.execute('note "keep me"')
        count, notes = session.history.count(), session.workspace.notes
        with pytest.raises(ApplyError) as caught:
            session.execute(line)
        assert "\n" not in str(caught.value)
        assert (session.history.count(), session.workspace.notes) == (count, notes)
        assert draft.read_bytes() == DRAFT.encode() == session.workspace.text.encode()
