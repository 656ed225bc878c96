"""Sizes a config.json claims, checked against the tensors on disk before
anything is built.

A hostile or damaged ``config.json`` (``num_hidden_layers`` 10^8,
``hidden_size`` 10^9) would otherwise make ``load_checkpoint`` build a
model of that size (hanging, or allocating gigabytes) before it ever looks
at the weights. This reads only what is cheap and bounded: the safetensors
headers (names and shapes, no data), else the weight files' sizes.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

_MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit
_LAYER = re.compile(r"^backbone\.layers\.([0-9]+)\.")
_EMBEDDING = "backbone.embeddings.weight"


def check_config_against_weights(folder: Path, config) -> None:
    """Raise CheckpointError when the config's sizes cannot be those of the
    weights in ``folder``; call before building anything from the config."""
    from .checkpoint import CheckpointError  # here: checkpoint imports this module

    shapes = _safetensors_shapes(folder, CheckpointError)
    if shapes is not None:
        layers = {int(m.group(1)) for name in shapes if (m := _LAYER.match(name))}
        stored_layers = max(layers) + 1 if layers else 0
        if stored_layers != config.num_hidden_layers:
            wrong = "missing" if stored_layers < config.num_hidden_layers else "unexpected"
            first = min(stored_layers, config.num_hidden_layers)
            # The same words as checkpoint.config_mismatch: the weights decide, the key is named.
            raise CheckpointError(
                f"{folder}: config.json gives num_hidden_layers {config.num_hidden_layers}, but the weights "
                f"say {stored_layers} ({wrong} tensors backbone.layers.{first}.*)"
            )
        embedding = shapes.get(_EMBEDDING)
        if embedding is not None and tuple(embedding) != (config.vocab_size, config.hidden_size):
            raise CheckpointError(
                f"{folder}: config.json says vocab_size {config.vocab_size} and hidden_size {config.hidden_size}, "
                f"the embedding is {tuple(embedding)}"
            )
        return
    # Pickled weights have no header to read cheaply: the model's smallest
    # part (embedding and one vector per layer, 2 bytes an element at least)
    # must fit in the files.
    stored = sum(path.stat().st_size for path in folder.glob("pytorch_model*.bin"))
    if stored == 0:
        return  # no weights: load_tensors says so
    least = 2 * (config.vocab_size * config.hidden_size + config.num_hidden_layers * config.hidden_size)
    # Only what no file could back: a malformed small file is load_tensors' to name.
    if least > 16 * max(stored, 1 << 20):
        raise CheckpointError(
            f"{folder}: config.json's sizes need at least {least} bytes of weights, the folder has {stored}"
        )


def _safetensors_shapes(folder: Path, error) -> dict[str, list[int]] | None:
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            files = [folder / name for name in sorted(set(weight_map.values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # load_tensors names this problem
    else:
        return None
    shapes: dict[str, list[int]] = {}
    for path in files:
        if not path.is_file():
            return None  # load_tensors names the missing shard
        try:
            with open(path, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if length > _MAX_HEADER_BYTES:
                    raise error(f"{path}: a safetensors header of {length} bytes is not one")
                header = json.loads(handle.read(length))
        except (OSError, struct.error, ValueError):
            raise error(f"{path}: unreadable safetensors file (its header)") from None
        if not isinstance(header, dict):
            raise error(f"{path}: unreadable safetensors file (its header)")
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict) and isinstance(entry.get("shape"), list):
                shapes[name] = entry["shape"]
    return shapes
