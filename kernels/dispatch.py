"""Which implementation runs a selective scan or a state update, chosen per call.

``selective_scan_fn`` and ``selective_state_update`` take mamba_ssm's arguments. The choice:

* ``INFITOOL_KERNELS=ref|triton|mamba_ssm`` in the environment forces one (tests, benchmarks);
* otherwise CPU tensors take the PyTorch reference, and CUDA tensors take mamba_ssm's fused
  kernels when it is importable, else our Triton kernels, else the reference.

Neither triton nor mamba_ssm is imported until a call needs it, so this module imports, and
CPU tensors run, without either installed.
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

import torch

from .selective_scan_ref import selective_scan_ref
from .state_update_ref import selective_state_update_ref

BACKENDS = ("ref", "triton", "mamba_ssm")
ENV_VAR = "INFITOOL_KERNELS"


class KernelUnavailable(RuntimeError):
    """A forced backend cannot run here; the message is one line."""


@functools.cache
def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def backend_for(tensor: torch.Tensor) -> str:
    """The backend a call on ``tensor`` would use: forced by the environment, else by device."""
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced:
        if forced not in BACKENDS:
            raise KernelUnavailable(f"{ENV_VAR}={forced!r}: expected one of {', '.join(BACKENDS)}")
        return forced
    if not tensor.is_cuda:
        return "ref"
    if _optional_module("mamba_ssm") is not None:
        return "mamba_ssm"
    if _optional_module("triton") is not None:
        return "triton"
    return "ref"


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
    if backend == "ref":
        implementation = selective_scan_ref
    elif backend == "triton":
        implementation = _triton_kernels("selective_scan").selective_scan_fn
    else:
        implementation = _require("mamba_ssm.ops.selective_scan_interface", backend).selective_scan_fn
    return implementation(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """One step: updates ``state`` (b, d, n) in place and returns out (b, d)."""
    backend = backend_for(state)
    if backend == "ref":
        implementation = selective_state_update_ref
    elif backend == "triton":
        implementation = _triton_kernels("state_update").selective_state_update
    else:
        implementation = _require("mamba_ssm.ops.triton.selective_state_update", backend).selective_state_update
    return implementation(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
