"""The one renderer of training streams: a script played by the real editor.

A training stream must be byte for byte what the model reads at run time, so
it is never assembled here: the real ``EditingSession`` and ``Runner`` play
the script through ``ScriptedBackend`` in a scratch folder, and the stream
the runner stored is read back. Whatever the runtime's stream looks like
(observations, versions, bounds), the training data follows.

Speed: a session is a draft file plus a git history. Making the history with
``git init`` and the files on a disk costs most of a render, so the scratch
folders live in memory (``/dev/shm`` where there is one) and each history
starts as a copy of one empty repository made once per ``Renderer``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infitool_edit.agent.runner import Runner
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.session.editing import EditingSession

MODEL_LINE = "> "
ERROR_PREFIX = "@error "


class RenderError(ValueError):
    """A script that could not be rendered (one line)."""


@dataclass(frozen=True)
class Rendered:
    stream: str  # exactly what the model read and wrote
    text: str  # the draft after the session
    notes: str  # the notes after the session
    commands: int  # model lines in the stream
    errors: int  # of them, refused with @error

    @property
    def finished(self) -> bool:
        """The last model line was ``done`` and it was accepted."""
        lines = self.stream.rstrip("\n").split("\n")
        return len(lines) >= 2 and lines[-2].startswith("> done") and lines[-1] == "@done"


def _scratch_root() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shutil.disk_usage(shm).free > 256 << 20 else None


class Renderer:
    """Renders many scripts; use as a context manager (it owns a scratch folder)."""

    def __init__(self) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="infitool-render-", dir=_scratch_root()))
        self._template = self._root / "empty-history"
        result = subprocess.run(
            ["git", "init", "--quiet", "--bare", str(self._template)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RenderError(f"git init failed: {result.stderr.strip()}")
        shutil.rmtree(self._template / "hooks", ignore_errors=True)  # never run, only copied
        self._count = 0

    def render(self, draft: str, goal: str, script: Sequence[str], *, name: str = "draft.md") -> Rendered:
        """Play ``script`` (command lines) on ``draft`` towards ``goal``."""
        self._count += 1
        folder = self._root / f"s{self._count}"
        folder.mkdir()
        try:
            # The history of draft NAME lives in .NAME.infitool beside it: a copy
            # of the empty repository is exactly what the first open would make.
            shutil.copytree(self._template, folder / f".{name}.infitool", symlinks=True)
            path = folder / name
            path.write_text(draft, encoding="utf-8")
            with EditingSession.open(path, author="writer") as session:
                Runner(session, ScriptedBackend(list(script)), goal, stream_dir=folder / "stream").run()
                text, notes = session.workspace.text, session.workspace.notes
            stream = (folder / "stream" / "stream.txt").read_text(encoding="utf-8")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return Rendered(stream, text, notes, *count_commands(stream))

    def close(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def count_commands(stream: str) -> tuple[int, int]:
    """(model lines, of them refused) in a stream."""
    lines = stream.split("\n")
    commands = errors = 0
    for i, line in enumerate(lines):
        if line.startswith(MODEL_LINE):
            commands += 1
            if i + 1 < len(lines) and lines[i + 1].startswith(ERROR_PREFIX):
                errors += 1
    return commands, errors


def render(draft: str, goal: str, script: Sequence[str], *, name: str = "draft.md") -> Rendered:
    """One stream (a fresh renderer: for many, keep a ``Renderer``)."""
    with Renderer() as renderer:
        return renderer.render(draft, goal, script, name=name)
