"""The selective scan, written as its specification: plain PyTorch, one time step after another.

This is the twin the Triton kernel in ``selective_scan.py`` is tested against, and the path
CPU tensors take. It follows mamba_ssm's ``selective_scan_ref`` (real ``A``, input-dependent
``B`` and ``C``), in the paper's symbols:

    Δ_t  = softplus(delta_t + delta_bias)      (or without the softplus)
    x_t  = exp(Δ_t A) * x_{t-1} + Δ_t B_t u_t  the state, (d, n) per batch row
    y_t  = C_t · x_t + D u_t
    out  = y * silu(z)                          when z is given

Shapes: u, delta, z (b, d, l); A (d, n); B, C (b, n, l), or (b, g, n, l) where the d channels
are split into g equal groups that share a B and C; D, delta_bias (d,). Everything is computed
in float32 and the output is cast back to u's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def expand_groups(BC: torch.Tensor, d: int) -> torch.Tensor:
    """(b, n, l) or (b, g, n, l) -> (b, d, n, l): the B or C row each channel reads."""
    if BC.dim() == 3:
        return BC.unsqueeze(1).expand(-1, d, -1, -1)
    groups = BC.shape[1]
    if d % groups:
        raise ValueError(f"{d} channels do not split into {groups} groups")
    return BC.repeat_interleave(d // groups, dim=1)


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Returns ``out`` (b, d, l), and the last state (b, d, n) when ``return_last_state``."""
    dtype_in = u.dtype
    u, delta, A = u.float(), delta.float(), A.float()
    batch, d, length = u.shape
    B = expand_groups(B.float(), d)
    C = expand_groups(C.float(), d)
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)

    x = u.new_zeros(batch, d, A.shape[1])
    ys = []
    for t in range(length):
        decay = torch.exp(delta[:, :, t, None] * A)
        x = decay * x + (delta[:, :, t] * u[:, :, t])[:, :, None] * B[:, :, :, t]
        ys.append((x * C[:, :, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else u.new_zeros(batch, d, 0)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    out = y.to(dtype_in)
    return (out, x) if return_last_state else out
