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


class HistoryDamaged(HistoryError):
    """A file of the history (a ref, an object, the index) does not hold
    what it should; the message names it and the way to recover."""


def repair_hint(draft) -> str:
    return f"run `infitool-edit repair {draft}` to rebuild the history from the commits git still holds"
