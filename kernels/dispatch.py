"""The one place that chooses which implementation runs: C, Triton, mamba_ssm or PyTorch.

`backend_for(*tensors)` names the backend for a call on these tensors:

* ``INFITOOL_KERNELS=ref|triton|mamba_ssm`` in the environment forces one (tests, benchmarks);
* CUDA tensors take mamba_ssm's fused kernels when it is importable, else our Triton kernels,
  else the reference (``"ref"``: `selective_scan_ref`, `selective_state_update_ref`);
* CPU tensors take the fused C loops (``"c"``, kernels/cpu_step.c) when the library builds here,
  ``INFITOOL_CPU_STEP`` is not off, autograd is not recording and every tensor is fp32; else
  ``"torch"``, the model's own plain PyTorch code (the twin every kernel is held to).

The model asks here and nowhere else: `selective_scan_fn` / `selective_state_update` (mamba_ssm's
arguments) for the GPU backends, `fused_step(kind, dims, *state)` for the whole CPU decode step,
and `backend_for(...) == "c"` before it calls cpu_step's prompt kernels.

Neither triton nor mamba_ssm is imported until a call needs it, so this module imports, and
CPU tensors run, without either installed.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

import torch

from . import cpu_step
from .selective_scan_ref import selective_scan_ref
from .state_update_ref import selective_state_update_ref

BACKENDS = ("ref", "triton", "mamba_ssm")  # what INFITOOL_KERNELS may force
GPU_KERNELS = BACKENDS  # backends that take mamba_ssm's signatures (`selective_scan_fn`, ...)
ENV_VAR = "INFITOOL_KERNELS"


class KernelUnavailable(RuntimeError):
    """A forced backend cannot run here; the message is one line."""


@functools.cache
def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def backend_for(*tensors: torch.Tensor | None) -> str:
    """The backend a call on these tensors would use: forced by the environment, else by device
    (the first tensor's), dtype and what is installed."""
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced:
        if forced not in BACKENDS:
            raise KernelUnavailable(f"{ENV_VAR}={forced!r}: expected one of {', '.join(BACKENDS)}")
        return forced
    if not tensors[0].is_cuda:
        return "c" if _c_takes(tensors) else "torch"
    if _optional_module("mamba_ssm") is not None:
        return "mamba_ssm"
    if _optional_module("triton") is not None:
        return "triton"
    return "ref"


def _c_takes(tensors) -> bool:
    return (
        not torch.is_grad_enabled()
        and cpu_step.enabled()
        and all(t is None or (t.dtype == torch.float32 and t.device.type == "cpu") for t in tensors)
        and cpu_step.library() is not None
    )


STEPS = {"mamba": cpu_step.mamba_step, "mamba2": cpu_step.mamba2_step, "rwkv7": cpu_step.rwkv7_step,
         "granite": cpu_step.granite_step}
_steps: dict[tuple, object] = {}  # (kind, dims) → step: a dict lookup per token, not lru_cache's kwargs


def fused_step(kind: str, dims: dict, *state: torch.Tensor):
    """The fused CPU decode step for a model of this kind ("mamba", "mamba2", "rwkv7", "granite") and dimensions,
    when the C backend takes its state tensors; else None (the model steps in PyTorch).
    Call it as `step(model.fused_weights(), token, *state)`; it too returns None for weights
    or a state it cannot read."""
    if kind not in STEPS or backend_for(*state) != "c":
        return None
    key = (kind, *dims.values())
    step = _steps.get(key)
    if step is None:
        step = _steps[key] = STEPS[kind](**dims)
    return step


def _require(module_name: str, backend: str) -> ModuleType:
    module = _optional_module(module_name)
    if module is None:
        raise KernelUnavailable(f"kernel backend {backend!r} needs {module_name}, which does not import here")
    return module


def _triton_kernels(name: str) -> ModuleType:
    _require("triton", "triton")
    return importlib.import_module(f"{__package__}.{name}")


def selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                      return_last_state=False):
    """out (b, d, l), and the last state (b, d, n) when ``return_last_state``; differentiable."""
    backend = backend_for(u)
    if backend in ("ref", "c", "torch"):
        implementation = selective_scan_ref
    elif backend == "triton":
        implementation = _triton_kernels("selective_scan").selective_scan_fn
    else:
        implementation = _require("mamba_ssm.ops.selective_scan_interface", backend).selective_scan_fn
    return implementation(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One step: updates ``state`` (b, d, n) in place and returns out (b, d)."""
    backend = backend_for(state)
    if backend in ("ref", "c", "torch"):
        implementation = selective_state_update_ref
    elif backend == "triton":
        implementation = _triton_kernels("state_update").selective_state_update
    else:
        implementation = _require("mamba_ssm.ops.triton.selective_state_update", backend).selective_state_update
    return implementation(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
