"""Load and save the architectures whose HF tensors live under `model.` (RWKV-7, Granite-4.0-H).

checkpoint.py reads the Mamba family (`backbone.`); `load_checkpoint` hands a folder whose
`model_type` is in `ARCHITECTURES` to `load_folder` here. Our modules carry the HF names
(minus `model.`), with the `Linear` / `Embedding` matrices transposed as in checkpoint.py;
each architecture may rename a few tensors (`hf_renames`) and must say how to read its config.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .checkpoint import CheckpointError, check_stored_tensors, load_tensors, quantized_head, read_into
from .mamba import Embedding, Linear

_PREFIX = "model."


def architecture_classes(model_type: str) -> tuple:
    """model_type → (config class, model class), imported on first use (no import cycle)."""
    if model_type == "rwkv7":
        from .rwkv7 import RWKV7Config, RWKV7LM

        return RWKV7Config, RWKV7LM
    from .granite import GraniteHybridConfig, GraniteHybridLM

    return GraniteHybridConfig, GraniteHybridLM


ARCHITECTURES = ("rwkv7", "granitemoehybrid")


def folder_model_type(folder: Path) -> str | None:
    """The folder's `model_type` when it is one of ours here, else None (checkpoint.py reads the rest)."""
    try:
        values = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    kind = values.get("model_type") if isinstance(values, dict) else None
    return kind if kind in ARCHITECTURES else None


def _hf_names(model: torch.nn.Module) -> dict[str, str]:
    """Our parameter name → the checkpoint's."""
    renames = getattr(model, "hf_renames", {})
    names = {}
    for name, _ in model.state_dict(keep_vars=True).items():
        hf = renames.get(name, name)
        names[name] = hf if hf.startswith("lm_head.") else _PREFIX + hf
    return names


def _transposed(model: torch.nn.Module) -> set[str]:
    return {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, (Linear, Embedding))}


def hf_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under the checkpoint's names and layouts (a tied head left out)."""
    names, transposed = _hf_names(model), _transposed(model)
    tensors = {names[name]: (t.t() if name in transposed else t).detach() for name, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    return tensors


def load_folder(folder: Path, *, dtype: torch.dtype = torch.float32, device: str | None = None,
                quantize: str | None = None, **options) -> torch.nn.Module:
    """An RWKV-7 or Granite model with the folder's config and weights, in eval mode. `options` go to
    the model's constructor (Granite: `attention_window`); `quantize` as `load_checkpoint`'s."""
    path = folder / "config.json"
    values = json.loads(path.read_text(encoding="utf-8"))
    config_class, model_class = architecture_classes(values["model_type"])
    try:
        config = config_class.from_hf_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {error}") from None
    stored = load_tensors(folder)
    if hasattr(model_class, "migrate_tensors"):  # older layouts of the same weights
        stored = model_class.migrate_tensors(stored)
    with torch.device("meta"):
        model = model_class(config, **options)
    expected = hf_tensors(model)
    if config.tie_word_embeddings:
        head, embedding = stored.pop("lm_head.weight", None), stored.get(expected_embedding_name(model))
        if head is not None and embedding is not None and not torch.equal(head, embedding):
            raise CheckpointError(f"{folder}: tie_word_embeddings is true but lm_head.weight differs from the embedding")
    check_stored_tensors(folder, stored, expected)
    ours = {hf: name for name, hf in _hf_names(model).items()}
    weights = {ours[hf]: tensor for hf, tensor in stored.items()}
    del stored
    read_into(model, weights, _transposed(model), dtype=dtype, device=device, quantize=quantize)
    model.after_loading()
    return quantized_head(model, quantize).eval()


def expected_embedding_name(model: torch.nn.Module) -> str:
    return _hf_names(model)[model.embedding_parameter]


def save_folder(model: torch.nn.Module, folder: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` in the layout the architecture's own code reads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.cpu().contiguous() for name, t in hf_tensors(model).items()}
    config = model.config.to_hf_dict() | {"dtype": str(model.embeddings.weight.dtype).removeprefix("torch.")}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
