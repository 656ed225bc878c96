"""A large draft stored as a folder of chunk blobs, so that a version costs
what the edit changed, not what the draft holds.

A draft up to ``CHUNK_MAX`` characters is one blob under its own name, as
every version always was. A longer one is a tree ``<draft>.chunks`` of
blobs ``000000``, ``000001``, … whose contents, joined in name order, are
the draft; each chunk ends at a line end where the draft allows it.

The chunking is not canonical, on purpose: each record keeps the previous
record's chunks where the text still matches them and re-cuts only the run
of chunks the edit touched. Finding that run compares the new draft with
the previous chunks in place (``str.startswith`` at an offset: a ``memcmp``
per chunk, no copy, from each end, stopping at the first difference), so
neither the unchanged chunks nor the whole draft are encoded, hashed or
compressed again. The chunker holds the last draft itself (the caller's
string, which the editor holds anyway, so no memory of its own) and where
its chunks end; a chunk's text is sliced from it only to compare the one
chunk at each end of the edit. Two histories may cut
the same text differently; both read back the same text, and git shares
whatever blobs they have in common.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

# A chunk is cut near CHUNK_TARGET characters (at the next line end, within
# CHUNK_MAX); an edit leaves a chunk whole until it outgrows CHUNK_MAX.
# A chunk smaller than CHUNK_MIN left by an edit absorbs its right neighbour,
# so inserts at chunk edges cannot leave a trail of tiny chunks.
# 16K keeps a one-word version to one ~16 KB zlib call (level 1: about
# 0.1 ms) while a 1 MB draft's chunk folder stays about 64 entries.
CHUNK_TARGET = 16 * 1024
CHUNK_MAX = 32 * 1024
CHUNK_MIN = 2 * 1024
CHUNK_FOLDER_SUFFIX = ".chunks"


def chunk_name(position: int) -> str:
    # Fixed width, so git's name order is the draft's order (a million
    # chunks of 32 KB is 32 GB, far above any draft we open).
    return f"{position:06d}"


class Splice(NamedTuple):
    """How ``result`` was made from ``base`` by one edit: ``result`` is
    ``base[:begin]``, then new text up to ``new_stop``, then
    ``base[old_stop:]``. The editor's buffer knows this of every edit it
    makes; handed to ``store`` it spares comparing the unchanged chunks (a
    pass over the whole draft). Trusted only for the very string objects it
    names (``base is`` the last draft stored, ``result is`` the new one)."""

    base: str
    result: str
    begin: int
    old_stop: int
    new_stop: int


@dataclass
class _Chunked:
    text: str  # the draft last stored
    ends: list[int]  # where each of its chunks ends in it
    shas: list[str]  # each chunk's blob

    def chunk(self, index: int) -> str:
        return self.text[self.ends[index - 1] if index else 0 : self.ends[index]]


class DraftChunker:
    """Cuts drafts into chunk blobs, remembering the last draft it stored."""

    def __init__(self, write_blob: Callable[[bytes], str]):
        self._write_blob = write_blob
        self._last: _Chunked | None = None

    def forget(self) -> None:
        self._last = None

    def seed(self, texts: list[str], shas: list[str]) -> None:
        """Start from chunks already in git (the head version's), so the
        first record after opening writes only what it changed."""
        ends, end = [], 0
        for text in texts:
            end += len(text)
            ends.append(end)
        self._last = _Chunked("".join(texts), ends, list(shas))

    @property
    def seeded(self) -> bool:
        return self._last is not None

    def store(self, text: str, splice: Splice | None = None) -> list[str]:
        """The chunk blobs of ``text``, in order; only new chunks are written.
        ``splice``, when it says how ``text`` came from the last draft stored,
        replaces the comparison that finds the unchanged chunks."""
        last = self._last
        if last is None or not last.ends:
            ends = _cut(text, 0, len(text))
            shas = [self._write_blob(text[start:end].encode("utf-8")) for start, end in _spans(0, ends)]
            self._last = _Chunked(text, ends, shas)
            return shas
        new = text
        count = len(last.ends)
        old_length = last.ends[-1]
        # Chunks at the front that the new draft still starts with, compared
        # in place (the old draft against the new, one chunk's span at a
        # time, no copy): the first that differs is where the edit begins.
        front = 0
        start = 0
        known = (splice is not None and splice.base is last.text and splice.result is new
                 and splice.new_stop - splice.old_stop == len(new) - old_length)
        while front < count:
            end = last.ends[front]
            if known:
                if end > splice.begin:
                    break
            elif end > len(new) or not _same_span(last.text, new, start, end, start):
                break
            start = end
            front += 1
        if front == count and len(new) == old_length:
            self._last = _Chunked(new, last.ends, last.shas)
            return list(last.shas)
        # Chunks at the back that the new draft still ends with (not
        # overlapping the front ones, in the old draft or the new).
        shift = len(new) - old_length
        back = count
        while back > front:
            old_start = last.ends[back - 2] if back >= 2 else 0
            if old_start + shift < start:
                break
            if known:
                if old_start < splice.old_stop:
                    break
            elif not _same_span(last.text, new, old_start, last.ends[back - 1], old_start + shift):
                break
            back -= 1
        # The changed run: from the end of the front chunks to the start of
        # the back ones; too small, it takes in its right neighbour.
        middle_start = start
        middle_end = (last.ends[back - 1] if back >= 1 else 0) + shift
        middle_end = max(middle_end, middle_start)
        if middle_end - middle_start < CHUNK_MIN and back < count:
            back += 1
            middle_end = last.ends[back - 1] + shift
        middle = _cut(new, middle_start, middle_end)
        ends = last.ends[:front] + middle + [end + shift for end in last.ends[back:]]
        shas = (
            last.shas[:front]
            + [self._write_blob(new[s:e].encode("utf-8")) for s, e in _spans(middle_start, middle)]
            + last.shas[back:]
        )
        self._last = _Chunked(new, ends, shas)
        return shas


def _same_span(old: str, new: str, start: int, end: int, at: int) -> bool:
    """Whether ``old[start:end]`` (one chunk, at most CHUNK_MAX characters)
    appears in ``new`` at ``at``. ``startswith`` needs its prefix as a
    string of its own: that one chunk is the only copy."""
    if at + (end - start) > len(new):
        return False
    return new.startswith(old[start:end], at)


def _spans(start: int, ends: list[int]):
    for end in ends:
        yield start, end
        start = end


def _cut(text: str, start: int, end: int) -> list[int]:
    """Chunk ends for ``text[start:end]``: one chunk if it fits in
    CHUNK_MAX, else cuts after the first line end past each CHUNK_TARGET."""
    if end - start <= CHUNK_MAX:
        return [end] if end > start else []
    ends = []
    while end - start > CHUNK_MAX:
        cut = text.find("\n", start + CHUNK_TARGET, start + CHUNK_MAX)
        cut = start + CHUNK_MAX if cut < 0 else cut + 1
        ends.append(cut)
        start = cut
    if end > start:
        ends.append(end)
    return ends
