"""Where a draft's history lives, and the lock that makes one session its owner.

- A draft inside a git work tree: that repository's object database, under
  ``refs/infitool-edit/<draft path>/``. Only new objects and refs in that
  namespace are written; the writer's branches, index, HEAD and working
  tree are never touched.
- Any other draft, or one that already has such a history: a hidden bare
  repository beside it, ``.<draft name>.infitool/``, with the same refs;
  ``git --git-dir .<draft name>.infitool log --all`` shows the history. (Its
  HEAD stays an unborn branch: ``git fsck`` insists that HEAD name a branch.)

Either way the index and the lock lie in
``<git dir>/infitool-edit/<draft path>/``, a folder git itself ignores.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

import git

from .errors import DraftLocked, HistoryError
from .refnames import encode_component

REF_ROOT = "refs/infitool-edit"
LOCK_FILE = "lock"


@dataclass(frozen=True)
class Location:
    repo: git.Repo
    draft_path: Path  # absolute, symlinks resolved
    draft_key: str  # the draft's path inside the work tree, or its file name
    hidden: bool  # a repository of our own, not the writer's
    folder: str  # our index and lock

    @property
    def ref_prefix(self) -> str:
        return f"{REF_ROOT}/{encode_component(self.draft_key)}"

    def branch_ref(self, branch: str) -> str:
        return f"{self.ref_prefix}/lines/{encode_component(branch)}"

    def checkpoint_ref(self, name: str) -> str:
        return f"{self.ref_prefix}/checkpoints/{encode_component(name)}"


def locate(draft_path: Path) -> Location:
    draft = Path(draft_path).expanduser().resolve()
    if not draft.parent.is_dir():
        raise HistoryError(f"cannot keep a history for {draft}: its folder does not exist")
    if draft.is_dir():
        raise HistoryError(f"cannot keep a history for {draft}: it is a folder")
    hidden_folder = draft.parent / f".{draft.name}.infitool"
    # A hidden history that already exists wins: running `git init` above a
    # draft later must not make its history disappear.
    repo = None if (hidden_folder / "HEAD").is_file() else _work_tree_repo(draft)
    if repo is not None:
        key = draft.relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
        hidden = False
    else:
        repo = _hidden_repo(hidden_folder)
        key = draft.name
        hidden = True
    _check_supported(repo, draft)
    folder = os.path.join(repo.common_dir, "infitool-edit", encode_component(key))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        repo.close()
        raise HistoryError(f"cannot keep a history for {draft}: {error.strerror}") from None
    return Location(repo, draft, key, hidden, folder)


def _check_supported(repo: git.Repo, draft: Path) -> None:
    """Objects and refs are written in git's default formats only."""
    config = repo.config_reader("repository")
    object_format = config.get_value("extensions", "objectformat", default="sha1")
    ref_storage = config.get_value("extensions", "refstorage", default="files")
    if (object_format, ref_storage) != ("sha1", "files"):
        repo.close()
        raise HistoryError(
            f"cannot keep a history for {draft}: its repository uses "
            f"{object_format} objects and {ref_storage} refs; only sha1 and files are supported"
        )


def _work_tree_repo(draft: Path) -> git.Repo | None:
    try:
        repo = git.Repo(draft.parent, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    work_tree = repo.working_tree_dir
    inside = (
        not repo.bare
        and work_tree is not None
        and draft.is_relative_to(Path(work_tree).resolve())
        and ".git" not in draft.relative_to(Path(work_tree).resolve()).parts
    )
    if not inside:
        repo.close()
        return None
    return repo


def _hidden_repo(folder: Path) -> git.Repo:
    if (folder / "HEAD").is_file():
        return git.Repo(folder)
    try:
        return git.Repo.init(folder, bare=True)
    except (OSError, git.GitCommandError) as error:
        reason = getattr(error, "strerror", None) or "git init failed"
        raise HistoryError(f"cannot create the history {folder}: {reason}") from None


class DraftLock:
    """An exclusive ``flock`` on the history's lock file.

    ``flock`` locks belong to an open file description, so a second open in
    the same process is refused just like one in another process, and the
    OS drops the lock when its holder dies, however it dies.
    """

    def __init__(self, folder: str, draft: Path):
        path = os.path.join(folder, LOCK_FILE)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip()
            os.close(self._fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise DraftLocked(f"{draft} is already open in another session{who}") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1
