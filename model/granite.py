"""Granite-4.0-H (IBM's `granitemoehybrid`): Mamba-2 layers with a few attention layers, in plain PyTorch.

Most layers are Mamba-2 mixers (mamba2.py's, as they are); about one in ten is grouped-query
softmax attention with no positional encoding (`position_embedding_type` "nope"). Every layer
is pre-norm (RMSNorm) with its residual scaled by `residual_multiplier`, then an MLP: a shared
SwiGLU (`shared_mlp`) plus, where the config has experts, a top-k mixture (`block_sparse_moe`).
The embeddings are scaled by `embedding_multiplier`, the logits divided by `logits_scaling`,
and attention scores use `attention_multiplier` in place of 1/√d.

The state. Mamba layers keep their fixed conv and SSM states; attention layers keep keys and
values, bounded here by a window of W tokens (`attention_window`, 8,192 by default): each token
attends to itself and the W - 1 tokens before it, so memory and cost per token stay bounded
however long a session runs. Within the window the model computes exactly what transformers'
`GraniteMoeHybridForCausalLM` computes (the peer check in tests/model/test_model_granite.py);
beyond it, what slid out is gone from attention too, and the model relies on the recurrent
state and on its tools (`read`, `outline`, `notes`) to look back, as the stream is designed for.

With no positions, attention does not depend on the order of the cached tokens, only on which
ones are there; so the cache is a ring: token p goes to slot p mod W, overwriting p - W.

Parameter names follow transformers' (minus `model.`), so ibm-granite folders load one to one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from infitool_edit.kernels import dispatch

from .config import Mamba2Config, _json_float
from .mamba import Embedding, Linear, RMSNorm, with_bias
from .mamba2 import Mamba2Mixer
from .state import StateError

DEFAULT_ATTENTION_WINDOW = 8192
# Queries per block when `forward` reads a prompt through an attention layer: bounds the
# (heads, block, W + block) score matrix (about 100 MB at Granite-1B's shape and W = 8,192).
ATTENTION_BLOCK = 256
_FORMAT = "infitool-hybrid-state/1"
MAMBA_TYPES = ("mamba", "linear_attention")
ATTENTION_TYPES = ("attention", "full_attention")


@dataclass
class GraniteHybridConfig:
    """The shape of a Granite-4.0-H model, with the field names and defaults of transformers'
    `GraniteMoeHybridConfig`. `attention_window` is ours: a `config.json` names it only when its model
    was trained for another window than the default (the editor's own hybrid: the 2,048 bytes it
    read at a time), and `--attention-window` overrides it."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008  # each expert's width
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    embedding_multiplier: float = 1.0
    logits_scaling: float = 1.0
    residual_multiplier: float = 1.0
    attention_multiplier: float = 1.0
    num_local_experts: int = 8
    num_experts_per_tok: int = 2
    shared_intermediate_size: int = 1024
    position_embedding_type: str | None = None
    layer_types: list[str] | None = None
    mamba_n_heads: int = 128
    mamba_n_groups: int = 1
    mamba_d_state: int = 256
    mamba_d_head: int | str = "auto"
    mamba_d_conv: int = 4
    mamba_expand: int = 2
    mamba_chunk_size: int = 256
    mamba_conv_bias: bool = True
    mamba_proj_bias: bool = False
    time_step_limit: tuple[float, float] = (0.0, float("inf"))
    initializer_range: float = 0.02
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    pad_token_id: int | None = None
    attention_window: int = DEFAULT_ATTENTION_WINDOW

    model_type = "granitemoehybrid"

    def __post_init__(self) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.mamba_d_head == "auto":
            self.mamba_d_head = self.mamba_expand * self.hidden_size // self.mamba_n_heads
        if self.layer_types is None:
            self.layer_types = ["mamba"] * self.num_hidden_layers
        self.time_step_limit = tuple(_json_float(limit) for limit in self.time_step_limit)
        if len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(f"layer_types has {len(self.layer_types)} entries for {self.num_hidden_layers} layers")
        unknown = sorted(set(self.layer_types) - set(MAMBA_TYPES) - set(ATTENTION_TYPES))
        if unknown:
            raise ValueError(f"layer type {unknown[0]!r} is not mamba or attention")
        if self.position_embedding_type == "rope":
            raise ValueError("position_embedding_type 'rope' is not supported (Granite-4.0-H uses none)")
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must divide hidden_size ({self.hidden_size}) "
                f"and be a multiple of num_key_value_heads ({self.num_key_value_heads})"
            )
        if not isinstance(self.attention_window, int) or self.attention_window < 1:
            raise ValueError(f"attention_window must be a positive integer, not {self.attention_window!r}")
        self.mamba_config  # checks the Mamba-2 shape

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def mamba_layers(self) -> list[int]:
        return [i for i, kind in enumerate(self.layer_types) if kind in MAMBA_TYPES]

    @property
    def attention_layers(self) -> list[int]:
        return [i for i, kind in enumerate(self.layer_types) if kind in ATTENTION_TYPES]

    @property
    def mamba_config(self) -> Mamba2Config:
        """The shape mamba2.py's mixer reads."""
        return Mamba2Config(
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, state_size=self.mamba_d_state,
            num_hidden_layers=len(self.mamba_layers), expand=self.mamba_expand, num_heads=self.mamba_n_heads,
            head_dim=self.mamba_d_head, n_groups=self.mamba_n_groups, conv_kernel=self.mamba_d_conv,
            use_bias=self.mamba_proj_bias, use_conv_bias=self.mamba_conv_bias, layer_norm_epsilon=self.rms_norm_eps,
            chunk_size=self.mamba_chunk_size, time_step_limit=self.time_step_limit,
            initializer_range=self.initializer_range,
        )

    @property
    def kv_shape(self) -> tuple[int, ...]:
        """One attention layer's keys (or values) for one sequence: (kv heads, window, head_dim)."""
        return (self.num_key_value_heads, self.attention_window, self.head_dim)

    def to_hf_dict(self) -> dict:
        values = asdict(self)
        if self.attention_window == DEFAULT_ATTENTION_WINDOW:  # the hub's folders never name it
            del values["attention_window"]
        values["time_step_limit"] = list(self.time_step_limit)
        return {"model_type": self.model_type, "architectures": ["GraniteMoeHybridForCausalLM"], **values,
                "hidden_act": "silu"}

    @classmethod
    def from_hf_dict(cls, values: dict) -> GraniteHybridConfig:
        """Read a `config.json` key by key (transformers' defaults where a key is absent)."""
        known = {f.name for f in fields(cls)}
        kwargs = {key: value for key, value in values.items() if key in known}
        if "layers_block_type" in values and "layer_types" not in values:  # older config.json files
            kwargs["layer_types"] = values["layers_block_type"]
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "mamba_n_heads",
                     "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_chunk_size", "shared_intermediate_size"):
            value = kwargs.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if values.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {values['hidden_act']!r} is not supported (only silu)")
        return cls(**kwargs)


@dataclass(eq=False)
class HybridState:
    """Everything a Granite-4.0-H model remembers, in a fixed size:
      conv    (mamba layers, b, conv_dim, k)      ssm     (mamba layers, b, h, p, n), fp32
      keys    (attention layers, b, kv heads, W, head_dim), values the same: a ring of W slots
      seen    (1,) int64: tokens read so far (token p sits in slot p mod W while p ≥ seen - W)
    The same interface as `State` (copy, copy_, ==, matches, nbytes, fits, to_bytes, from_bytes)."""

    conv: torch.Tensor
    ssm: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    seen: torch.Tensor

    @classmethod
    def zeros(cls, config: GraniteHybridConfig, batch: int = 1, *, device=None, dtype=torch.float32) -> HybridState:
        mamba = config.mamba_config
        layers, attention = len(config.mamba_layers), len(config.attention_layers)
        return cls(
            torch.zeros(layers, batch, *mamba.conv_state_shape, device=device, dtype=dtype),
            torch.zeros(layers, batch, *mamba.ssm_state_shape, device=device, dtype=torch.float32),
            torch.zeros(attention, batch, *config.kv_shape, device=device, dtype=dtype),
            torch.zeros(attention, batch, *config.kv_shape, device=device, dtype=dtype),
            torch.zeros(1, dtype=torch.int64),
        )

    @property
    def window(self) -> int:
        return self.keys.shape[3]

    @property
    def held(self) -> int:
        """How many ring slots hold a token."""
        return min(int(self.seen), self.window)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._tensors().values())

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"conv": self.conv, "ssm": self.ssm, "keys": self.keys, "values": self.values, "seen": self.seen}

    def copy(self) -> HybridState:
        return HybridState(*(t.clone() for t in self._tensors().values()))

    def copy_(self, other: HybridState) -> HybridState:
        for mine, theirs in zip(self._tensors().values(), other._tensors().values()):
            mine.copy_(theirs)
        return self

    def max_difference(self, other: HybridState) -> float:
        """The largest absolute difference of any entry (inf when the shapes or token counts differ);
        empty ring slots do not count."""
        if any(a.shape != b.shape for a, b in zip(self._tensors().values(), other._tensors().values())):
            return float("inf")
        if not torch.equal(self.seen, other.seen):
            return float("inf")
        held = self.held
        pairs = [(self.conv, other.conv), (self.ssm, other.ssm), (self.keys[:, :, :, :held], other.keys[:, :, :, :held]),
                 (self.values[:, :, :, :held], other.values[:, :, :, :held])]
        return max(((a.float() - b.float()).abs().max().item() if a.numel() else 0.0) for a, b in pairs)

    def matches(self, other: HybridState, *, atol: float = 0.0) -> bool:
        if not isinstance(other, HybridState):
            return False
        if any(a.dtype != b.dtype for a, b in zip(self._tensors().values(), other._tensors().values())):
            return False
        return self.max_difference(other) <= atol

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HybridState) and self.matches(other)

    def to_bytes(self) -> bytes:
        """A safetensors blob (no pickle). Only the ring slots that hold a token are written, so a
        short session's state is small; `from_bytes` restores the empty ones as zeros."""
        held = self.held
        tensors = {name: t.detach().cpu().contiguous() for name, t in self._tensors().items()}
        tensors["keys"] = tensors["keys"][:, :, :, :held].contiguous()
        tensors["values"] = tensors["values"][:, :, :, :held].contiguous()
        return save_tensors(tensors, metadata={"format": _FORMAT, "window": str(self.window)})

    @classmethod
    def from_bytes(cls, data: bytes, *, device=None) -> HybridState:
        try:
            tensors = load_tensors(bytes(data))
        except (SafetensorError, ValueError, TypeError) as error:
            raise StateError(f"not a saved model state: {error}") from None
        if set(tensors) != {"conv", "ssm", "keys", "values", "seen"}:
            raise StateError(f"not a saved hybrid model state: tensors {sorted(tensors)}")
        window = _blob_window(bytes(data))
        keys, values, seen = tensors["keys"], tensors["values"], tensors["seen"]
        if keys.dim() != 5 or keys.shape != values.shape or seen.shape != (1,) or window is None:
            raise StateError("not a saved hybrid model state: keys, values and seen do not fit together")
        if keys.shape[3] != min(int(seen), window):
            raise StateError("not a saved hybrid model state: the ring does not hold the tokens it says")
        full = (*keys.shape[:3], window, keys.shape[4])
        padded_keys = torch.zeros(full, dtype=keys.dtype)
        padded_values = torch.zeros(full, dtype=values.dtype)
        padded_keys[:, :, :, : keys.shape[3]] = keys
        padded_values[:, :, :, : keys.shape[3]] = values
        return cls(tensors["conv"].to(device), tensors["ssm"].to(device), padded_keys.to(device),
                   padded_values.to(device), seen)

    def fits(self, config: GraniteHybridConfig) -> bool:
        mamba = config.mamba_config
        return (
            self.conv.shape[0] == len(config.mamba_layers)
            and self.conv.shape[2:] == mamba.conv_state_shape
            and self.ssm.shape[2:] == mamba.ssm_state_shape
            and self.keys.shape[0] == len(config.attention_layers)
            and self.keys.shape[2:] == config.kv_shape
        )


def _blob_window(data: bytes) -> int | None:
    """The ring size written in a state blob's safetensors header."""
    import json
    import struct

    try:
        (size,) = struct.unpack_from("<Q", data)
        header = json.loads(data[8 : 8 + size])
        metadata = header.get("__metadata__", {})
        return int(metadata["window"]) if metadata.get("format") == _FORMAT else None
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def ring_positions(seen: int, held: int, window: int, device=None) -> torch.Tensor:
    """The token position each of the first `held` ring slots holds, `seen` tokens in."""
    slots = torch.arange(held, device=device)
    return seen - 1 - torch.remainder(seen - 1 - slots, window)


class GraniteAttention(nn.Module):
    """Grouped-query attention with no positions over a ring of the last W keys and values."""

    def __init__(self, config: GraniteHybridConfig):
        super().__init__()
        d, self.heads, self.kv_heads, self.head_dim = (config.hidden_size, config.num_attention_heads,
                                                       config.num_key_value_heads, config.head_dim)
        self.scaling, self.window = config.attention_multiplier, config.attention_window
        bias = config.attention_bias
        self.q_proj = Linear(d, self.heads * self.head_dim, bias=bias)
        self.k_proj = Linear(d, self.kv_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(d, self.kv_heads * self.head_dim, bias=bias)
        self.o_proj = Linear(self.heads * self.head_dim, d, bias=bias)

    def _project(self, x: torch.Tensor):
        """x (b, l, d) → queries (b, heads, l, hd), keys and values (b, kv heads, l, hd)."""
        b, l, _ = x.shape
        q = self.q_proj(x).view(b, l, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, l, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, l, self.kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v

    def _attend(self, q, k, v, mask) -> torch.Tensor:
        """Softmax attention of q (b, heads, l, hd) over k, v (b, kv heads, s, hd); mask (l, s) or None."""
        # Query head h reads key/value head h // group. Grouping the queries instead of repeating the
        # keys spares a copy of the whole window per step (400 MB at Granite-1B's shape, W = 8,192).
        b, _, length, hd = q.shape
        group = self.heads // self.kv_heads
        q = q.reshape(b, self.kv_heads, group * length, hd)
        scores = (q @ k.transpose(-1, -2)) * self.scaling  # (b, kv heads, group · l, s)
        if mask is not None:
            scores = scores.unflatten(2, (group, length)).masked_fill(~mask, -math.inf).flatten(2, 3)
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        return (weights @ v).reshape(b, self.heads, length, hd)

    def forward(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, seen: int) -> torch.Tensor:
        """x (b, l, d), the tokens at positions seen … seen + l - 1; keys, values (b, kv heads, W, hd), the
        ring, updated in place. Blocks of queries attend to the ring and to their own block."""
        q, k, v = self._project(x)
        outputs = []
        for start in range(0, x.shape[1], ATTENTION_BLOCK):
            block = slice(start, start + ATTENTION_BLOCK)
            outputs.append(self._block(q[:, :, block], k[:, :, block], v[:, :, block], keys, values, seen + start))
        y = torch.cat(outputs, dim=2).transpose(1, 2).flatten(2)
        return self.o_proj(y)

    def _block(self, q, k, v, keys, values, seen: int) -> torch.Tensor:
        W, length = self.window, q.shape[2]
        held = min(seen, W)
        query = torch.arange(length, device=q.device)
        # A query at seen + i sees positions seen + i - W + 1 … seen + i: in the ring, the newer ones;
        # in its own block, those at or before it and within W.
        in_ring = ring_positions(seen, held, W, q.device)[None, :] >= (seen + query[:, None] - W + 1)
        own = (query[None, :] <= query[:, None]) & (query[None, :] > query[:, None] - W)
        mask = torch.cat([in_ring, own], dim=1)
        y = self._attend(q, torch.cat([keys[:, :, :held], k], dim=2), torch.cat([values[:, :, :held], v], dim=2), mask)
        kept = slice(max(0, length - W), length)  # only the last W of a long block stay
        slots = torch.remainder(torch.arange(seen, seen + length, device=q.device)[kept], W)
        keys[:, :, slots] = k[:, :, kept].detach().to(keys.dtype)
        values[:, :, slots] = v[:, :, kept].detach().to(values.dtype)
        return y

    def step(self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, seen: int) -> torch.Tensor:
        """x (b, d) for the token at position `seen`: it takes slot seen mod W (the token W back leaves),
        then attends to every slot that holds a token. No mask: all of them are within the window."""
        q, k, v = self._project(x[:, None])
        slot = seen % self.window
        keys[:, :, slot] = k[:, :, 0].to(keys.dtype)
        values[:, :, slot] = v[:, :, 0].to(values.dtype)
        held = min(seen + 1, self.window)
        y = self._attend(q, keys[:, :, :held].to(q.dtype), values[:, :, :held].to(q.dtype), None)
        return self.o_proj(y.flatten(1))


class SharedMLP(nn.Module):
    """SwiGLU: input_linear → (gate, up) → SiLU(gate) · up → output_linear."""

    def __init__(self, config: GraniteHybridConfig):
        super().__init__()
        self.input_linear = Linear(config.hidden_size, 2 * config.shared_intermediate_size, bias=False)
        self.output_linear = Linear(config.shared_intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.input_linear(x).chunk(2, dim=-1)
        return self.output_linear(F.silu(gate) * up)


class ExpertWeights(nn.Module):
    """The experts' matrices stacked (experts, out, in), as the checkpoints store them."""

    def __init__(self, experts: int, size_out: int, size_in: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, size_out, size_in))


class Router(nn.Module):
    def __init__(self, config: GraniteHybridConfig):
        super().__init__()
        self.layer = Linear(config.hidden_size, config.num_local_experts, bias=False)


class MixtureOfExperts(nn.Module):
    """Top-k routing (softmax over the chosen k logits), each chosen expert a SwiGLU."""

    def __init__(self, config: GraniteHybridConfig):
        super().__init__()
        self.top_k, self.experts = config.num_experts_per_tok, config.num_local_experts
        self.router = Router(config)
        self.input_linear = ExpertWeights(self.experts, 2 * config.intermediate_size, config.hidden_size)
        self.output_linear = ExpertWeights(self.experts, config.hidden_size, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        chosen_logits, chosen = self.router.layer(rows).float().topk(self.top_k, dim=-1)
        weights = torch.softmax(chosen_logits, dim=-1).to(x.dtype)  # (tokens, k)
        out = torch.zeros_like(rows)
        for expert in chosen.unique().tolist():
            token, rank = torch.where(chosen == expert)
            gate, up = F.linear(rows[token], self.input_linear.weight[expert]).chunk(2, dim=-1)
            y = F.linear(F.silu(gate) * up, self.output_linear.weight[expert])
            out.index_add_(0, token, y * weights[token, rank, None])
        return out.view_as(x)


class GraniteLayer(nn.Module):
    """x + r · mixer(norm(x)), then x + r · (moe(norm(x)) + shared_mlp(norm(x))), r = residual_multiplier."""

    def __init__(self, config: GraniteHybridConfig, kind: str):
        super().__init__()
        self.residual_multiplier = config.residual_multiplier
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.is_attention = kind in ATTENTION_TYPES
        if self.is_attention:
            self.self_attn = GraniteAttention(config)
        else:
            self.mamba = Mamba2Mixer(config.mamba_config)
        if config.num_local_experts > 0:
            self.block_sparse_moe = MixtureOfExperts(config)
        self.shared_mlp = SharedMLP(config)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        h = self.post_attention_layernorm(x)
        out = self.shared_mlp(h)
        if hasattr(self, "block_sparse_moe"):
            out = self.block_sparse_moe(h) + out
        return x + out * self.residual_multiplier

    def forward(self, x: torch.Tensor, cache: tuple, seen: int) -> torch.Tensor:
        h = self.input_layernorm(x)
        mixed = self.self_attn(h, *cache, seen) if self.is_attention else self.mamba(h, *cache)
        return self._mlp(x + mixed * self.residual_multiplier)

    def step(self, x: torch.Tensor, cache: tuple, seen: int) -> torch.Tensor:
        h = self.input_layernorm(x)
        mixed = self.self_attn.step(h, *cache, seen) if self.is_attention else self.mamba.step(h, *cache)
        return self._mlp(x + mixed * self.residual_multiplier)


class GraniteHybridLM(nn.Module):
    """Embedding (× embedding_multiplier) → Granite layers → RMSNorm → LM head (÷ logits_scaling),
    with MambaLM's interface; the state is a `HybridState`."""

    embedding_parameter = "embeddings.weight"
    hf_renames = {"embeddings.weight": "embed_tokens.weight"}  # our name → transformers'

    def __init__(self, config: GraniteHybridConfig, *, attention_window: int | None = None):
        super().__init__()
        if attention_window is not None:
            config = replace(config, attention_window=attention_window)
        self.config = config
        self.embeddings = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(GraniteLayer(config, kind) for kind in config.layer_types)
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embeddings.weight
        self._cache_index = []  # per layer: its index among the mamba layers or among the attention layers
        counts = {True: 0, False: 0}
        for layer in self.layers:
            self._cache_index.append(counts[layer.is_attention])
            counts[layer.is_attention] += 1
        if self.embeddings.weight.device.type != "meta":  # a loader builds on meta, then reads weights
            self.reset_parameters()

    def after_loading(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.embeddings.weight

    def new_state(self, batch: int = 1) -> HybridState:
        weight = self.norm.weight  # not the embedding's: a quantized one is int8 (as in MambaLM)
        return HybridState.zeros(self.config, batch, device=weight.device, dtype=weight.dtype)

    def _cache(self, state: HybridState, layer: int) -> tuple:
        index = self._cache_index[layer]
        if self.layers[layer].is_attention:
            return state.keys[index], state.values[index]
        return state.conv[index], state.ssm[index]

    def forward(self, ids: torch.Tensor, state: HybridState | None = None, *, last_only: bool = False):
        """Read ids (b, l) after `state` → (logits fp32 (b, l, vocab), or (b, vocab) with `last_only`;
        the state, advanced in place)."""
        if ids.dim() != 2:
            raise ValueError(f"ids must be (batch, length), not {tuple(ids.shape)}")
        if ids.shape[1] == 0:
            raise ValueError("ids must hold at least one token")
        state = self.new_state(ids.shape[0]) if state is None else state
        seen = int(state.seen)
        x = self.embeddings(ids) * self.config.embedding_multiplier
        for index, layer in enumerate(self.layers):
            x = layer(x, self._cache(state, index), seen)
        state.seen += ids.shape[1]
        if last_only:
            x = x[:, -1]
        return self._logits(x), state

    def step(self, token: torch.Tensor | int, state: HybridState, logit_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Read one token per batch row (b,) → logits (b, vocab); advances `state` in place.
        ``logit_bias``: added to the logits.

        On the CPU, one fp32 token without autograd runs the fused C step (kernels/cpu_step.c's
        `granite_step`, not for experts) where it can be built; the loop below is its twin."""
        if isinstance(token, int):
            token = torch.tensor([token], device=self.embeddings.weight.device)
        fused = dispatch.fused_step(self.fused_kind, self.fused_dims(), state.conv, state.ssm, state.keys, state.values)
        if fused is not None:
            weights = self.fused_weights()
            logits = None if weights is None else fused(weights, token, state, logit_bias)
            if logits is not None:
                state.seen += 1
                return logits
        seen = int(state.seen)
        x = self.embeddings(token) * self.config.embedding_multiplier
        for index, layer in enumerate(self.layers):
            x = layer.step(x, self._cache(state, index), seen)
        state.seen += 1
        return with_bias(self._logits(x), logit_bias)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return (self.lm_head(self.norm(x)) / self.config.logits_scaling).float()

    fused_kind = "granite"  # which fused CPU step reads this model (dispatch.fused_step)

    def fused_dims(self) -> dict:
        """The dimensions the fused step is built for (kernels/cpu_step.py's `granite_step`)."""
        c, m = self.config, self.config.mamba_config
        dt_min, dt_max = m.time_step_limit
        return dict(d=c.hidden_size, d_in=m.intermediate_size, n=m.state_size, k=m.conv_kernel, heads=m.num_heads,
                    head_dim=m.head_dim, groups=m.n_groups, vocab=c.vocab_size, layers=c.num_hidden_layers,
                    eps=c.rms_norm_eps, dt_min=dt_min, dt_max=dt_max, att_heads=c.num_attention_heads,
                    kv_heads=c.num_key_value_heads, att_dim=c.head_dim, window=c.attention_window,
                    mlp=c.shared_intermediate_size, embedding_multiplier=c.embedding_multiplier,
                    residual_multiplier=c.residual_multiplier, logits_scaling=c.logits_scaling,
                    attention_multiplier=c.attention_multiplier)

    def fused_weights(self) -> list[torch.Tensor | None] | None:
        """Every tensor the fused step reads, flat, in kernels/cpu_step.py's GRANITE_LAYER order per
        layer (None for the slots of the other kind of layer) and then MAMBA_TAIL; None for a model
        with experts, or a layer the step cannot read."""
        if self.config.num_local_experts > 0:
            return None
        none_linear = [None, None, None]
        weights: list[torch.Tensor | None] = []
        try:
            for layer in self._modules["layers"]:
                modules = layer._modules
                weights.append(modules["input_layernorm"]._parameters["weight"])
                if layer.is_attention:
                    attention = modules["self_attn"]._modules
                    weights += none_linear + [None] * 6 + none_linear
                    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                        weights += attention[name].fused_tensors()
                else:
                    mixer = modules["mamba"]
                    parts, own = mixer._modules, mixer._parameters
                    conv = parts["conv1d"]._parameters
                    weights += (*parts["in_proj"].fused_tensors(), conv["weight"], conv.get("bias"), own["dt_bias"],
                                own["A_log"], own["D"], parts["norm"]._parameters["weight"],
                                *parts["out_proj"].fused_tensors())
                    weights += none_linear * 4
                mlp = modules["shared_mlp"]._modules
                weights += (modules["post_attention_layernorm"]._parameters["weight"],
                            *mlp["input_linear"].fused_tensors(), *mlp["output_linear"].fused_tensors())
            modules = self._modules
            return weights + [*modules["embeddings"].fused_tensors(), modules["norm"]._parameters["weight"],
                              *modules["lm_head"].fused_tensors()]
        except (AttributeError, KeyError):  # a layer the fused step does not know
            return None

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random weights as transformers initialises them (normal matrices; Mamba's A, D, Δ bias)."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (Linear, Embedding)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, ExpertWeights):
                nn.init.normal_(module.weight, std=std)
        for layer in self.layers:
            if not layer.is_attention:
                layer.mamba.init_weights(self.config.mamba_config)
