"""The history as git sees it: where it lives, what it leaves alone, locks, kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from infitool_edit.history import DraftLocked, History, HistoryError, Snapshot

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Writer",
    "GIT_AUTHOR_EMAIL": "writer@example.com",
    "GIT_COMMITTER_NAME": "Writer",
    "GIT_COMMITTER_EMAIL": "writer@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args, cwd, check=True):
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **GIT_ENV},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result


def assert_fsck_clean(cwd, *git_dir):
    result = git(*git_dir, "fsck", "--full", "--strict", "--no-dangling", cwd=cwd, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr and "missing" not in result.stdout, result.stderr


@pytest.fixture
def writer_repo(tmp_path):
    """A writer's own repository with a branch, a commit, staged and unstaged work."""
    repo = tmp_path / "book"
    (repo / "chapters").mkdir(parents=True)
    git("init", "-q", "-b", "trunk", cwd=repo)
    git("config", "user.name", "Writer", cwd=repo)
    git("config", "user.email", "writer@example.com", cwd=repo)
    (repo / "chapters" / "one.md").write_text("# One\n")
    (repo / "README.md").write_text("readme\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "writer's commit", cwd=repo)
    git("branch", "ideas", cwd=repo)
    (repo / "README.md").write_text("readme, edited but not staged\n")
    (repo / "staged.md").write_text("staged\n")
    git("add", "staged.md", cwd=repo)
    return repo


def writer_view(repo):
    return (
        git("status", "--porcelain=v1", "--untracked-files=all", cwd=repo).stdout,
        git("rev-parse", "HEAD", cwd=repo).stdout,
        git("branch", "--list", "--all", cwd=repo).stdout,
        git("symbolic-ref", "HEAD", cwd=repo).stdout,
        (repo / ".git" / "index").read_bytes(),
        git("stash", "list", cwd=repo).stdout,
    )


def test_in_a_work_tree_the_writers_repository_is_left_alone(writer_repo):
    before = writer_view(writer_repo)
    draft = writer_repo / "chapters" / "one.md"
    with History.open(draft) as history:
        assert history.git_dir.resolve() == (writer_repo / ".git").resolve()
        history.record("# One\n\nmore\n", "", 'insert $ "more"', "model:tiny")
        history.record("# One\n\nmore\nand more\n", "n", 'insert $ "and more"', "Writer")
        history.fork(1, "Writer")
        history.rewind(2, "Writer")
        history.checkpoint("first pass")
        branch_ref = history.branch_ref("main")
    assert writer_view(writer_repo) == before
    assert not (writer_repo / ".chapters").exists()
    assert not list(writer_repo.glob("chapters/.*.infitool"))

    assert branch_ref == "refs/infitool-edit/chapters%2Fone.md/lines/main"
    log = git("log", "--format=%an <%ae>|%s", branch_ref, cwd=writer_repo).stdout.splitlines()
    assert log == [
        'Writer <writer@example.com>|insert $ "and more"',
        'model:tiny <model-tiny@infitool-edit.invalid>|insert $ "more"',
    ]
    refs = git("for-each-ref", "--format=%(refname)", "refs/infitool-edit", cwd=writer_repo)
    assert "refs/infitool-edit/chapters%2Fone.md/checkpoints/first%20pass" in refs.stdout.split()
    tree = git("ls-tree", "--name-only", branch_ref, cwd=writer_repo).stdout.split()
    assert tree == ["one.md", "one.notes.md"]
    assert git("show", f"{branch_ref}:one.md", cwd=writer_repo).stdout == "# One\n\nmore\nand more\n"
    assert_fsck_clean(writer_repo)


def test_outside_a_work_tree_a_hidden_repository_lies_beside_the_draft(tmp_path):
    draft = tmp_path / "essay.md"
    with History.open(draft) as history:
        history.record("first\n", "", "edit 1", "model:tiny")
        history.record("second\n", "", "edit 2", "model:tiny")
        assert history.git_dir == (tmp_path / ".essay.md.infitool").resolve()
    assert sorted(path.name for path in tmp_path.iterdir()) == [".essay.md.infitool"]
    hidden = ["--git-dir", str(tmp_path / ".essay.md.infitool")]
    assert git(*hidden, "log", "--all", "--format=%s", cwd=tmp_path).stdout == "edit 2\nedit 1\n"
    assert_fsck_clean(tmp_path, *hidden)


def test_two_drafts_in_one_folder_keep_separate_histories(tmp_path):
    with History.open(tmp_path / "a.md") as first, History.open(tmp_path / "b.md") as second:
        first.record("a\n", "", "edit a", "model:tiny")
        second.record("b\n", "", "edit b", "model:tiny")
        second.record("bb\n", "", "edit bb", "model:tiny")
        assert (first.count(), second.count()) == (1, 2)


def test_a_second_open_in_the_same_process_is_refused(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft):
        with pytest.raises(DraftLocked) as caught:
            History.open(draft)
        with pytest.raises(DraftLocked):
            History.open(tmp_path / "." / "draft.md")  # another spelling, same draft
    message = str(caught.value)
    assert "\n" not in message and "draft.md" in message and f"pid {os.getpid()}" in message
    with History.open(draft) as reopened:  # released on close
        assert reopened.count() == 0


def test_another_process_is_refused_and_the_lock_dies_with_its_holder(tmp_path):
    draft = tmp_path / "draft.md"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from infitool_edit.history import History
            history = History.open({str(draft)!r})
            print("open", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DraftLocked, match=f"pid {holder.pid}"):
            History.open(draft)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with History.open(draft) as history:
        assert history.count() == 0


CRASHING_WRITER = textwrap.dedent("""
    import sys
    from infitool_edit.history import History
    history = History.open(sys.argv[1])
    start = history.count()
    print(start, flush=True)
    number = start
    while True:
        number += 1
        state = bytes([number % 256]) * 5000 if number % 3 == 0 else None
        history.record(f"draft at {number}\\n" * 40, f"notes {number // 10}", f"edit {number}",
                       "model:tiny", state=state)
        if number == start + 50:
            print("going", flush=True)
""")


@pytest.mark.parametrize("in_work_tree", [False, True])
def test_sigkill_at_any_moment_leaves_every_version_readable(tmp_path, in_work_tree):
    folder = tmp_path / "work"
    folder.mkdir()
    if in_work_tree:
        git("init", "-q", cwd=folder)
    draft = folder / "draft.md"
    count = 0
    for delay in (0.05, 0.2, 0.013, 0.31):
        before = count
        child = subprocess.Popen(
            [sys.executable, "-c", CRASHING_WRITER, str(draft)],
            stdout=subprocess.PIPE, text=True,
        )
        child.stdout.readline()
        assert child.stdout.readline().strip() == "going"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()

        with History.open(draft) as history:
            count = history.count()
            assert count >= before + 50  # the child said "going" after 50 records
            for number in range(1, count + 1):
                assert history.read(number) == Snapshot(
                    f"draft at {number}\n" * 40, f"notes {number // 10}"
                )
            assert [info.number for info in history.log(limit=count)] == list(
                range(count, 0, -1)
            )
            expected_state = bytes([count % 256]) * 5000 if count % 3 == 0 else None
            assert history.state(count) == expected_state
            git_dir = str(history.git_dir)
            branch_ref = history.branch_ref("main")
        result = git("--git-dir", git_dir, "fsck", "--full", "--strict", cwd=folder, check=False)
        assert result.returncode == 0, result.stderr
        assert "error" not in result.stderr
        subjects = git("--git-dir", git_dir, "log", "--format=%s", branch_ref, cwd=folder).stdout
        assert subjects.splitlines()[0] == f"edit {count}"
        assert len(subjects.splitlines()) == count


def test_history_keeps_working_after_git_gc_packs_it(writer_repo):
    draft = writer_repo / "chapters" / "one.md"
    with History.open(draft) as history:
        for number in range(1, 21):
            history.record(f"v{number}\n", "", f"edit {number}", "model:tiny")
        history.checkpoint("packed")
    git("gc", "-q", "--prune=now", cwd=writer_repo)
    assert not list((writer_repo / ".git" / "refs" / "infitool-edit").rglob("main"))
    with History.open(draft) as history:
        assert history.count() == 20
        assert history.read(7).draft == "v7\n"
        assert history.find_checkpoint("packed") == 20
        history.record("v21\n", "", "edit 21", "model:tiny")
        history.rewind(3, "Writer")
    with History.open(draft) as history:
        assert history.read(22).draft == "v3\n"
    assert_fsck_clean(writer_repo)


def test_a_sha256_repository_is_refused_in_one_line(tmp_path):
    git("init", "-q", "--object-format=sha256", cwd=tmp_path)
    with pytest.raises(HistoryError) as caught:
        History.open(tmp_path / "draft.md")
    assert "sha256" in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(HistoryError, match="does not exist"):
        History.open(tmp_path / "nowhere" / "draft.md")


def test_a_ref_lock_left_by_a_killed_session_is_taken_over(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("one\n", "", "edit 1", "Ana")
        lock = history.git_dir / (history.branch_ref("main") + ".lock")
    lock.write_text("0" * 40 + "\n")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with History.open(draft) as history:
        assert history.record("two\n", "", "edit 2", "Ana").number == 2
    assert not lock.exists()


def test_closing_lets_git_pack_a_hidden_repository(tmp_path):
    draft = tmp_path / "draft.md"
    hidden = ["--git-dir", str(tmp_path / ".draft.md.infitool")]
    with History.open(draft) as history:
        history.record("one\n", "", "edit 1", "Ana")
    git(*hidden, "config", "gc.autoPackLimit", "3", cwd=tmp_path)
    git(*hidden, "config", "gc.autoDetach", "false", cwd=tmp_path)
    # Each publish of the journal adds one pack: four of them are more than git's limit.
    with History.open(draft) as history:
        for number in range(2, 6):
            history.record(f"{number}\n" * number, "", f"edit {number}", "Ana")
            history.flush()
        packs = git(*hidden, "count-objects", "-v", cwd=tmp_path).stdout
        assert "\npacks: 5\n" in packs, packs
    counts = git(*hidden, "count-objects", "-v", cwd=tmp_path).stdout
    assert "\npacks: 1\n" in counts and counts.startswith("count: 0\n"), counts
    with History.open(draft) as history:
        assert history.read(number).draft == f"{number}\n" * number
    assert_fsck_clean(tmp_path, *hidden)


def test_a_hidden_history_survives_a_later_git_init(tmp_path):
    draft = tmp_path / "draft.md"
    with History.open(draft) as history:
        history.record("before git\n", "", "edit 1", "Ana")
    git("init", "-q", cwd=tmp_path)
    with History.open(draft) as history:
        assert history.git_dir == (tmp_path / ".draft.md.infitool").resolve()
        assert history.read(1).draft == "before git\n"
