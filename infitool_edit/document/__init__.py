"""The document engine: the draft as lines, its markdown structure, two
cursors, and commands applied to them (see ``workspace.py``)."""

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

__all__ = [
    "ApplyError",
    "HeadingInfo",
    "MAX_FOUND",
    "MAX_LINE_CHARS",
    "MAX_OBSERVATION_CHARS",
    "MAX_READ_LINES",
    "Outcome",
    "TextEdit",
    "Workspace",
]
