"""Looking inside the packs a history publishes (see infitool_edit/history/journal.py):
where an object's entry lies, and turning packs back into loose objects so a test can
damage one object alone."""

from __future__ import annotations

import subprocess
from pathlib import Path


def pack_entry_data(git_dir: Path, sha: str) -> bytes:
    """The zlib stream of ``sha``'s entry in the pack that holds it (after
    git's type-and-size header), read from the pack file itself."""
    for index in sorted((git_dir / "objects" / "pack").glob("*.idx")):
        with index.open("rb") as handle:
            listing = subprocess.run(["git", "show-index"], stdin=handle, capture_output=True,
                                     text=True, check=True).stdout
        for line in listing.splitlines():
            offset, name = line.split()[:2]
            if name == sha:
                data = index.with_suffix(".pack").read_bytes()
                position = int(offset)
                while data[position] & 0x80:
                    position += 1
                return data[position + 1:]
    raise LookupError(f"{sha} is in no pack of {git_dir}")


def unpack_to_loose(git_dir: Path) -> None:
    """Every pack's objects as loose objects, the packs removed (what a
    history written one loose object per file looked like)."""
    for pack in sorted((git_dir / "objects" / "pack").glob("*.pack")):
        moved = git_dir / pack.name
        pack.rename(moved)
        pack.with_suffix(".idx").unlink()
        with moved.open("rb") as handle:
            subprocess.run(["git", "--git-dir", str(git_dir), "unpack-objects", "-q"], stdin=handle,
                           check=True)
        moved.unlink()
