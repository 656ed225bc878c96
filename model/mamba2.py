"""Mamba-2 (Dao & Gu, 2024, "Transformers are SSMs"), in plain PyTorch beside Mamba in mamba.py.

The same frame as Mamba (embedding, pre-norm residual blocks, final norm, LM head,
`forward` and `step` side by side) with Mamba-2's mixer. What changes in the mixer:

  * one input projection gives the gate z, the conv input xBC (x, B and C together) and Δ;
  * the state of each of h heads is a (p, n) matrix; its decay is one scalar per head and
    step, exp(Δ A) with A a scalar per head, so a chunk of steps is a masked matrix product
    (the "state space duality", SSD), which `ssd_scan` computes chunk by chunk;
  * B and C are shared by the heads of each of g groups;
  * the output is gated and normed together, RMSNorm(y · SiLU(z)) per group, before out_proj.

Glossary (code name: paper symbol) beyond mamba.py's
  h       num_heads;   p  head_dim (h · p = d_in);   g  n_groups;   n  state_size
  a       Δ·A, the log of each step's decay (b, l, h)

Per head and step:  H_t = exp(Δ_t A) H_{t-1} + Δ_t x_t B_tᵀ   (p, n)      y_t = H_t C_t + D x_t

Parameter names follow HuggingFace's `Mamba2ForCausalLM` (minus `backbone.`), so its
checkpoints load one to one; the peer check in tests/test_model_mamba2.py holds us to it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from infitool_edit.kernels import cpu_step, dispatch

from .config import Mamba2Config
from .mamba import LOG2_E, Linear, MambaLM, causal_conv_silu, causal_conv_silu_step, inverse_softplus_time_steps


def segment_sum(a: torch.Tensor) -> torch.Tensor:
    """(..., T) → (..., T, T): out[i, j] = a[j+1] + … + a[i] for i ≥ j, and -inf above the diagonal,
    so exp(out) is the decay from step j to step i, zero where j is in i's future.

    Built from cumulative sums of masked copies rather than differences of one cumsum, which lose
    precision when the sums grow large."""
    T = a.shape[-1]
    a = a[..., None].expand(*a.shape, T)  # [..., i, j] = a[i]
    below = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device), diagonal=-1)
    sums = torch.cumsum(a.masked_fill(~below, 0), dim=-2)
    on_or_below = torch.tril(torch.ones(T, T, dtype=torch.bool, device=a.device))
    return sums.masked_fill(~on_or_below, float("-inf"))


def ssd_scan(
    x: torch.Tensor, a: torch.Tensor, B: torch.Tensor, C: torch.Tensor, h: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Mamba-2 scan of a sequence, chunk by chunk: (y without the skip, the last state).

    x: (b, l, h, p), already times Δ; a: (b, l, h) = Δ·A; B, C: (b, l, h, n), one row per head;
    h: (b, h, p, n), the state before x. Within a chunk the recurrence is a (chunk × chunk)
    masked "attention" (C Bᵀ ∘ decays) applied to x; between chunks only the states pass on.
    The padding at the end has a = 0 and x = 0, so it leaves the last state as it was."""
    batch, length, heads, _ = x.shape
    pad = (-length) % chunk
    if pad:
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        a = F.pad(a, (0, 0, 0, pad))
    blocks = x.shape[1] // chunk
    x, B, C = (t.reshape(batch, blocks, chunk, *t.shape[2:]) for t in (x, B, C))  # (b, c, l, h, ·)
    a = a.reshape(batch, blocks, chunk, heads).permute(0, 3, 1, 2)  # (b, h, c, l)
    a_cumulative = torch.cumsum(a, dim=-1)

    # 1. Within each chunk: y_i = Σ_{j ≤ i} (C_i · B_j) decay(j → i) x_j.
    decay = torch.exp(segment_sum(a))  # (b, h, c, l, s)
    y_within = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", C, B, decay, x)

    # 2. Each chunk's own contribution to the state at its end.
    to_end = torch.exp(a_cumulative[..., -1:] - a_cumulative)  # (b, h, c, l)
    chunk_states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, to_end, x)

    # 3. The state at the start of each chunk: the chunk states passed on with their decays.
    states = torch.cat([h[:, None], chunk_states], dim=1)  # (b, c+1, h, p, n)
    between = torch.exp(segment_sum(F.pad(a_cumulative[..., -1], (1, 0))))  # (b, h, c+1, c+1)
    states = torch.einsum("bhzc,bchpn->bzhpn", between, states)
    starts, last = states[:, :-1], states[:, -1]

    # 4. What each chunk's start state adds to its outputs.
    from_start = torch.exp(a_cumulative)  # (b, h, c, l)
    y_carried = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, starts, from_start)

    y = (y_within + y_carried).reshape(batch, blocks * chunk, heads, -1)
    return y[:, :length], last


CPU_SCAN_CHUNK = 64  # Mamba2Mixer.scan_chunk


class GatedRMSNorm(nn.Module):
    """RMSNorm(y · SiLU(z)) over groups of d_in / g channels, times a weight (norm after the gate)."""

    def __init__(self, size: int, groups: int, eps: float):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gated = y.float() * F.silu(z.float())
        grouped = gated.unflatten(-1, (self.groups, -1))
        normed = F.rms_norm(grouped, grouped.shape[-1:], None, self.eps).flatten(-2)
        return self.weight * normed.to(y.dtype)


class Mamba2Mixer(nn.Module):
    """in_proj → (z, xBC, Δ); causal conv + SiLU on xBC; the SSD scan per head; gated norm → out_proj."""

    def __init__(self, config: Mamba2Config):
        super().__init__()
        d, d_in = config.hidden_size, config.intermediate_size
        self.d_in, self.n, self.groups = d_in, config.state_size, config.n_groups
        self.heads, self.head_dim = config.num_heads, config.head_dim
        self.conv_dim, self.chunk = config.conv_dim, config.chunk_size
        self.dt_min, self.dt_max = config.time_step_limit
        self.in_proj = Linear(d, d_in + self.conv_dim + self.heads, bias=config.use_bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, config.conv_kernel, groups=self.conv_dim,
                                bias=config.use_conv_bias)
        self.dt_bias = nn.Parameter(torch.empty(self.heads))
        self.A_log = nn.Parameter(torch.empty(self.heads))
        self.D = nn.Parameter(torch.empty(self.heads))
        self.norm = GatedRMSNorm(d_in, config.n_groups, config.layer_norm_epsilon)
        self.out_proj = Linear(d_in, d, bias=config.use_bias)

    @torch.no_grad()
    def init_weights(self, config: Mamba2Config) -> None:
        """A = 1…h per head, D = 1, Δ in [dt_min, dt_max], out_proj scaled down by the depth."""
        self.conv1d.reset_parameters()
        self.A_log.copy_(torch.log(torch.arange(1, self.heads + 1, dtype=torch.float32)))
        self.D.fill_(1.0)
        self.dt_bias.copy_(inverse_softplus_time_steps(self.heads, config))
        nn.init.normal_(self.out_proj.weight, std=config.initializer_range / math.sqrt(config.num_hidden_layers))

    def _split(self, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """in_proj's output (..., ·) → z (..., d_in), xBC (..., conv_dim), Δ before its softplus (..., h)."""
        return projected.split([self.d_in, self.conv_dim, self.heads], dim=-1)

    def _ssm_inputs(self, xBC: torch.Tensor, dt: torch.Tensor):
        """xBC (..., conv_dim) and raw Δ (..., h) → x (..., h, p), Δ (..., h), B and C (..., g, n)
        fp32 (one row per group; `_per_head` gives each head its group's)."""
        x, B, C = xBC.float().split([self.d_in, self.groups * self.n, self.groups * self.n], dim=-1)
        x = x.unflatten(-1, (self.heads, self.head_dim))
        B, C = B.unflatten(-1, (self.groups, self.n)), C.unflatten(-1, (self.groups, self.n))
        dt = F.softplus(dt.float() + self.dt_bias.float()).clamp(self.dt_min, self.dt_max)
        return x, dt, B, C

    def _per_head(self, t: torch.Tensor) -> torch.Tensor:
        """(..., g, n) → (..., h, n): each head's group's row."""
        return t.repeat_interleave(self.heads // self.groups, dim=-2)

    def forward(self, hidden: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor) -> torch.Tensor:
        """hidden (b, l, d) → (b, l, d), continuing from (and then overwriting) the given states."""
        z, xBC, dt = self._split(self.in_proj(hidden))
        A = -torch.exp(self.A_log.float())
        if dispatch.backend_for(hidden, conv_state, ssm_state, self.conv1d.weight, self.conv1d.bias,
                                self.norm.weight) == "c":
            # The same numbers through C loops (kernels/cpu_step.c): the scan token by token with
            # each head's state in the cache, not ssd_scan's chunk products (a prompt reads in
            # ~0.7× the CPU time; docs/kernels.md), and the gated norm in one pass where PyTorch
            # takes six.
            xBC = cpu_step.causal_conv_silu(xBC, self.conv1d.weight, self.conv1d.bias, conv_state)
            x, dt, B, C = self._ssm_inputs(xBC, dt)
            y = cpu_step.mamba2_scan(x, dt, A * LOG2_E, B, C, self.D.float(), ssm_state).flatten(-2)
            return self.out_proj(cpu_step.mamba2_gate_norm(y, z, self.norm.weight, self.norm.groups, self.norm.eps))
        x, dt, B, C = self._ssm_inputs(causal_conv_silu(xBC, self.conv1d, conv_state), dt)
        y, h = ssd_scan(x * dt[..., None], dt * A, self._per_head(B), self._per_head(C), ssm_state.float(),
                        self.scan_chunk(x))
        y = (y + x * self.D.float()[:, None]).flatten(-2)  # (b, l, d_in)
        # The carried state is not differentiated through (training truncates there).
        ssm_state.copy_(h.detach())
        return self.out_proj(self.norm(y.to(hidden.dtype), z))

    def scan_chunk(self, x: torch.Tensor) -> int:
        """The SSD scan's chunk for x (where ssd_scan runs: autograd, dtypes other than fp32, or
        the C kernels off): the checkpoint's (256 in the published ones, sized for GPU
        kernels), but at most CPU_SCAN_CHUNK on the CPU. The result does not depend on the chunk
        (only fp32 rounding does); the work within a chunk grows with its square, so on a CPU a
        512-token prompt of a mamba2-130m shape reads 0.69× as long with chunks of 64 as of 256
        (1 thread, CPU time, load 6.4: 6.9 against 10.0 ms a token; 128: 7.7; 32: 6.7)."""
        return min(self.chunk, CPU_SCAN_CHUNK) if x.device.type == "cpu" else self.chunk

    def step(self, hidden: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor) -> torch.Tensor:
        """hidden (b, d) for one token → (b, d); updates conv_state and ssm_state in place."""
        z, xBC, dt = self._split(self.in_proj(hidden))
        xBC = causal_conv_silu_step(xBC, self.conv1d, conv_state)
        x, dt, B, C = self._ssm_inputs(xBC, dt)  # x (b, h, p); dt (b, h); B, C (b, g, n)
        B, C = self._per_head(B), self._per_head(C)  # (b, h, n)
        A = -torch.exp(self.A_log.float())
        # H ← exp(Δ A) H + Δ x Bᵀ, in place; then y = H C + D x
        ssm_state.mul_(torch.exp(dt * A)[..., None, None])
        ssm_state.add_((dt[..., None] * x)[..., None] * B[:, :, None, :])
        y = (ssm_state @ C[..., None]).squeeze(-1) + x * self.D.float()[:, None]
        return self.out_proj(self.norm(y.flatten(-2).to(hidden.dtype), z))


class Mamba2LM(MambaLM):
    """Mamba's LM frame around Mamba-2 mixers: `forward`, `step` and states work the same way."""

    mixer_class = Mamba2Mixer
    fused_kind = "mamba2"

    def fused_dims(self) -> dict:
        """The dimensions the fused step is built for (kernels/cpu_step.py's `mamba2_step`)."""
        c = self.config
        dt_min, dt_max = c.time_step_limit
        return dict(d=c.hidden_size, d_in=c.intermediate_size, n=c.state_size, k=c.conv_kernel, heads=c.num_heads,
                    head_dim=c.head_dim, groups=c.n_groups, vocab=c.vocab_size, layers=c.num_hidden_layers,
                    eps=c.layer_norm_epsilon, dt_min=dt_min, dt_max=dt_max)

    def fused_weights(self) -> list[torch.Tensor | None] | None:
        """Every tensor the fused CPU step reads, flat, in kernels/cpu_step.py's MAMBA2_LAYER order
        per layer and then MAMBA_TAIL; None when a layer is of a kind it cannot read."""
        weights: list[torch.Tensor | None] = []
        try:
            for block in self._modules["layers"]:
                mixer = block._modules["mixer"]
                modules, own = mixer._modules, mixer._parameters
                conv = modules["conv1d"]._parameters
                weights += (block._modules["norm"]._parameters["weight"], *modules["in_proj"].fused_tensors(),
                            conv["weight"], conv.get("bias"), own["dt_bias"], own["A_log"], own["D"],
                            modules["norm"]._parameters["weight"], *modules["out_proj"].fused_tensors())
            modules = self._modules
            return weights + [*modules["embeddings"].fused_tensors(), modules["norm_f"]._parameters["weight"],
                              *modules["lm_head"].fused_tensors()]
        except (AttributeError, KeyError):  # a layer the fused step does not know
            return None
