"""Reading a training data folder, and which bytes of a stream the model learns.

A data folder (written by ``infitool-edit prepare``, or by :mod:`infitool_edit.learn.prose`
for plain prose) holds:

- ``prose.jsonl``: ``{"text", "source", "path", "licence"}`` per line; phase 1 learns every byte.
- ``streams.jsonl``: ``{"stream", "task", "source", "path"}`` per line, each the exact text the
  runtime shows the model; phase 2 learns only the model's own command bytes (``command_mask``).
- ``manifest.json``: sources, licences and counts, carried into the model card.
- ``heldout/prose.jsonl``, ``heldout/streams.jsonl`` (optional): the same from held-out files,
  for the evaluation during training; without them the held-out prose comes from the corpus.

Texts are packed end to end into one byte array per kind; a training window is a slice of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from infitool_edit.agent.backend import MODEL_PREFIX

_PREFIX = MODEL_PREFIX.encode("utf-8")
DOCUMENT_SEPARATOR = b"\n\n"


class DataError(ValueError):
    """A data folder that cannot be trained on (one line)."""


def command_mask(stream: bytes) -> np.ndarray:
    """True for each byte of the stream the model itself samples at run time.

    The runtime starts every model line with ``MODEL_PREFIX`` ("> ") and steps those two bytes
    into the model as fixed input (``SSMBackend.command``); the model then samples the command
    and its newline under the grammar mask. So the learnt bytes are, on each line that begins
    with the prefix, everything after it through the ``\\n`` (or the stream's end, for a line cut
    short). Runtime lines start with ``@``, and the draft's lines inside an observation with
    their number, so no observation line begins with the prefix."""
    data = np.frombuffer(stream, dtype=np.uint8)
    mask = np.zeros(len(data), dtype=bool)
    start = 0
    size = len(stream)
    while start < size:
        end = stream.find(b"\n", start)
        end = size if end < 0 else end + 1
        if stream.startswith(_PREFIX, start):
            mask[start + len(_PREFIX) : end] = True
        start = end
    return mask


def read_jsonl(path: Path, field: str) -> list[dict]:
    """Every object of a JSON-lines file that has a string ``field``."""
    rows = []
    try:
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:{number}: not JSON ({error.msg})") from None
                if not isinstance(row, dict) or not isinstance(row.get(field), str):
                    raise DataError(f"{path}:{number}: no string field {field!r}")
                rows.append(row)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror})") from None
    return rows


@dataclass
class Packed:
    """Texts end to end: ``tokens`` (uint8), ``mask`` (bool, None = every byte is learnt) and the
    offset where each text starts."""

    tokens: np.ndarray
    mask: np.ndarray | None
    starts: np.ndarray
    commands: np.ndarray | None = None  # where each learnt run (a command) begins, for a mask

    def __post_init__(self) -> None:
        if self.mask is not None and self.commands is None:
            edges = np.flatnonzero(np.diff(self.mask.astype(np.int8), prepend=0) == 1)
            self.commands = edges.astype(np.int64)

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property  # read by every training step's sample_windows
    def decisions(self) -> np.ndarray:
        """Where each text's first learnt run begins: a stream's first command, the decision of
        what to do with its goal (texts without one are left out)."""
        if self.commands is None or not len(self.commands):
            return np.zeros(0, dtype=np.int64)
        firsts = np.searchsorted(self.commands, self.starts)
        ends = np.append(self.starts[1:], len(self.tokens))
        inside = firsts < len(self.commands)
        inside[inside] = self.commands[firsts[inside]] < ends[inside]
        return self.commands[firsts[inside]]

    @property
    def learnt_bytes(self) -> int:
        return len(self.tokens) if self.mask is None else int(self.mask.sum())


def pack_prose(texts: list[str]) -> Packed:
    pieces, starts, offset = [], [], 0
    for text in texts:
        data = text.encode("utf-8") + DOCUMENT_SEPARATOR
        pieces.append(data)
        starts.append(offset)
        offset += len(data)
    tokens = np.frombuffer(b"".join(pieces), dtype=np.uint8).copy()
    return Packed(tokens, None, np.asarray(starts, dtype=np.int64))


def pack_streams(streams: list[str]) -> Packed:
    pieces, masks, starts, offset = [], [], [], 0
    for stream in streams:
        data = stream.encode("utf-8")
        if not data.endswith(b"\n"):
            data += b"\n"
        pieces.append(data)
        masks.append(command_mask(data))
        starts.append(offset)
        offset += len(data)
    tokens = np.frombuffer(b"".join(pieces), dtype=np.uint8).copy()
    mask = np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
    return Packed(tokens, mask, np.asarray(starts, dtype=np.int64))


def pack_drills(texts: list[str]) -> Packed:
    """Copy drills (learn/drill.py) end to end, learnt only on the names their commands copy."""
    from infitool_edit.learn.drill import copy_mask

    packed = pack_prose(texts)
    return Packed(packed.tokens, copy_mask(packed.tokens.tobytes()), packed.starts)


def sample_windows(packed: Packed, batch: int, length: int, rng: np.random.Generator, *, at_starts: float = 0.0,
                   at_decisions: float = 0.0):
    """(ids (batch, length+1) int64, mask (batch, length+1) bool or None): random windows.

    ``at_starts``: the share of windows that begin where a text begins (a stream read from its
    first byte, as the runtime reads it). ``at_decisions``: the share whose command is a
    stream's first (``Packed.decisions``). A stream's first command is its one decision about
    the goal -- take it on, or decline it -- and it can stand past the end of a window read from
    the stream's start (after a long draft), while anchors drawn over all commands meet it once
    in a stream's many. The rest begin anywhere in prose; in streams, so that a command falls in
    the second half of the window (every window teaches something, after some context). A
    window runs on into the next text, and wraps from the end of the array."""
    size = len(packed.tokens)
    if size < 2:
        raise DataError("no text to train on")
    if at_starts + at_decisions > 1:
        raise DataError(f"windows at starts ({at_starts}) and at decisions ({at_decisions}) add up past 1")
    def before(anchors: np.ndarray) -> np.ndarray:  # so the anchor falls in the window's second half
        return (anchors - rng.integers(length // 2, length, len(anchors))) % size

    if packed.commands is not None and len(packed.commands):
        offsets = before(packed.commands[rng.integers(0, len(packed.commands), batch)])
    else:
        offsets = rng.integers(0, size, batch)
    kind = rng.random(batch)  # below at_starts: from a start; then at_decisions: at a decision
    from_start = kind < at_starts
    if from_start.any() and len(packed.starts):
        offsets[from_start] = packed.starts[rng.integers(0, len(packed.starts), int(from_start.sum()))]
    decide = (kind >= at_starts) & (kind < at_starts + at_decisions)
    decisions = packed.decisions
    if decide.any() and len(decisions):
        offsets[decide] = before(decisions[rng.integers(0, len(decisions), int(decide.sum()))])
    index = (offsets[:, None] + np.arange(length + 1)[None, :]) % size
    ids = packed.tokens[index].astype(np.int64)
    mask = None if packed.mask is None else packed.mask[index]
    return ids, mask


@dataclass
class DataFolder:
    path: Path
    prose: Packed | None
    streams: Packed | None
    heldout_prose: Packed | None
    heldout_streams: Packed | None
    manifest: dict
    heldout_copy: Packed | None = None  # heldout/copy_drill.jsonl: copy drills, learnt on the copied names

    @classmethod
    def load(cls, path: str | Path) -> DataFolder:
        path = Path(path).expanduser()
        if not path.is_dir():
            raise DataError(f"{path}: not a folder")

        def read(name: str, field: str) -> list[str] | None:
            file = path / name
            return [row[field] for row in read_jsonl(file, field)] if file.is_file() else None

        prose, streams = read("prose.jsonl", "text"), read("streams.jsonl", "stream")
        if not prose and not streams:
            raise DataError(f"{path}: neither prose.jsonl nor streams.jsonl holds anything to train on")
        heldout_prose = read("heldout/prose.jsonl", "text")
        heldout_streams = read("heldout/streams.jsonl", "stream")
        heldout_copy = read("heldout/copy_drill.jsonl", "text")
        manifest: dict = {}
        if (path / "manifest.json").is_file():
            try:
                manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise DataError(f"{path / 'manifest.json'}: not JSON ({error})") from None
        return cls(
            path,
            pack_prose(prose) if prose else None,
            pack_streams(streams) if streams else None,
            pack_prose(heldout_prose) if heldout_prose else None,
            pack_streams(heldout_streams) if heldout_streams else None,
            manifest,
            pack_drills(heldout_copy) if heldout_copy else None,
        )
