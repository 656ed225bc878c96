"""The selective scan as a chunked Triton kernel, forward and backward.

The specification is ``selective_scan_ref.py`` (read it first); this file computes the same
thing faster. One program owns a block of channels of one batch row and walks the sequence a
chunk at a time:

* inside a chunk every (channel, state) pair is an affine recurrence ``x_t = a_t x_{t-1} + b_t``,
  solved for all time steps at once with ``tl.associative_scan`` (composition of affine maps is
  associative);
* between chunks the state (BLOCK_D, N) is carried in registers, so memory does not grow with
  the sequence.

The backward pass walks the chunks in reverse. It recomputes each chunk's states from the state
the forward pass saved at the chunk's start, and solves the adjoint recurrence
``g_t = a_{t+1} g_{t+1} + dy_t C_t`` with a reverse associative scan. Sums over the batch, over
time or over channels are written as per-program partials and added up in PyTorch, which keeps
the kernels free of atomics (deterministic, and safe to autotune).

Under ``TRITON_INTERPRET=1`` (read by Triton when this module is imported) the kernels run on CPU
tensors; the wrappers then use one fixed configuration and touch no CUDA API.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .launch import on_device_of
from .selective_scan_ref import selective_scan_ref  # noqa: F401  (the twin, for readers and tests)

# 32 steps per associative scan: with 64 the (BLOCK_D, N, CHUNK) tiles of the backward pass
# spill registers on sm_90 (ptxas -v, N = 16); see docs/kernels.md.
DEFAULT_CHUNK = 32


def _interpreting() -> bool:
    return bool(triton.knobs.runtime.interpret)


def _configs(candidates: list[triton.Config]) -> list[triton.Config]:
    # The interpreter cannot time configurations (no GPU), and a single config skips the
    # autotuner's benchmarking altogether.
    return candidates[:1] if _interpreting() else candidates


# Candidates that compile without spills at N = 16, CHUNK = 32 on sm_90 (except the last,
# which spills a little in the backward pass and is left for the autotuner to judge).
_BLOCK_D_CONFIGS = _configs(
    [
        triton.Config({"BLOCK_D": 4}, num_warps=4),
        triton.Config({"BLOCK_D": 8}, num_warps=8),
        triton.Config({"BLOCK_D": 2}, num_warps=4),
        triton.Config({"BLOCK_D": 16}, num_warps=8),
    ]
)


@triton.jit
def _affine_combine(a_first, b_first, a_then, b_then):
    # Apply x -> a_first*x + b_first, then x -> a_then*x + b_then.
    return a_first * a_then, a_then * b_first + b_then


@triton.jit
def _softplus(x):
    # log(1 + e^x) written so that exp never overflows.
    return tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def _load_step_size(delta_ptr, bias, offs_t, t_mask, d_mask,
                    HAS_DELTA_BIAS: tl.constexpr, DELTA_SOFTPLUS: tl.constexpr, stride_l):
    """Δ for a (BLOCK_D, CHUNK) tile; returns (Δ, Δ before the softplus)."""
    raw = tl.load(delta_ptr + offs_t[None, :] * stride_l,
                  mask=d_mask[:, None] & t_mask[None, :], other=0.0).to(tl.float32)
    if HAS_DELTA_BIAS:
        raw += bias[:, None]
    dt = raw
    if DELTA_SOFTPLUS:
        dt = _softplus(raw)
    return dt, raw


@triton.autotune(configs=_BLOCK_D_CONFIGS, key=["channels_per_group", "N", "CHUNK"])
@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr,
    out_ptr, last_state_ptr, chunk_states_ptr,
    channels_per_group, length,
    stride_u_b, stride_u_d, stride_u_l,
    stride_delta_b, stride_delta_d, stride_delta_l,
    stride_A_d, stride_A_n,
    stride_B_b, stride_B_g, stride_B_n, stride_B_l,
    stride_C_b, stride_C_g, stride_C_n, stride_C_l,
    stride_z_b, stride_z_d, stride_z_l,
    stride_out_b, stride_out_d, stride_out_l,
    stride_cs_b, stride_cs_d, stride_cs_c, stride_cs_n,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr,
    DELTA_SOFTPLUS: tl.constexpr, SAVE_CHUNK_STATES: tl.constexpr,
    N: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # int64: batch * stride can pass 2**31 elements on long training batches.
    batch = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1)
    offs_in_group = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = offs_in_group < channels_per_group
    offs_d = group * channels_per_group + offs_in_group
    offs_n = tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    offs_chunk = tl.arange(0, CHUNK)

    A = tl.load(A_ptr + offs_d[:, None] * stride_A_d + offs_n[None, :] * stride_A_n,
                mask=d_mask[:, None] & n_mask[None, :], other=0.0).to(tl.float32)
    if HAS_D:
        D = tl.load(D_ptr + offs_d, mask=d_mask, other=0.0).to(tl.float32)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_DELTA_BIAS:
        bias = tl.load(delta_bias_ptr + offs_d, mask=d_mask, other=0.0).to(tl.float32)

    u_ptr += batch * stride_u_b + offs_d[:, None] * stride_u_d
    delta_ptr += batch * stride_delta_b + offs_d[:, None] * stride_delta_d
    B_ptr += batch * stride_B_b + group * stride_B_g + offs_n[:, None] * stride_B_n
    C_ptr += batch * stride_C_b + group * stride_C_g + offs_n[:, None] * stride_C_n
    if HAS_Z:
        z_ptr += batch * stride_z_b + offs_d[:, None] * stride_z_d
    out_ptr += batch * stride_out_b + offs_d[:, None] * stride_out_d
    chunk_states_ptr += batch * stride_cs_b + offs_d[:, None] * stride_cs_d + offs_n[None, :] * stride_cs_n
    dn_mask = d_mask[:, None] & n_mask[None, :]

    state = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for chunk in range(0, tl.cdiv(length, CHUNK)):
        if SAVE_CHUNK_STATES:
            tl.store(chunk_states_ptr + chunk * stride_cs_c, state, mask=dn_mask)
        offs_t = chunk * CHUNK + offs_chunk
        t_mask = offs_t < length
        dt_mask = d_mask[:, None] & t_mask[None, :]
        nt_mask = n_mask[:, None] & t_mask[None, :]
        u = tl.load(u_ptr + offs_t[None, :] * stride_u_l, mask=dt_mask, other=0.0).to(tl.float32)
        dt, _ = _load_step_size(delta_ptr, bias, offs_t, t_mask, d_mask,
                                HAS_DELTA_BIAS, DELTA_SOFTPLUS, stride_delta_l)
        B = tl.load(B_ptr + offs_t[None, :] * stride_B_l, mask=nt_mask, other=0.0).to(tl.float32)
        C = tl.load(C_ptr + offs_t[None, :] * stride_C_l, mask=nt_mask, other=0.0).to(tl.float32)

        # Steps past the end decay by 1 and add 0, so the last column holds the last state.
        decay = tl.where(t_mask[None, None, :], tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        drive = (dt * u)[:, None, :] * B[None, :, :]
        decay_since_start, drive_since_start = tl.associative_scan(
            (decay, drive), axis=2, combine_fn=_affine_combine)
        x = decay_since_start * state[:, :, None] + drive_since_start
        y = tl.sum(x * C[None, :, :], axis=1)
        state = tl.sum(tl.where(offs_chunk[None, None, :] == CHUNK - 1, x, 0.0), axis=2)

        if HAS_D:
            y += D[:, None] * u
        if HAS_Z:
            z = tl.load(z_ptr + offs_t[None, :] * stride_z_l, mask=dt_mask, other=0.0).to(tl.float32)
            y *= z * tl.sigmoid(z)
        tl.store(out_ptr + offs_t[None, :] * stride_out_l, y.to(out_ptr.dtype.element_ty), mask=dt_mask)

    # The last state is a fresh contiguous (b, d, N) float32 tensor.
    d = tl.num_programs(1) * channels_per_group
    tl.store(last_state_ptr + batch * d * N + offs_d[:, None] * N + offs_n[None, :], state,
             mask=dn_mask)


# Programs write dB/dC partial rows by block; rows a benchmarked config wrote and the chosen
# one does not must read 0 again.
@triton.autotune(configs=_BLOCK_D_CONFIGS, key=["channels_per_group", "N", "CHUNK"],
                 reset_to_zero=["dB_part_ptr", "dC_part_ptr"])
@triton.jit
def _selective_scan_bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, delta_bias_ptr,
    dout_ptr, chunk_states_ptr,
    du_ptr, ddelta_ptr, dz_ptr,
    dA_part_ptr, dD_part_ptr, dbias_part_ptr, dB_part_ptr, dC_part_ptr,
    channels_per_group, length, max_blocks,
    stride_u_b, stride_u_d, stride_u_l,
    stride_delta_b, stride_delta_d, stride_delta_l,
    stride_A_d, stride_A_n,
    stride_B_b, stride_B_g, stride_B_n, stride_B_l,
    stride_C_b, stride_C_g, stride_C_n, stride_C_l,
    stride_z_b, stride_z_d, stride_z_l,
    stride_dout_b, stride_dout_d, stride_dout_l,
    stride_cs_b, stride_cs_d, stride_cs_c, stride_cs_n,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_DELTA_BIAS: tl.constexpr,
    DELTA_SOFTPLUS: tl.constexpr,
    N: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr,
):
    # int64: batch * stride can pass 2**31 elements on long training batches.
    batch = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1)
    block = tl.program_id(2)
    n_groups = tl.num_programs(1)
    d = n_groups * channels_per_group
    offs_in_group = block * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = offs_in_group < channels_per_group
    offs_d = group * channels_per_group + offs_in_group
    offs_n = tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    offs_chunk = tl.arange(0, CHUNK)
    dn_mask = d_mask[:, None] & n_mask[None, :]

    A = tl.load(A_ptr + offs_d[:, None] * stride_A_d + offs_n[None, :] * stride_A_n,
                mask=dn_mask, other=0.0).to(tl.float32)
    D = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        D = tl.load(D_ptr + offs_d, mask=d_mask, other=0.0).to(tl.float32)
    bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_DELTA_BIAS:
        bias = tl.load(delta_bias_ptr + offs_d, mask=d_mask, other=0.0).to(tl.float32)

    # Gradients are written contiguous: du/ddelta/dz (b, d, l), partials as documented in
    # _selective_scan_bwd below.
    row = batch * d * length + offs_d[:, None] * length
    u_ptr += batch * stride_u_b + offs_d[:, None] * stride_u_d
    delta_ptr += batch * stride_delta_b + offs_d[:, None] * stride_delta_d
    B_ptr += batch * stride_B_b + group * stride_B_g + offs_n[:, None] * stride_B_n
    C_ptr += batch * stride_C_b + group * stride_C_g + offs_n[:, None] * stride_C_n
    if HAS_Z:
        z_ptr += batch * stride_z_b + offs_d[:, None] * stride_z_d
    dout_ptr += batch * stride_dout_b + offs_d[:, None] * stride_dout_d
    chunk_states_ptr += batch * stride_cs_b + offs_d[:, None] * stride_cs_d + offs_n[None, :] * stride_cs_n
    # dB and dC rows of this program in the (b, groups, max_blocks, BLOCK_N, l) partials.
    program = (batch * n_groups + group) * max_blocks + block
    dBC_part = program * BLOCK_N * length + offs_n[:, None] * length

    # carried = a_s * g_s at the first step s of the chunk after the current one.
    carried = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dA = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    n_chunks = tl.cdiv(length, CHUNK)
    for reversed_chunk in range(0, n_chunks):
        chunk = n_chunks - 1 - reversed_chunk
        offs_t = chunk * CHUNK + offs_chunk
        t_mask = offs_t < length
        dt_mask = d_mask[:, None] & t_mask[None, :]
        nt_mask = n_mask[:, None] & t_mask[None, :]
        u = tl.load(u_ptr + offs_t[None, :] * stride_u_l, mask=dt_mask, other=0.0).to(tl.float32)
        dt, dt_raw = _load_step_size(delta_ptr, bias, offs_t, t_mask, d_mask,
                                     HAS_DELTA_BIAS, DELTA_SOFTPLUS, stride_delta_l)
        B = tl.load(B_ptr + offs_t[None, :] * stride_B_l, mask=nt_mask, other=0.0).to(tl.float32)
        C = tl.load(C_ptr + offs_t[None, :] * stride_C_l, mask=nt_mask, other=0.0).to(tl.float32)
        dout = tl.load(dout_ptr + offs_t[None, :] * stride_dout_l, mask=dt_mask, other=0.0).to(tl.float32)
        start_state = tl.load(chunk_states_ptr + chunk * stride_cs_c, mask=dn_mask, other=0.0)

        # Recompute the chunk's states, exactly as the forward pass did.
        decay = tl.where(t_mask[None, None, :], tl.exp(dt[:, None, :] * A[:, :, None]), 1.0)
        drive = (dt * u)[:, None, :] * B[None, :, :]
        decay_since_start, drive_since_start = tl.associative_scan(
            (decay, drive), axis=2, combine_fn=_affine_combine)
        x = decay_since_start * start_state[:, :, None] + drive_since_start

        dy = dout
        if HAS_Z:
            z = tl.load(z_ptr + offs_t[None, :] * stride_z_l, mask=dt_mask, other=0.0).to(tl.float32)
            sig_z = tl.sigmoid(z)
            y = tl.sum(x * C[None, :, :], axis=1) + D[:, None] * u
            tl.store(dz_ptr + row + offs_t[None, :],
                     (dout * y * sig_z * (1.0 + z * (1.0 - sig_z))).to(dz_ptr.dtype.element_ty),
                     mask=dt_mask)
            dy = dout * z * sig_z
        dD += tl.sum(dy * u, axis=1)
        tl.store(dC_part_ptr + dBC_part + offs_t[None, :],
                 tl.sum(dy[:, None, :] * x, axis=0), mask=nt_mask)

        # The adjoint g_t = dL/dx_t runs backwards: g_t = a_{t+1} g_{t+1} + dy_t C_t.
        next_t = offs_t + 1
        dt_next, _ = _load_step_size(delta_ptr, bias, next_t, next_t < length, d_mask,
                                     HAS_DELTA_BIAS, DELTA_SOFTPLUS, stride_delta_l)
        decay_next = tl.exp(dt_next[:, None, :] * A[:, :, None])
        source = dy[:, None, :] * C[None, :, :]
        source += tl.where(offs_chunk[None, None, :] == CHUNK - 1, carried[:, :, None], 0.0)
        _, g = tl.associative_scan((decay_next, source), axis=2, combine_fn=_affine_combine,
                                   reverse=True)
        carried = tl.sum(tl.where(offs_chunk[None, None, :] == 0, g * decay, 0.0), axis=2)

        # a_t x_{t-1} = x_t - drive_t: the decayed previous state, without dividing by a_t.
        g_decayed = g * (x - drive)
        dA += tl.sum(g_decayed * dt[:, None, :], axis=2)
        ddt = tl.sum(g * B[None, :, :] * u[:, None, :] + g_decayed * A[:, :, None], axis=1)
        du = dy * D[:, None] + tl.sum(g * B[None, :, :], axis=1) * dt
        tl.store(dB_part_ptr + dBC_part + offs_t[None, :],
                 tl.sum(g * (dt * u)[:, None, :], axis=0), mask=nt_mask)
        if DELTA_SOFTPLUS:
            ddt = ddt * tl.sigmoid(dt_raw)
        ddt = tl.where(dt_mask, ddt, 0.0)
        dbias += tl.sum(ddt, axis=1)
        tl.store(du_ptr + row + offs_t[None, :], du.to(du_ptr.dtype.element_ty), mask=dt_mask)
        tl.store(ddelta_ptr + row + offs_t[None, :], ddt.to(ddelta_ptr.dtype.element_ty), mask=dt_mask)

    # Per-batch-row partials, contiguous: dA (b, d, N), dD and dbias (b, d).
    tl.store(dA_part_ptr + batch * d * N + offs_d[:, None] * N + offs_n[None, :], dA, mask=dn_mask)
    tl.store(dD_part_ptr + batch * d + offs_d, dD, mask=d_mask)
    tl.store(dbias_part_ptr + batch * d + offs_d, dbias, mask=d_mask)


def _as_groups(BC: torch.Tensor) -> torch.Tensor:
    """(b, n, l) -> (b, 1, n, l) view; (b, g, n, l) unchanged."""
    return BC.unsqueeze(1) if BC.dim() == 3 else BC


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> int:
    """Raises ValueError on inconsistent shapes; returns the number of groups."""
    batch, d, length = u.shape
    n = A.shape[1]
    groups = 1 if B.dim() == 3 else B.shape[1]
    expected = (batch, n, length) if B.dim() == 3 else (batch, groups, n, length)
    problems = [
        ("delta", delta.shape, u.shape),
        ("A", A.shape, (d, n)),
        ("B", B.shape, expected),
        ("C", C.shape, expected),
    ]
    if D is not None:
        problems.append(("D", D.shape, (d,)))
    if z is not None:
        problems.append(("z", z.shape, u.shape))
    if delta_bias is not None:
        problems.append(("delta_bias", delta_bias.shape, (d,)))
    for name, got, want in problems:
        if tuple(got) != tuple(want):
            raise ValueError(f"selective scan: {name} has shape {tuple(got)}, expected {tuple(want)}")
    if d % groups:
        raise ValueError(f"selective scan: {d} channels do not split into {groups} groups")
    return groups


def _grid(batch, groups, channels_per_group):
    return lambda meta: (batch, groups, triton.cdiv(channels_per_group, meta["BLOCK_D"]))


def _selective_scan_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size,
                        save_chunk_states):
    groups = _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    batch, d, length = u.shape
    n = A.shape[1]
    B4, C4 = _as_groups(B), _as_groups(C)
    out = torch.empty_like(u, memory_format=torch.contiguous_format)
    last_state = torch.empty(batch, d, n, device=u.device, dtype=torch.float32)
    n_chunks = triton.cdiv(length, chunk_size)
    chunk_states = torch.empty(batch, d, n_chunks if save_chunk_states else 1, n,
                               device=u.device, dtype=torch.float32)
    z_strides = z.stride() if z is not None else (0, 0, 0)
    if length == 0:
        last_state.zero_()
        return out, last_state, chunk_states
    with on_device_of(u):
        _selective_scan_fwd_kernel[_grid(batch, groups, d // groups)](
            u, delta, A, B4, C4, D, z, delta_bias,
            out, last_state, chunk_states,
            d // groups, length,
            *u.stride(), *delta.stride(), *A.stride(), *B4.stride(), *C4.stride(), *z_strides,
            *out.stride(), *chunk_states.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_DELTA_BIAS=delta_bias is not None,
            DELTA_SOFTPLUS=delta_softplus, SAVE_CHUNK_STATES=save_chunk_states,
            N=n, BLOCK_N=triton.next_power_of_2(n), CHUNK=chunk_size,
        )
    return out, last_state, chunk_states


def _selective_scan_bwd(dout, u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size,
                        chunk_states):
    groups = 1 if B.dim() == 3 else B.shape[1]
    batch, d, length = u.shape
    n = A.shape[1]
    B4, C4 = _as_groups(B), _as_groups(C)
    channels_per_group = d // groups
    # Each program writes its own dB/dC rows; programs per group depends on the BLOCK_D the
    # autotuner picks, so size the partials for the smallest candidate (unused rows stay 0).
    smallest_block = min(c.kwargs["BLOCK_D"] for c in _BLOCK_D_CONFIGS)
    max_blocks = triton.cdiv(channels_per_group, smallest_block)
    block_n = triton.next_power_of_2(n)
    f32 = dict(device=u.device, dtype=torch.float32)
    du = torch.empty(batch, d, length, device=u.device, dtype=u.dtype)
    ddelta = torch.empty(batch, d, length, device=u.device, dtype=delta.dtype)
    dz = torch.empty(batch, d, length, device=u.device, dtype=z.dtype) if z is not None else None
    dA_part = torch.empty(batch, d, n, **f32)
    dD_part = torch.empty(batch, d, **f32)
    dbias_part = torch.empty(batch, d, **f32)
    dB_part = torch.zeros(batch, groups, max_blocks, block_n, length, **f32)
    dC_part = torch.zeros(batch, groups, max_blocks, block_n, length, **f32)
    z_strides = z.stride() if z is not None else (0, 0, 0)
    with on_device_of(u):
        _selective_scan_bwd_kernel[_grid(batch, groups, channels_per_group)](
            u, delta, A, B4, C4, D, z, delta_bias,
            dout, chunk_states,
            du, ddelta, dz,
            dA_part, dD_part, dbias_part, dB_part, dC_part,
            channels_per_group, length, max_blocks,
            *u.stride(), *delta.stride(), *A.stride(), *B4.stride(), *C4.stride(), *z_strides,
            *dout.stride(), *chunk_states.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_DELTA_BIAS=delta_bias is not None,
            DELTA_SOFTPLUS=delta_softplus,
            N=n, BLOCK_N=block_n, CHUNK=chunk_size,
        )
    dB = dB_part.sum(2)[:, :, :n].reshape(B.shape).to(B.dtype)
    dC = dC_part.sum(2)[:, :, :n].reshape(C.shape).to(C.dtype)
    dA = dA_part.sum(0).to(A.dtype)
    dD = dD_part.sum(0).to(D.dtype) if D is not None else None
    dbias = dbias_part.sum(0).to(delta_bias.dtype) if delta_bias is not None else None
    return du, ddelta, dA, dB, dC, dD, dz, dbias


class SelectiveScanFn(torch.autograd.Function):
    """The chunked scan with its backward; the last state is returned but not differentiated."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                chunk_size):
        needs_grad = any(ctx.needs_input_grad[:8])
        out, last_state, chunk_states = _selective_scan_fwd(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_size,
            save_chunk_states=needs_grad)
        ctx.delta_softplus = delta_softplus
        ctx.chunk_size = chunk_size
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, chunk_states)
        ctx.mark_non_differentiable(last_state)
        return out, last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        u, delta, A, B, C, D, z, delta_bias, chunk_states = ctx.saved_tensors
        grads = _selective_scan_bwd(dout, u, delta, A, B, C, D, z, delta_bias,
                                    ctx.delta_softplus, ctx.chunk_size, chunk_states)
        return (*grads, None, None, None)


def selective_scan_fn(
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
    chunk_size: int = DEFAULT_CHUNK,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Same arguments and results as ``selective_scan_ref``; ``chunk_size`` (a power of two) is
    how many time steps one associative scan covers."""
    if chunk_size < 1 or chunk_size & (chunk_size - 1):
        raise ValueError(f"selective scan: chunk_size must be a power of two, not {chunk_size}")
    out, last_state = SelectiveScanFn.apply(u, delta, A, B, C, D, z, delta_bias,
                                            delta_softplus, return_last_state, chunk_size)
    return (out, last_state) if return_last_state else out
