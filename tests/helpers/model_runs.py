"""A model run on a small draft through the real session and runner, with the byte mask's
command lines kept short (48 bytes) so a random model's run stays quick."""

from __future__ import annotations

from pathlib import Path

from infitool_edit.agent.runner import Runner
from infitool_edit.agent.ssm import SSMBackend
from infitool_edit.session.editing import EditingSession


def short_line_backend(model) -> SSMBackend:
    return SSMBackend(model, max_command_bytes=48)


def write_draft(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "draft.md"
    path.write_text(text)
    return path


def run_model(draft: Path, model, goal: str | None, **kwargs) -> list:
    """The events of one run of ``model`` on ``draft`` (Runner's keyword arguments pass on)."""
    events: list = []
    with EditingSession.open(draft, author="writer") as session:
        Runner(session, short_line_backend(model), goal, emit=events.append, **kwargs).run()
    return events
