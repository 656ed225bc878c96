"""Opening a draft: what the editor needs besides its screen, and what the
first frame shows before it has it.

The first frame is the draft as the file holds it. Everything else the
editor needs (the session: document engine, tree-sitter, git and the
history; the model's backend and its name) is opened here, in a thread,
after that frame is on the screen (``InfitoolEditApp`` takes the result).
This module imports nothing heavy itself: every import of the session or
the agent is inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infitool_edit.session.editing import EditingSession

BackendFactory = Callable[[], Any]
FIRST_FRAME_BYTES = 4_000_000  # a longer file shows its start until the session has read it all


@dataclass(frozen=True)
class Backend:
    """The model's side: how to build it (None: no model), its name, and
    whether its large deletions wait for the writer."""

    factory: BackendFactory | None
    name: str | None
    ask_before_deleting: bool


@dataclass(frozen=True)
class Opened:
    session: EditingSession
    backend: Backend


def choose_backend(
    *,
    script: Path | None = None,
    rate: float | None = None,
    model: Path | str | None = None,
    backend_factory: BackendFactory | None = None,
    backend_name: str | None = None,
    attention_window: int | None = None,
    quantize: str | None = None,
    ask_before_deleting: bool | None = None,
) -> Backend:
    """The model is the built-in SSM (``model``: a checkpoint folder or a
    cached hub id; none: the default model), or ``script``, a command file
    the scripted backend replays (``rate`` commands per second), or any
    backend ``backend_factory`` builds. Nothing here imports torch: the
    model loads in the app's worker when it first gets the pen.
    ``ask_before_deleting``: pause and ask before a model's command deletes
    more than a fifth of the draft's words; None: yes for a model (the
    built-in one or a checkpoint), no for a script (the writer wrote its
    commands) or a given backend factory (tests choose)."""
    if quantize is not None:  # like a named model, checked in one line before the screen opens
        from infitool_edit.agent.backend import check_quantize

        check_quantize(quantize, script=script)
    if ask_before_deleting is None:
        ask_before_deleting = script is None and backend_factory is None
    if backend_factory is not None:
        return Backend(backend_factory, backend_name, ask_before_deleting)
    if script is not None:
        from infitool_edit.agent.scripted import ScriptedBackend

        scripted = ScriptedBackend(Path(script), rate=rate)  # a missing script fails here, in one line
        return Backend(lambda: scripted, backend_name or f"script {Path(script).name}", ask_before_deleting)
    from infitool_edit.agent.default_model import default_model_description
    from infitool_edit.agent.hub import resolve_model

    # A hub id missing from the cache fails here, in one line.
    # (make_backend resolves it again, cheaply, and names the model by its hub id.)
    name = resolve_model(model)[1] if model is not None else default_model_description()

    def built_in_model():
        from infitool_edit.agent.headless import make_backend

        return make_backend(model=model, attention_window=attention_window, quantize=quantize)

    label = name if quantize is None else f"{name} ({quantize})"
    return Backend(built_in_model, backend_name or f"ssm {label}", ask_before_deleting)


def open_session(draft_path: Path, writer: str) -> EditingSession:
    from infitool_edit.session.editing import EditingSession

    return EditingSession.open(Path(draft_path), author=writer)


def first_text(draft_path: Path) -> str:
    """The draft as the first frame shows it (its start, newlines as the
    session will read them; '' where there is no file yet). Raises DraftError
    (one line) for a draft the session would refuse, a FIFO, a device,
    binary or not UTF-8, too large, so the editor never paints one."""
    from infitool_edit.session.draftfile import DraftFile

    text = DraftFile(Path(draft_path)).peek(FIRST_FRAME_BYTES)
    return text.replace("\r\n", "\n").replace("\r", "\n")
