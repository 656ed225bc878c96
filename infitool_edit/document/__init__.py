"""The document engine: the draft as lines, its markdown structure, two
cursors, and commands applied to them (see ``workspace.py``).

The names below load on first use (PEP 562): the editor's first screen
imports ``document.edits`` and ``document.positions`` (plain Python), and
must not pay for the structure's tree-sitter and numpy before it paints.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infitool_edit.document.edits import TextEdit
    from infitool_edit.document.observation import (
        MAX_FOUND,
        MAX_LINE_CHARS,
        MAX_OBSERVATION_CHARS,
        MAX_READ_LINES,
        Outcome,
    )
    from infitool_edit.document.structure import HeadingInfo
    from infitool_edit.document.workspace import ApplyError, Workspace

_HOMES = {
    "ApplyError": "workspace",
    "HeadingInfo": "structure",
    "MAX_FOUND": "observation",
    "MAX_LINE_CHARS": "observation",
    "MAX_OBSERVATION_CHARS": "observation",
    "MAX_READ_LINES": "observation",
    "Outcome": "observation",
    "TextEdit": "edits",
    "Workspace": "workspace",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
