"""The Triton kernels against their PyTorch twins, on the CPU under Triton's interpreter.

Like flash-linear-attention's tests/ops: outputs, final states and gradients of each kernel are
compared with its plain twin, with tolerances that depend on the dtype. Shapes are tiny because
the interpreter runs every program in Python.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from infitool_edit.kernels import dispatch
from infitool_edit.kernels.selective_scan_ref import selective_scan_ref
from infitool_edit.kernels.state_update_ref import selective_state_update_ref

# Triton decides between compiling and interpreting when it is imported (its own library
# functions are decorated then), when each kernel is decorated, and while an interpreted kernel
# runs; so the variable is set before anything here imports triton, and stays set.
os.environ["TRITON_INTERPRET"] = "1"

TRITON_MODULES = ("infitool_edit.kernels.selective_scan", "infitool_edit.kernels.state_update")


@pytest.fixture(scope="module")
def kernels():
    """The Triton kernel modules, running under the interpreter on CPU tensors."""
    triton = pytest.importorskip("triton")
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(triton.language.standard.zeros, InterpretedFunction):
        # Something imported triton before this module set the variable: import its Python
        # modules (and our kernels) again; its compiled extension stays loaded.
        stale = [name for name in sys.modules
                 if name in TRITON_MODULES or name == "triton"
                 or (name.startswith("triton.") and not name.startswith("triton._C"))]
        for name in stale:
            del sys.modules[name]
    torch.set_num_threads(1)
    return {name.rsplit(".", 1)[1]: importlib.import_module(name) for name in TRITON_MODULES}


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype):
    """fp32: elementwise; bf16: relative RMS error, since rounding errors are per element."""
    actual, expected = actual.float(), expected.float()
    if dtype == torch.float32:
        torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4, msg=lambda m: f"{name}: {m}")
        return
    error = (actual - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt().clamp_min(1e-6)
    assert error < 1e-2, f"{name}: relative RMS error {error:.4f}"


@dataclass(frozen=True)
class ScanCase:
    batch: int = 2
    channels: int = 8
    state: int = 4
    length: int = 40
    chunk: int = 16
    groups: int | None = 2  # None: B and C are (b, n, l)
    softplus: bool = True
    with_z: bool = True
    with_D: bool = True
    with_bias: bool = True
    delta_scale: float = 0.5
    dtype: torch.dtype = torch.float32


SCAN_CASES = {
    "everything, length not a multiple of the chunk": ScanCase(),
    "plain: no softplus, no z, no D, no bias, ungrouped B/C": ScanCase(
        length=32, groups=None, softplus=False, with_z=False, with_D=False, with_bias=False),
    "softplus without z, odd sizes": ScanCase(channels=6, state=3, length=37, chunk=8, groups=None,
                                              with_z=False),
    "z without softplus, channels not filling a block": ScanCase(channels=6, groups=2, softplus=False,
                                                                 with_bias=False),
    "shorter than one chunk": ScanCase(batch=1, length=5, chunk=16),
    "16 chunks of 4, large steps (states decay to nothing)": ScanCase(
        batch=1, channels=4, length=64, chunk=4, groups=None, delta_scale=3.0),
    "bf16": ScanCase(dtype=torch.bfloat16),
}


def scan_inputs(case: ScanCase, seed: int = 0) -> dict[str, torch.Tensor | None]:
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0, positive=False):
        tensor = torch.randn(*shape, generator=generator) * scale
        return (tensor.abs() if positive else tensor).to(case.dtype).requires_grad_()

    b, d, n, l = case.batch, case.channels, case.state, case.length
    bc_shape = (b, n, l) if case.groups is None else (b, case.groups, n, l)
    return {
        "u": randn(b, d, l),
        # Without the softplus the caller passes step sizes that are already positive.
        "delta": randn(b, d, l, scale=case.delta_scale, positive=not case.softplus),
        # A = -exp(A_log) < 0 as in Mamba, spread over orders of magnitude: some states keep
        # almost everything from step to step, some almost nothing.
        "A": (-torch.exp(torch.randn(d, n, generator=generator) * 1.5)).to(case.dtype).requires_grad_(),
        "B": randn(*bc_shape),
        "C": randn(*bc_shape),
        "D": randn(d) if case.with_D else None,
        "z": randn(b, d, l) if case.with_z else None,
        "delta_bias": randn(d, scale=0.1) if case.with_bias else None,
    }


@pytest.mark.parametrize("case", SCAN_CASES.values(), ids=SCAN_CASES.keys())
def test_selective_scan_matches_its_twin(kernels, case):
    inputs = scan_inputs(case)
    leaves = {name: t for name, t in inputs.items() if t is not None}

    out, last_state = kernels["selective_scan"].selective_scan_fn(
        **inputs, delta_softplus=case.softplus, return_last_state=True, chunk_size=case.chunk)
    ref_out, ref_last_state = selective_scan_ref(
        **inputs, delta_softplus=case.softplus, return_last_state=True)

    assert out.dtype == case.dtype and out.shape == inputs["u"].shape
    assert_close("out", out, ref_out, case.dtype)
    assert_close("last state", last_state, ref_last_state, case.dtype)

    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(case.dtype)
    grads = torch.autograd.grad(out, list(leaves.values()), dout)
    ref_grads = torch.autograd.grad(ref_out, list(leaves.values()), dout)
    for name, grad, ref_grad in zip(leaves, grads, ref_grads):
        assert grad.shape == leaves[name].shape and grad.dtype == leaves[name].dtype, name
        assert_close(f"d{name}", grad, ref_grad, case.dtype)


def test_chunk_size_changes_nothing(kernels):
    inputs = scan_inputs(ScanCase(batch=1, length=24))
    scan = kernels["selective_scan"].selective_scan_fn
    whole = scan(**inputs, delta_softplus=True, chunk_size=32)
    pieces = scan(**inputs, delta_softplus=True, chunk_size=4)
    torch.testing.assert_close(pieces, whole, atol=1e-5, rtol=1e-5)


def test_last_state_is_returned_only_when_asked(kernels):
    inputs = scan_inputs(ScanCase(batch=1, length=8, with_z=False))
    out = kernels["selective_scan"].selective_scan_fn(**inputs, chunk_size=4)
    assert isinstance(out, torch.Tensor) and out.shape == (1, 8, 8)
    _, last_state = kernels["selective_scan"].selective_scan_fn(**inputs, return_last_state=True, chunk_size=4)
    assert not last_state.requires_grad


@pytest.mark.parametrize(
    "change, message",
    [
        ({"A": torch.zeros(7, 4)}, "A has shape (7, 4), expected (8, 4)"),
        ({"B": torch.zeros(2, 3, 4, 40)}, "8 channels do not split into 3 groups"),
        ({"z": torch.zeros(2, 8, 39)}, "z has shape (2, 8, 39), expected (2, 8, 40)"),
    ],
)
def test_selective_scan_names_a_bad_shape(kernels, change, message):
    inputs = {**scan_inputs(ScanCase()), **change}
    if "B" in change:
        inputs["C"] = change["B"]
    with pytest.raises(ValueError, match=f"^selective scan: {message.replace('(', '.').replace(')', '.')}$"):
        kernels["selective_scan"].selective_scan_fn(**inputs, chunk_size=16)


def test_chunk_size_must_be_a_power_of_two(kernels):
    with pytest.raises(ValueError, match="power of two"):
        kernels["selective_scan"].selective_scan_fn(**scan_inputs(ScanCase()), chunk_size=12)


def state_update_inputs(dtype, *, batch=2, channels=6, state=3, with_z=True, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(dtype)

    return {
        "state": randn(batch, channels, state),
        "x": randn(batch, channels),
        "dt": randn(batch, channels),
        "A": (-(torch.rand(channels, state, generator=generator) + 0.5)).to(dtype),
        "B": randn(batch, state),
        "C": randn(batch, state),
        "D": randn(channels),
        "z": randn(batch, channels) if with_z else None,
        "dt_bias": randn(channels),
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("with_z", [True, False], ids=["z", "no-z"])
@pytest.mark.parametrize("softplus", [True, False], ids=["softplus", "no-softplus"])
def test_state_update_in_place_matches_its_twin(kernels, dtype, with_z, softplus):
    inputs = state_update_inputs(dtype, with_z=with_z)
    before = inputs["state"].clone()
    state = inputs.pop("state")
    ref_state = before.clone()
    address = state.data_ptr()

    out = kernels["state_update"].selective_state_update(state, **inputs, dt_softplus=softplus)
    ref_out = selective_state_update_ref(ref_state, **inputs, dt_softplus=softplus)

    assert state.data_ptr() == address and not torch.equal(state, before)
    assert out.dtype == dtype and out.shape == inputs["x"].shape
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(state.float(), ref_state.float(), **tolerance)
    torch.testing.assert_close(out.float(), ref_out.float(), **tolerance)


def test_stepping_the_state_update_replays_the_scan(kernels):
    """Both twins describe one recurrence: l single steps give the scan's outputs and last state."""
    case = ScanCase(batch=2, channels=4, state=3, length=6, groups=None)
    inputs = {k: (v.detach() if v is not None else None) for k, v in scan_inputs(case).items()}
    ref_out, ref_last_state = selective_scan_ref(**inputs, delta_softplus=True, return_last_state=True)

    state = torch.zeros(2, 4, 3)
    outs = []
    for t in range(case.length):
        outs.append(kernels["state_update"].selective_state_update(
            state, inputs["u"][:, :, t], inputs["delta"][:, :, t], inputs["A"], inputs["B"][:, :, t],
            inputs["C"][:, :, t], inputs["D"], inputs["z"][:, :, t], inputs["delta_bias"],
            dt_softplus=True))
    torch.testing.assert_close(torch.stack(outs, dim=-1), ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, ref_last_state, atol=1e-5, rtol=1e-5)


def test_state_update_names_a_bad_shape(kernels):
    inputs = state_update_inputs(torch.float32)
    inputs["B"] = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"^state update: B has shape \(2, 5\), expected \(2, 3\)$"):
        kernels["state_update"].selective_state_update(**inputs)


def test_kernels_call_no_cuda_api_for_cpu_tensors(kernels, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a CUDA API was called for CPU tensors")

    for name in ("device", "current_device", "set_device", "synchronize", "current_stream"):
        monkeypatch.setattr(torch.cuda, name, refuse)
    inputs = scan_inputs(ScanCase(batch=1, length=8, with_z=False))
    kernels["selective_scan"].selective_scan_fn(**inputs, chunk_size=4).sum().backward()
    assert inputs["u"].grad is not None
    kernels["state_update"].selective_state_update(**state_update_inputs(torch.float32))


# --- dispatch ---------------------------------------------------------------------------------


def test_dispatch_takes_the_reference_on_cpu(monkeypatch):
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    inputs = scan_inputs(ScanCase(length=8))
    # Autograd is recording: the model's own PyTorch code; mamba_ssm's signatures take the reference.
    assert dispatch.backend_for(inputs["u"]) == "torch"
    out, last_state = dispatch.selective_scan_fn(**inputs, delta_softplus=True, return_last_state=True)
    ref_out, ref_last_state = selective_scan_ref(**inputs, delta_softplus=True, return_last_state=True)
    assert torch.equal(out, ref_out) and torch.equal(last_state, ref_last_state)
    out.sum().backward()  # the reference path is differentiable too
    assert inputs["A"].grad is not None

    step = state_update_inputs(torch.float32)
    ref_state = step["state"].clone()
    out = dispatch.selective_state_update(**step, dt_softplus=True)
    ref_out = selective_state_update_ref(ref_state, **{k: v for k, v in step.items() if k != "state"},
                                         dt_softplus=True)
    assert torch.equal(out, ref_out) and torch.equal(step["state"], ref_state)


def test_dispatch_forced_to_triton_runs_our_kernels(kernels, monkeypatch):
    monkeypatch.setenv(dispatch.ENV_VAR, "triton")
    inputs = scan_inputs(ScanCase(batch=1, length=8, with_z=False))
    detached = {k: (v.detach() if v is not None else None) for k, v in inputs.items()}
    out = dispatch.selective_scan_fn(**inputs, delta_softplus=True)
    # The Triton path returns out through its autograd.Function; the reference would not.
    assert type(out.grad_fn).__name__ == "SelectiveScanFnBackward"
    torch.testing.assert_close(out, selective_scan_ref(**detached, delta_softplus=True), atol=1e-5, rtol=1e-5)

    step = state_update_inputs(torch.float32)
    ref_state = step["state"].clone()
    out = dispatch.selective_state_update(**step)
    ref_out = selective_state_update_ref(ref_state, **{k: v for k, v in step.items() if k != "state"})
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step["state"], ref_state, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "forced, message",
    [
        ("cuda-please", "INFITOOL_KERNELS='cuda-please': expected one of ref, triton, mamba_ssm"),
        ("mamba_ssm", "kernel backend 'mamba_ssm' needs mamba_ssm.ops.selective_scan_interface, "
                      "which does not import here"),
    ],
)
def test_dispatch_refuses_a_backend_it_cannot_run_in_one_line(monkeypatch, forced, message):
    if forced == "mamba_ssm" and importlib.util.find_spec("mamba_ssm") is not None:
        pytest.skip("mamba_ssm is installed here")
    monkeypatch.setenv(dispatch.ENV_VAR, forced)
    with pytest.raises(dispatch.KernelUnavailable) as error:
        dispatch.selective_scan_fn(**scan_inputs(ScanCase(length=4)))
    assert str(error.value) == message


SCRIPT_WITHOUT_TRITON = """
import sys
sys.modules["triton"] = None  # any `import triton` now raises ImportError
import torch
from infitool_edit.kernels import dispatch
from infitool_edit.kernels.selective_scan_ref import selective_scan_ref

u, delta = torch.randn(1, 4, 5), torch.rand(1, 4, 5)
A, B, C = -torch.rand(4, 2), torch.randn(1, 2, 5), torch.randn(1, 2, 5)
assert torch.equal(dispatch.selective_scan_fn(u, delta, A, B, C), selective_scan_ref(u, delta, A, B, C))
state = torch.zeros(1, 4, 2)
dispatch.selective_state_update(state, u[..., 0], delta[..., 0], A, B[..., 0], C[..., 0])
assert state.abs().sum() > 0
import os
os.environ["INFITOOL_KERNELS"] = "triton"
try:
    dispatch.selective_scan_fn(u, delta, A, B, C)
except dispatch.KernelUnavailable as error:
    print(error)
"""


def test_dispatch_imports_and_runs_on_cpu_without_triton():
    environment = {k: v for k, v in os.environ.items() if k not in (dispatch.ENV_VAR, "TRITON_INTERPRET")}
    result = subprocess.run([sys.executable, "-c", SCRIPT_WITHOUT_TRITON], capture_output=True, text=True,
                            env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "kernel backend 'triton' needs triton, which does not import here\n"


def test_gpu_figures_are_empty_without_cuda():
    from infitool_edit.kernels.benchmark import gpu_figures

    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the benchmark measures instead")
    assert gpu_figures() == {}


def test_kernels_compile_for_a_hopper_gpu_without_one():
    """The interpreter is lenient; Triton's real compiler (to a cubin for sm_90) is not."""
    pytest.importorskip("triton.backends.nvidia.compiler")
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-m", "infitool_edit.kernels.ptx_report", "--arch", "90"],
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert sorted(name.split()[0] for name in report) == ["scan_bwd", "scan_fwd", "state_update"]
    assert all(0 < usage["registers"] <= 255 for usage in report.values()), report
