"""One decoding step of the selective SSM in plain PyTorch: the twin of ``state_update.py``.

For each batch row b and channel d, with Δ = softplus(dt + dt_bias) (or without the softplus):

    state[b, d, :] = exp(Δ A[d, :]) * state[b, d, :] + Δ B[b, :] x[b, d]
    out[b, d]      = state[b, d, :] · C[b, :] + D[d] x[b, d]      (times silu(z[b, d]) if z)

Shapes: state (b, d, n), x, dt, z (b, d), A (d, n), B, C (b, n), D, dt_bias (d,). Computed in
float32; the state is updated in place, in its own dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_shapes(state, x, dt, A, B, C, D, z, dt_bias) -> None:
    """Raises ValueError naming the first argument whose shape does not fit the state's."""
    batch, d, n = state.shape
    expected = [("x", x, (batch, d)), ("dt", dt, (batch, d)), ("A", A, (d, n)),
                ("B", B, (batch, n)), ("C", C, (batch, n)), ("D", D, (d,)),
                ("z", z, (batch, d)), ("dt_bias", dt_bias, (d,))]
    for name, tensor, shape in expected:
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"state update: {name} has shape {tuple(tensor.shape)}, expected {shape}")


def selective_state_update_ref(
    state: torch.Tensor,
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    dt_softplus: bool = False,
) -> torch.Tensor:
    """The twin: same arguments, same in-place update of ``state``, in plain PyTorch."""
    check_shapes(state, x, dt, A, B, C, D, z, dt_bias)
    dt = dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if dt_softplus:
        dt = F.softplus(dt)
    decay = torch.exp(dt[:, :, None] * A.float())
    drive = (dt * x.float())[:, :, None] * B.float()[:, None, :]
    new_state = state.float() * decay + drive
    state.copy_(new_state)
    out = (new_state * C.float()[:, None, :]).sum(-1)
    if D is not None:
        out = out + x.float() * D.float()
    if z is not None:
        out = out * F.silu(z.float())
    return out.to(x.dtype)
