"""``infitool-edit repair DRAFT``: rebuild a history's refs from the commits
git still holds, in the spirit of ``git fsck --lost-found``.

Every commit in the object store (loose or packed, reachable or not) that is
a version of this draft (our trailers, a tree holding the draft's name) is
a candidate; each line of history gets back the newest version whose chain
down to its first version reads whole. The version index is then rebuilt
from those refs. Nothing is deleted: damaged objects stay where they are,
and versions newer than the refs pointed to become reachable again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import git

from infitool_edit.stream_records import STREAM_FOLDER, newest_version_in_stream

from .chunks import CHUNK_FOLDER_SUFFIX
from .errors import HistoryError
from .location import DraftLock, locate
from .journal import recover
from .objects import ObjectStore
from .refnames import decode_component
from .refs import RefWriter
from .store import VERSION_TRAILERS
from .versionindex import INDEX_FILE, TEXT_FILE



@dataclass(frozen=True)
class _Found:
    version: int
    line: str
    sha: str
    time: int
    parents: tuple[str, ...]


def repair(draft_path: Path | str) -> str:
    """Rebuild the refs and index of a draft's history; one line saying what
    was done."""
    location = locate(Path(draft_path))
    try:
        lock = DraftLock(location.folder, location.draft_path)
    except BaseException:
        location.repo.close()
        raise
    try:
        return _repair(location)
    finally:
        lock.release()
        location.repo.close()


def _all_commits(repo: git.Repo) -> list[str]:
    try:
        listing = repo.git.cat_file("--batch-all-objects", "--batch-check=%(objectname) %(objecttype)")
    except git.GitCommandError as error:
        raise HistoryError(f"cannot list the objects of {repo.common_dir}: {error.stderr.strip()}") from None
    return [line.split()[0] for line in listing.splitlines() if line.endswith(" commit")]


def _repair(location) -> str:
    # A killed session's journal becomes a pack first, so its versions count.
    recover(location.folder, os.path.join(location.repo.common_dir, "objects", "pack"))
    objects = ObjectStore(location.repo)
    draft_name = location.draft_path.name
    found: dict[str, _Found] = {}
    damaged = 0
    for sha in _all_commits(location.repo):
        try:
            commit = objects.read_commit(sha)
            match = VERSION_TRAILERS.search(commit.message)
            files = objects.read_tree(commit.tree) if match is not None else {}
            if draft_name not in files and draft_name + CHUNK_FOLDER_SUFFIX not in files:
                continue
        except HistoryError:
            damaged += 1
            continue
        found[sha] = _Found(int(match.group(1)), match.group(2), sha, commit.author_time, commit.parents)
    if not found:
        raise HistoryError(f"no version of {location.draft_path} is left in {location.repo.common_dir}; nothing to repair")

    def whole(entry: _Found) -> bool:
        seen = entry
        while seen.parents:
            parent = found.get(seen.parents[0])
            if parent is None:
                return False
            seen = parent
        return True

    tips: dict[str, _Found] = {}
    for entry in sorted(found.values(), key=lambda e: (e.version, e.time), reverse=True):
        if entry.line not in tips and whole(entry):
            tips[entry.line] = entry
    refs = RefWriter(location.repo.common_dir)
    lines_folder = os.path.join(location.repo.common_dir, location.ref_prefix, "lines")
    if os.path.isdir(lines_folder):  # damaged loose refs of ours go; the right ones are written below
        for name in os.listdir(lines_folder):
            if decode_component(name) not in tips:
                os.unlink(os.path.join(lines_folder, name))
    for line, entry in tips.items():
        refs.update(location.branch_ref(line), entry.sha)
    for name in (INDEX_FILE, TEXT_FILE):  # rebuilt from the refs on the next open
        try:
            os.unlink(os.path.join(location.folder, name))
        except FileNotFoundError:
            pass
    newest = max(entry.version for entry in tips.values())
    lines = ", ".join(f"{line} at v{entry.version}" for line, entry in sorted(tips.items()))
    skipped = f"; {damaged} damaged commit{'s' if damaged != 1 else ''} skipped" if damaged else ""
    return (f"repaired the history of {location.draft_path}: newest version v{newest} ({lines}){skipped}"
            f"{_set_aside_stream_past(location.folder, newest)}")


def _set_aside_stream_past(folder: str, newest: int) -> str:
    """A stream naming versions the repaired history lacks (their commits
    are gone) would make the history refuse again: move its folder aside,
    whole (never delete it), so the model's stream starts afresh."""
    streamed = newest_version_in_stream(folder)
    if streamed <= newest:
        return ""
    stream = os.path.join(folder, STREAM_FOLDER)
    aside = f"{stream}.before-repair"
    number = 1
    while os.path.exists(aside):
        number += 1
        aside = f"{stream}.before-repair-{number}"
    os.rename(stream, aside)
    return f"; the agent stream named v{streamed}, so it was moved to {aside} and starts afresh"
