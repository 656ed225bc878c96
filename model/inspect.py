"""What a downloaded checkpoint folder is, without loading its weights.

`inspect_folder(folder)` reads `config.json` (as `load_checkpoint` would, model/config.py),
the safetensors headers (names, shapes and dtypes: the 8-byte length and the JSON after it,
never the data) and the tokenizer files, and says: the architecture, the parameter count
(from the headers when there are any, else from the config), the memory the weights take at
fp32 / int8 / 4-bit, the recurrent state per sequence, the tokenizer and chat template found,
how the config is read where that is not obvious, and everything `load_checkpoint` (or the
tokenizer) would refuse, one line each. It is the first thing to run after a download; a
folder holding only a config.json (tests/fixtures/configs/) is reported too.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .checkpoint import (
    CONFIG_CLASSES,
    HF_FOLDER_MODEL_TYPES,
    CheckpointError,
    config_from_values,
    config_mismatch,
    expected_tensor_shapes,
    read_config_json,
    read_tensor_headers,
)
from .config import Mamba2Config, MambaConfig, reading_notes

# Matrices whose inner dimension is not a multiple of this stay fp32 under quantize_int8.
INT8_K_MULTIPLE = 16
# The 4-bit figure is an estimate of a weight-only 4-bit format: 4 bits per matrix entry and
# one bf16 scale per group of this many entries; everything else stays fp32.
FOUR_BIT_GROUP = 32


@dataclass
class Inspection:
    folder: str
    model_type: str | None = None
    architecture: str = "unknown"
    parameters: int | None = None
    parameters_from: str | None = None  # "tensor headers" or "config.json"
    memory_bytes: dict[str, int] = field(default_factory=dict)  # fp32, int8, 4-bit
    state_bytes: int | None = None  # recurrent state of one sequence, fp32
    tokenizer: str = "none"
    chat_template: str = "none"
    notes: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def loads(self) -> bool:
        return not self.refusals

    def to_dict(self) -> dict:
        return {**asdict(self), "loads": self.loads}

    def lines(self) -> list[str]:
        """The report, one fact per line."""
        lines = [f"folder: {self.folder}", f"architecture: {self.architecture}"]
        if self.parameters is None:
            lines.append("parameters: unknown (no tensor headers, and no parameter count for this model type)")
        else:
            lines.append(f"parameters: {self.parameters:,} (from {self.parameters_from})")
        if self.memory_bytes:
            memory = " · ".join(f"{name} {_size(size)}" for name, size in self.memory_bytes.items())
            lines.append(f"weights in memory: {memory} (4-bit estimated: 4 bits a matrix entry, a bf16 scale per {FOUR_BIT_GROUP})")
        if self.state_bytes is not None:
            lines.append(f"state per sequence: {_size(self.state_bytes)} (fp32), the same at any context length")
        lines += [f"tokenizer: {self.tokenizer}", f"chat template: {self.chat_template}"]
        lines += [f"read as: {note}" for note in self.notes]
        lines += [f"refused: {reason}" for reason in self.refusals] or ["loads: yes"]
        return lines


def _size(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def inspect_folder(folder: str | Path) -> Inspection:
    """Report on a checkpoint folder; raises `CheckpointError` only when it is not a folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder")
    report = Inspection(folder=str(folder))
    values = _config_values(folder, report)
    headers = _headers(folder, report)
    if values is not None:
        report.model_type = values.get("model_type")
        report.notes[:0] = reading_notes(values)
        if report.model_type in CONFIG_CLASSES:
            _inspect_supported(folder, values, headers, report)
        elif report.model_type in HF_FOLDER_MODEL_TYPES:
            _inspect_hf_folder(folder, values, headers, report)
        else:
            _refuse(report, lambda: config_from_values(values, folder / "config.json"))
    if headers is not None and report.parameters is None:
        _count_from_headers(headers, values or {}, report)
    _inspect_tokenizer(folder, report)
    return report


def _refuse(report: Inspection, action):
    try:
        return action()
    except CheckpointError as error:
        report.refusals.append(_without_folder(str(error), report.folder))
        return None


def _without_folder(message: str, folder: str) -> str:
    return message.removeprefix(folder + ": ").removeprefix(folder + "/")


def _config_values(folder: Path, report: Inspection) -> dict | None:
    return _refuse(report, lambda: read_config_json(folder))


def _headers(folder: Path, report: Inspection) -> dict | None:
    refused_before = len(report.refusals)
    headers = _refuse(report, lambda: read_tensor_headers(folder))
    if headers is None and len(report.refusals) == refused_before:
        if (folder / "pytorch_model.bin").is_file() or (folder / "pytorch_model.bin.index.json").is_file():
            report.notes.append("weights are in pytorch_model.bin: its shapes are not read (that needs unpickling)")
        else:
            report.refusals.append("no weights (model.safetensors, its index, or pytorch_model.bin): config only")
    return headers


# ---- Mamba, FalconMamba, Mamba-2: what load_checkpoint builds ------------------------------

def _describe(config: MambaConfig | Mamba2Config, values: dict) -> str:
    head = "tied head" if config.tie_word_embeddings else "untied head"
    architectures = ", ".join(values.get("architectures") or []) or "no architectures key"
    if isinstance(config, Mamba2Config):
        body = (f"Mamba-2: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
                f"{config.num_heads} heads of {config.head_dim} in {config.n_groups} groups, state {config.state_size}, "
                f"conv {config.conv_kernel}, chunk {config.chunk_size}")
    else:
        kind = "FalconMamba (RMS-normed Δ, B, C)" if config.falcon else "Mamba"
        body = (f"{kind}: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
                f"d_inner {config.intermediate_size}, state {config.state_size}, conv {config.conv_kernel}, "
                f"Δ rank {config.time_step_rank}")
    return f"{body}, vocab {config.vocab_size}, {head} [{config.model_type}; {architectures}]"


def _inspect_supported(folder: Path, values: dict, headers: dict | None, report: Inspection) -> None:
    config = _refuse(report, lambda: config_from_values(values, folder / "config.json"))
    if config is None:
        return
    report.architecture = _describe(config, values)
    expected = expected_tensor_shapes(config)
    report.state_bytes = 4 * config.num_hidden_layers * (math.prod(config.conv_state_shape) + math.prod(config.ssm_state_shape))
    if headers is None:
        _count(expected, config.tie_word_embeddings, "config.json", report)
        return
    shapes = {name: shape for name, (shape, _) in headers.items()}
    mismatch = config_mismatch(values, config, shapes)
    if mismatch is not None:
        report.refusals.append(mismatch)
    else:
        _compare_tensors(expected, shapes, config.tie_word_embeddings, report)
    not_float = sorted(name for name, (_, dtype) in headers.items() if not dtype.startswith(("F", "BF")))
    if not_float:
        report.refusals.append(f"tensor {not_float[0]} has dtype {headers[not_float[0]][1]}, expected floating point")
    _count(shapes, config.tie_word_embeddings, "tensor headers", report)


def _compare_tensors(expected: dict, stored: dict, tied: bool, report: Inspection) -> None:
    """Refusals for tensors the config implies but the file lacks, tensors it has but the config
    does not imply, and the first shape that differs (a tied head may be stored or not)."""
    comparable = {name for name in stored if not (name == "lm_head.weight" and tied)}
    missing, unexpected = sorted(set(expected) - comparable), sorted(comparable - set(expected))
    if missing:
        report.refusals.append(f"missing tensors {', '.join(missing[:3])}{' and more' if len(missing) > 3 else ''}")
    if unexpected:
        report.refusals.append(f"unexpected tensors {', '.join(unexpected[:3])}{' and more' if len(unexpected) > 3 else ''}")
    for name in sorted(set(expected) & comparable):
        if stored[name] != expected[name]:
            report.refusals.append(f"tensor {name} has shape {stored[name]}, the config implies {expected[name]}")
            break


# ---- RWKV-7 and Granite-4.0-H: what hf_folder.py builds -------------------------------------

def _inspect_hf_folder(folder: Path, values: dict, headers: dict | None, report: Inspection) -> None:
    config = _refuse(report, lambda: config_from_values(values, folder / "config.json"))
    if config is None:
        return
    import torch

    from .hf_folder import architecture_classes, hf_tensors

    model_class = architecture_classes(report.model_type)[1]
    with torch.device("meta"):  # the tensors load_folder expects, built without memory (~0.2 s for 40 layers)
        expected = {name: tuple(t.shape) for name, t in hf_tensors(model_class(config)).items()}
    if report.model_type == "granitemoehybrid":
        report.architecture = _describe_granite(values, config.attention_window)
        kv = 2 * len(config.attention_layers) * math.prod(config.kv_shape)
        mamba = config.mamba_config
        recurrent = len(config.mamba_layers) * (math.prod(mamba.conv_state_shape) + math.prod(mamba.ssm_state_shape))
        report.state_bytes = 4 * (recurrent + kv)
    else:
        report.architecture = (f"RWKV-7: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
                               f"{config.num_heads} heads of {config.head_dim}, channel mix {config.intermediate_size}, "
                               f"vocab {config.vocab_size}, {'tied' if config.tie_word_embeddings else 'untied'} head [rwkv7]")
        report.state_bytes = 4 * config.num_hidden_layers * (
            math.prod(config.conv_state_shape) + math.prod(config.ssm_state_shape))
    if headers is None:
        _count(expected, config.tie_word_embeddings, "config.json", report)
        return
    stored = {name: shape for name, (shape, _) in headers.items()}
    if hasattr(model_class, "migrate_tensors"):  # an older layout of the same weights, as load_folder reads it
        with torch.device("meta"):
            migrated = model_class.migrate_tensors({name: torch.empty(shape) for name, shape in stored.items()})
        stored = {name: tuple(t.shape) for name, t in migrated.items()}
    _compare_tensors(expected, stored, config.tie_word_embeddings, report)
    _count(stored, config.tie_word_embeddings, "tensor headers", report)


def _describe_granite(values: dict, window: int) -> str:
    types = values.get("layer_types") or []
    attention = sum(1 for kind in types if kind == "attention")
    experts = values.get("num_local_experts", 8)
    mlp = f"{experts} experts of {values.get('intermediate_size')}" if experts else "dense"
    return (f"Granite-4.0-H hybrid: {values.get('num_hidden_layers')} layers ({len(types) - attention} Mamba-2, "
            f"{attention} attention with {values.get('num_attention_heads')} heads / {values.get('num_key_value_heads')} KV heads), "
            f"hidden {values.get('hidden_size')}, shared MLP {values.get('shared_intermediate_size')}, {mlp}, "
            f"vocab {values.get('vocab_size')} [granitemoehybrid]; KV cache bounded by a window of {window:,} tokens "
            "(--attention-window)")


def granite_tensor_shapes(values: dict) -> dict[str, tuple[int, ...]]:
    """The tensors of transformers' GraniteMoeHybridForCausalLM for a config.json dict (its
    defaults for absent keys), by shape: what the parameter count and memory are read from."""
    d, vocab = values["hidden_size"], values["vocab_size"]
    heads = values.get("num_attention_heads", 32)
    kv_heads = values.get("num_key_value_heads") or heads
    head_dim = d // heads
    expand, m_heads = values.get("mamba_expand", 2), values.get("mamba_n_heads", 128)
    d_in = int(expand * d)
    groups, d_state, d_conv = values.get("mamba_n_groups", 1), values.get("mamba_d_state", 256), values.get("mamba_d_conv", 4)
    conv_dim = d_in + 2 * groups * d_state
    experts, expert_width = values.get("num_local_experts", 8), values.get("intermediate_size", 11008)
    shared = values.get("shared_intermediate_size", 1024)
    attention_bias, proj_bias = values.get("attention_bias", False), values.get("mamba_proj_bias", False)
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,)}
    for index, kind in enumerate(values.get("layer_types") or ["mamba"] * values["num_hidden_layers"]):
        layer = f"model.layers.{index}."
        shapes[layer + "input_layernorm.weight"] = (d,)
        shapes[layer + "post_attention_layernorm.weight"] = (d,)
        if kind == "mamba":
            mamba = layer + "mamba."
            shapes.update({mamba + "in_proj.weight": (d_in + conv_dim + m_heads, d), mamba + "conv1d.weight": (conv_dim, 1, d_conv),
                           mamba + "dt_bias": (m_heads,), mamba + "A_log": (m_heads,), mamba + "D": (m_heads,),
                           mamba + "norm.weight": (d_in,), mamba + "out_proj.weight": (d, d_in)})
            if values.get("mamba_conv_bias", True):
                shapes[mamba + "conv1d.bias"] = (conv_dim,)
            if proj_bias:
                shapes.update({mamba + "in_proj.bias": (d_in + conv_dim + m_heads,), mamba + "out_proj.bias": (d,)})
        else:
            attention = layer + "self_attn."
            for name, rows in (("q_proj", heads * head_dim), ("k_proj", kv_heads * head_dim), ("v_proj", kv_heads * head_dim)):
                shapes[attention + name + ".weight"] = (rows, d)
                if attention_bias:
                    shapes[attention + name + ".bias"] = (rows,)
            shapes[attention + "o_proj.weight"] = (d, heads * head_dim)
            if attention_bias:
                shapes[attention + "o_proj.bias"] = (d,)
        if shared:
            shapes[layer + "shared_mlp.input_linear.weight"] = (2 * shared, d)
            shapes[layer + "shared_mlp.output_linear.weight"] = (d, shared)
        if experts:
            moe = layer + "block_sparse_moe."
            shapes.update({moe + "router.weight": (experts, d), moe + "experts.gate_up_proj": (experts, 2 * expert_width, d),
                           moe + "experts.down_proj": (experts, d, expert_width)})
    if not values.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


# ---- counting --------------------------------------------------------------------------------

def _count_from_headers(headers: dict, values: dict, report: Inspection) -> None:
    shapes = {name: shape for name, (shape, _) in headers.items()}
    tied = bool(values.get("tie_word_embeddings", values.get("model_type") in ("mamba", "falcon_mamba")))
    _count(shapes, tied, "tensor headers", report)


def _is_matrix(name: str, shape: tuple[int, ...]) -> bool:
    """A weight a weight-only quantizer stores in low precision: 2-D (or a 3-D stack of expert
    matrices), and not the embedding (one row is read per token) or a depthwise conv."""
    return len(shape) >= 2 and "embed" not in name and "conv1d" not in name


def _count(shapes: dict[str, tuple[int, ...]], tied: bool, source: str, report: Inspection) -> None:
    """Parameters and the memory of the weights at fp32, int8 (as quantize_int8 stores them)
    and 4-bit (estimated), from tensor shapes. A tied head stored again counts once."""
    shapes = dict(shapes)
    if tied:
        shapes.pop("lm_head.weight", None)
    report.parameters = sum(math.prod(shape) for shape in shapes.values())
    report.parameters_from = source
    int8 = four_bit = 0
    for name, shape in shapes.items():
        entries = math.prod(shape)
        if _is_matrix(name, shape):
            rows, inner = math.prod(shape[:-1]), shape[-1]
            int8 += entries + 2 * rows if inner % INT8_K_MULTIPLE == 0 else 4 * entries
            four_bit += entries // 2 + 2 * math.ceil(entries / FOUR_BIT_GROUP)
        else:
            int8 += 4 * entries
            four_bit += 4 * entries
    embedding = next((shape for name, shape in shapes.items() if "embed" in name and len(shape) == 2), None)
    if tied and embedding is not None:
        # quantize_int8 gives a tied head its own int8 copy; the embedding stays fp32.
        vocab = embedding[0]
        int8 += math.prod(embedding) + 2 * vocab
        four_bit += math.prod(embedding) // 2 + 2 * math.ceil(math.prod(embedding) / FOUR_BIT_GROUP)
    report.memory_bytes = {"fp32": 4 * report.parameters, "int8": int8, "4-bit": four_bit}


# ---- tokenizer and chat template ----------------------------------------------------------

def _inspect_tokenizer(folder: Path, report: Inspection) -> None:
    settings = None
    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        try:
            settings = json.loads(config_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            report.refusals.append(f"tokenizer_config.json: not valid JSON ({error})")
    settings = settings if isinstance(settings, dict) else {}
    found = [name for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "merges.txt",
                               "rwkv_vocab_v20230424.txt") if (folder / name).is_file()]
    details = []
    if settings.get("tokenizer_class"):
        details.append(str(settings["tokenizer_class"]))
    if isinstance(settings.get("eos_token"), str):
        details.append(f"eos {settings['eos_token']}")
    report.tokenizer = (" + ".join(found) or "none") + (f" ({', '.join(details)})" if details else "")
    if "tokenizer.json" not in found and "rwkv_vocab_v20230424.txt" not in found:
        report.refusals.append("no tokenizer.json: HFTokenizer reads only that file")
    template = settings.get("chat_template")
    if isinstance(template, str) and template:
        report.chat_template = f"tokenizer_config.json chat_template ({len(template)} characters)"
    elif isinstance(template, list) and template:
        names = [str(entry.get("name")) for entry in template if isinstance(entry, dict)]
        report.chat_template = f"tokenizer_config.json chat_template, named: {', '.join(names)}"
    elif (folder / "chat_template.jinja").is_file():
        report.chat_template = "chat_template.jinja"
    elif (folder / "chat_template.json").is_file():
        report.chat_template = "chat_template.json"
