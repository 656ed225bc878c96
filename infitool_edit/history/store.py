"""The history of one draft: every version a git commit.

A version's commit holds three files at most: the draft under its own name,
the notes (``<stem>.notes<suffix>``) and, when given, the model's state
(``<name>.state``). Its message is the command line, followed by the
trailers that let the index be rebuilt from git alone::

    replace 13 "Teh" "The"

    Infitool-Version: 17
    Infitool-Line: main
    Infitool-Scale: word

``Infitool-Scale`` (how much prose the version changed, by the document's
rule) is there when the version changed the draft; a rewind or fork adds
``Infitool-Back-To: N``, the version it went back to. Older commits without
them read as None.

Branches are refs ``refs/infitool-edit/<draft>/lines/<branch>`` (the
folder keeps its first name, ``lines``, so older histories read as they are);
checkpoints are refs ``…/checkpoints/<name>``. Version numbers are global:
one counter across all branches. The branch that receives new versions is
the branch of the newest version, so it survives restarts without extra state.

Every change is written in the order objects (appended to the pack
journal, journal.py) → index, and, when the journal is published about once
a second, pack → refs: a ref never names an object git lacks, and a kill at
any moment leaves a journal that ``open`` publishes first (moving each
line's ref to the newest version it holds), then brings a lagging index up
to the refs.

(Over 400 lines, on purpose: recording, reading and rebuilding the index
share one lock and one view of the refs; the storage layers below it
already live in objects.py, refs.py, versionindex.py and location.py.)
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, TypeVar

import git

from infitool_edit.stream_records import newest_version_in_stream, stream_has_records

from .chunks import CHUNK_FOLDER_SUFFIX, CHUNK_MAX, DraftChunker, Splice
from .errors import CheckpointExists, HistoryDamaged, HistoryError, UnknownVersion, repair_hint
from .journal import PackJournal, recover
from .location import DraftLock, Location, locate
from .objects import Identity, ObjectStore, ParsedCommit
from .refnames import decode_component
from .refs import RefWriter
from .versionindex import INDEX_FILE, RECORD_SIZE, IndexCorrupt, IndexEntry, VersionIndex, write_index

MAIN_BRANCH = "main"
# A version's objects wait in the pack journal (journal.py) and its line's ref
# moves when the journal is published as a pack: at most this long after the
# first unpublished version (a timer), when the journal holds this many bytes,
# before a checkpoint, and on close.
PUBLISH_AFTER_S = 1.0
PUBLISH_BYTES = 8 << 20
# Past this many packs, a publish starts ``git repack --geometric=2 -d`` in the
# background, which merges the small packs so their number grows as the log
# of the history's size (each publish adds one).
REPACK_AT_PACKS = 32
REF_LOCK_SOURCE = "ref-lock"
VERSION_TRAILERS = re.compile(
    r"\n\nInfitool-Version: ([0-9]+)\nInfitool-Line: (.+)\n"
    r"(?:Infitool-Scale: (\w+)\n)?(?:Infitool-Back-To: ([0-9]+)\n)?\Z"
)
_COMMITTER_NAME = "infitool-edit"
_COMMITTER_EMAIL = "infitool-edit@infitool-edit.invalid"
_T = TypeVar("_T")
_SHA = re.compile(r"[0-9a-f]{40}")
log = logging.getLogger("infitool_edit")


@dataclass(frozen=True)
class VersionInfo:
    number: int
    parent: int | None
    branch: str
    author: str
    message: str
    time: float  # unix seconds, whole (git keeps seconds)
    commit: str
    checkpoint: str | None = None
    scale: str | None = None  # structure, paragraph, sentence, word; None: the draft did not change
    back_to: int | None = None  # the version a rewind or fork went back to


@dataclass(frozen=True)
class Snapshot:
    draft: str
    notes: str


class History:
    """Record, list, read, rewind and fork the versions of one draft."""

    def __init__(self, location: Location, lock: DraftLock):
        self._location = location
        self._lock = lock
        self._mutex = threading.RLock()
        self._objects = ObjectStore(location.repo)
        self._pack_dir = os.path.join(location.repo.common_dir, "objects", "pack")
        self._journal = PackJournal(location.folder, self._pack_dir)
        self._objects.attach(self._journal)
        self._unpublished: set[str] = set()  # lines whose tip the refs do not name yet
        self._publish_timer: threading.Timer | None = None
        self._head_files_known = False
        self._repack: subprocess.Popen | None = None
        # Ref locks are hard links to this file in our own folder (see refs.py).
        self._refs = RefWriter(location.repo.common_dir, os.path.join(location.folder, REF_LOCK_SOURCE))
        name = location.draft_path.name
        self._draft_file = name
        self._chunk_folder = name + CHUNK_FOLDER_SUFFIX
        self._chunker = DraftChunker(self._objects.write_blob)
        self._notes_file = f"{location.draft_path.stem}.notes{location.draft_path.suffix}"
        self._state_file = f"{name}.state"
        self._identities = _writer_identities(location.repo)
        self._tips: dict[str, str] = {}  # branch → newest commit
        self._checkpoints: dict[str, int] = {}  # name → version number
        self._checkpoint_of: dict[int, str] = {}  # version number → its name
        self._index: VersionIndex | None = None
        self._head: VersionInfo | None = None  # the newest version, read once per record
        self._branch_refs: dict[str, str] = {}  # branch → its ref name (escaping it costs per record)
        self._identity_of: dict[str, tuple[str, str]] = {}  # author → git name and email
        self._closed = False

    # --- opening and closing -------------------------------------------------

    @classmethod
    def open(cls, draft_path: Path | str) -> History:
        location = locate(Path(draft_path))
        try:
            lock = DraftLock(location.folder, location.draft_path)
        except BaseException:
            location.repo.close()
            raise
        history = cls(location, lock)
        try:
            history._load()
        except BaseException:
            history.close()
            raise
        return history

    def _load(self) -> None:
        journaled = recover(self._location.folder, self._pack_dir)
        tips = self._read_refs("lines")
        self._tips = {decode_component(name): sha for name, sha in tips.items()}
        self._advance_to_journaled(journaled)
        fell_back = self._fall_back_from_damaged_tips()
        checkpoints = {}
        for name, sha in self._read_refs("checkpoints").items():
            try:
                checkpoints[decode_component(name)] = self._version_of_commit(sha)[0]
            except HistoryDamaged:
                log.warning("%s: checkpoint %s names a damaged commit; left out", self._location.draft_path,
                            decode_component(name))
        self._refuse_if_refs_lost(checkpoints, trust_index=not fell_back)
        try:
            if fell_back:
                raise IndexCorrupt("the newest version was dropped")
            self._index = VersionIndex(self._location.folder)
            self._catch_up_with_refs()
        except IndexCorrupt:
            self._rebuild_index()
        self._name_versions(checkpoints)

    def _advance_to_journaled(self, journaled: list[tuple[str, bytes, bytes]]) -> None:
        """A killed session's journal is a pack now (``recover``); each line
        whose newest version was in it moves its ref there, as the publish
        the kill cut short would have. The commits name their own line and
        number (the trailers), so no index is needed to find them."""
        newest: dict[str, tuple[int, str]] = {}
        for sha, kind, body in journaled:
            if kind != b"commit":
                continue
            found = VERSION_TRAILERS.search(body.partition(b"\n\n")[2].decode("utf-8", "replace"))
            if found is None:
                continue
            number, line = int(found.group(1)), found.group(2)
            if number > newest.get(line, (0, ""))[0]:
                newest[line] = (number, sha)
        for line, (number, sha) in newest.items():
            tip = self._tips.get(line)
            if tip is not None:
                try:
                    if self._version_of_commit(tip)[0] >= number:
                        continue
                except HistoryError:
                    pass  # a damaged tip: the journal's version is newer
            self._refs.update(self._location.branch_ref(line), sha)
            self._tips[line] = sha

    def _newest_tip_version(self) -> int:
        return max((self._version_of_commit(tip)[0] for tip in self._tips.values()), default=0)

    def _refuse_if_refs_lost(self, checkpoints: dict[str, int], *, trust_index: bool) -> None:
        """Never start the history again behind the writer's back: when the
        index, a checkpoint or the agent's stream knows of more versions than
        the line refs reach (a ref deleted or emptied), refuse and say how to
        recover."""
        newest = self._newest_tip_version()
        evidence = []
        indexed = self._indexed_count() if trust_index else 0
        if indexed > newest:
            evidence.append(f"its index holds v{indexed}")
        named = max(checkpoints.values(), default=0)
        if named > newest:
            evidence.append(f"a checkpoint names v{named}")
        streamed = newest_version_in_stream(self._location.folder)
        # After falling back from a damaged newest commit the stream may name
        # the versions that fall-back dropped (as the index does); only more
        # than the index held is evidence of lost refs then.
        known = newest if trust_index else max(newest, self._indexed_count())
        if streamed > known:
            evidence.append(f"its agent stream names v{streamed}")
        if not self._tips:
            if indexed < 0:
                evidence.append("its index exists")
            if streamed <= newest and stream_has_records(self._location.folder):
                evidence.append("an agent stream exists")
        if evidence:
            reached = f"its refs reach only v{newest}" if self._tips else "it has no line refs"
            raise HistoryDamaged(
                f"the history of {self._location.draft_path} lost versions: {' and '.join(evidence)}, "
                f"but {reached}; {repair_hint(self._location.draft_path)}"
            )

    def _indexed_count(self) -> int:
        """How many versions the index file claims (-1 when it exists but
        its header is not ours), read raw: the index may be damaged."""
        path = os.path.join(self._location.folder, INDEX_FILE)
        try:
            with open(path, "rb") as handle:
                header = handle.read(RECORD_SIZE)
                size = os.fstat(handle.fileno()).st_size
        except FileNotFoundError:
            return 0
        if size == 0:
            return 0
        if not header.startswith(b"infitool-edit version index"):
            return -1
        return max(0, (size - RECORD_SIZE) // RECORD_SIZE)

    def _fall_back_from_damaged_tips(self) -> bool:
        """A branch whose newest commit is damaged goes back to that
        version's parent (named by the index), with a one-line warning."""
        fell_back = False
        for branch, tip in list(self._tips.items()):
            try:
                self._version_of_commit(tip)
                continue
            except HistoryDamaged as damage:
                reason = str(damage)
            parent = self._indexed_parent_of(tip)
            if parent is None:
                raise HistoryDamaged(
                    f"the newest commit of {self._location.draft_path}'s branch {branch} is damaged "
                    f"({reason}); {repair_hint(self._location.draft_path)}"
                )
            number, sha = parent
            self._refs.update(self._location.branch_ref(branch), sha)
            self._tips[branch] = sha
            log.warning("warning: %s: the newest version's commit %s is damaged; the history goes on from v%d",
                        self._location.draft_path, tip[:12], number)
            fell_back = True
        return fell_back

    def _indexed_parent_of(self, sha: str) -> tuple[int, str] | None:
        """``(number, commit)`` of the parent of the version whose commit is
        ``sha``, if the index knows it and the parent's commit is whole."""
        try:
            index = VersionIndex(self._location.folder)
        except (IndexCorrupt, OSError):
            return None
        try:
            for number in range(index.count, max(0, index.count - 1000), -1):
                if index.commit_of(number) != sha:
                    continue
                parent = index.entry(number).parent
                if parent is None:
                    return None
                parent_sha = index.commit_of(parent)
                self._version_of_commit(parent_sha)
                return parent, parent_sha
        except (IndexCorrupt, HistoryError):
            return None
        finally:
            index.close()
        return None

    def _read_refs(self, kind: str) -> dict[str, str]:
        """``{last ref component: commit sha}`` under our prefix, loose or packed."""
        prefix = f"{self._location.ref_prefix}/{kind}/"
        found = {}
        try:
            refs = list(git.Reference.iter_items(self._location.repo, common_path=prefix))
        except (ValueError, AssertionError, OSError, git.GitError) as error:
            raise HistoryDamaged(
                f"the refs under {self.git_dir}/{prefix} are unreadable ({error}); "
                f"{repair_hint(self._location.draft_path)}"
            ) from None
        for ref in refs:
            if ref.path.endswith(".lock") or not ref.path.startswith(prefix):
                continue
            try:
                sha = git.SymbolicReference.dereference_recursive(self._location.repo, ref.path)
            except (ValueError, AssertionError, TypeError, OSError, git.GitError):
                sha = None
            if not isinstance(sha, str) or not _SHA.fullmatch(sha):
                raise HistoryDamaged(
                    f"the ref {self.git_dir}/{ref.path} is damaged (not a commit id); "
                    f"{repair_hint(self._location.draft_path)}"
                )
            found[ref.path[len(prefix) :]] = sha
        return found

    def _catch_up_with_refs(self) -> None:
        """Make the index agree with the refs, which git trusts.

        After a kill between writing a ref and its index entry, the tip of
        one branch is one version ahead of the index: that entry is added
        back. Any other disagreement means the index is damaged.
        """
        index = self._require_index()
        newest_tip = 0
        missing: list[IndexEntry] = []
        # (A tip whose commit is damaged was dropped by _fall_back_from_damaged_tips.)
        for branch, tip in self._tips.items():
            version, _ = self._version_of_commit(tip)
            newest_tip = max(newest_tip, version)
            if version <= index.count:
                if index.commit_of(version) != tip:
                    raise IndexCorrupt(f"branch {branch} ends at a commit the index lacks")
                continue
            missing += self._walk_line(branch, tip, stop_at=index.count)
        if index.count > newest_tip:
            raise IndexCorrupt("the index holds versions no ref reaches")
        missing.sort(key=lambda entry: entry.number)
        for entry in missing:
            index.append(entry)
        if index.count != newest_tip:
            raise IndexCorrupt("the index and the refs disagree")
        if index.count:
            newest = index.entry(index.count)
            if self._tips.get(newest.branch) != newest.commit:
                raise IndexCorrupt("the newest version is not the tip of its branch")

    def _rebuild_index(self) -> None:
        """Rebuild the index from the commits the branch refs reach."""
        if self._index is not None:
            self._index.close()
            self._index = None
        self._head = None
        entries: list[IndexEntry] = []
        for branch, tip in self._tips.items():
            entries += self._walk_line(branch, tip, stop_at=0)
        entries.sort(key=lambda entry: entry.number)
        if [entry.number for entry in entries] != list(range(1, len(entries) + 1)):
            raise HistoryError(
                f"the history of {self._location.draft_path} has gaps in its version numbers"
            )
        write_index(self._location.folder, entries)
        self._index = VersionIndex(self._location.folder)

    def _walk_line(self, branch: str, tip: str, *, stop_at: int) -> list[IndexEntry]:
        """Versions above ``stop_at`` on one branch, from its tip back to where it began."""
        walked: list[tuple[str, ParsedCommit, int]] = []
        sha: str | None = tip
        while sha is not None:
            commit = self._objects.read_commit(sha)
            version, its_branch = _parse_trailers(commit.message, sha)[:2]
            if its_branch != branch or version <= stop_at:
                break
            walked.append((sha, commit, version))
            sha = commit.parents[0] if commit.parents else None
        entries = []
        for position, (sha, commit, version) in enumerate(walked):
            if not commit.parents:
                parent = None
            elif position + 1 < len(walked):
                parent = walked[position + 1][2]
            else:  # the version this branch was forked from, or one already indexed
                parent = self._version_of_commit(commit.parents[0])[0]
            trailers = VERSION_TRAILERS.search(commit.message)
            message = commit.message[: trailers.start()]
            entries.append(
                IndexEntry(
                    version, sha, parent, branch, commit.author_name, message,
                    float(commit.author_time), trailers.group(3),
                    int(trailers.group(4)) if trailers.group(4) else None,
                )
            )
        return entries

    def _version_of_commit(self, sha: str) -> tuple[int, str]:
        return _parse_trailers(self._objects.read_commit(sha).message, sha)[:2]

    def close(self) -> None:
        with self._mutex:
            if self._closed:
                return
            if self._publish_timer is not None:
                self._publish_timer.cancel()
                self._publish_timer = None
            try:
                self._publish(reopen=False)
            except (HistoryError, OSError) as error:
                # The journal stays; the next open publishes it (recover).
                log.warning("warning: %s: the newest versions wait in %s (%s)",
                            self._location.draft_path, self._location.folder, error)
            self._journal.close()
            self._closed = True
            if self._index is not None:
                self._index.close()
            if self._repack is not None:
                try:
                    self._repack.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass  # it finishes on its own, as a detached `git gc` does
            self._lock.release()
            if self._location.hidden:
                self._pack_loose_objects()
            self._location.repo.close()

    # --- publishing the journal ------------------------------------------------

    def flush(self) -> None:
        """Publish the versions recorded so far to git now: their pack, and
        the refs of their lines (otherwise within ``PUBLISH_AFTER_S``)."""
        with self._mutex:
            self._check_open()
            self._publish(reopen=True)

    def _publish(self, *, reopen: bool) -> None:
        """Journal → pack, then the refs, then the journal's name goes: a kill
        in between leaves the journal, which the next open publishes again."""
        if self._journal.publish() is not None:
            self._objects.published()
        for line in sorted(self._unpublished):  # (also those a failed publish left)
            ref = self._branch_refs.get(line) or self._location.branch_ref(line)
            self._refs.update(ref, self._tips[line])
            self._unpublished.discard(line)
        if self._journal.published:
            self._journal.restart(reopen=reopen)
            self._start_repack_if_many_packs()
        elif not reopen:
            self._journal.restart(reopen=False)  # closing: an empty journal goes too

    def _publish_soon(self) -> None:
        if self._journal.size >= PUBLISH_BYTES:
            self._publish(reopen=True)
        elif self._publish_timer is None:
            timer = threading.Timer(PUBLISH_AFTER_S, self._publish_from_timer)
            timer.daemon = True
            self._publish_timer = timer
            timer.start()

    def _publish_from_timer(self) -> None:
        with self._mutex:
            self._publish_timer = None
            if self._closed:
                return
            try:
                self._publish(reopen=True)
            except (HistoryError, OSError) as error:
                log.warning("warning: %s: publishing the newest versions to git failed (%s); "
                            "retried at the next version", self._location.draft_path, error)

    def _start_repack_if_many_packs(self) -> None:
        if self._repack is not None and self._repack.poll() is None:
            return
        try:
            packs = sum(name.endswith(".idx") for name in os.listdir(self._pack_dir))
        except OSError:
            return
        if packs < REPACK_AT_PACKS or _auto_gc_off(self._location.repo.common_dir):
            return
        try:
            self._repack = subprocess.Popen(
                ["git", "--git-dir", self._location.repo.common_dir, "repack", "--geometric=2", "-d", "-q"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._repack = None  # packing is an economy, never a reason to fail

    def _pack_loose_objects(self) -> None:
        """Let git pack the hidden repository once enough loose objects pile up.

        Each version adds three loose objects; unpacked, a long history costs
        a file-system block per object. ``git gc --auto`` is what ``git
        commit`` runs: nothing below git's threshold, else a detached
        background gc. The writer's own repository is left to the writer's
        git, which runs the same check on its next commit.
        """
        try:
            self._location.repo.git.gc("--auto", "--quiet")
        except git.GitCommandError:
            pass  # packing is an economy, never a reason to fail

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- where it lives ------------------------------------------------------

    @property
    def git_dir(self) -> Path:
        """The repository that holds the history (the writer's or a hidden one)."""
        return Path(self._location.repo.common_dir)

    @property
    def folder(self) -> Path:
        """This draft's own folder beside the history, which git ignores: the
        index and the lock live there, and other parts keep their files
        about the draft in sub-folders of it (the agent's stream)."""
        return Path(self._location.folder)

    @property
    def ref_prefix(self) -> str:
        return self._location.ref_prefix

    def branch_ref(self, branch: str) -> str:
        return self._location.branch_ref(branch)

    @property
    def current_branch(self) -> str:
        head = self.head()
        return head.branch if head else MAIN_BRANCH

    # --- recording -----------------------------------------------------------

    def record(
        self,
        draft: str,
        notes: str,
        message: str,
        author: str,
        *,
        state: bytes | None = None,
        scale: str | None = None,
        splice: Splice | None = None,
    ) -> VersionInfo:
        """One new version on the current branch; one commit. ``scale``: how
        much prose it changed (the session grades it; see ``VersionInfo``).
        ``splice``: how ``draft`` came from the draft recorded before, when
        the caller knows (a large draft's chunks are then not compared)."""
        with self._mutex:
            self._check_open()
            head = self.head()
            if not self._head_files_known and head is not None:
                self._remember_head_files(head)
            files = {self._notes_file: self._objects.write_blob(notes.encode("utf-8"))}
            folders = {}
            if len(draft) <= CHUNK_MAX:
                files[self._draft_file] = self._objects.write_blob(draft.encode("utf-8"))
            else:
                if not self._chunker.seeded and head is not None:
                    self._seed_chunker(head)
                chunks = self._chunker.store(draft, splice)
                folders[self._chunk_folder] = self._objects.write_numbered_tree(chunks)
            if state is not None:
                files[self._state_file] = self._objects.write_blob(bytes(state))
            tree = self._objects.write_tree(files, folders)
            branch = head.branch if head else MAIN_BRANCH
            return self._commit(tree, branch, head, message, author, scale=scale)

    def _remember_head_files(self, head: VersionInfo) -> None:
        """The head's blobs are in git: a first record after opening that
        keeps the notes or the state need not write them into a pack again."""
        self._head_files_known = True
        try:
            for sha in self._files_of(head.number).values():
                self._objects.remember(sha)
        except HistoryError:
            pass  # a damaged head: whatever the record needs is written afresh

    def _seed_chunker(self, head: VersionInfo) -> None:
        """Start the chunker from the head's chunks, when it has them, so the
        first record after opening writes only the chunks it changed."""
        folder = self._files_of(head.number).get(self._chunk_folder)
        if folder is None:
            return
        try:
            chunks = sorted(self._objects.read_tree(folder).items())
            texts = [self._objects.read(sha)[1].decode("utf-8") for _, sha in chunks]
        except (HistoryError, UnicodeDecodeError):
            return  # a damaged head: the record writes every chunk afresh
        self._chunker.seed(texts, [sha for _, sha in chunks])

    def rewind(self, number: int, author: str, *, scale: str | None = None) -> VersionInfo:
        """A new version on the current branch with version ``number``'s draft,
        notes and state: rewinding never destroys what came after."""
        with self._mutex:
            source = self._info(number)
            tree = self._objects.read_commit(source.commit).tree
            head = self.head()
            return self._commit(
                tree, head.branch, head, f"rewind v{number}", author, scale=scale, back_to=number
            )

    def fork(self, number: int, author: str, *, scale: str | None = None) -> VersionInfo:
        """A new branch whose first version copies version ``number``;
        later records continue the new branch."""
        with self._mutex:
            source = self._info(number)
            tree = self._objects.read_commit(source.commit).tree
            return self._commit(
                tree, self._new_branch_name(), source, f"fork v{number}", author, scale=scale, back_to=number
            )

    def _new_branch_name(self) -> str:
        suffix = len(self._tips)
        while f"fork-{suffix}" in self._tips:
            suffix += 1
        return f"fork-{suffix}"

    def _commit(
        self, tree: str, branch: str, parent: VersionInfo | None, message: str, author: str,
        *, scale: str | None = None, back_to: int | None = None,
    ) -> VersionInfo:
        index = self._require_index()
        number = index.count + 1
        now = time.time()
        when = int(now)
        offset = time.localtime(when).tm_gmtoff // 60
        name, email = self._identity(author)
        commit = self._objects.write_commit(
            tree,
            [parent.commit] if parent else [],
            Identity(name, email, when, offset),
            Identity(_COMMITTER_NAME, _COMMITTER_EMAIL, when, offset),
            f"{message}\n\nInfitool-Version: {number}\nInfitool-Line: {branch}\n"
            + (f"Infitool-Scale: {scale}\n" if scale else "")
            + (f"Infitool-Back-To: {back_to}\n" if back_to is not None else ""),
        )
        # Objects (in the journal), then the index; the ref when the journal
        # is published: see the module docstring.
        if branch not in self._branch_refs:
            self._branch_refs[branch] = self._location.branch_ref(branch)
        self._tips[branch] = commit
        self._unpublished.add(branch)
        entry = IndexEntry(
            number, commit, parent.number if parent else None, branch, author, message,
            float(when), scale, back_to,
        )
        index.append(entry)
        self._head = self._to_info(entry)
        self._publish_soon()
        return self._head

    def _identity(self, author: str) -> tuple[str, str]:
        known = self._identity_of.get(author)
        if known is None:
            if len(self._identity_of) > 256:
                self._identity_of.clear()
            known = self._identity_of[author] = self._new_identity(author)
        return known

    def _new_identity(self, author: str) -> tuple[str, str]:
        name = _clean_ident(author) or "unknown"
        if author in self._identities:
            return name, self._identities[author]
        if author.startswith("model:"):
            return name, f"model-{_slug(author[6:])}@infitool-edit.invalid"
        return name, f"{_slug(author)}@infitool-edit.invalid"

    # --- checkpoints ---------------------------------------------------------

    def checkpoint(self, name: str) -> VersionInfo:
        """Name the newest version; each name may be used once."""
        with self._mutex:
            head = self.head()
            if head is None:
                raise UnknownVersion("there is no version to checkpoint yet")
            if name in self._checkpoints:
                raise CheckpointExists(
                    f'checkpoint "{name}" already names v{self._checkpoints[name]}'
                )
            try:
                ref = self._location.checkpoint_ref(name)
            except ValueError as error:
                raise HistoryError(str(error)) from None
            self._publish(reopen=True)  # a ref names only commits git has
            self._refs.update(ref, head.commit)
            self._name_versions({**self._checkpoints, name: head.number})
            return replace(head, checkpoint=self._checkpoint_of[head.number])

    def find_checkpoint(self, name: str) -> int:
        with self._mutex:
            self._check_open()
            if name not in self._checkpoints:
                raise UnknownVersion(f'there is no checkpoint "{name}"')
            return self._checkpoints[name]

    def _name_versions(self, checkpoints: dict[str, int]) -> None:
        self._head = None  # it may carry a checkpoint's name now
        self._checkpoints = checkpoints
        # A version named twice shows its first name in alphabetical order.
        self._checkpoint_of = {}
        for name, number in sorted(checkpoints.items()):
            self._checkpoint_of.setdefault(number, name)

    # --- reading -------------------------------------------------------------

    def count(self) -> int:
        with self._mutex:
            return self._require_index().count

    def version(self, number: int) -> VersionInfo:
        """What the history knows of version ``number`` (its parent, branch,
        author, command line…); ``UnknownVersion`` if there is none."""
        with self._mutex:
            return self._info(number)

    def head(self) -> VersionInfo | None:
        with self._mutex:
            count = self._require_index().count
            if not count:
                return None
            if self._head is None or self._head.number != count:
                self._head = self._info(count)
            return self._head

    def log(self, limit: int = 1000, before: int | None = None) -> list[VersionInfo]:
        """Newest first, across all lines; only versions below ``before`` if given."""
        with self._mutex:
            index = self._require_index()
            stop = index.count + 1 if before is None else max(1, min(before, index.count + 1))
            start = max(1, stop - max(0, limit))
            entries = self._read_index(lambda current: current.entries(start, stop))
            return [self._to_info(entry) for entry in reversed(entries)]

    def read(self, number: int) -> Snapshot:
        with self._mutex:
            files = self._files_of(number)
            return Snapshot(
                draft=self._draft_text(files),
                notes=self._blob_text(files.get(self._notes_file)),
            )

    def state(self, number: int) -> bytes | None:
        with self._mutex:
            sha = self._files_of(number).get(self._state_file)
            return None if sha is None else self._objects.read(sha)[1]

    def diff(self, a: int, b: int) -> str:
        """A unified diff of the draft from version ``a`` to version ``b``."""
        # Lines end at \n only: splitlines() would also split at a form
        # feed or U+2028 inside a line, and show lines the draft lacks.
        before = _lines(self.read(a).draft)
        after = _lines(self.read(b).draft)
        name = self._draft_file
        lines = difflib.unified_diff(before, after, f"v{a}/{name}", f"v{b}/{name}")
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )

    def _files_of(self, number: int) -> dict[str, str]:
        commit = self._info(number).commit
        return self._objects.read_tree(self._objects.read_commit(commit).tree)

    def _draft_text(self, files: dict[str, str]) -> str:
        """The draft of a version: one blob, or its chunk blobs joined."""
        folder = files.get(self._chunk_folder)
        if folder is None or self._draft_file in files:
            return self._blob_text(files.get(self._draft_file))
        chunks = sorted(self._objects.read_tree(folder).items())
        data = b"".join(self._objects.read(sha)[1] for _, sha in chunks)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise HistoryDamaged(f"the chunks of the draft in tree {folder} are not UTF-8") from None

    def _blob_text(self, sha: str | None) -> str:
        return "" if sha is None else self._objects.read(sha)[1].decode("utf-8")

    def _info(self, number: int) -> VersionInfo:
        self._check_open()
        index = self._require_index()
        if not isinstance(number, int) or not 1 <= number <= index.count:
            raise UnknownVersion(f"there is no version {number} (the history has {index.count})")
        return self._to_info(self._read_index(lambda current: current.entry(number)))

    def _read_index(self, read: Callable[[VersionIndex], _T]) -> _T:
        """Read the index; a damaged one is rebuilt from git and read again."""
        try:
            return read(self._require_index())
        except IndexCorrupt:
            self._rebuild_index()
            return read(self._require_index())

    def _to_info(self, entry: IndexEntry) -> VersionInfo:
        return VersionInfo(
            number=entry.number,
            parent=entry.parent,
            branch=entry.branch,
            author=entry.author,
            message=entry.message,
            time=entry.time,
            commit=entry.commit,
            checkpoint=self._checkpoint_of.get(entry.number),
            scale=entry.scale,
            back_to=entry.back_to,
        )

    def _require_index(self) -> VersionIndex:
        self._check_open()
        assert self._index is not None
        return self._index

    def _check_open(self) -> None:
        if self._closed:
            raise HistoryError(f"the history of {self._location.draft_path} is closed")


def _lines(text: str) -> list[str]:
    """``text`` split after each ``\n``, keeping it."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _parse_trailers(message: str, sha: str) -> tuple[int, str, str | None, int | None]:
    found = VERSION_TRAILERS.search(message)
    if found is None:
        raise HistoryError(f"commit {sha[:12]} is not an infitool-edit version")
    back_to = found.group(4)
    return int(found.group(1)), found.group(2), found.group(3), int(back_to) if back_to else None


def _clean_ident(text: str) -> str:
    # git refuses <, > and newlines inside a name or an email.
    return re.sub(r"[<>\n\r\0]", "", text).strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "writer"


def _writer_identities(repo: git.Repo) -> dict[str, str]:
    """The configured ``user.name`` → ``user.email``, so a writer's versions
    carry the same identity as the writer's own commits."""
    reader = repo.config_reader()
    name = reader.get_value("user", "name", default="")
    email = reader.get_value("user", "email", default="")
    return {str(name): str(email)} if name and email else {}


def _auto_gc_off(git_dir: str) -> bool:
    """Whether automatic packing is off (``gc.auto`` 0), as git itself asks
    (the environment's configuration included, which GitPython does not read)."""
    result = subprocess.run(["git", "--git-dir", git_dir, "config", "--get", "gc.auto"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() == "0"
