"""Mamba, the selective state-space model (Gu & Dao, 2023), in plain PyTorch.

Each module has `forward` (a whole sequence: prompts and training) and `step`
(one token, recurrent, updating the state in place) side by side; both compute
the same numbers, and tests hold them to it.

Glossary (code name: paper symbol, meaning)
  b       batch size
  l       sequence length
  d       hidden_size, the width of the residual stream (d_model)
  d_in    intermediate_size = expand * d, the channels the SSM runs over (ED)
  n       state_size, the SSM state per channel (N)
  k       conv_kernel, the width of the causal depthwise convolution
  R       time_step_rank, the rank of the Δ projection
  dt      Δ, the input-dependent step size (b, l, d_in)
  A       A = -exp(A_log), the (diagonal) state matrix (d_in, n)
  B, C    B and C, input-dependent input and output matrices (b, l, n)
  D       D, the skip connection (d_in,)
  h       the hidden state of the SSM (b, d_in, n)

The selective scan, per channel and state entry:
  h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t        y_t = C_t · h_t + D x_t

Parameter names follow HuggingFace's `MambaForCausalLM` (minus its `backbone.`
prefix), so checkpoints map onto this model one to one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from infitool_edit.kernels import cpu_step, dispatch

from .config import MambaConfig
from .state import State

# Tokens per block of the PyTorch scan: bounds the (b, chunk, d_in, n) temporaries.
SCAN_CHUNK = 32
# exp(ΔA) is computed as 2^(Δ · A·log2 e): PyTorch's CPU exp2 is about three times faster than
# its exp and as exact, and the scan takes one per (token, channel, state entry).
LOG2_E = 1.4426950408889634


def causal_conv_silu(x: torch.Tensor, conv1d: nn.Conv1d, conv_state: torch.Tensor) -> torch.Tensor:
    """SiLU(causal depthwise conv1d of x (b, l, c)) → (b, l, c), continuing from conv_state (b, c, k):
    the last k-1 inputs before x are its left context. conv_state is advanced in place."""
    k = conv_state.shape[-1]
    window = torch.cat([conv_state[..., 1:], x.transpose(1, 2).to(conv_state.dtype)], dim=-1)  # (b, c, k-1+l)
    conv_state.copy_(window[..., -k:].detach())  # the carried state is not differentiated through
    x = F.silu(F.conv1d(window.to(x.dtype), conv1d.weight, conv1d.bias, groups=conv1d.groups))
    return x.transpose(1, 2)


def causal_conv_silu_step(x: torch.Tensor, conv1d: nn.Conv1d, conv_state: torch.Tensor) -> torch.Tensor:
    """`causal_conv_silu` for one token x (b, c): slides x into conv_state (b, c, k) in place."""
    window = torch.cat([conv_state[..., 1:], x.unsqueeze(-1)], dim=-1)  # (b, c, k)
    conv_state.copy_(window)
    x = torch.sum(window * conv1d.weight[:, 0], dim=-1)
    return F.silu(x if conv1d.bias is None else x + conv1d.bias)


def inverse_softplus_time_steps(count: int, config) -> torch.Tensor:
    """softplus⁻¹ of `count` steps Δ drawn log-uniformly from [time_step_min, time_step_max] (at
    least time_step_floor): the Δ bias Mamba and Mamba-2 start from."""
    log_min, log_max = math.log(config.time_step_min), math.log(config.time_step_max)
    dt = torch.exp(torch.rand(count) * (log_max - log_min) + log_min).clamp(min=config.time_step_floor)
    return dt + torch.log(-torch.expm1(-dt))


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    """x / rms(x) over the last dimension, in fp32, times `weight` if there is one."""
    if x.dtype == torch.float32:
        return F.rms_norm(x, x.shape[-1:], weight, eps)  # one fused op: decoding runs ~100 per token
    normed = F.rms_norm(x.float(), x.shape[-1:], None, eps).to(x.dtype)
    return normed if weight is None else normed * weight


def with_bias(logits: torch.Tensor, logit_bias: torch.Tensor | None) -> torch.Tensor:
    """The plain twin of the fused step's logit bias: one fp32 add per element, as cpu_step.c's
    head_part does it, so both give the same bits."""
    return logits if logit_bias is None else logits + logit_bias.to(logits.device)


class Linear(nn.Module):
    """y = x W + b, with W stored (in_features, out_features): the transpose of nn.Linear.

    Decoding one token is a matrix-vector product that streams every weight once;
    with this layout it streams W row by row into contiguous outputs, which the CPU
    does markedly faster than the dot products of the (out, in) layout (the model
    benchmark measures it). Checkpoints keep HuggingFace's (out, in) layout.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(x, self.weight)
        return y if self.bias is None else y + self.bias

    def fused_tensors(self) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        """(weight, bias, scales) as the fused CPU step reads a linear layer: fp32 (in, out), no scales."""
        return self._parameters["weight"], self._parameters.get("bias"), None


class Embedding(nn.Module):
    """Token vectors, stored as the columns of a (d, vocab) matrix: the layout of the LM
    head's `Linear`, so a tied head and embedding share one matrix and the head stays fast."""

    def __init__(self, vocab_size: int, hidden_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden_size, vocab_size))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight.t())

    def fused_tensors(self) -> tuple[torch.Tensor, None]:
        """(vectors, scales) as the fused CPU step reads them: fp32 columns, no scales."""
        return self._parameters["weight"], None


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t over a sequence; return (C_t · h_t, last h).

    x, dt: (b, l, d_in); B, C: (b, l, n); A: (d_in, n); h: (b, d_in, n) the state before x.
    The recurrence is sequential in t; everything else is batched over a chunk
    of SCAN_CHUNK tokens at a time, so temporaries stay small enough for the cache.
    """
    ys, A2 = [], A * LOG2_E
    for start in range(0, x.shape[1], SCAN_CHUNK):
        chunk = slice(start, start + SCAN_CHUNK)
        dt_c = dt[:, chunk, :, None]  # (b, t, d_in, 1)
        decay = (dt_c * A2).exp2_()  # exp(ΔA): (b, t, d_in, n)
        states = (dt_c * x[:, chunk, :, None]) * B[:, chunk, None, :]  # ΔBx, then h_t: (b, t, d_in, n)
        if torch.is_grad_enabled():
            # Autograd cannot differentiate through a buffer rewritten in place: build a new tensor,
            # starting from a copy of h, which the caller overwrites afterwards.
            h, hs = h.clone(), []
            for t in range(states.shape[1]):
                h = torch.addcmul(states[:, t], decay[:, t], h)
                hs.append(h)
            states = torch.stack(hs, dim=1)
        else:
            previous = h
            for t in range(states.shape[1]):
                previous = states[:, t].addcmul_(decay[:, t], previous)
            h = states[:, -1]
        ys.append(torch.einsum("btdn,btn->btd", states, C[:, chunk]))
    return torch.cat(ys, dim=1), h


class MambaMixer(nn.Module):
    """in_proj → causal conv → SiLU → selective SSM, gated by SiLU(z) → out_proj."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        d, d_in, n, R = config.hidden_size, config.intermediate_size, config.state_size, config.time_step_rank
        self.d_in, self.n, self.R = d_in, n, R
        self.falcon, self.mixer_rms_eps = config.falcon, config.mixer_rms_eps
        self.in_proj = Linear(d, 2 * d_in, bias=config.use_bias)  # x and the gate z
        self.conv1d = nn.Conv1d(d_in, d_in, config.conv_kernel, groups=d_in, bias=config.use_conv_bias)
        self.x_proj = Linear(d_in, R + 2 * n, bias=False)  # Δ (low rank), B, C
        self.dt_proj = Linear(R, d_in, bias=True)
        self.A_log = nn.Parameter(torch.empty(d_in, n))
        self.D = nn.Parameter(torch.empty(d_in))
        self.out_proj = Linear(d_in, d, bias=config.use_bias)
        self._A_cache: tuple[tuple[int, int], torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def init_weights(self, config: MambaConfig) -> None:
        """S4D-real A, D = 1, Δ in [dt_min, dt_max], out_proj scaled down by the depth."""
        self.conv1d.reset_parameters()
        A = torch.arange(1, self.n + 1, dtype=torch.float32).expand(self.d_in, -1)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)
        nn.init.uniform_(self.dt_proj.weight, -(self.R**-0.5), self.R**-0.5)
        self.dt_proj.bias.copy_(inverse_softplus_time_steps(self.d_in, config))
        nn.init.normal_(self.out_proj.weight, std=config.initializer_range / math.sqrt(config.num_hidden_layers))

    def _A(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, A·log2 e), A = -exp(A_log) in fp32.

        Decoding reuses them from step to step: A_log only changes through an in-place write
        (which bumps its version) or a new tensor (a new address), and either rebuilds them.
        With autograd on they are rebuilt every call so gradients reach A_log."""
        key = (self.A_log._version, self.A_log.data_ptr())
        if torch.is_grad_enabled() or self._A_cache is None or self._A_cache[0] != key:
            A = -torch.exp(self.A_log.float())
            self._A_cache = (key, A, A * LOG2_E)
        return self._A_cache[1], self._A_cache[2]

    def _dt_B_C(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The input-dependent SSM parameters for x (..., d_in): Δ before its softplus (..., d_in),
        B and C (..., n)."""
        dt, B, C = self.x_proj(x).split([self.R, self.n, self.n], dim=-1)
        if self.falcon:
            dt = rms_norm(dt, None, self.mixer_rms_eps)
            B = rms_norm(B, None, self.mixer_rms_eps)
            C = rms_norm(C, None, self.mixer_rms_eps)
        return self.dt_proj(dt), B, C

    def forward(self, hidden: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor) -> torch.Tensor:
        """hidden (b, l, d) → (b, l, d), continuing from (and then overwriting) the given states."""
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (b, l, d_in) each
        A, A2 = self._A()
        backend = dispatch.backend_for(x, conv_state, ssm_state, self.conv1d.weight, self.conv1d.bias, self.D, A2)
        if backend == "c":
            # The same numbers through fused C loops (kernels/cpu_step.c): no temporaries the
            # size of the prompt times the state, a third less time per prompt token.
            x = cpu_step.causal_conv_silu(x, self.conv1d.weight, self.conv1d.bias, conv_state)
            dt, B, C = self._dt_B_C(x)
            return self.out_proj(cpu_step.selective_scan(x, dt, A2, B, C, self.D, z, ssm_state))
        x = causal_conv_silu(x, self.conv1d, conv_state)  # (b, l, d_in)
        dt, B, C = self._dt_B_C(x)
        dt = F.softplus(dt)
        if backend in dispatch.GPU_KERNELS and not ssm_state.any():
            y, h = dispatch.selective_scan_fn(
                x.transpose(1, 2), dt.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2), return_last_state=True
            )
            y = y.transpose(1, 2)
        else:
            y, h = selective_scan(x.float(), dt.float(), A, B.float(), C.float(), ssm_state.float())
        y = (y + x * self.D).to(x.dtype) * F.silu(z)
        # The carried state is not differentiated through (training truncates there).
        ssm_state.copy_(h.detach())
        return self.out_proj(y)

    def step(self, hidden: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor) -> torch.Tensor:
        """hidden (b, d) for one token → (b, d); updates conv_state and ssm_state in place."""
        x, z = self.in_proj(hidden).chunk(2, dim=-1)  # (b, d_in) each
        x = causal_conv_silu_step(x, self.conv1d, conv_state)
        dt, B, C = self._dt_B_C(x)
        dt = F.softplus(dt)
        A, A2 = self._A()
        if dispatch.backend_for(hidden) in dispatch.GPU_KERNELS:
            y = dispatch.selective_state_update(ssm_state, x, dt, A, B, C)
        else:
            # h ← exp(ΔA) h + Δ B x, in place; then y = C · h
            decay = torch.exp2(dt.unsqueeze(-1) * A2)  # exp(ΔA): (b, d_in, n)
            ssm_state.mul_(decay).addcmul_((dt * x).unsqueeze(-1), B.unsqueeze(1))
            y = torch.bmm(ssm_state, C.unsqueeze(-1).to(ssm_state.dtype)).squeeze(-1).to(x.dtype)
        y = torch.addcmul(y, x, self.D) * F.silu(z)
        return self.out_proj(y)


class MambaBlock(nn.Module):
    """Pre-norm residual block: x + mixer(norm(x)). The mixer is Mamba's, or Mamba-2's."""

    def __init__(self, config, mixer_class: type[nn.Module] = MambaMixer):
        super().__init__()
        self.residual_in_fp32 = config.residual_in_fp32
        self.norm = RMSNorm(config.hidden_size, config.layer_norm_epsilon)
        self.mixer = mixer_class(config)

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() if self.residual_in_fp32 else x

    def forward(self, x: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor) -> torch.Tensor:
        mixed = self.mixer(self.norm(x.to(self.norm.weight.dtype)), conv_state, ssm_state)
        return self._residual(x) + mixed

    def step(self, x: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor) -> torch.Tensor:
        mixed = self.mixer.step(self.norm(x.to(self.norm.weight.dtype)), conv_state, ssm_state)
        return self._residual(x) + mixed


class MambaLM(nn.Module):
    """Embedding → blocks → final RMS norm → LM head (tied to the embedding by default)."""

    mixer_class: type[nn.Module] = MambaMixer  # Mamba2LM puts Mamba-2's mixer in the same frame

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(MambaBlock(config, self.mixer_class) for _ in range(config.num_hidden_layers))
        self.norm_f = RMSNorm(config.hidden_size, config.layer_norm_epsilon)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embeddings.weight
        self.reset_parameters()

    def new_state(self, batch: int = 1) -> State:
        """The zero state (nothing read yet), on this model's device."""
        weight = self.norm_f.weight  # not the embedding's: a quantized one is int8
        return State.zeros(self.config, batch, device=weight.device, dtype=weight.dtype)

    def forward(
        self, ids: torch.Tensor, state: State | None = None, *, last_only: bool = False
    ) -> tuple[torch.Tensor, State]:
        """Read ids (b, l) after `state` (default: from scratch) → (logits, state).

        logits are (b, l, vocab) fp32, or (b, vocab) for the last token only with
        `last_only` (what a prompt needs; it skips the LM head for the rest).
        A given state is advanced in place and returned; snapshot it first
        with `state.copy()` to keep the old one.
        """
        if ids.dim() != 2:
            raise ValueError(f"ids must be (batch, length), not {tuple(ids.shape)}")
        if ids.shape[1] == 0:
            raise ValueError("ids must hold at least one token")
        state = self.new_state(ids.shape[0]) if state is None else state
        x = self.embeddings(ids)  # (b, l, d)
        for layer, block in enumerate(self.layers):
            x = block(x, state.conv[layer], state.ssm[layer])
        if last_only:
            x = x[:, -1]
        return self._logits(x), state

    def step(self, token: torch.Tensor | int, state: State, logit_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Read one token per batch row (b,) (or a plain int) → logits (b, vocab); advances `state` in place.
        ``logit_bias`` (vocab,): added to the logits (the grammar mask's row: 0 or -inf per token).

        On the CPU, one fp32 token without autograd runs the fused C step (kernels/cpu_step.c)
        where it can be built, the bias added inside it; the PyTorch loop below is its twin, and the
        path everywhere else."""
        if isinstance(token, int):
            token = torch.tensor([token], device=self.embeddings.weight.device)
        fused = dispatch.fused_step(self.fused_kind, self.fused_dims(), state.conv, state.ssm)
        if fused is not None:
            weights = self.fused_weights()
            logits = None if weights is None else fused(weights, token, state.conv, state.ssm, logit_bias)
            if logits is not None:
                return logits
        x = self.embeddings(token)  # (b, d)
        for layer, block in enumerate(self.layers):
            x = block.step(x, state.conv[layer], state.ssm[layer])
        return with_bias(self._logits(x), logit_bias)

    fused_kind = "mamba"  # which fused CPU step reads this model (dispatch.fused_step)

    def fused_dims(self) -> dict:
        """The dimensions the fused step is built for (kernels/cpu_step.py's `mamba_step`)."""
        c = self.config
        return dict(d=c.hidden_size, d_in=c.intermediate_size, n=c.state_size, k=c.conv_kernel,
                    rank=c.time_step_rank, vocab=c.vocab_size, layers=c.num_hidden_layers, falcon=c.falcon,
                    eps=c.layer_norm_epsilon, mixer_eps=c.mixer_rms_eps)

    def fused_weights(self) -> list[torch.Tensor | None] | None:
        """Every tensor the fused CPU step reads, as one flat list in the order of
        kernels/cpu_step.py's MAMBA_LAYER (per layer) and MAMBA_TAIL; None when a layer is of a
        kind it cannot read (one without `fused_tensors`).

        The kernel gets tensors, never modules, so kernels/ does not depend on model/. Built on
        every call from the modules' dicts (tens of microseconds): a layer or weight replaced
        between tokens is read as it is now."""
        weights: list[torch.Tensor | None] = []
        try:
            for block in self._modules["layers"]:
                mixer = block._modules["mixer"]
                linears = mixer._modules
                conv = linears["conv1d"]._parameters
                weights += (block._modules["norm"]._parameters["weight"], *linears["in_proj"].fused_tensors(),
                            conv["weight"], conv.get("bias"), *linears["x_proj"].fused_tensors(),
                            *linears["dt_proj"].fused_tensors(), mixer._A()[1], mixer._parameters["D"],
                            *linears["out_proj"].fused_tensors())
            modules = self._modules
            return weights + [*modules["embeddings"].fused_tensors(), modules["norm_f"]._parameters["weight"],
                              *modules["lm_head"].fused_tensors()]
        except (AttributeError, KeyError):  # a layer the fused step does not know
            return None

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_f(x.to(self.norm_f.weight.dtype))
        return self.lm_head(x).float()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh weights as Mamba (or Mamba-2) initialises them: the linear layers and the
        embedding here, then what is particular to each mixer (`init_weights`)."""
        config = self.config
        for module in self.modules():
            if isinstance(module, Linear):
                nn.init.normal_(module.weight, std=config.initializer_range)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, Embedding):
                nn.init.normal_(module.weight, std=config.initializer_range)
        for block in self.layers:
            block.mixer.init_weights(config)
