"""Load and save models in the HuggingFace folder format.

A folder holds `config.json` and the weights in one of:
  model.safetensors
  model.safetensors.index.json  + the shards it names
  pytorch_model.bin             (read with `torch.load(weights_only=True)`: never arbitrary pickles)
  pytorch_model.bin.index.json  + the shards it names

Tensor names are HuggingFace's (`backbone.layers.0.mixer.in_proj.weight`, ...),
so `state-spaces/mamba-130m-hf`, `tiiuae/falcon-mamba-7b` or a Mamba-2 folder
(`model_type` `mamba2`) load as downloaded,
and a folder we save loads in `transformers`. Anything wrong with a folder is
a `CheckpointError` whose message is one line naming the problem.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import Mamba2Config, MambaConfig
from .mamba import Embedding, Linear, MambaLM
from .mamba2 import Mamba2LM

_PREFIX = "backbone."  # HF keeps everything but the LM head under `backbone`
_MODEL_TYPES = ("mamba", "falcon_mamba", "mamba2")


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; `str()` is one line."""


def _hf_name(name: str) -> str:
    return name if name.startswith("lm_head.") else _PREFIX + name


def _transposed_names(model: MambaLM) -> set[str]:
    """Our names of the matrices we store (in, out) and HF stores (out, in)."""
    return {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, (Linear, Embedding))}


def hf_state_dict(model: MambaLM) -> dict[str, torch.Tensor]:
    """The model's tensors under HuggingFace's names and layouts (a tied head is left out)."""
    transposed = _transposed_names(model)
    tensors = {
        _hf_name(name): (tensor.t() if name in transposed else tensor).detach()
        for name, tensor in model.state_dict().items()
    }
    if model.config.tie_word_embeddings:
        del tensors["lm_head.weight"]
    return tensors


def model_for(config: MambaConfig | Mamba2Config) -> MambaLM:
    """A fresh model of the config's kind: Mamba (and FalconMamba) or Mamba-2."""
    return Mamba2LM(config) if isinstance(config, Mamba2Config) else MambaLM(config)


def load_config(folder: str | Path) -> MambaConfig | Mamba2Config:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    model_type = values.get("model_type")
    if model_type not in _MODEL_TYPES:
        raise CheckpointError(f"{path}: model_type {model_type!r} is not one of {', '.join(_MODEL_TYPES)}")
    missing = [key for key in ("hidden_size", "num_hidden_layers", "vocab_size") if key not in values]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)}")
    try:
        return (Mamba2Config if model_type == "mamba2" else MambaConfig).from_hf_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {error}") from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as file:
            return {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from None


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: refused or unreadable ({reason})") from None
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise CheckpointError(f"{path}: not a dictionary of tensors")
    return tensors


def _read_sharded(index_path: Path, read_shard) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{index_path}: not a shard index (no weight_map)") from None
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        shard_path = index_path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{index_path}: shard {shard} is missing")
        tensors.update(read_shard(shard_path))
    return tensors


def load_tensors(folder: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor stored in the folder, by name."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return _read_safetensors(folder / "model.safetensors")
    if (folder / "model.safetensors.index.json").is_file():
        return _read_sharded(folder / "model.safetensors.index.json", _read_safetensors)
    if (folder / "pytorch_model.bin").is_file():
        return _read_bin(folder / "pytorch_model.bin")
    if (folder / "pytorch_model.bin.index.json").is_file():
        return _read_sharded(folder / "pytorch_model.bin.index.json", _read_bin)
    raise CheckpointError(f"{folder}: no weights (model.safetensors, its index, or pytorch_model.bin)")


def _one_line_list(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def load_checkpoint(
    folder: str | Path, *, dtype: torch.dtype = torch.float32, device: str | None = None, **options
) -> MambaLM:
    """A `MambaLM` (a `Mamba2LM` for Mamba-2; an `RWKV7LM` or `GraniteHybridLM` from hf_folder.py) with the
    folder's config and weights, in eval mode. `options` reach the latter two (`attention_window`)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder")
    from .hf_folder import folder_model_type, load_folder  # RWKV-7 and Granite-4.0-H live there

    if folder_model_type(folder) is not None:
        return load_folder(folder, dtype=dtype, device=device, **options)
    config = load_config(folder)
    stored = load_tensors(folder)
    with torch.device("meta"):
        model = model_for(config)
    expected = hf_state_dict(model)
    if config.tie_word_embeddings:
        # Tied: the head is the embedding. Some writers store it again; it must then be the same matrix.
        head = stored.pop("lm_head.weight", None)
        embedding = stored.get(_PREFIX + "embeddings.weight")
        if head is not None and embedding is not None and not torch.equal(head, embedding):
            raise CheckpointError(f"{folder}: tie_word_embeddings is true but lm_head.weight differs from the embedding")
    missing = sorted(set(expected) - set(stored))
    if missing:
        raise CheckpointError(f"{folder}: missing tensor{'s' if len(missing) > 1 else ''} {_one_line_list(missing)}")
    unexpected = sorted(set(stored) - set(expected))
    if unexpected:
        plural = "s" if len(unexpected) > 1 else ""
        raise CheckpointError(f"{folder}: unexpected tensor{plural} {_one_line_list(unexpected)}")
    for name, tensor in expected.items():
        if stored[name].shape != tensor.shape:
            raise CheckpointError(
                f"{folder}: tensor {name} has shape {tuple(stored[name].shape)}, the config implies {tuple(tensor.shape)}"
            )
        if not stored[name].is_floating_point():
            raise CheckpointError(f"{folder}: tensor {name} has dtype {stored[name].dtype}, expected floating point")
    model.to_empty(device=device or "cpu")
    transposed = _transposed_names(model)
    weights = {name.removeprefix(_PREFIX): tensor.to(dtype) for name, tensor in stored.items()}
    weights = {name: tensor.t() if name in transposed else tensor for name, tensor in weights.items()}
    model.load_state_dict(weights, strict=False)  # strict=False only because a tied head is absent
    model.to(dtype)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.embeddings.weight
    return model.eval()


def save_checkpoint(model: MambaLM, folder: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` into folder (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.cpu().contiguous() for name, tensor in hf_state_dict(model).items()}
    config = model.config.to_hf_dict() | {"dtype": str(model.embeddings.weight.dtype).removeprefix("torch.")}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
