"""The draft file on its own: strict reading, atomic writing, change detection."""

from __future__ import annotations

import os
import stat

import pytest

from infitool_edit.session.draftfile import (
    DraftChanged,
    DraftError,
    DraftFile,
    DraftRaced,
    DraftReadOnly,
)


def test_reads_utf8_and_writes_it_back(tmp_path):
    path = tmp_path / "draft.md"
    path.write_bytes("# Café\n\nNaïve text ✓\n".encode())
    draft = DraftFile(path)
    assert draft.read() == "# Café\n\nNaïve text ✓\n"
    draft.write("# Café\n\nchanged\n")
    assert path.read_text(encoding="utf-8") == "# Café\n\nchanged\n"


def test_refuses_non_utf8_with_one_line_naming_the_file(tmp_path):
    path = tmp_path / "latin1.md"
    path.write_bytes("first\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DraftError) as caught:
        DraftFile(path).read()
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "not UTF-8" in message and "line 2" in message


def test_refuses_binary(tmp_path):
    path = tmp_path / "image.md"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
    with pytest.raises(DraftError, match="binary"):
        DraftFile(path).read()


def test_refuses_a_directory(tmp_path):
    with pytest.raises(DraftError, match="is a directory"):
        DraftFile(tmp_path).read()


def test_missing_draft_reads_empty_and_is_created_on_first_write(tmp_path):
    path = tmp_path / "new.md"
    draft = DraftFile(path)
    assert draft.read() == ""
    assert not path.exists()
    draft.write("hello\n")
    assert path.read_text() == "hello\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(DraftError, match="does not exist"):
        DraftFile(tmp_path / "nowhere" / "draft.md").read()


def test_write_keeps_the_mode_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("a\n")
    path.chmod(0o640)
    draft = DraftFile(path)
    draft.read()
    for n in range(5):
        draft.write(f"version {n}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draft.md"]


def test_write_replaces_the_file_instead_of_rewriting_it_in_place(tmp_path):
    # A reader holding the old file keeps seeing the old, complete text.
    path = tmp_path / "draft.md"
    path.write_text("old text\n")
    draft = DraftFile(path)
    draft.read()
    with open(path) as reader:
        draft.write("new text\n")
        assert reader.read() == "old text\n"
    assert path.read_text() == "new text\n"


def test_change_by_another_program_is_detected_and_not_overwritten(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("ours\n")
    draft = DraftFile(path)
    draft.read()
    path.write_text("theirs, longer\n")
    assert draft.changed_on_disk()
    with pytest.raises(DraftChanged) as caught:
        draft.write("ours again\n")
    assert "\n" not in str(caught.value)
    assert path.read_text() == "theirs, longer\n"


def test_same_size_change_with_a_new_mtime_is_detected(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("aaaa\n")
    draft = DraftFile(path)
    draft.read()
    path.write_text("bbbb\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(DraftChanged):
        draft.write("cccc\n")


def test_replacement_by_another_program_is_detected(tmp_path):
    # Editors that save atomically give the path a new inode.
    path = tmp_path / "draft.md"
    path.write_text("aaaa\n")
    draft = DraftFile(path)
    draft.read()
    other = tmp_path / "other"
    other.write_text("bbbb\n")
    os.replace(other, path)
    assert draft.changed_on_disk()


def test_touch_without_a_change_is_not_a_conflict(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("same\n")
    draft = DraftFile(path)
    draft.read()
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert not draft.changed_on_disk()
    draft.write("next\n")
    assert path.read_text() == "next\n"


def test_deleted_or_appeared_draft_counts_as_a_change(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("here\n")
    draft = DraftFile(path)
    draft.read()
    path.unlink()
    assert draft.changed_on_disk()

    missing = DraftFile(tmp_path / "new.md")
    missing.read()
    (tmp_path / "new.md").write_text("someone else's\n")
    with pytest.raises(DraftChanged):
        missing.write("mine\n")
    assert (tmp_path / "new.md").read_text() == "someone else's\n"


def test_read_only_draft_reads_but_refuses_writes(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("protected\n")
    path.chmod(0o444)
    draft = DraftFile(path)
    assert draft.read() == "protected\n"
    assert draft.read_only
    with pytest.raises(DraftReadOnly, match="read-only"):
        draft.write("overwritten\n")
    assert path.read_text() == "protected\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draft.md"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_stale_temporary_files_of_a_killed_write_are_removed(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("text\n")
    ours = ".draft.md.infitool-4242-0123456789abcdef.tmp"
    (tmp_path / ours).write_text("half a wri")
    (tmp_path / ".other.md.infitool-4242-0123456789abcdef.tmp").write_text("not ours")
    # The writer's own file in a similar shape is theirs: only our writer's exact names go.
    (tmp_path / ".draft.md.abc123.tmp").write_text("the writer's backup")
    removed = DraftFile(path).remove_stale_temporaries()
    assert [p.name for p in removed] == [ours]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".draft.md.abc123.tmp", ".other.md.infitool-4242-0123456789abcdef.tmp", "draft.md"]


def test_writing_through_a_symlink_keeps_the_link(tmp_path):
    real_folder = tmp_path / "real"
    real_folder.mkdir()
    target = real_folder / "draft.md"
    target.write_text("old\n")
    link = tmp_path / "draft.md"
    link.symlink_to(target)
    draft = DraftFile(link)
    assert draft.read() == "old\n"
    draft.write("new\n")
    assert link.is_symlink()
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in real_folder.iterdir()) == ["draft.md"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_root_editing_someone_elses_draft_leaves_it_theirs(tmp_path):
    path = tmp_path / "draft.md"
    path.write_text("theirs\n")
    os.chown(path, 65534, 65534)
    path.chmod(0o600)
    draft = DraftFile(path)
    draft.read()
    draft.write("edited\n")
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o600)


def test_a_write_into_a_replaced_file_is_reported_until_it_is_settled(tmp_path):
    """Their bytes in an inode our rename replaced are handed over by every
    check until the caller says it kept them, so a caller that drops the
    DraftRaced (it is a DraftChanged) cannot lose them."""
    path = tmp_path / "draft.md"
    path.write_text("one\n")
    draft = DraftFile(path)
    draft.read()
    theirs = open(path, "a")  # opened before our rename: holds the old file
    draft.write("ours\n", durable=False)
    theirs.write("their line\n")
    theirs.close()
    for _ in range(2):
        with pytest.raises(DraftRaced) as raced:
            draft.check_replaced()
        assert raced.value.theirs == b"one\ntheir line\n" and raced.value.replaced
    raced.value.settle()
    draft.check_replaced()  # settled, and nobody holds it any more: let go
    assert draft.watching_replaced == 0
    assert path.read_text() == "ours\n"
