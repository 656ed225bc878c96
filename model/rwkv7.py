"""RWKV-7 "Goose" (Peng et al., 2025), in plain PyTorch beside the Mamba files.

A pure recurrent LM like Mamba: a fixed-size state, `forward` (a whole sequence, chunk by
chunk) and `step` (one token, the state updated in place) side by side, the same numbers.
The layout and the tensor names are flash-linear-attention's `RWKV7ForCausalLM` (the
`fla-hub/rwkv7-*` folders, `model_type` "rwkv7"), so those checkpoints load one to one.

Each layer is a time mix (the "attention") then a channel mix (the FFN), both pre-norm
(LayerNorm with bias) residual; layer 0 also normalises the embeddings (`pre_norm`).
Both mixes read the previous token's normed input through a token shift (x_{t-1} - x_t).

Time mix, per head of K = head_dim channels (the glossary: code name, paper symbol):
  r, k, v     receptance, key, value (b, l, h, K)
  w           the per-channel decay, w = exp(-e^{-1/2} σ(w_lora(x)))  ∈ (0.545, 1)
  a           the in-context learning rate σ(a_lora(x)) ∈ (0, 1)
  kk          the removal key: k · k_k, normalised per head
  S           the state, a (K, V) matrix per head (fla's layout: rows are key channels)

  S_t = diag(w_t) S_{t-1} + β_t (α_t S_{t-1}) + k_t v_tᵀ,   α = -kk, β = kk · a
  o_t = r_t S_t     then GroupNorm per head, + (r·k·r_k summed per head) v, times the gate g

(the delta rule with a decay: α S reads what the state holds under kk, β writes it back
scaled by -a, so a key's old value is partly replaced). Layer 0's v is mixed into every
later layer's v ("value residual"). The channel mix is key → ReLU² → value.

`forward` runs the recurrence chunk by chunk (`wkv_chunked`): within a chunk of c tokens the
α S reads of all steps are one triangular solve, so there is no Python loop over tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from infitool_edit.kernels import dispatch
from .mamba import Embedding, Linear, with_bias
from .state import State

# exp(-1/2): w = exp(-e^{-1/2} σ(·)); RWKV-LM writes it as exp(-exp(-softplus(-x) - 0.5)).
DECAY_SCALE = math.exp(-0.5)
# Tokens per block of the chunked recurrence: the (b, h, c, c, K) pairwise decays stay small,
# and decays over a chunk (≥ 0.545^c) stay far from fp32's underflow.
WKV_CHUNK = 16


@dataclass
class RWKV7Config:
    """The shape of an RWKV-7 model, with the field names (and defaults) of fla's `RWKV7Config`."""

    vocab_size: int = 32000
    hidden_size: int = 2048
    num_hidden_layers: int = 24
    head_dim: int = 64  # K: channels per head; num_heads = hidden_size // head_dim
    hidden_ratio: float | None = 4
    intermediate_size: int | None = None  # the channel mix's width; None: hidden_ratio · d rounded up to 32
    decay_low_rank_dim: int | None = 64
    gate_low_rank_dim: int | None = 128
    a_low_rank_dim: int | None = 64
    v_low_rank_dim: int | None = 16
    norm_first: bool = True  # layer 0 normalises the embeddings (RWKV-LM's ln0)
    norm_bias: bool = True
    norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    pad_token_id: int | None = None
    value_dim: list[int] | None = field(default=None)

    model_type = "rwkv7"

    def __post_init__(self) -> None:
        d = self.hidden_size
        if self.head_dim < 1 or d % self.head_dim:
            raise ValueError(f"hidden_size ({d}) must be a multiple of head_dim ({self.head_dim})")
        # fla's RWKV7Attention: a low-rank size left as null is derived from the width.
        factor = self.head_dim / 64
        if self.decay_low_rank_dim is None:
            self.decay_low_rank_dim = max(32, int(round((2.5 * d**0.5) * factor / 32) * 32))
        if self.gate_low_rank_dim is None:
            self.gate_low_rank_dim = max(32, int(round((5 * d**0.5) / 32) * 32))
        if self.a_low_rank_dim is None:
            self.a_low_rank_dim = max(32, int(round((2.5 * d**0.5) * factor / 32) * 32))
        if self.v_low_rank_dim is None:
            self.v_low_rank_dim = max(32, int(round((1.7 * d**0.5) * factor / 32) * 32))
        if self.intermediate_size is None:
            width = int(d * (self.hidden_ratio if self.hidden_ratio is not None else 4))
            self.intermediate_size = 32 * ((width + 31) // 32)
        if self.value_dim is None:
            self.value_dim = [d] * self.num_hidden_layers
        elif isinstance(self.value_dim, int):
            self.value_dim = [self.value_dim] * self.num_hidden_layers
        if any(width != d for width in self.value_dim):
            raise ValueError(f"value_dim {self.value_dim} other than hidden_size ({d}) is not supported")

    @property
    def num_heads(self) -> int:
        return self.hidden_size // self.head_dim

    @property
    def conv_state_shape(self) -> tuple[int, ...]:
        """One layer's token-shift state: the last normed input of the time mix and of the channel mix."""
        return (2, self.hidden_size)

    @property
    def ssm_state_shape(self) -> tuple[int, ...]:
        """One layer's wkv state: a (K, V) matrix per head."""
        return (self.num_heads, self.head_dim, self.head_dim)

    def to_hf_dict(self) -> dict:
        return {
            "model_type": self.model_type,
            "architectures": ["RWKV7ForCausalLM"],
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "head_dim": self.head_dim,
            "num_heads": self.num_heads,
            "hidden_ratio": self.hidden_ratio,
            "intermediate_size": self.intermediate_size,
            "decay_low_rank_dim": self.decay_low_rank_dim,
            "gate_low_rank_dim": self.gate_low_rank_dim,
            "a_low_rank_dim": self.a_low_rank_dim,
            "v_low_rank_dim": self.v_low_rank_dim,
            "hidden_act": "sqrelu",
            "norm_first": self.norm_first,
            "norm_bias": self.norm_bias,
            "norm_eps": self.norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "initializer_range": self.initializer_range,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "value_dim": list(self.value_dim),
            "attn": None,
            "fuse_norm": False,
        }

    @classmethod
    def from_hf_dict(cls, values: dict) -> RWKV7Config:
        """Read a `config.json` key by key as fla's `RWKV7Config` does (its defaults where a key is
        absent). Raises ValueError naming the first field that this implementation cannot run."""
        head_dim, num_heads = values.get("head_dim", 64), values.get("num_heads")
        hidden = values.get("hidden_size", 2048)
        for name, value in (("hidden_size", hidden), ("num_hidden_layers", values.get("num_hidden_layers", 24)),
                            ("vocab_size", values.get("vocab_size", 32000))):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if head_dim is None and num_heads is not None:
            head_dim = hidden // num_heads
        if not isinstance(head_dim, int) or head_dim < 1:
            raise ValueError(f"head_dim must be a positive integer, not {head_dim!r}")
        if values.get("hidden_act", "sqrelu") != "sqrelu":
            raise ValueError(f"hidden_act {values['hidden_act']!r} is not supported (only sqrelu)")
        if values.get("attn") is not None:
            raise ValueError("hybrid RWKV-7 with attention layers (attn) is not supported")
        names = ("vocab_size", "hidden_size", "num_hidden_layers", "hidden_ratio", "intermediate_size",
                 "decay_low_rank_dim", "gate_low_rank_dim", "a_low_rank_dim", "v_low_rank_dim", "norm_first",
                 "norm_bias", "norm_eps", "tie_word_embeddings", "initializer_range", "bos_token_id",
                 "eos_token_id", "pad_token_id", "value_dim")
        return cls(head_dim=head_dim, **{name: values[name] for name in names if name in values})


class LoRA(nn.Module):
    """x → act(x A) B (+ bias): fla's `LoRA`, whose `lora.0` / `lora.2` names the checkpoints use."""

    def __init__(self, size_in: int, size_out: int, rank: int, activation: str | None, bias: bool = True):
        super().__init__()
        act = {None: nn.Identity(), "tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}[activation]
        self.lora = nn.Sequential(Linear(size_in, rank, bias=False), act, Linear(rank, size_out, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lora(x)


def wkv_step(
    r: torch.Tensor, w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
    S: torch.Tensor,
) -> torch.Tensor:
    """One step of the recurrence for one token: all (b, h, K) but S (b, h, K, V), updated in place.

    S ← diag(w) S + b (a S) + k vᵀ;  returns r S (b, h, V). The plain form a fused step twins."""
    read = torch.einsum("bhk,bhkv->bhv", a, S)  # what S holds under a, before this step
    S.mul_(w[..., None]).add_(b[..., None] * read[..., None, :]).add_(k[..., None] * v[..., None, :])
    return torch.einsum("bhk,bhkv->bhv", r, S)


def wkv_chunked(
    r: torch.Tensor, log_w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
    S: torch.Tensor, chunk: int = WKV_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same recurrence over a sequence, chunk by chunk: (outputs (b, h, l, V), the last state).

    r, log_w, k, a, b: (b, h, l, K); v: (b, h, l, V); S: (b, h, K, V), the state before them.
    Within a chunk, with c_t = Σ_{s≤t} log w_s and Γ_t = diag(exp c_t), unrolling gives

      S_t = Γ_t S_0 + Σ_{s≤t} Γ_t Γ_s⁻¹ (b_s y_s + k_s v_sᵀ),      y_s = a_s S_{s-1}  (a row)

    so the rows y of a chunk solve one unit lower-triangular system (I - A_ab) Y = a Γ S_0 + A_ak V,
    and the outputs r_t S_t and the chunk's last state are matrix products: no loop over tokens."""
    outputs = []
    for start in range(0, r.shape[2], chunk):
        part = slice(start, start + chunk)
        o, S = _wkv_one_chunk(r[:, :, part], log_w[:, :, part], k[:, :, part], v[:, :, part],
                              a[:, :, part], b[:, :, part], S)
        outputs.append(o)
    return torch.cat(outputs, dim=2), S


def _wkv_one_chunk(r, log_w, k, v, a, b, S):
    length = r.shape[2]
    c = torch.cumsum(log_w, dim=2)  # c_t, inclusive (b, h, c, K)
    c_before = c - log_w  # c_{t-1}
    # The pairwise decays Γ_t/Γ_s = exp(c_t - c_s) factor into exp(c_t) · exp(-c_s), so every
    # (t, s) table below is one matrix product of (c, K) by (K, c), with no (c, c, K) tensor. It is
    # safe in fp32 because log w ≥ -e^{-1/2} by construction: over a chunk of 16, exp(-c) ≤ e^{9.7}
    # (and e^{38.8} at 64), far inside fp32's range, and each product keeps its relative precision.
    # The entries from the future (s > t, or s ≥ t for the reads) are cut by tril, not multiplied
    # away, so even a large one never meets a zero.
    grow, shrink = torch.exp(c), torch.exp(-c)
    a_before, r_now = a * torch.exp(c_before), r * grow
    b_back, k_back = (b * shrink).transpose(-1, -2), (k * shrink).transpose(-1, -2)
    A_ab = (a_before @ b_back).tril(-1)  # [t, s]: a_t Γ_{t-1}/Γ_s b_s, s < t
    A_ak = (a_before @ k_back).tril(-1)
    A_rb = (r_now @ b_back).tril()  # [t, s]: r_t Γ_t/Γ_s b_s, s ≤ t
    A_rk = (r_now @ k_back).tril()
    # (I - A_ab) Y = (a Γ_{t-1}) S_0 + A_ak V: the reads of the state before each step.
    rhs = a_before @ S + A_ak @ v
    eye = torch.eye(length, device=r.device, dtype=r.dtype)
    Y = torch.linalg.solve_triangular(eye - A_ab, rhs, upper=False, unitriangular=True)
    o = r_now @ S + A_rb @ Y + A_rk @ v
    to_end = torch.exp(c[:, :, -1:] - c)  # Γ_last/Γ_s (b, h, c, K)
    S = torch.exp(c[:, :, -1])[..., None] * S + (b * to_end).transpose(-1, -2) @ Y + (k * to_end).transpose(-1, -2) @ v
    return o, S


class RWKV7TimeMix(nn.Module):
    """Token shift → r, w, k, v, a, g → the wkv recurrence → GroupNorm, bonus, gate → o_proj."""

    def __init__(self, config: RWKV7Config, layer: int):
        super().__init__()
        d, self.heads, self.K = config.hidden_size, config.num_heads, config.head_dim
        self.first = layer == 0
        for name in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"):
            setattr(self, name, nn.Parameter(torch.zeros(1, 1, d)))
        self.k_k = nn.Parameter(torch.zeros(d))
        self.k_a = nn.Parameter(torch.zeros(d))
        self.r_k = nn.Parameter(torch.zeros(self.heads, self.K))
        self.r_proj = Linear(d, d, bias=False)
        self.k_proj = Linear(d, d, bias=False)
        self.v_proj = Linear(d, d, bias=False)
        self.o_proj = Linear(d, d, bias=False)
        self.w_lora = LoRA(d, d, config.decay_low_rank_dim, "tanh")
        if not self.first:
            self.v_lora = LoRA(d, d, config.v_low_rank_dim, None)
        self.a_lora = LoRA(d, d, config.a_low_rank_dim, None)
        self.g_lora = LoRA(d, d, config.gate_low_rank_dim, "sigmoid", bias=False)
        self.g_norm = nn.GroupNorm(self.heads, d, eps=self.K * config.norm_eps, affine=True)

    def _inputs(self, x: torch.Tensor, previous: torch.Tensor, v_first: torch.Tensor | None):
        """x and the previous token's x, (..., d) → r, log w, k, v, a, b (..., h, K), g (..., d), v_first.

        The same arithmetic for a sequence (..., = b, l) and for one token (..., = b)."""
        delta = previous - x
        xr, xw, xk, xv, xa, xg = (torch.addcmul(x, delta, m.view(-1))
                                  for m in (self.x_r, self.x_w, self.x_k, self.x_v, self.x_a, self.x_g))
        r = self.r_proj(xr)
        log_w = -DECAY_SCALE * torch.sigmoid(self.w_lora(xw))  # log of the decay
        k = self.k_proj(xk)
        v = self.v_proj(xv)
        if self.first:
            v_first = v
        else:
            v = torch.lerp(v, v_first, torch.sigmoid(self.v_lora(xv)))
        a = torch.sigmoid(self.a_lora(xa))
        g = self.g_lora(xg)
        heads = lambda t: t.unflatten(-1, (self.heads, self.K))  # noqa: E731
        kk = F.normalize(heads(k * self.k_k), dim=-1, p=2.0)
        k = k.addcmul(k * (a - 1), self.k_a)  # k · (1 + (a - 1) k_a)
        return heads(r), heads(log_w), heads(k), heads(v), heads(a), kk, g, v_first

    def _output(self, o: torch.Tensor, r, k, v, g) -> torch.Tensor:
        """o (..., h, V) → GroupNorm per head, plus the bonus (r·k·r_k) v, times g → o_proj."""
        shape = o.shape[:-2]
        normed = self.g_norm(o.flatten(-2).reshape(-1, self.heads * self.K)).reshape(*shape, -1)
        bonus = ((r * k * self.r_k).sum(-1, keepdim=True) * v).flatten(-2)
        return self.o_proj((normed + bonus) * g)

    def forward(self, x: torch.Tensor, shift: torch.Tensor, S: torch.Tensor, v_first):
        """x (b, l, d), normed; shift (b, d) the previous token's; S (b, h, K, V). Both updated in place."""
        previous = torch.cat([shift[:, None].to(x.dtype), x[:, :-1]], dim=1)
        shift.copy_(x[:, -1].detach())
        r, log_w, k, v, a, kk, g, v_first = self._inputs(x, previous, v_first)
        to_heads_first = lambda t: t.float().transpose(1, 2)  # noqa: E731  (b, h, l, ·)
        o, last = wkv_chunked(*(to_heads_first(t) for t in (r, log_w, k, v)), to_heads_first(-kk),
                              to_heads_first(kk * a), S.float())
        S.copy_(last.detach())
        return self._output(o.transpose(1, 2).to(x.dtype), r, k, v, g), v_first

    def step(self, x: torch.Tensor, shift: torch.Tensor, S: torch.Tensor, v_first):
        """x (b, d) for one token; shift (b, d) and S (b, h, K, V) updated in place."""
        previous = shift.to(x.dtype).clone()
        shift.copy_(x)
        r, log_w, k, v, a, kk, g, v_first = self._inputs(x, previous, v_first)
        o = wkv_step(r.float(), torch.exp(log_w.float()), k.float(), v.float(), -kk.float(), (kk * a).float(), S)
        return self._output(o.to(x.dtype), r, k, v, g), v_first


class RWKV7ChannelMix(nn.Module):
    """Token shift → key → ReLU² → value (fla's `RWKV7FeedForward`)."""

    def __init__(self, config: RWKV7Config):
        super().__init__()
        self.x_k = nn.Parameter(torch.zeros(config.hidden_size))
        self.key = Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.value = Linear(config.intermediate_size, config.hidden_size, bias=False)

    def _mix(self, x: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.value(torch.relu(self.key(torch.addcmul(x, previous - x, self.x_k))).square())

    def forward(self, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        previous = torch.cat([shift[:, None].to(x.dtype), x[:, :-1]], dim=1)
        shift.copy_(x[:, -1].detach())
        return self._mix(x, previous)

    def step(self, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        previous = shift.to(x.dtype).clone()
        shift.copy_(x)
        return self._mix(x, previous)


class RWKV7Block(nn.Module):
    """[pre_norm →] x + time_mix(attn_norm(x)), then x + channel_mix(ffn_norm(x))."""

    def __init__(self, config: RWKV7Config, layer: int):
        super().__init__()
        d, eps, bias = config.hidden_size, config.norm_eps, config.norm_bias
        if config.norm_first and layer == 0:
            self.pre_norm = nn.LayerNorm(d, eps=eps, bias=bias)
        self.attn_norm = nn.LayerNorm(d, eps=eps, bias=bias)
        self.attn = RWKV7TimeMix(config, layer)
        self.ffn_norm = nn.LayerNorm(d, eps=eps, bias=bias)
        self.ffn = RWKV7ChannelMix(config)

    def forward(self, x, shift, S, v_first):
        """x (b, l, d); shift (b, 2, d) the two token shifts; S (b, h, K, V)."""
        if hasattr(self, "pre_norm"):
            x = self.pre_norm(x)
        mixed, v_first = self.attn(self.attn_norm(x), shift[:, 0], S, v_first)
        x = x + mixed
        return x + self.ffn(self.ffn_norm(x), shift[:, 1]), v_first

    def step(self, x, shift, S, v_first):
        if hasattr(self, "pre_norm"):
            x = self.pre_norm(x)
        mixed, v_first = self.attn.step(self.attn_norm(x), shift[:, 0], S, v_first)
        x = x + mixed
        return x + self.ffn.step(self.ffn_norm(x), shift[:, 1]), v_first


class RWKV7LM(nn.Module):
    """Embedding → RWKV-7 blocks → LayerNorm → LM head, with MambaLM's interface: `forward(ids,
    state, last_only=)`, `step(token, state)`, `new_state(batch)`; the state is a `State` whose
    `conv` holds the token shifts (layers, b, 2, d) and `ssm` the wkv matrices (layers, b, h, K, V)."""

    def __init__(self, config: RWKV7Config, *, attention_window: int | None = None):
        """`attention_window` is accepted for the loaders' sake and ignored: RWKV-7 has no attention."""
        super().__init__()
        self.config = config
        self.embeddings = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(RWKV7Block(config, layer) for layer in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embeddings.weight
        if self.embeddings.weight.device.type != "meta":  # a loader builds on meta, then reads weights
            self.reset_parameters()

    embedding_parameter = "embeddings.weight"  # for hf_folder.py: fla's names are ours under `model.`

    def after_loading(self) -> None:
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.embeddings.weight

    @staticmethod
    def migrate_tensors(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Folders converted by older fla versions keep the six mixing coefficients as one `attn.x_x`
        (6, d); fla splits it into x_r … x_g when it loads them, and so do we."""
        for name in [name for name in stored if name.endswith(".attn.x_x")]:
            stacked, prefix = stored.pop(name), name.removesuffix("x_x")
            for row, part in enumerate(("x_r", "x_w", "x_k", "x_v", "x_a", "x_g")):
                stored[prefix + part] = stacked[row].reshape(1, 1, -1)
        return stored

    def new_state(self, batch: int = 1) -> State:
        weight = self.norm.weight  # not the embedding's: a quantized one is int8 (as in MambaLM)
        return State.zeros(self.config, batch, device=weight.device, dtype=weight.dtype)

    def forward(
        self, ids: torch.Tensor, state: State | None = None, *, last_only: bool = False
    ) -> tuple[torch.Tensor, State]:
        """Read ids (b, l) after `state` (default: from scratch) → (logits (b, l, vocab) fp32, or
        (b, vocab) with `last_only`, and the state, advanced in place)."""
        if ids.dim() != 2:
            raise ValueError(f"ids must be (batch, length), not {tuple(ids.shape)}")
        if ids.shape[1] == 0:
            raise ValueError("ids must hold at least one token")
        state = self.new_state(ids.shape[0]) if state is None else state
        x, v_first = self.embeddings(ids), None
        for layer, block in enumerate(self.layers):
            x, v_first = block(x, state.conv[layer], state.ssm[layer], v_first)
        if last_only:
            x = x[:, -1]
        return self.lm_head(self.norm(x)).float(), state

    def step(self, token: torch.Tensor | int, state: State, logit_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Read one token per batch row (b,) → logits (b, vocab); advances `state` in place.
        ``logit_bias``: added to the logits, inside the fused step where it runs (`MambaLM.step`)."""
        if isinstance(token, int):
            token = torch.tensor([token], device=self.embeddings.weight.device)
        fused = dispatch.fused_step(self.fused_kind, self.fused_dims(), state.conv, state.ssm)
        if fused is not None:  # kernels/cpu_step.c's rwkv7_step; the loop below is its twin
            weights = self.fused_weights()
            logits = None if weights is None else fused(weights, token, state.conv, state.ssm, logit_bias)
            if logits is not None:
                return logits
        x, v_first = self.embeddings(token), None
        for layer, block in enumerate(self.layers):
            x, v_first = block.step(x, state.conv[layer], state.ssm[layer], v_first)
        return with_bias(self.lm_head(self.norm(x)).float(), logit_bias)

    fused_kind = "rwkv7"  # which fused CPU step reads this model (dispatch.fused_step)

    def fused_dims(self) -> dict:
        """The dimensions the fused step is built for (kernels/cpu_step.py's `rwkv7_step`)."""
        c = self.config
        return dict(d=c.hidden_size, heads=c.num_heads, head_dim=c.head_dim, ffn=c.intermediate_size,
                    rank_w=c.decay_low_rank_dim, rank_v=c.v_low_rank_dim, rank_a=c.a_low_rank_dim,
                    rank_g=c.gate_low_rank_dim, vocab=c.vocab_size, layers=c.num_hidden_layers, eps=c.norm_eps,
                    group_eps=c.head_dim * c.norm_eps)

    def fused_weights(self) -> list[torch.Tensor | None] | None:
        """Every tensor the fused CPU step reads, flat, in kernels/cpu_step.py's RWKV7_LAYER order per
        layer and then RWKV7_TAIL; None when a layer is of a kind it cannot read. Built from the
        modules' dicts on every call, so a weight replaced between tokens is read as it is now."""

        def norm(module: nn.Module | None) -> tuple:
            if module is None:
                return None, None
            return module._parameters["weight"], module._parameters.get("bias")

        def lora(module: nn.Module | None) -> tuple:
            if module is None:
                return (None,) * 6
            layers = module._modules["lora"]._modules
            return (*layers["0"].fused_tensors(), *layers["2"].fused_tensors())

        weights: list[torch.Tensor | None] = []
        try:
            for block in self._modules["layers"]:
                blocks, attn = block._modules, block._modules["attn"]
                mix, own, ffn = attn._modules, attn._parameters, blocks["ffn"]
                weights += (*norm(blocks.get("pre_norm")), *norm(blocks["attn_norm"]),
                            *(own[name] for name in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g")),
                            *mix["r_proj"].fused_tensors(), *mix["k_proj"].fused_tensors(),
                            *mix["v_proj"].fused_tensors(), *lora(mix["w_lora"]), *lora(mix.get("v_lora")),
                            *lora(mix["a_lora"]), *lora(mix["g_lora"]), own["k_k"], own["k_a"], own["r_k"],
                            *norm(mix["g_norm"]), *mix["o_proj"].fused_tensors(), *norm(blocks["ffn_norm"]),
                            ffn._parameters["x_k"], *ffn._modules["key"].fused_tensors(),
                            *ffn._modules["value"].fused_tensors())
            modules = self._modules
            return weights + [*modules["embeddings"].fused_tensors(), *norm(modules["norm"]),
                              *modules["lm_head"].fused_tensors()]
        except (AttributeError, KeyError):  # a layer the fused step does not know
            return None

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random weights that give a working (not a trained) model: RWKV-LM's initial values for the
        mixing coefficients and decays, normal matrices. Checkpoints overwrite all of it."""
        config, d = self.config, self.config.hidden_size
        for module in self.modules():
            if isinstance(module, (Linear, Embedding)):
                nn.init.normal_(module.weight, std=config.initializer_range)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        layers = config.num_hidden_layers
        channel = torch.arange(d, dtype=torch.float32)
        for index, block in enumerate(self.layers):
            depth = 1.0 - index / layers
            attn = block.attn
            for name, power in (("x_r", 0.2), ("x_w", 0.9), ("x_k", 0.7), ("x_v", 0.7), ("x_a", 0.9), ("x_g", 0.2)):
                getattr(attn, name).copy_((1.0 - (channel / d) ** (power * depth)).view(1, 1, d))
            attn.k_k.fill_(0.71)
            attn.k_a.fill_(1.02)
            attn.r_k.fill_(-0.04)
            attn.w_lora.lora[2].bias.copy_(-6 + 6 * (channel / max(d - 1, 1)) ** 1.5 + 0.5)
            attn.a_lora.lora[2].bias.fill_(-0.19)
            if not attn.first:
                attn.v_lora.lora[2].bias.fill_(0.73)
            block.ffn.x_k.copy_(1.0 - (channel / d) ** (depth**4))
