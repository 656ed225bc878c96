"""The editing session: one draft, its history, and the commands applied to it.

Every command, the model's or the writer's, goes through ``execute``:
parse, apply to the workspace, record a version, write the draft. The order
is what keeps a crash harmless: the version is recorded before the file is
written, so a process killed at any instant leaves the file equal to the
newest version or to the one before it, and ``open`` finishes the
interrupted write on the next start.

Errors are checked before anything changes (the command parses, the address
resolves, the file was not changed by someone else, the draft is writable),
so a failing command leaves the draft, the notes and the history as they
were.

Whoever shows or records the session's work subscribes to it
(``subscribe``): every recorded or answered command reaches each listener
as one ``Executed``, on the thread that executed it, in the order the
versions were made. The agent's runner hears the writer's edits this way,
and the app hears its own; nobody relays one to another.

When another program changes the draft during a session, ``execute``
refuses with DraftChanged. The explicit way on is to reopen the draft (or
call ``adopt_disk``): the file as it is on disk becomes a new version
authored ``disk``, so neither their text nor any earlier version is lost.

A program that writes the file in the instant the session replaces it (see
``DraftFile.prepare``) cannot be refused any more: its file is recorded as a
``disk`` version (``reload``) right after ours, and when the two changes do
not overlap, a version ``merge vN vM`` holds both and becomes the file.

Line endings: the history stores, and the file gets, the text with the line
ending the draft uses (CRLF, CR or LF, whichever ends most of its lines);
the workspace sees LF only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infitool_edit.commands import parse, serialize
from infitool_edit.commands import ast
from infitool_edit.document import ApplyError, HeadingInfo, Outcome, Workspace
from infitool_edit.document.edits import TextEdit
from infitool_edit.document.positions import common_prefix, end_after
from infitool_edit.history import CheckpointExists, History, Splice, UnknownVersion, VersionInfo
from infitool_edit.history.refnames import encode_component
from infitool_edit.session.draftfile import (
    DraftChanged,
    DraftFile,
    DraftRaced,
    DraftReadOnly,
    PendingWrite,
    decode_draft,
    line_ending_of,
    with_line_ending,
)
from infitool_edit.session.merge import merge_changes

log = logging.getLogger("infitool_edit")

# Author and message of the versions the session records on its own.
DISK_AUTHOR = "disk"
OPEN_MESSAGE = "open"
RELOAD_MESSAGE = "reload"
# How often one write may meet another program's write before giving up.
_RACE_RETRIES = 5
# How many replaced files' late writes one check absorbs (each is one
# program that held an old copy open and wrote to it).
_MAX_LATE_WRITES = 64
# How long close waits for a program still holding a replaced file open.
_CLOSE_WAIT_S = 1.0

# How many versions the `history` command lists, and how much of each
# command line it shows: observations stay bounded however long the history.
HISTORY_LINES = 20
HISTORY_MESSAGE_CHARS = 120

MAX_CHECKPOINT_REF_BYTES = 250

# Commands that change the file on disk, refused on a read-only draft.
_CHANGES_FILE = (*ast.EDITING, ast.Rewind)


@dataclass(frozen=True)
class Executed:
    """What one command did, as the session publishes it. ``version`` is the
    number of the version it recorded, or None for commands that only look
    (read, find, goal…)."""

    command: ast.Command | None  # as parsed; None for a fork (not a command of the language)
    line: str  # the command, serialized as the history stores it
    author: str
    version: int | None
    outcome: Outcome | None  # None for the session's own commands
    observation: str
    edit: TextEdit | None  # what changed in the draft, for incremental views
    scale: str | None = None  # how much prose changed, by the document's rule (also in the version)
    back_to: int | None = None  # the version a rewind or a fork went back to

    @property
    def done(self) -> bool:
        return isinstance(self.command, ast.Done)

    @property
    def notes_changed(self) -> bool:
        """Whether the notes may differ now (a note, or a rewind or fork)."""
        return self.back_to is not None or bool(self.outcome and self.outcome.notes_changed)


Listener = Callable[[Executed], None]


class EditingSession:
    """An open draft. Use ``EditingSession.open``; close it (or use it as a
    context manager) to release the history's lock."""

    def __init__(self, draft: DraftFile, history: History, author: str):
        self.draft = draft
        self.history = history
        self.author = author
        self.goal: str | None = None
        self.workspace = Workspace("")
        self.newline = "\n"  # the draft's line ending on disk
        self.read_only = draft.read_only
        # The model's worker thread and the writer's keys both execute: one
        # command at a time, so each version is exactly one command's work.
        self._turn = threading.RLock()
        self._listeners: list[Listener] = []

    @property
    def draft_path(self) -> Path:
        return self.draft.path

    @classmethod
    def open(cls, draft_path: Path | str, *, author: str) -> EditingSession:
        """Lock the draft's history, load the draft and reconcile the two.
        Raises DraftError (unreadable, binary, not UTF-8…) before taking the
        lock, and DraftLocked when another session holds it."""
        draft = DraftFile(Path(draft_path))
        first_read = draft.read()  # refuse a file we cannot edit before touching history
        history = History.open(draft.path)
        draft.remove_stale_temporaries()
        session = cls(draft, history, author)
        try:
            session._reconcile(first_read)
        except BaseException:
            draft.close()
            history.close()
            raise
        return session

    def save(self) -> None:
        """Make the draft on disk durable (fsync): commands write it
        atomically but leave the flush to the disk to save and close."""
        self.draft.sync()

    def close(self) -> None:
        try:
            with self._turn:
                self._absorb_late_writes_before_closing()
            self.draft.sync()
        finally:
            self.draft.close()
            self.history.close()

    def __enter__(self) -> EditingSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- opening ----------------------------------------------------------

    def _reconcile(self, first_read: str) -> None:
        """Make the workspace, the history head and the file agree.
        ``first_read`` is the text read before the lock was taken: read
        again only if the file changed since (a large draft's text and bytes
        once at a time, not beside a first copy)."""
        on_disk = self.draft.read() if self.draft.changed_on_disk() else first_read
        del first_read
        head = self.history.head()
        if head is None:
            self._load(on_disk, "")
            self.history.record(on_disk, "", OPEN_MESSAGE, DISK_AUTHOR)
            return
        snapshot = self.history.read(head.number)
        if on_disk == snapshot.draft:
            # The string the draft's stamp holds too: a large draft once, not twice.
            self._load(on_disk, snapshot.notes)
            return
        self._load(snapshot.draft, snapshot.notes)
        if not self.draft.exists:
            return  # deleted outside: the head is the draft; saved on the next edit
        if not self.read_only and self._is_interrupted_write(head, on_disk):
            self._write(snapshot.draft, durable=True)
            return
        self._record_disk(on_disk)

    def _is_interrupted_write(self, head: VersionInfo, on_disk: str) -> bool:
        """A crash between recording the head and writing the file leaves the
        file equal to the version before the head."""
        return head.parent is not None and self.history.read(head.parent).draft == on_disk

    def _record_disk(self, on_disk: str) -> VersionInfo:
        info = self.history.record(on_disk, self.workspace.notes, RELOAD_MESSAGE, DISK_AUTHOR)
        self._load(on_disk, self.workspace.notes)
        return info

    def _load(self, draft: str, notes: str) -> None:
        """``draft`` as the file holds it (any line ending)."""
        self.workspace = Workspace(draft, notes)
        self.newline = line_ending_of(draft)

    def file_text(self) -> str:
        """The draft as the file holds it: the workspace's text with the
        draft's own line ending."""
        return with_line_ending(self.workspace.text, self.newline)

    # --- writing the file, never losing another program's write ------------

    def _write(self, text: str, *, durable: bool) -> None:
        """Write ``text`` (already the newest version) to the file."""
        self._commit(self.draft.prepare(text, durable=durable))

    def _commit(self, pending: PendingWrite) -> None:
        try:
            pending.commit()
        except DraftRaced as race:
            self._absorb(race)

    def _absorb_late_writes(self) -> None:
        """A program that wrote into a file one of our writes replaced: keep
        what it wrote (see ``_absorb``), for every such file."""
        for _ in range(_MAX_LATE_WRITES):
            try:
                self.draft.check_replaced()
                return
            except DraftRaced as race:
                self._absorb(race)

    def _absorb_late_writes_before_closing(self) -> None:
        """On close, give a program that still holds a replaced file open a
        moment to finish with it (a sync tool between its open and its
        write), then keep whatever it wrote; warn if one still holds it."""
        deadline = time.monotonic() + _CLOSE_WAIT_S
        while True:
            self._absorb_late_writes()
            if not self.draft.watching_replaced or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if self.draft.watching_replaced:
            log.warning(
                "warning: %s: another program still holds an old copy of the draft open; "
                "what it writes there from now on is not seen", self.draft.path,
            )

    def _absorb(self, race: DraftRaced) -> None:
        """Another program wrote the draft while we replaced it. Their file
        becomes a ``disk`` version; when their change and ours do not
        overlap, a ``merge`` version holds both; the newest of these is
        written to the file (again watched for a race)."""
        for _ in range(_RACE_RETRIES):
            ours = self.file_text()
            kept, theirs = self._keep_theirs(race, ours)
            try:
                if not race.replaced:
                    self.draft.adopt(race.theirs)  # the file holds theirs: build on it
                if kept != (theirs if not race.replaced else ours):
                    self.draft.prepare(kept, durable=False).commit()
                return
            except DraftRaced as again:
                race = again
            except DraftChanged:
                # The file itself changed too (another program's save beside
                # the late write): what it holds now is one more race to keep.
                race = self.draft.race_with_disk()
                if race is None:
                    return  # deleted: the next check says so
        self._keep_theirs(race, self.file_text())  # giving up writing, never their bytes
        raise DraftChanged(
            f"{self.draft.path}: another program keeps writing the draft; every version is in the "
            "history (reopen the draft to go on)"
        )

    def _keep_theirs(self, race: DraftRaced, ours: str) -> tuple[str, str]:
        """Record their file as a ``disk`` version, and a ``merge`` version
        when their change and ``ours`` (the file's text as we hold it) merge;
        load the newer. Returns it and their text. The race is settled only
        once their bytes are recorded."""
        base = decode_draft(self.draft.path, race.base)
        theirs = decode_draft(self.draft.path, race.theirs)
        notes = self.workspace.notes
        recorded = self.history.record(theirs, notes, RELOAD_MESSAGE, DISK_AUTHOR)
        race.settle()
        merged = merge_changes(base, ours, theirs)
        kept = theirs
        if merged is not None and merged != theirs:
            mine = self.history.head().number - 1
            self.history.record(merged, notes, f"merge v{mine} v{recorded.number}", DISK_AUTHOR)
            kept = merged
        self._load(kept, notes)
        return kept, theirs

    def adopt_disk(self) -> int | None:
        """Take the file as another program left it: record it as a version
        authored ``disk`` (nothing is overwritten). Returns that version, or
        None when the file had not changed."""
        with self._turn:
            try:
                self._absorb_late_writes()
            except DraftChanged:
                pass  # given up writing a merge: every version is recorded, and the file is taken below
            if not self.draft.changed_on_disk():
                return None
            on_disk = self.draft.read()
            if on_disk == self.file_text():
                return None
            return self._record_disk(on_disk).number

    def outline(self) -> list[HeadingInfo]:
        """The draft's headings, read in the session's turn
        so a command running on another thread (the model's) never changes
        the structure halfway through the read."""
        with self._turn:
            return self.workspace.outline()

    # --- listening ----------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every command executed from now on (after
        it took effect, inside the session's turn, on the executing thread:
        keep it short, and hand work for another thread over a queue).
        Returns the call that unsubscribes it."""
        with self._turn:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._turn:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _publish(self, executed: Executed) -> Executed:
        for listener in list(self._listeners):
            listener(executed)
        return executed

    # --- executing --------------------------------------------------------

    def execute(self, line_or_command: str | ast.Command, *, author: str | None = None) -> Executed:
        """Apply one command. Raises CommandError, ApplyError, DraftChanged,
        DraftReadOnly or UnknownVersion with everything left as it was."""
        command = (
            parse(line_or_command) if isinstance(line_or_command, str) else line_or_command
        )
        with self._turn:
            return self._publish(self._execute(command, serialize(command), author or self.author))

    def _execute(self, command: ast.Command, line: str, author: str) -> Executed:
        if isinstance(command, _CHANGES_FILE):
            if self.read_only:
                raise DraftReadOnly(f"{self.draft.path}: the draft is read-only; `{line}` not applied")
            # Refuse before applying, so a conflict changes nothing; looking
            # (and notes, which live in the history only) still works.
            self._absorb_late_writes()
            self.draft.check_unchanged()

        if isinstance(command, ast.Goal):
            return self._look(command, line, author, f"@goal {self.goal or '(no goal was given)'}")
        if isinstance(command, ast.History):
            return self._look(command, line, author, self._history_observation())
        if isinstance(command, ast.Done):
            return self._look(command, line, author, "@done")
        if isinstance(command, ast.Checkpoint):
            return self._checkpoint(command, line, author)
        if isinstance(command, ast.Rewind):
            return self._rewind(command, line, author)
        return self._apply(command, line, author)

    def removal(self, command: ast.Command) -> str:
        """The text ``command`` would take out of the draft, changing nothing:
        a delete's or replace's range, or what a rewind would replace (the
        part of today's draft that differs from the version's). Raises what
        ``execute`` would for an address or version that is not there."""
        with self._turn:  # the writer may be editing on another thread
            if not isinstance(command, ast.Rewind):
                return self.workspace.removal(command)
            old, new = self.file_text(), self.history.read(self._resolve(command.to)).draft
        start = common_prefix(old, new)
        end = len(old) - common_prefix(old[start:][::-1], new[start:][::-1])
        return old[start:end]

    def _look(self, command: ast.Command, line: str, author: str, observation: str) -> Executed:
        return Executed(command, line, author, None, None, observation, None)

    def _apply(self, command: ast.Command, line: str, author: str) -> Executed:
        before = (self.file_text(), self.workspace.notes)
        outcome = self.workspace.apply(command, author=author)
        splice = self.workspace.take_splice()
        if outcome.edit is None and not outcome.notes_changed:
            return Executed(command, line, author, None, outcome, outcome.render(None), None)
        text = self.file_text()
        # The history trusts it only for these very strings (the draft it
        # stored last, and ``text``): a CRLF draft's text is another string.
        splice = Splice(*splice) if splice is not None else None
        pending = None
        try:
            # Our bytes wait in a temporary file while the version is
            # recorded: a change by someone else refuses the command before
            # anything is recorded, and a crash leaves the old file.
            if outcome.edit is not None:
                pending = self.draft.prepare(text, durable=False)
            info = self.history.record(text, self.workspace.notes, line, author, scale=outcome.scale,
                                       splice=splice)
        except BaseException:
            # The version was not recorded: neither may the change be.
            if pending is not None:
                pending.abandon()
            self._load(*before)
            raise
        if pending is not None:
            self._commit(pending)
        return Executed(
            command, line, author, info.number, outcome, outcome.render(info.number), outcome.edit,
            outcome.scale,
        )

    def _checkpoint(self, command: ast.Checkpoint, line: str, author: str) -> Executed:
        self._check_checkpoint_name(command.name)
        info = self.history.record(self.file_text(), self.workspace.notes, line, author)
        self.history.checkpoint(command.name)
        return Executed(command, line, author, info.number, None, f"@ok v{info.number}", None)

    def _check_checkpoint_name(self, name: str) -> None:
        """Refuse a name the history would refuse, before recording the
        version it was meant to name."""
        if not name.strip():
            raise ApplyError("a checkpoint needs a name")
        # The name becomes one file name under refs/ (git adds ".lock" while
        # writing it), and file names stop at 255 bytes.
        if len(encode_component(name)) > MAX_CHECKPOINT_REF_BYTES:
            raise ApplyError("that checkpoint name is too long; use a shorter one")
        try:
            number = self.history.find_checkpoint(name)
        except UnknownVersion:
            return
        raise CheckpointExists(f'checkpoint "{name}" already names v{number}')

    def _rewind(self, command: ast.Rewind, line: str, author: str) -> Executed:
        number = self._resolve(command.to)
        scale = self.workspace.rewrite_scale(self.history.read(number).draft)
        info = self.history.rewind(number, author, scale=scale)
        return self._after_going_back(command, info, line, author)

    def fork(self, number: int, *, author: str | None = None) -> Executed:
        """Start a new branch from version ``number``; the draft becomes that
        version's text."""
        with self._turn:
            if self.read_only:
                raise DraftReadOnly(f"{self.draft.path}: the draft is read-only; not forking")
            self._absorb_late_writes()
            self.draft.check_unchanged()
            author = author or self.author
            scale = self.workspace.rewrite_scale(self.history.read(number).draft)
            info = self.history.fork(number, author, scale=scale)
            return self._publish(self._after_going_back(None, info, f"fork v{number}", author))

    def _after_going_back(
        self, command: ast.Rewind | None, info: VersionInfo, line: str, author: str
    ) -> Executed:
        """The draft and notes become the version a rewind or fork made."""
        old_text = self.workspace.text
        old_file = self.file_text()
        snapshot = self.history.read(info.number)
        self._load(snapshot.draft, snapshot.notes)
        edit = None
        if snapshot.draft != old_file:
            edit = TextEdit((0, 0), end_after((0, 0), old_text), self.workspace.text)
            self._write(snapshot.draft, durable=True)
        return Executed(
            command, line, author, info.number, None, f"@ok v{info.number} restored", edit,
            info.scale, info.back_to,
        )

    def _resolve(self, ref: ast.VersionRef | ast.CheckpointRef) -> int:
        if isinstance(ref, ast.CheckpointRef):
            return self.history.find_checkpoint(ref.name)
        return self.history.version(ref.number).number  # UnknownVersion before anything changes

    def _history_observation(self) -> str:
        versions = self.history.log(limit=HISTORY_LINES)
        if not versions:
            return "@history (empty)"
        lines = [f"@history v{versions[0].number}-v{versions[-1].number} of {self.history.count()}"]
        for info in versions:
            message = info.message.splitlines()[0] if info.message else ""
            if len(message) > HISTORY_MESSAGE_CHARS:
                message = message[: HISTORY_MESSAGE_CHARS - 1] + "…"
            lines.append(f"v{info.number} {info.author} {message}")
        return "\n".join(lines)
