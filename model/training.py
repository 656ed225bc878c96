"""Mamba-2's forward pass for training: the same weights and numbers as `Mamba2LM.forward`,
shaped for a batch of whole windows read from an empty state.

`Mamba2LM.forward` serves decoding too: it continues from a given state and leaves the new one
behind, so it carries a convolution window and a start state through every layer, and its SSD
scan (mamba2.ssd_scan) builds each chunk's decays with a masked cumulative sum over a
(chunk × chunk) grid per head and contracts four operands in one einsum. Training reads windows
from scratch and needs neither state, so here:

  * the causal convolution is one padded depthwise conv1d (no state window to carry);
  * within a chunk, C Bᵀ is one batched matmul per group (shared by its heads), the decays are
    exp of differences of one cumulative sum (exact enough: a chunk sums at most `chunk` steps),
    and the masked scores times x is a second batched matmul;
  * between chunks only the chunk-end states pass on, each chunk's start state a decayed sum of
    the chunk-end states before it: one small (chunks × chunks) matmul per head, no loop;
  * no start state, and no last state is kept.

A Granite-4.0-H hybrid (granite.py: Mamba-2 layers, a few attention layers, an MLP after each)
trains through the same pieces: its Mamba-2 mixers through `mixer_forward`, its attention layers
as one causal (banded, beyond the window) attention over the window read (`attention_from_zero`).

`tests/model/test_model_training.py` holds `forward` to `Mamba2LM.forward` and to
`GraniteHybridLM.forward` (logits and gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Mamba2Config
from .granite import GraniteAttention, GraniteHybridConfig, GraniteHybridLM
from .mamba2 import Mamba2LM, Mamba2Mixer

# Tokens per chunk of the training scan. The work inside a chunk grows with its square, the
# loop between chunks with the number of chunks; 64 is the fastest of 32/64/128/256 measured
# here on the CPU (`infitool-edit bench train` reports the one it ran with).
TRAINING_CHUNK = 64


def causal_conv_silu_from_zero(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """SiLU(causal depthwise conv of x (b, l, c)) with zeros before the window; weight (c, 1, k).

    One depthwise conv1d padded on both sides, cut to the first l outputs: measured here a third
    faster (forward and backward) than k shifted multiply-adds, whose slices each cost a
    zero-filled gradient the size of the input."""
    k, length = weight.shape[-1], x.shape[1]
    out = F.conv1d(x.transpose(1, 2), weight, bias, padding=k - 1, groups=weight.shape[0])[..., :length]
    return F.silu(out.transpose(1, 2))


def segment_sums(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): [i, j] = x[j+1] + … + x[i] for j ≤ i (0 on the diagonal), -inf
    above it. Summed inside each segment (a masked cumulative sum), not as a difference of two
    running totals, so a long run of decays loses no precision (mamba_ssm's ``segsum``)."""
    length = x.shape[-1]
    repeated = x[..., None, :].expand(*x.shape, length).transpose(-1, -2)  # [i, j] = x[i]
    ones = torch.ones(length, length, dtype=torch.bool, device=x.device)
    sums = torch.cumsum(repeated.masked_fill(~ones.tril(-1), 0), dim=-2)
    return sums.masked_fill(~ones.tril(), float("-inf"))


def ssd_from_zero(
    x: torch.Tensor, a: torch.Tensor, B: torch.Tensor, C: torch.Tensor, chunk: int
) -> torch.Tensor:
    """The Mamba-2 scan from a zero state: y (b, l, h, p) without the skip.

    x: (b, l, h, p), already times Δ; a: (b, l, h) = Δ·A (≤ 0); B, C: (b, l, g, n), one row per
    group of h / g heads (not repeated per head)."""
    batch, length, heads, p = x.shape
    groups, n = B.shape[-2:]
    per_group = heads // groups
    pad = (-length) % chunk
    if pad:  # a = 0 and x = 0 at the end leave every earlier output as it was
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        a = F.pad(a, (0, 0, 0, pad))
    c = x.shape[1] // chunk
    # (b, c, g, [heads of the group,] chunk, ·): heads of a group next to each other, as
    # repeat_interleave lays them out in Mamba2Mixer.
    x = x.reshape(batch, c, chunk, groups, per_group, p).permute(0, 1, 3, 4, 2, 5)
    a = a.reshape(batch, c, chunk, groups, per_group).permute(0, 1, 3, 4, 2)
    B = B.reshape(batch, c, chunk, groups, n).transpose(2, 3)  # (b, c, g, L, n)
    C = C.reshape(batch, c, chunk, groups, n).transpose(2, 3)
    a_cumulative = torch.cumsum(a, dim=-1)  # (b, c, g, hg, L)

    # 1. Within each chunk: y_i = Σ_{j ≤ i} (C_i · B_j) exp(a_{j+1} + … + a_i) x_j.
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=x.device).tril()
    gaps = a_cumulative[..., :, None] - a_cumulative[..., None, :]  # (b, c, g, hg, L, L)
    decay = gaps.masked_fill(~causal, float("-inf")).exp()
    scores = (C @ B.transpose(-1, -2))[:, :, :, None] * decay  # C Bᵀ once per group
    y = scores @ x  # (b, c, g, hg, L, p)

    # 2. What each chunk adds to the state at its end, (n, p) per head.
    to_end = torch.exp(a_cumulative[..., -1:] - a_cumulative)  # (b, c, g, hg, L)
    chunk_states = (B[:, :, :, None] * to_end[..., None]).transpose(-1, -2) @ x  # (b, c, g, hg, n, p)

    # 3. The state at the start of each chunk, and what it adds to that chunk's outputs: chunk k
    # starts from Σ_{j<k} exp(A_{j+1} + … + A_{k-1}) · chunk_states[j], A the chunks' total decays,
    # as one (c × c) matmul per head rather than a loop over chunks (whose slices each cost a
    # zero-filled gradient the size of all the states: a tenth of a training step, measured).
    chunk_total = a_cumulative[..., -1].permute(0, 2, 3, 1)  # (b, g, hg, c)
    between = torch.exp(segment_sums(F.pad(chunk_total, (1, 0))))[..., :c, 1:]  # (b, g, hg, c, c)
    flat_states = chunk_states.permute(0, 2, 3, 1, 4, 5).flatten(-2)  # (b, g, hg, c, n·p)
    starts = (between @ flat_states).unflatten(-1, (n, p)).permute(0, 3, 1, 2, 4, 5)  # (b, c, g, hg, n, p)
    from_start = torch.exp(a_cumulative)[..., None]  # (b, c, g, hg, L, 1)
    y = y + (C[:, :, :, None] * from_start) @ starts

    y = y.permute(0, 1, 4, 2, 3, 5).reshape(batch, c * chunk, heads, p)
    return y[:, :length]


def mixer_forward(mixer: Mamba2Mixer, hidden: torch.Tensor, chunk: int) -> torch.Tensor:
    """`Mamba2Mixer.forward` from an empty state, through the faster pieces above."""
    z, xBC, dt = mixer._split(mixer.in_proj(hidden))
    xBC = causal_conv_silu_from_zero(xBC, mixer.conv1d.weight, mixer.conv1d.bias)
    x, B, C = xBC.split([mixer.d_in, mixer.groups * mixer.n, mixer.groups * mixer.n], dim=-1)
    x = x.unflatten(-1, (mixer.heads, mixer.head_dim))
    B = B.unflatten(-1, (mixer.groups, mixer.n))
    C = C.unflatten(-1, (mixer.groups, mixer.n))
    dt = F.softplus(dt + mixer.dt_bias).clamp(mixer.dt_min, mixer.dt_max)
    A = -torch.exp(mixer.A_log)
    y = ssd_from_zero(x * dt[..., None], dt * A, B, C, chunk)
    y = torch.addcmul(y, x, mixer.D[:, None]).flatten(-2)  # + D x
    return mixer.out_proj(mixer.norm(y, z))


def attention_from_zero(attention: GraniteAttention, hidden: torch.Tensor) -> torch.Tensor:
    """`GraniteAttention.forward` from an empty ring: each token attends to itself and the
    window - 1 tokens before it, in one fused attention call (no ring to fill)."""
    q, k, v = attention._project(hidden)
    length = hidden.shape[1]
    mask = None
    if length > attention.window:
        at = torch.arange(length, device=hidden.device)
        mask = (at[None, :] <= at[:, None]) & (at[None, :] > at[:, None] - attention.window)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None,
                                       scale=attention.scaling, enable_gqa=attention.heads != attention.kv_heads)
    return attention.o_proj(y.transpose(1, 2).flatten(2))


def forward(model: Mamba2LM | GraniteHybridLM, ids: torch.Tensor, chunk: int = TRAINING_CHUNK) -> torch.Tensor:
    """Logits (b, l, vocab) for ids (b, l) read from the empty state: `model(ids)[0]`, faster.

    fp32 weights; under autocast the matmuls run in the autocast dtype as they would anywhere."""
    if isinstance(model, GraniteHybridLM):
        x = model.embeddings(ids) * model.config.embedding_multiplier
        for layer in model.layers:
            h = layer.input_layernorm(x)
            mixed = attention_from_zero(layer.self_attn, h) if layer.is_attention else mixer_forward(layer.mamba, h, chunk)
            x = layer._mlp(x + mixed * layer.residual_multiplier)
        return model._logits(x)
    x = model.embeddings(ids)
    for block in model.layers:
        x = x + mixer_forward(block.mixer, block.norm(x), chunk)
    return model._logits(x)


class TrainingLM(nn.Module):
    """The module training wraps (in DDP when there are several processes): the language model
    as its only parameters, `forward` the masked next-byte loss."""

    def __init__(self, model: Mamba2LM | GraniteHybridLM, chunk: int = TRAINING_CHUNK):
        super().__init__()
        if not isinstance(model.config, (Mamba2Config, GraniteHybridConfig)):
            raise TypeError("the training forward is Mamba-2's and Granite-4.0-H's")
        self.lm = model
        self.chunk = chunk

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (b, l+1); mask (b, l+1) bool, True where a byte is learnt (its own prediction from
        the bytes before it), None for every byte after the first. → (summed loss, count)."""
        logits = forward(self.lm, ids[:, :-1], self.chunk)
        targets = ids[:, 1:]
        losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
        if mask is None:
            return losses.sum(), torch.tensor(losses.numel(), dtype=torch.float32, device=losses.device)
        weights = mask[:, 1:].flatten().to(losses.dtype)
        return (losses * weights).sum(), weights.sum()
