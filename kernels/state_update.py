"""One decoding step of the selective SSM, updating the state in place: kernel and wrapper.

Laid out like mamba_ssm's ``ops/triton/selective_state_update.py``; its plain twin,
``selective_state_update_ref``, is in ``state_update_ref.py`` and re-exported here. For each
batch row b and channel d, with Δ = softplus(dt + dt_bias) (or without the softplus):

    state[b, d, :] = exp(Δ A[d, :]) * state[b, d, :] + Δ B[b, :] x[b, d]
    out[b, d]      = state[b, d, :] · C[b, :] + D[d] x[b, d]      (times silu(z[b, d]) if z)

Shapes: state (b, d, n) float32 (or the model's dtype), x, dt, z (b, d), A (d, n), B, C (b, n),
D, dt_bias (d,). The kernel has one fixed configuration: autotuning would run it several times
on the same state, and an in-place update must run exactly once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .launch import on_device_of
# The twin lives in its own module so that the CPU path imports without triton.
from .state_update_ref import check_shapes, selective_state_update_ref  # noqa: F401


@triton.jit
def _softplus(x):
    return tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _selective_state_update_kernel(
    state_ptr, x_ptr, dt_ptr, dt_bias_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, out_ptr,
    d,
    stride_state_b, stride_state_d, stride_state_n,
    stride_x_b, stride_x_d,
    stride_dt_b, stride_dt_d,
    stride_A_d, stride_A_n,
    stride_B_b, stride_B_n,
    stride_C_b, stride_C_n,
    stride_z_b, stride_z_d,
    stride_out_b, stride_out_d,
    N: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    HAS_DT_BIAS: tl.constexpr, DT_SOFTPLUS: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
):
    offs_d = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    batch = tl.program_id(1).to(tl.int64)
    offs_n = tl.arange(0, BLOCK_N)
    d_mask = offs_d < d
    n_mask = offs_n < N
    dn_mask = d_mask[:, None] & n_mask[None, :]

    state_ptrs = (state_ptr + batch * stride_state_b + offs_d[:, None] * stride_state_d
                  + offs_n[None, :] * stride_state_n)
    state = tl.load(state_ptrs, mask=dn_mask, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + batch * stride_x_b + offs_d * stride_x_d, mask=d_mask, other=0.0).to(tl.float32)
    dt = tl.load(dt_ptr + batch * stride_dt_b + offs_d * stride_dt_d, mask=d_mask, other=0.0).to(tl.float32)
    if HAS_DT_BIAS:
        dt += tl.load(dt_bias_ptr + offs_d, mask=d_mask, other=0.0).to(tl.float32)
    if DT_SOFTPLUS:
        dt = _softplus(dt)
    A = tl.load(A_ptr + offs_d[:, None] * stride_A_d + offs_n[None, :] * stride_A_n,
                mask=dn_mask, other=0.0).to(tl.float32)
    B = tl.load(B_ptr + batch * stride_B_b + offs_n * stride_B_n, mask=n_mask, other=0.0).to(tl.float32)
    C = tl.load(C_ptr + batch * stride_C_b + offs_n * stride_C_n, mask=n_mask, other=0.0).to(tl.float32)

    state = state * tl.exp(A * dt[:, None]) + B[None, :] * (dt * x)[:, None]
    tl.store(state_ptrs, state.to(state_ptr.dtype.element_ty), mask=dn_mask)

    out = tl.sum(state * C[None, :], axis=1)
    if HAS_D:
        out += x * tl.load(D_ptr + offs_d, mask=d_mask, other=0.0).to(tl.float32)
    if HAS_Z:
        z = tl.load(z_ptr + batch * stride_z_b + offs_d * stride_z_d, mask=d_mask, other=0.0).to(tl.float32)
        out *= z * tl.sigmoid(z)
    tl.store(out_ptr + batch * stride_out_b + offs_d * stride_out_d,
             out.to(out_ptr.dtype.element_ty), mask=d_mask)


def _fixed_config(n: int) -> tuple[int, int]:
    """(BLOCK_D, num_warps): about 4K state elements per program, like mamba_ssm's table."""
    block_n = triton.next_power_of_2(n)
    if block_n <= 16:
        return 32, 4
    if block_n <= 32:
        return 16, 4
    if block_n <= 64:
        return 8, 4
    return 4, 4


def selective_state_update(
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
    """Advances ``state`` by one step in place and returns ``out`` (b, d) in x's dtype."""
    check_shapes(state, x, dt, A, B, C, D, z, dt_bias)
    batch, d, n = state.shape
    out = torch.empty_like(x)
    block_d, num_warps = _fixed_config(n)
    z_strides = z.stride() if z is not None else (0, 0)
    grid = (triton.cdiv(d, block_d), batch)
    with on_device_of(state):
        _selective_state_update_kernel[grid](
            state, x, dt, dt_bias, A, B, C, D, z, out,
            d,
            *state.stride(), *x.stride(), *dt.stride(), *A.stride(), *B.stride(), *C.stride(),
            *z_strides, *out.stride(),
            N=n, BLOCK_N=triton.next_power_of_2(n), BLOCK_D=block_d,
            HAS_DT_BIAS=dt_bias is not None, DT_SOFTPLUS=dt_softplus,
            HAS_D=D is not None, HAS_Z=z is not None,
            num_warps=num_warps,
        )
    return out
