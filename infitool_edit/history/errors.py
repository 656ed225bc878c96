"""What can go wrong with a history, each as a one-line message."""

from __future__ import annotations

from infitool_edit.errors import InfitoolError


class HistoryError(InfitoolError):
    """The history cannot do what was asked; ``str()`` is one line."""


class UnknownVersion(HistoryError, LookupError):
    """A version number or checkpoint name that the history does not hold."""


class DraftLocked(HistoryError):
    """Another session (this process or another) already has the draft open."""


class CheckpointExists(HistoryError, ValueError):
    """Checkpoint names are unique: a name may name one version only."""
