"""Which documents are held out for evaluation.

One rule for every consumer (training prose, traces, synthetic tasks,
evaluation): a whole file is held out or not, decided by a hash of its source
and path, so no held-out file leaks into training through another route and
the split does not move when a corpus grows."""

from __future__ import annotations

import hashlib

HELD_OUT_PERCENT = 10


def held_out(source: str, path: str) -> bool:
    """True for about one file in ten, the same on every machine and run."""
    digest = hashlib.sha256(f"{source}/{path}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT
