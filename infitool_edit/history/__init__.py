"""Every version of a draft as a git commit: record, list, read, rewind, fork.

See ``docs/history.md`` for where the history lives and how it stays whole.
"""

from .errors import CheckpointExists, DraftLocked, HistoryError, UnknownVersion
from .chunks import Splice
from .store import History, Snapshot, VersionInfo

__all__ = [
    "CheckpointExists",
    "DraftLocked",
    "History",
    "HistoryError",
    "Snapshot",
    "Splice",
    "UnknownVersion",
    "VersionInfo",
]
