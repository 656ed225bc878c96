"""Random record/restore/fork/checkpoint/reopen sequences against a plain model."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from infitool_edit.history import CheckpointExists, History, Snapshot, UnknownVersion
from infitool_edit.history.versionindex import INDEX_FILE, TEXT_FILE

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
states = st.none() | st.binary(max_size=64)


class HistoryMachine(RuleBasedStateMachine):
    """The model: per version its content, parent and line; the current line."""

    def __init__(self):
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="history-machine-"))
        self.draft = self.folder / "draft.md"
        self.history = History.open(self.draft)
        self.contents: list[tuple[Snapshot, bytes | None]] = []
        self.parents: list[int | None] = []
        self.lines: list[str] = []
        self.tips: dict[str, int] = {}
        self.checkpoints: dict[str, int] = {}

    def _expect(self, info, content, parent, line):
        assert info.number == len(self.contents) + 1
        assert (info.parent, info.branch) == (parent, line)
        self.contents.append(content)
        self.parents.append(parent)
        self.lines.append(line)
        self.tips[line] = info.number

    @property
    def current_branch(self):
        return self.lines[-1] if self.lines else "main"

    @rule(draft=texts, notes=texts, state=states, message=texts)
    def record(self, draft, notes, state, message):
        info = self.history.record(draft, notes, message, "model:tiny", state=state)
        assert info.message == message
        self._expect(info, (Snapshot(draft, notes), state), self.tips.get(self.current_branch),
                     self.current_branch)

    @rule(data=st.data())
    def restore(self, data):
        number = data.draw(st.integers(0, len(self.contents) + 1))
        if not 1 <= number <= len(self.contents):
            try:
                self.history.rewind(number, "Ana")
            except UnknownVersion:
                return
            raise AssertionError(f"restored a version that does not exist: {number}")
        info = self.history.rewind(number, "Ana")
        assert info.message == f"rewind v{number}"
        line = self.current_branch
        self._expect(info, self.contents[number - 1], self.tips[line], line)

    @precondition(lambda self: self.contents)
    @rule(data=st.data())
    def fork(self, data):
        number = data.draw(st.integers(1, len(self.contents)))
        info = self.history.fork(number, "Ana")
        assert info.branch not in self.tips
        self._expect(info, self.contents[number - 1], number, info.branch)

    @precondition(lambda self: self.contents)
    @rule(name=st.sampled_from(["one", "two", "a b", ".x..y.lock"]))
    def checkpoint(self, name):
        if name in self.checkpoints:
            try:
                self.history.checkpoint(name)
            except CheckpointExists:
                return
            raise AssertionError("a checkpoint name was used twice")
        assert self.history.checkpoint(name).number == len(self.contents)
        self.checkpoints[name] = len(self.contents)

    @rule()
    def reopen(self):
        self.history.close()
        self.history = History.open(self.draft)

    @rule()
    def lose_the_index(self):
        folder = self.history.folder
        self.history.close()
        for name in (INDEX_FILE, TEXT_FILE):
            os.unlink(os.path.join(folder, name))
        self.history = History.open(self.draft)

    @precondition(lambda self: self.contents)
    @rule(data=st.data())
    def read(self, data):
        number = data.draw(st.integers(1, len(self.contents)))
        snapshot, state = self.contents[number - 1]
        assert self.history.read(number) == snapshot
        assert self.history.state(number) == state

    @invariant()
    def log_is_consistent(self):
        log = self.history.log()
        assert [info.number for info in log] == list(range(len(self.contents), 0, -1))
        assert [info.parent for info in reversed(log)] == self.parents
        assert [info.branch for info in reversed(log)] == self.lines
        for name, number in self.checkpoints.items():
            assert self.history.find_checkpoint(name) == number
        assert self.history.count() == len(self.contents)

    def teardown(self):
        self.history.close()
        shutil.rmtree(self.folder, ignore_errors=True)


HistoryMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_history_machine = HistoryMachine.TestCase
