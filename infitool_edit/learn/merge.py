"""Merge a fine-tuned checkpoint back toward the weights it started from: ``infitool-edit merge``.

Fine-tuning a small model on a narrow lesson (here: declining goals it cannot do) teaches the
lesson and wears away skills the lesson's data shows less often (here: which structure verb a
goal asks for). The straight line between the two sets of weights often keeps most of both:
``(1 - share) * base + share * tuned``, tensor by tensor (WiSE-FT, Wortsman et al. 2022; the
``linear`` method of mergekit). Both folders must hold the same architecture, started from the
same run, so the line between them stays in one basin; ``share`` is chosen by ``eval``.

The merged folder is an ordinary checkpoint (``config.json``, ``model.safetensors``), with the
tuned run's ``training.json`` and a ``merge`` record in it for the model card, and the run-time
settings (``generation_config.json``) of whichever folder has them, the tuned one first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from safetensors.torch import save_file

from infitool_edit.model import CheckpointError
from infitool_edit.model.checkpoint import load_tensors

# config.json keys that say how the weights were stored, not what they compute
STORAGE_KEYS = ("dtype", "torch_dtype", "transformers_version")


class MergeError(ValueError):
    """Two checkpoints that cannot be merged, or a share outside 0..1 (one line)."""


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise MergeError(f"{path}: cannot read ({error.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MergeError(f"{path}: not JSON ({error})") from None


def _config(folder: Path) -> dict:
    return {key: value for key, value in _json(folder / "config.json").items() if key not in STORAGE_KEYS}


def _record(folder: Path) -> dict:
    path = folder / "training.json"
    return _json(path) if path.is_file() else {}


def _write(path: Path, write) -> None:
    """Write one file whole or not at all (the out folder may be one of the inputs)."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def merge(base: Path, tuned: Path, share: float, out: Path) -> dict:
    """Write ``(1 - share) * base + share * tuned`` into ``out``; return its merge record."""
    base, tuned, out = Path(base).expanduser(), Path(tuned).expanduser(), Path(out).expanduser()
    if not 0 <= share <= 1:
        raise MergeError(f"--share {share}: give the tuned weights' share, from 0 to 1")
    base_config, tuned_config = _config(base), _config(tuned)
    differing = sorted(key for key in set(base_config) | set(tuned_config) if base_config.get(key) != tuned_config.get(key))
    if differing:
        key = differing[0]
        raise MergeError(f"{base} and {tuned} are different models ({key}: {base_config.get(key)!r} against "
                         f"{tuned_config.get(key)!r})")
    try:
        base_tensors, tuned_tensors = load_tensors(base), load_tensors(tuned)
    except CheckpointError as error:
        raise MergeError(str(error)) from None
    if set(base_tensors) != set(tuned_tensors):
        name = sorted(set(base_tensors) ^ set(tuned_tensors))[0]
        raise MergeError(f"{base} and {tuned} hold different tensors ({name} is in one only)")
    merged = {}
    for name, weight in base_tensors.items():
        other = tuned_tensors[name]
        if other.shape != weight.shape or not weight.is_floating_point():
            raise MergeError(f"{name}: {tuple(weight.shape)} {weight.dtype} against {tuple(other.shape)} {other.dtype}")
        # in fp32 whatever the storage, then back: a bf16 pair would round twice otherwise
        merged[name] = ((1 - share) * weight.float() + share * other.float()).to(weight.dtype).contiguous()
    base_record, record = _record(base), _record(tuned)
    merge_record = {"base": str(base), "tuned": str(tuned), "share": share,
                    "base_steps": base_record.get("steps"), "tuned_steps": record.get("steps")}
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "model.safetensors", lambda path: save_file(merged, str(path), metadata={"format": "pt"}))
    config_text = (tuned / "config.json").read_text(encoding="utf-8")
    _write(out / "config.json", lambda path: path.write_text(config_text, encoding="utf-8"))
    settings = next((f / "generation_config.json" for f in (tuned, base) if (f / "generation_config.json").is_file()), None)
    if settings is not None and settings.resolve() != (out / "generation_config.json").resolve():
        _write(out / "generation_config.json", lambda path: shutil.copyfile(settings, path))
    record = record | {"merge": merge_record}
    _write(out / "training.json", lambda path: path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8"))
    return merge_record
