"""GPU figures for the kernels: ours against mamba_ssm's (and the PyTorch twin), same inputs.

``gpu_figures()`` returns ``{}`` without CUDA, so callers (``infitool-edit bench model``) can
merge it unconditionally. On a GPU it first checks each kernel against its twin (a figure for a
wrong kernel is worthless), then times them with ``triton.testing.do_bench`` (median ms).
The shapes are mamba-130m's mixer: d_inner 1536, d_state 16.

Run: ``python -m infitool_edit.kernels.benchmark`` (prints one JSON object).
"""

from __future__ import annotations

import importlib
import json

import torch

from .selective_scan_ref import selective_scan_ref
from .state_update_ref import selective_state_update_ref

CHANNELS = 1536
STATE = 16
PROMPT = 2048


def _mamba_ssm(module: str):
    try:
        return importlib.import_module(f"mamba_ssm.{module}")
    except ImportError:
        return None


def _scan_inputs(batch: int, length: int, dtype: torch.dtype, requires_grad: bool):
    generator = torch.Generator(device="cuda").manual_seed(0)

    def randn(*shape, scale=1.0):
        tensor = torch.randn(*shape, device="cuda", generator=generator) * scale
        return tensor.to(dtype).requires_grad_(requires_grad)

    A = -torch.rand(CHANNELS, STATE, device="cuda", generator=generator) - 0.5
    return dict(
        u=randn(batch, CHANNELS, length), delta=randn(batch, CHANNELS, length, scale=0.5),
        A=A.requires_grad_(requires_grad), B=randn(batch, STATE, length), C=randn(batch, STATE, length),
        D=randn(CHANNELS), z=randn(batch, CHANNELS, length), delta_bias=randn(CHANNELS, scale=0.1),
    )


def _max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.float() - expected.float()).abs().max().item()


def gpu_figures() -> dict:
    """Timings (ms) and error checks of the scan and the state update; ``{}`` without CUDA."""
    if not torch.cuda.is_available():
        return {}
    from triton.testing import do_bench

    from .selective_scan import selective_scan_fn
    from .state_update import selective_state_update

    figures: dict = {"gpu": torch.cuda.get_device_name()}
    theirs_scan = _mamba_ssm("ops.selective_scan_interface")
    theirs_step = _mamba_ssm("ops.triton.selective_state_update")
    figures["mamba_ssm_available"] = theirs_scan is not None

    # Prefill: one 2,048-token prompt, forward only, and forward + backward (training).
    inputs = _scan_inputs(1, PROMPT, torch.float32, requires_grad=True)
    ours = selective_scan_fn(**inputs, delta_softplus=True)
    reference = selective_scan_ref(**inputs, delta_softplus=True)
    figures["scan_max_abs_error_vs_ref"] = _max_error(ours, reference)
    grads = torch.autograd.grad(ours.sum(), [inputs["u"], inputs["A"]])
    ref_grads = torch.autograd.grad(reference.sum(), [inputs["u"], inputs["A"]])
    figures["scan_grad_max_rel_error_vs_ref"] = max(
        _max_error(g, r) / r.abs().max().item() for g, r in zip(grads, ref_grads))

    detached = {k: v.detach() for k, v in inputs.items()}
    dout = torch.randn_like(ours)

    def forward_backward(fn):
        leaves = {k: v.detach().requires_grad_() for k, v in inputs.items()}
        return lambda: torch.autograd.grad(fn(**leaves, delta_softplus=True), list(leaves.values()), dout)

    figures["scan_fwd_ms_triton"] = do_bench(lambda: selective_scan_fn(**detached, delta_softplus=True))
    figures["scan_fwd_bwd_ms_triton"] = do_bench(forward_backward(selective_scan_fn))
    figures["scan_fwd_ms_ref"] = do_bench(lambda: selective_scan_ref(**detached, delta_softplus=True), rep=200)
    if theirs_scan is not None:
        figures["scan_fwd_ms_mamba_ssm"] = do_bench(
            lambda: theirs_scan.selective_scan_fn(**detached, delta_softplus=True))
        figures["scan_fwd_bwd_ms_mamba_ssm"] = do_bench(forward_backward(theirs_scan.selective_scan_fn))
        figures["scan_fwd_triton_vs_mamba_ssm"] = figures["scan_fwd_ms_mamba_ssm"] / figures["scan_fwd_ms_triton"]
    figures["prefill_tok_s_scan_triton"] = PROMPT / (figures["scan_fwd_ms_triton"] / 1000)

    # Decode: one token's state update, batch 1 and batch 16.
    for batch in (1, 16):
        step = _scan_inputs(batch, 1, torch.float32, requires_grad=False)
        args = dict(x=step["u"][..., 0], dt=step["delta"][..., 0], A=step["A"], B=step["B"][..., 0],
                    C=step["C"][..., 0], D=step["D"], z=step["z"][..., 0], dt_bias=step["delta_bias"],
                    dt_softplus=True)
        state = torch.randn(batch, CHANNELS, STATE, device="cuda")
        ref_state = state.clone()
        out = selective_state_update(state, **args)
        ref_out = selective_state_update_ref(ref_state, **args)
        figures[f"step_b{batch}_max_abs_error_vs_ref"] = max(_max_error(out, ref_out), _max_error(state, ref_state))
        figures[f"step_b{batch}_us_triton"] = 1000 * do_bench(lambda: selective_state_update(state, **args))
        figures[f"step_b{batch}_us_ref"] = 1000 * do_bench(lambda: selective_state_update_ref(state, **args))
        if theirs_step is not None:
            figures[f"step_b{batch}_us_mamba_ssm"] = 1000 * do_bench(
                lambda: theirs_step.selective_state_update(state, **args))
    return figures


if __name__ == "__main__":
    print(json.dumps(gpu_figures()))
