"""The fused CPU decode step (`cpu_step.c`): built with the machine's C compiler, called through ctypes.

`MambaLM.step` uses it when it can — one token, batch 1, fp32 weights and state on
the CPU, no autograd — and runs its plain PyTorch twin otherwise; the two give the
same logits to fp32 tolerance (tests/test_cpu_step.py). The C file is compiled on
first use, once per machine, into the user's cache directory; a machine without a
C compiler decodes through the PyTorch path and loses nothing but speed.

`INFITOOL_CPU_STEP=off` turns the fused step off (benchmarks compare the two).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("cpu_step.c")
ENV_VAR = "INFITOOL_CPU_STEP"
# Tried in order: the first set is tuned for this CPU; the second is for compilers without -march=native.
FLAG_SETS = (
    # -fno-trapping-math changes no result; it lets gcc vectorize loops whose selects skip a division.
    ["-O3", "-march=native", "-fopenmp-simd", "-fno-trapping-math", "-fPIC", "-shared"],
    ["-O3", "-fPIC", "-shared"],
)
COMPILE_TIMEOUT_S = 120


class MambaDims(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int32) for name in ("d", "d_in", "n", "k", "rank", "vocab", "layers", "falcon")
    ] + [("eps", ctypes.c_float), ("mixer_eps", ctypes.c_float)]


def enabled() -> bool:
    return os.environ.get(ENV_VAR, "").strip().lower() not in {"0", "off", "false", "no"}


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "infitool-edit" / "kernels"


def _cpu_signature() -> str:
    """What -march=native depends on: a library built for one CPU may not run on another
    that shares the home directory."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def _compile(flags: list[str], target: Path) -> str | None:
    """Compile SOURCE into target atomically; None on success, else the compiler's complaint."""
    compiler = os.environ.get("CC", "cc")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(handle)
    except OSError as error:  # a read-only home, a file where the folder should be
        return f"cannot write to {target.parent} ({error.strerror or error})"
    try:
        result = subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", partial, "-lm"],
            capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            return lines[0] if lines else f"{compiler} exited with {result.returncode}"
        os.replace(partial, target)  # others see a whole library or none
        return None
    except (OSError, subprocess.SubprocessError) as error:
        return f"{compiler}: {error}"
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


_build_lock = threading.Lock()
_failure: str | None = None


@functools.cache
def _library_locked() -> ctypes.CDLL | None:
    global _failure
    try:
        source = SOURCE.read_bytes()
    except OSError as error:
        _failure = f"{SOURCE} is unreadable ({error.strerror or error})"
        return None
    cpu = _cpu_signature().encode()
    for flags in FLAG_SETS:
        key = hashlib.sha256(source + " ".join(flags).encode() + cpu).hexdigest()[:16]
        target = _cache_dir() / f"cpu_step-{key}.so"
        error = None if target.exists() else _compile(flags, target)
        if error is None:
            try:
                library = ctypes.CDLL(str(target))
            except OSError as load_error:
                error = str(load_error)
            else:
                library.mamba_step_scratch.restype = ctypes.c_int64
                library.mamba_step_scratch.argtypes = [ctypes.POINTER(MambaDims)]
                library.mamba_step.restype = None
                library.mamba_step.argtypes = [
                    ctypes.POINTER(MambaDims), ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                ]
                library.mamba_scan.restype = None
                library.mamba_scan.argtypes = [
                    ctypes.c_int64, ctypes.c_int32, ctypes.c_int32,
                    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                ]
                library.mamba_conv.restype = None
                library.mamba_conv.argtypes = [
                    ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                ]
                return library
    _failure = error  # the last flag set's
    return None


def library() -> ctypes.CDLL | None:
    """The compiled step, building it on first call; None where it cannot be built."""
    with _build_lock:
        return _library_locked()


def unavailable_reason() -> str | None:
    """Why the fused step does not run here (None when it does): disabled, or the compiler's error."""
    if not enabled():
        return f"{ENV_VAR} is off"
    return None if library() is not None else f"could not build {SOURCE.name}: {_failure}"


def _readable(tensor: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> bool:
    """Whether the C code can read this tensor as a plain array of `dtype` (None: a NULL pointer)."""
    return tensor is None or (tensor.dtype == dtype and tensor.device.type == "cpu" and tensor.is_contiguous())


_NONE: dict = {}  # the "dict" of an absent slot: every name in it reads as None (a NULL pointer)


class FusedStep:
    """The fused step for one model: `fused(token, state)` → logits (1, vocab), like `model.step`.

    Each call checks the weights' addresses, so a model whose weights are replaced, moved
    or retrained in between is always read as it is now."""

    def __init__(self, model) -> None:
        config = model.config
        self.model, self.library = model, library()
        self.dims = MambaDims(
            d=config.hidden_size, d_in=config.intermediate_size, n=config.state_size, k=config.conv_kernel,
            rank=config.time_step_rank, vocab=config.vocab_size, layers=config.num_hidden_layers,
            falcon=int(config.falcon), eps=config.layer_norm_epsilon, mixer_eps=config.mixer_rms_eps,
        )
        self.scratch_floats = self.library.mamba_step_scratch(ctypes.byref(self.dims)) if self.library else 0
        self._slot_list = self._slots()
        # Layers other than fp32 `Linear` and `Int8Linear` have a forward of their own: not read here.
        self.supported = self.library is not None and self._slot_list is not None
        self._key: list | None = None
        self._array: ctypes.Array | None = None
        self._kept: list = []  # keeps A·log2 e alive while the C step holds its address

    def _slots(self) -> list[tuple[dict, str, torch.dtype]] | None:
        """Where each weight lives — (a module's parameter or buffer dict, name, the dtype the C
        step reads) — in the C file's order; None if a layer is of a kind it does not know.
        Reading the dicts takes a fiftieth of going through the modules' attributes."""
        from infitool_edit.model.mamba import Linear  # the model package imports this module lazily
        from infitool_edit.model.quantize import Int8Linear

        f32 = torch.float32

        def linear(layer) -> list[tuple[dict, str, torch.dtype]]:
            if type(layer) is Linear:
                return [(layer._parameters, "weight", f32), (layer._parameters, "bias", f32), (_NONE, "scale", f32)]
            if type(layer) is Int8Linear:
                return [(layer._buffers, "weight_int8", torch.int8), (layer._parameters, "bias", f32),
                        (layer._buffers, "scale", torch.bfloat16)]
            raise TypeError(type(layer).__name__)

        try:
            slots = []
            for block in self.model.layers:
                mixer = block.mixer
                slots += [
                    (block.norm._parameters, "weight", f32), *linear(mixer.in_proj),
                    (mixer.conv1d._parameters, "weight", f32), (mixer.conv1d._parameters, "bias", f32),
                    *linear(mixer.x_proj), *linear(mixer.dt_proj),
                    (mixer._parameters, "A_log", f32),  # stands for A·log2 e, derived from it
                    (mixer._parameters, "D", f32), *linear(mixer.out_proj),
                ]
            model = self.model
            return slots + [
                (model.embeddings._parameters, "weight", f32), (model.norm_f._parameters, "weight", f32),
                *linear(model.lm_head),
            ]
        except TypeError:
            return None

    def _pointers(self) -> ctypes.Array | None:
        """The weights' addresses for the C step, or None when one is not on the CPU in the
        dtype the C step reads (a model converted to bf16, say).

        Rebuilt only when a weight was replaced, moved or converted, or A_log was written
        (A·log2 e is derived from it); otherwise reused, so a token costs microseconds here."""
        tensors = [slot.get(name) for slot, name, _ in self._slot_list]
        key = [0 if t is None else (t.data_ptr(), t._version if name == "A_log" else 0)
               for t, (_, name, _) in zip(tensors, self._slot_list)]
        if key != self._key:
            self._key, self._array = key, None
            if all(_readable(t, dtype) for t, (_, _, dtype) in zip(tensors, self._slot_list)):
                A2 = iter([block.mixer._A()[1] for block in self.model.layers])
                self._kept = [next(A2) if name == "A_log" else t for t, (_, name, _) in zip(tensors, self._slot_list)]
                self._array = (ctypes.c_void_p * len(tensors))(*(0 if t is None else t.data_ptr() for t in self._kept))
        return self._array

    def accepts(self, token: torch.Tensor, state) -> bool:
        return (
            self.supported
            and token.numel() == 1
            and state.conv.shape[1] == 1
            and _readable(state.conv)
            and _readable(state.ssm)
        )

    def __call__(self, token: torch.Tensor, state) -> torch.Tensor | None:
        """Logits (1, vocab), the state advanced in place; None (nothing changed) when this
        model, token or state is not one the fused step takes."""
        if not self.accepts(token, state):
            return None
        pointers = self._pointers()
        if pointers is None:
            return None
        index = int(token.reshape(-1)[0])
        if not 0 <= index < self.dims.vocab:
            raise IndexError(f"token {index} is outside the vocabulary of {self.dims.vocab}")
        scratch = torch.empty(self.scratch_floats)
        logits = torch.empty(1, self.dims.vocab)
        self.library.mamba_step(
            ctypes.byref(self.dims), pointers, index, state.conv.data_ptr(), state.ssm.data_ptr(),
            scratch.data_ptr(), logits.data_ptr(),
        )
        return logits


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """tensor (b, l, m) with unit stride along m, copied only if it lacks one."""
    return tensor if tensor.stride(-1) == 1 else tensor.contiguous()


def prompt_kernels_apply(*tensors: torch.Tensor | None) -> bool:
    """Whether `causal_conv_silu` and `selective_scan` can take these tensors: the fused step is on
    and built, autograd is not recording, and each tensor is fp32 on the CPU."""
    return (
        not torch.is_grad_enabled()
        and enabled()
        and all(t is None or (t.dtype == torch.float32 and t.device.type == "cpu") for t in tensors)
        and library() is not None
    )


def causal_conv_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     conv_state: torch.Tensor) -> torch.Tensor:
    """SiLU(causal depthwise conv of x), continuing from conv_state and advancing it in place.

    x: (b, l, d_in); weight: (d_in, 1, k) as nn.Conv1d keeps it; conv_state: (b, d_in, k).
    Returns (b, l, d_in). Check `prompt_kernels_apply` first."""
    x = _rows(x)
    weight, bias = weight.contiguous(), None if bias is None else bias.contiguous()
    batch, length, d_in = x.shape
    k = weight.shape[-1]
    out = torch.empty(batch, length, d_in)
    scratch = torch.empty((2 * k - 1) * d_in)
    state = conv_state if conv_state.is_contiguous() else conv_state.contiguous()
    for row in range(batch):
        library().mamba_conv(
            length, d_in, k, x[row].data_ptr(), x.stride(1), weight.data_ptr(),
            None if bias is None else bias.data_ptr(), state[row].data_ptr(), scratch.data_ptr(),
            out[row].data_ptr(),
        )
    if state is not conv_state:
        conv_state.copy_(state)
    return out


def selective_scan(
    x: torch.Tensor, dt: torch.Tensor, A2: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor, z: torch.Tensor, h: torch.Tensor,
) -> torch.Tensor:
    """The gated scan of a prompt: y = (C·h_t + D x) · SiLU(z) with Δ = softplus(dt), advancing h in place.

    x, dt, z: (b, l, d_in); B, C: (b, l, n); A2 = A·log2 e: (d_in, n); D: (d_in,); h: (b, d_in, n).
    Returns y (b, l, d_in). Check `prompt_kernels_apply` first."""
    x, dt, B, C, z = (_rows(t) for t in (x, dt, B, C, z))
    if B.stride() != C.stride():
        B, C = B.contiguous(), C.contiguous()
    A2, D = A2.contiguous(), D.contiguous()
    state = h if h.is_contiguous() else h.contiguous()
    batch, length, d_in = x.shape
    y = torch.empty(batch, length, d_in)
    delta = torch.empty(d_in)
    for row in range(batch):
        library().mamba_scan(
            length, d_in, A2.shape[1],
            x[row].data_ptr(), x.stride(1), dt[row].data_ptr(), dt.stride(1),
            A2.data_ptr(), B[row].data_ptr(), C[row].data_ptr(), B.stride(1),
            D.data_ptr(), z[row].data_ptr(), z.stride(1),
            state[row].data_ptr(), delta.data_ptr(), y[row].data_ptr(), y.stride(1),
        )
    if state is not h:
        h.copy_(state)
    return y


_fused_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fused_step_for(model) -> FusedStep | None:
    """The fused step for this model (built once per model), or None where it is off or
    cannot run (no compiler, replaced layers)."""
    if not enabled():
        return None
    fused = _fused_steps.get(model)
    if fused is None:
        fused = _fused_steps[model] = FusedStep(model)
    return fused if fused.supported else None
