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

import dataclasses
import json
import pickle
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from infitool_edit.errors import InfitoolError

from .bounds import check_config_against_weights
from .config import Mamba2Config, MambaConfig
from .mamba import Embedding, Linear, MambaLM
from .mamba2 import Mamba2LM

_PREFIX = "backbone."  # HF keeps everything but the LM head under `backbone`
# model_type → the config class that reads it (and, through `model_for`, the model it builds).
CONFIG_CLASSES: dict[str, type] = {"mamba": MambaConfig, "falcon_mamba": MambaConfig, "mamba2": Mamba2Config}
# model_types whose models live under `model.` (RWKV-7, Granite-4.0-H): hf_folder.py reads and builds them.
HF_FOLDER_MODEL_TYPES = ("rwkv7", "granitemoehybrid")
SUPPORTED_MODEL_TYPES = (*CONFIG_CLASSES, *HF_FOLDER_MODEL_TYPES)


class CheckpointError(InfitoolError, ValueError):
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


def expected_tensor_shapes(config: MambaConfig | Mamba2Config) -> dict[str, tuple[int, ...]]:
    """The tensors (HF names and layouts, a tied head left out) a folder for this config holds,
    without building all its layers: one layer is built on the meta device and its names are
    repeated, as every layer is alike (building 64 layers' init ops costs seconds even on meta)."""
    with torch.device("meta"):
        one_layer = hf_state_dict(model_for(dataclasses.replace(config, num_hidden_layers=1)))
    first = _PREFIX + "layers.0."
    shapes = {}
    for name, tensor in one_layer.items():
        if name.startswith(first):
            for index in range(config.num_hidden_layers):
                shapes[f"{_PREFIX}layers.{index}.{name.removeprefix(first)}"] = tuple(tensor.shape)
        else:
            shapes[name] = tuple(tensor.shape)
    return shapes


def read_config_json(folder: str | Path) -> dict:
    """The folder's config.json as a dict, or a `CheckpointError` saying why not."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return values


def config_from_values(values: dict, path: str | Path):
    """The config a config.json dict describes, read as transformers reads it (model/config.py):
    a `MambaConfig` / `Mamba2Config`, or for RWKV-7 and Granite-4.0-H their own config classes
    (model/rwkv7.py, model/granite.py, read as fla / transformers read them)."""
    model_type = values.get("model_type")
    if model_type in HF_FOLDER_MODEL_TYPES:
        from .hf_folder import architecture_classes  # here: hf_folder imports this module

        try:
            return architecture_classes(model_type)[0].from_hf_dict(values)
        except (TypeError, ValueError, KeyError) as error:
            raise CheckpointError(f"{path}: {error}") from None
    if model_type not in CONFIG_CLASSES:
        raise CheckpointError(f"{path}: model_type {model_type!r} is not one of {', '.join(SUPPORTED_MODEL_TYPES)}")
    missing = [key for key in ("hidden_size", "num_hidden_layers", "vocab_size") if key not in values]
    if missing:
        raise CheckpointError(f"{path}: missing {', '.join(missing)}")
    try:
        return CONFIG_CLASSES[model_type].from_hf_dict(values)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: {error}") from None


def load_config(folder: str | Path) -> MambaConfig | Mamba2Config:
    return config_from_values(read_config_json(folder), Path(folder) / "config.json")


# ---- tensor headers: names, shapes and dtypes without reading the weights -----------------

SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                           "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit


def _safetensors_json(path: Path) -> tuple[int, dict]:
    """(where the data begins, the JSON header) of a .safetensors file: 8 bytes of length, then JSON."""
    try:
        with path.open("rb") as file:
            size = int.from_bytes(file.read(8), "little")
            if not 2 <= size <= _MAX_HEADER_BYTES:
                raise ValueError(f"header length {size}")
            return 8 + size, json.loads(file.read(size).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors header ({error})") from None


def _safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{name: (shape, dtype)} from a .safetensors file's JSON header."""
    _, header = _safetensors_json(path)
    try:
        return {
            name: (tuple(int(n) for n in entry["shape"]), str(entry["dtype"]))
            for name, entry in header.items()
            if name != "__metadata__"
        }
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors header ({error})") from None


def read_tensor_headers(folder: str | Path) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """Every stored tensor's (shape, dtype) from the safetensors headers, reading no weights;
    None when the weights are only in pytorch_model.bin (whose shapes need unpickling)."""
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return _safetensors_header(folder / "model.safetensors")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        headers = {}
        for shard in _shard_names(index):
            if not (folder / shard).is_file():
                raise CheckpointError(f"{index}: shard {shard} is missing")
            headers.update(_safetensors_header(folder / shard))
        return headers
    return None


# ---- which config key disagrees with the weights -------------------------------------------

def _layer_count(shapes: dict) -> int:
    indices = {int(name.split(".")[2]) for name in shapes if name.startswith(_PREFIX + "layers.") and name.split(".")[2].isdigit()}
    return max(indices) + 1 if indices else 0


def config_mismatch(values: dict, config: MambaConfig | Mamba2Config, shapes: dict[str, tuple]) -> str | None:
    """The first config.json key the stored tensors contradict, as one line, or None.

    The tensors are taken as the truth: each check reads what a tensor's shape (or presence)
    says a key must be, and names the key and the tensor. `values` is the raw config.json,
    so a derived key is reported as what was written (expand, not intermediate_size)."""
    layer = _PREFIX + "layers.0.mixer."

    def shape(name: str) -> tuple | None:
        found = shapes.get(name)
        return None if found is None else tuple(found)

    def said(key: str, ours, theirs, evidence: str) -> str | None:
        if ours == theirs:
            return None
        return f"config.json gives {key} {ours}, but the weights say {theirs} ({evidence})"

    embedding = shape(_PREFIX + "embeddings.weight")
    checks = []
    if embedding is not None and len(embedding) == 2:
        evidence = f"{_PREFIX}embeddings.weight is {embedding}"
        checks += [("vocab_size", config.vocab_size, embedding[0], evidence),
                   ("hidden_size", config.hidden_size, embedding[1], evidence)]
    layers = _layer_count(shapes)
    if layers:
        checks.append(("num_hidden_layers", config.num_hidden_layers, layers, f"the last layer stored is {layers - 1}"))
    width_key = "intermediate_size" if "intermediate_size" in values and isinstance(config, MambaConfig) else "expand"

    def width(d_in: int, evidence: str):
        if width_key == "intermediate_size":
            return ("intermediate_size", config.intermediate_size, d_in, evidence)
        return (f"expand {config.expand} · hidden_size", config.intermediate_size, d_in, evidence)

    A_log, conv, in_bias = shape(layer + "A_log"), shape(layer + "conv1d.weight"), layer + "in_proj.bias"
    if isinstance(config, MambaConfig):
        dt_proj = shape(layer + "dt_proj.weight")
        if A_log is not None and len(A_log) == 2:
            evidence = f"{layer}A_log is {A_log}"
            checks += [width(A_log[0], evidence), ("state_size", config.state_size, A_log[1], evidence)]
        if dt_proj is not None and len(dt_proj) == 2:
            checks.append(("time_step_rank", config.time_step_rank, dt_proj[1], f"{layer}dt_proj.weight is {dt_proj}"))
    else:
        out_proj = shape(layer + "out_proj.weight")
        if A_log is not None and len(A_log) == 1:
            checks.append(("num_heads", config.num_heads, A_log[0], f"{layer}A_log is {A_log}"))
        if out_proj is not None and len(out_proj) == 2:
            evidence = f"{layer}out_proj.weight is {out_proj}"
            checks.append(width(out_proj[1], evidence))
            if A_log is not None and len(A_log) == 1 and out_proj[1] % A_log[0] == 0:
                checks.append(("head_dim", config.head_dim, out_proj[1] // A_log[0], f"{evidence} over {A_log[0]} heads"))
            if conv is not None and len(conv) == 3:
                checks.append(("n_groups · state_size", config.n_groups * config.state_size,
                               (conv[0] - out_proj[1]) // 2, f"{layer}conv1d.weight is {conv}"))
    if conv is not None and len(conv) == 3:
        checks.append(("conv_kernel", config.conv_kernel, conv[2], f"{layer}conv1d.weight is {conv}"))
    if layers:
        checks.append(("use_bias", config.use_bias, in_bias in shapes,
                       f"{in_bias} is {'stored' if in_bias in shapes else 'absent'}"))
        conv_bias = layer + "conv1d.bias"
        checks.append(("use_conv_bias", config.use_conv_bias, conv_bias in shapes,
                       f"{conv_bias} is {'stored' if conv_bias in shapes else 'absent'}"))
    if not config.tie_word_embeddings and embedding is not None and "lm_head.weight" not in shapes:
        checks.append(("tie_word_embeddings", False, True, "there is no lm_head.weight"))
    for check in checks:
        message = said(*check)
        if message is not None:
            return message.replace(" True", " true").replace(" False", " false")
    return None


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, as views of the file mapped into memory (private,
    copy-on-write): nothing is read until a tensor is, and what is read is page cache, which the
    kernel can drop, not memory of the process's own. A 7B checkpoint is 14 GB in bf16; held as
    copies beside the model it is being read into, it had to fit in memory twice. `safe_open`
    checks the file first (a truncated or malformed one is one line); a tensor that cannot be a
    view (another dtype, a misaligned offset, a big-endian machine) is read as a copy."""
    try:
        with safe_open(str(path), framework="pt") as file:
            names = list(file.keys())
            data_start, header = _safetensors_json(path)  # safe_open has checked it
            mapped = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
            tensors = {}
            for name in names:
                entry, dtype = header[name], _SAFETENSORS_DTYPES.get(header[name]["dtype"])
                offset = data_start + entry["data_offsets"][0]
                item = dtype.itemsize if dtype is not None else 0
                if dtype is None or offset % item or sys.byteorder != "little":
                    tensors[name] = file.get_tensor(name)
                    continue
                tensors[name] = torch.empty(0, dtype=dtype).set_(mapped, offset // item, entry["shape"])
            return tensors
    except (SafetensorError, OSError, RuntimeError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from None


def _read_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        try:  # mapped, as _read_safetensors maps its file; the zip format only
            tensors = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (pre-zip) format cannot be mapped
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: refused or unreadable ({reason})") from None
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise CheckpointError(f"{path}: not a dictionary of tensors")
    return tensors


def _shard_names(index_path: Path) -> list[str]:
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        return sorted(set(weight_map.values()))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{index_path}: not a shard index (no weight_map)") from None


def _read_sharded(index_path: Path, read_shard) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in _shard_names(index_path):
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


def check_stored_tensors(folder: Path, stored: dict, expected: dict) -> None:
    """Refuse, in one line, stored tensors that are not exactly the model's: a name missing or
    unexpected, a shape the config does not imply, a dtype that is not floating point."""
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


def _one_line_list(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _refuse_a_config_the_tensors_contradict(folder, values, config, stored, expected) -> None:
    """Where the stored tensors do not fit the model the config describes, name the config key
    they contradict (the tensors decide); a misfit no key explains is left to the checks after."""
    shapes = {name: tuple(tensor.shape) for name, tensor in stored.items()}
    wanted = {name: tuple(tensor.shape) for name, tensor in expected.items()}
    comparable = {name: shape for name, shape in shapes.items() if name in wanted or name != "lm_head.weight"}
    if comparable == wanted:
        return
    mismatch = config_mismatch(values, config, shapes)
    if mismatch is not None:
        raise CheckpointError(f"{folder}: {mismatch}")


def load_checkpoint(
    folder: str | Path, *, dtype: torch.dtype = torch.float32, device: str | None = None,
    quantize: str | None = None, **options
) -> MambaLM:
    """A `MambaLM` (a `Mamba2LM` for Mamba-2; an `RWKV7LM` or `GraniteHybridLM` from hf_folder.py) with the
    folder's config and weights, in eval mode. `options` reach the latter two (`attention_window`).
    `quantize` ("int8", "q4"): the model as model/quantize.py's quantizer of that name makes it,
    each layer quantized as it is read (`read_into`), so the fp32 model is never whole in memory."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder")
    from .hf_folder import folder_model_type, load_folder  # RWKV-7 and Granite-4.0-H live there

    if folder_model_type(folder) is not None:
        return load_folder(folder, dtype=dtype, device=device, quantize=quantize, **options)
    values = read_config_json(folder)
    config = config_from_values(values, folder / "config.json")
    check_config_against_weights(folder, config)  # before anything is built (issue 13)
    stored = load_tensors(folder)
    with torch.device("meta"):
        model = model_for(config)
    expected = hf_state_dict(model)
    _refuse_a_config_the_tensors_contradict(folder, values, config, stored, expected)
    if config.tie_word_embeddings:
        # Tied: the head is the embedding. Some writers store it again; it must then be the same matrix.
        head = stored.pop("lm_head.weight", None)
        embedding = stored.get(_PREFIX + "embeddings.weight")
        if head is not None and embedding is not None and not torch.equal(head, embedding):
            raise CheckpointError(f"{folder}: tie_word_embeddings is true but lm_head.weight differs from the embedding")
    check_stored_tensors(folder, stored, expected)
    weights = {name.removeprefix(_PREFIX): tensor for name, tensor in stored.items()}
    del stored
    read_into(model, weights, _transposed_names(model), dtype=dtype, device=device, quantize=quantize)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.embeddings.weight
    return quantized_head(model, quantize).eval()


def quantized_head(model: torch.nn.Module, quantize: str | None) -> torch.nn.Module:
    """After `read_into(..., quantize=)`: the head and the embedding quantized too (the layers are)."""
    if quantize is None:
        return model
    from .quantize import QUANTIZERS

    return QUANTIZERS[quantize](model, in_place=True)


def read_into(model: torch.nn.Module, weights: dict[str, torch.Tensor], transposed: set[str], *,
              dtype: torch.dtype, device: str | None, quantize: str | None = None) -> None:
    """Make a model built on meta real (in `dtype`, on `device`) and copy the stored tensors into
    it one at a time, each converted (and transposed where its name says) as it is copied and
    then let go (`weights` is emptied). Reading a checkpoint then needs the model's memory and one
    tensor's: converting every tensor first (bf16 → fp32) had held a second fp32 copy of the model
    beside it. Names absent from `weights` (a tied head) are left to the caller.

    `quantize` ("int8", "q4"): each layer a quantizer replaces is made real, read, and replaced by
    its quantized twin (model/quantize.py's QUANTIZED_LINEAR) before the next is read, so a model
    to decode in 4 bits never holds more than one of its matrices in fp32; the head and the
    embedding are left to the quantizer, after (they may be one matrix)."""
    model.to(dtype)  # on meta: costs nothing
    if quantize is not None:
        from .quantize import QUANTIZED_LINEAR, quantized_layers

        prefixes = {id(module): prefix for prefix, module in model.named_modules()}
        layers = quantized_layers(model)
        layers.reverse()
        while layers:  # popped, so that each fp32 layer is freed once its twin has replaced it
            parent, attribute, linear = layers.pop()
            _make_real(linear, device)
            _copy_stored(linear, weights, transposed, prefixes[id(linear)] + ".")
            setattr(parent, attribute, QUANTIZED_LINEAR[quantize](linear))
            del linear
    _make_real(model, device)
    _copy_stored(model, weights, transposed, "")


def _make_real(module: torch.nn.Module, device: str | None) -> None:
    """Every parameter and buffer of `module` still on meta, allocated (uninitialised) on `device`;
    one shared on meta (a tied head) stays shared. What is already real is left as it is."""
    made: dict[int, torch.Tensor] = {}
    for owner in module.modules():
        for table in (owner._parameters, owner._buffers):
            for name, tensor in table.items():
                if tensor is None or tensor.device.type != "meta":
                    continue
                if id(tensor) not in made:
                    empty = torch.empty_like(tensor, device=device or "cpu")
                    made[id(tensor)] = (torch.nn.Parameter(empty, requires_grad=tensor.requires_grad)
                                        if isinstance(tensor, torch.nn.Parameter) else empty)
                table[name] = made[id(tensor)]


def _copy_stored(module: torch.nn.Module, weights: dict[str, torch.Tensor], transposed: set[str], prefix: str) -> None:
    """The stored tensors named `prefix` + a name of module's state, copied in and let go."""
    with torch.no_grad():
        for name, target in module.state_dict(keep_vars=True).items():
            tensor = weights.pop(prefix + name, None)
            if tensor is not None:
                target.copy_(tensor.t() if prefix + name in transposed else tensor)


def save_checkpoint(model: MambaLM, folder: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` into folder (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.cpu().contiguous() for name, tensor in hf_state_dict(model).items()}
    config = model.config.to_hf_dict() | {"dtype": str(model.embeddings.weight.dtype).removeprefix("torch.")}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
