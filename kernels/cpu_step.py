"""The fused CPU decode steps (`cpu_step.c`): built with the machine's C compiler, called through ctypes.

`MambaLM.step` (and `Mamba2LM.step`, `RWKV7LM.step`) use them when `dispatch` says the C backend applies — one
token, batch 1, an fp32 state on the CPU, no autograd — handing over their weights as a flat
list of tensors (`fused_weights()`); nothing here imports the model. They run the plain
PyTorch twin otherwise, and the two give the same logits to fp32 tolerance
(tests/test_cpu_step.py, tests/model/). The C file is compiled on first use, once per machine,
into the user's cache directory; a machine without a C compiler decodes through the PyTorch
path and loses nothing but speed.

`INFITOOL_CPU_STEP=off` turns the fused step off (benchmarks compare the two);
`INFITOOL_CPU_THREADS=fixed` makes it use every thread torch is given rather than the faster
of all and one (`ThreadChooser`).
"""

from __future__ import annotations

import collections
import ctypes
import functools
import hashlib
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("cpu_step.c")
ENV_VAR = "INFITOOL_CPU_STEP"
# Tried in order: the first set is tuned for this CPU; the second is for compilers without -march=native.
FLAG_SETS = (
    # -fno-trapping-math changes no result; it lets gcc vectorize loops whose selects skip a division.
    # -fopenmp gives the step its threads; a compiler without OpenMP gets one thread (-fopenmp-simd).
    ["-O3", "-march=native", "-fopenmp", "-fno-trapping-math", "-fPIC", "-shared"],
    ["-O3", "-march=native", "-fopenmp-simd", "-fno-trapping-math", "-fPIC", "-shared"],
    ["-O3", "-fPIC", "-shared"],
)
COMPILE_TIMEOUT_S = 120


class MambaDims(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int32) for name in ("d", "d_in", "n", "k", "rank", "vocab", "layers", "falcon")
    ] + [("eps", ctypes.c_float), ("mixer_eps", ctypes.c_float)]


class Mamba2Dims(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int32) for name in ("d", "d_in", "n", "k", "heads", "head_dim", "groups", "vocab", "layers")
    ] + [("eps", ctypes.c_float), ("dt_min", ctypes.c_float), ("dt_max", ctypes.c_float)]


class GraniteDims(ctypes.Structure):
    _fields_ = [("mamba", Mamba2Dims)] + [
        (name, ctypes.c_int32) for name in ("att_heads", "kv_heads", "att_dim", "window", "mlp")
    ] + [(name, ctypes.c_float) for name in ("embedding_multiplier", "residual_multiplier", "logits_scaling",
                                              "attention_multiplier")]

    # What the shared step code reads of any model's dimensions.
    d = property(lambda self: self.mamba.d)
    vocab = property(lambda self: self.mamba.vocab)
    layers = property(lambda self: self.mamba.layers)


class RWKV7Dims(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_int32)
        for name in ("d", "heads", "head_dim", "ffn", "rank_w", "rank_v", "rank_a", "rank_g", "vocab", "layers")
    ] + [("eps", ctypes.c_float), ("group_eps", ctypes.c_float)]


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


def _load(target: Path) -> ctypes.CDLL:
    """dlopen the library, its OpenMP runtime told to sleep, not spin, at a barrier unless the user
    said otherwise. The step meets two barriers a layer; on a machine busier than its cores a
    spinning thread burns the time slice its partner needs (2 threads measured 4–10× slower than 1
    spinning, ~1.1× sleeping, at load 10 on 2 cores). libgomp reads the setting when it loads,
    which is here (torch's own OpenMP runtime is a separate copy, loaded and configured earlier)."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return ctypes.CDLL(str(target))
    os.environ["OMP_WAIT_POLICY"] = "passive"
    try:
        return ctypes.CDLL(str(target))
    finally:
        del os.environ["OMP_WAIT_POLICY"]


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
                library = _load(target)
            except OSError as load_error:
                error = str(load_error)
            else:
                library.mamba_step_scratch.restype = ctypes.c_int64
                library.mamba_step_scratch.argtypes = [ctypes.POINTER(MambaDims), ctypes.c_int32]
                library.mamba_step.restype = None
                library.mamba_step.argtypes = [
                    ctypes.POINTER(MambaDims), ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32,
                    ctypes.c_void_p,  # logit_bias, or None
                ]
                library.mamba2_step_scratch.restype = ctypes.c_int64
                library.mamba2_step_scratch.argtypes = [ctypes.POINTER(Mamba2Dims), ctypes.c_int32]
                library.mamba2_step.restype = None
                library.mamba2_step.argtypes = [
                    ctypes.POINTER(Mamba2Dims), *library.mamba_step.argtypes[1:],
                ]
                library.rwkv7_step_scratch.restype = ctypes.c_int64
                library.rwkv7_step_scratch.argtypes = [ctypes.POINTER(RWKV7Dims), ctypes.c_int32]
                library.rwkv7_step.restype = None
                library.rwkv7_step.argtypes = [ctypes.POINTER(RWKV7Dims), *library.mamba_step.argtypes[1:]]
                library.granite_step_scratch.restype = ctypes.c_int64
                library.granite_step_scratch.argtypes = [ctypes.POINTER(GraniteDims), ctypes.c_int32]
                library.granite_step.restype = None
                library.granite_step.argtypes = [
                    ctypes.POINTER(GraniteDims), ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,  # states, seen
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p,
                ]
                library.read_sum.restype = ctypes.c_double
                library.read_sum.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32]
                library.fma_sum.restype = ctypes.c_double
                library.fma_sum.argtypes = [ctypes.c_int64, ctypes.c_int32]
                library.mamba_scan.restype = None
                library.mamba_scan.argtypes = [
                    ctypes.c_int64, ctypes.c_int32, ctypes.c_int32,
                    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32,
                ]
                library.mamba2_scan.restype = None
                library.mamba2_scan.argtypes = [
                    ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                    ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32,
                ]
                library.mamba2_gate_norm.restype = None
                library.mamba2_gate_norm.argtypes = [
                    ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p,
                    ctypes.c_int64, ctypes.c_void_p, ctypes.c_float, ctypes.c_void_p, ctypes.c_int32,
                ]
                library.quantized_rows_scratch.restype = ctypes.c_int64
                library.quantized_rows_scratch.argtypes = [ctypes.c_int64, ctypes.c_int32]
                library.quantized_rows.restype = None
                library.quantized_rows.argtypes = [
                    ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p,
                    ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32,
                ]
                library.mamba_conv.restype = None
                library.mamba_conv.argtypes = [
                    ctypes.c_int64, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64,
                    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                    ctypes.c_int32,
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


# What the fused step reads, in order: per layer MAMBA_LAYER, then MAMBA_TAIL. A name ending in
# "*" is a linear layer, given as three tensors (weight, bias or None, scales or None) whose
# weight's dtype says how it is stored (LINEAR_KINDS). The model builds the list
# (`MambaLM.fused_weights()`); nothing here knows the model's classes.
MAMBA_LAYER = ("norm", "in_proj*", "conv_weight", "conv_bias", "x_proj*", "dt_proj*", "A2", "D", "out_proj*")
MAMBA_TAIL = ("embedding", "embedding_scale", "norm_f", "lm_head*")
# Mamba-2 (`Mamba2LM.fused_weights()`): A_log as it is (the step takes -exp per head itself).
MAMBA2_LAYER = ("norm", "in_proj*", "conv_weight", "conv_bias", "dt_bias", "A_log", "D", "gate_norm", "out_proj*")
# RWKV-7 (`RWKV7LM.fused_weights()`): every plain tensor is d long; a name in RWKV7Step.OPTIONAL
# may be None (pre_norm after layer 0, v_lora in layer 0, a LayerNorm without bias).
RWKV7_LAYER = ("pre_norm", "pre_norm_bias", "attn_norm", "attn_norm_bias", "x_r", "x_w", "x_k", "x_v", "x_a", "x_g",
               "r_proj*", "k_proj*", "v_proj*", "w_lora0*", "w_lora2*", "v_lora0*", "v_lora2*", "a_lora0*",
               "a_lora2*", "g_lora0*", "g_lora2*", "k_k", "k_a", "r_k", "g_norm", "g_norm_bias", "o_proj*",
               "ffn_norm", "ffn_norm_bias", "ffn_x_k", "key*", "value*")
RWKV7_TAIL = ("embedding", "embedding_scale", "norm_f", "norm_f_bias", "lm_head*")
# Granite-4.0-H (`GraniteHybridLM.fused_weights()`): every layer has Mamba-2's slots (None but the
# norm in an attention layer) and the attention's (None in a Mamba-2 layer), then its MLP; the tail
# is Mamba's.
GRANITE_LAYER = (*MAMBA2_LAYER, "q_proj*", "k_proj*", "v_proj*", "o_proj*", "post_norm", "mlp_in*", "mlp_out*")
# weight dtype → (the C file's KIND_*, the scales' dtype, weight elements per byte-sized element)
LINEAR_KINDS = {
    torch.float32: (0, None, 1),  # (in, out)
    torch.int8: (1, torch.float32, 1),  # (out, in), one scale per row
    torch.uint8: (2, torch.bfloat16, 2),  # (out, in/2), two 4-bit weights a byte, a scale per 32
}
QBLOCK = 32  # cpu_step.c's block of quantized activations and 4-bit weights
SCAN_TILE = 128  # cpu_step.c's channels of a Mamba-1 state that its prompt scan walks the prompt with
SSD_TILE = 32  # cpu_step.c's rows of a Mamba-2 head that its prompt scan walks the prompt with

# INFITOOL_CPU_THREADS=fixed: always use torch.get_num_threads() threads (benchmarks comparing 1 and 2).
ADAPTIVE_THREADS = os.environ.get("INFITOOL_CPU_THREADS", "").strip().lower() != "fixed"
calls: collections.Counter = collections.Counter()  # fused calls by kernel name: tests check they ran


def _linear_shapes(dims: MambaDims) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer of a Mamba model of these dimensions."""
    return {"in_proj": (dims.d, 2 * dims.d_in), "x_proj": (dims.d_in, dims.rank + 2 * dims.n),
            "dt_proj": (dims.rank, dims.d_in), "out_proj": (dims.d_in, dims.d), "lm_head": (dims.d, dims.vocab)}


def _linear_pointers(weight, bias, scale, shape: tuple[int, int]) -> list[int] | None:
    """The four pointers cpu_step.c reads for a linear layer (weight, bias, scales, kind), or None
    when these tensors are not a layout it knows (a bf16 model, a shape other than the model's)."""
    kind = LINEAR_KINDS.get(getattr(weight, "dtype", None))
    if kind is None:
        return None
    code, scale_dtype, per_element = kind
    fan_in, fan_out = shape
    if (not _readable(weight, weight.dtype) or weight.numel() * per_element != fan_in * fan_out
            or not _readable(bias) or (bias is not None and bias.numel() != fan_out)):
        return None
    if scale_dtype is None:
        if scale is not None:
            return None
    elif scale is None or not _readable(scale, scale_dtype) or fan_in % QBLOCK:
        return None
    return [weight.data_ptr(), 0 if bias is None else bias.data_ptr(), 0 if scale is None else scale.data_ptr(), code]


class ThreadChooser:
    """How many of the threads it is given a step uses: all of them, or one, whichever has been
    faster lately. On an idle machine the team wins; on one busier than its cores (here, 2 cores at
    load 10) a team of 2 can lose 1.2–1.8× to one thread, because each barrier waits for the partner
    to be scheduled. The step times each call (a perf_counter pair), keeps the last few times per
    choice, and retries the other choice every PROBE_EVERY calls, so it follows the load."""

    KEEP, PROBE_EVERY = 5, 64

    def __init__(self) -> None:
        self.times: dict[int, collections.deque] = {}
        self.calls = 0

    def pick(self, most: int) -> int:
        if most <= 1:
            return 1
        self.calls += 1
        choices = (most, 1)
        for threads in choices:  # measure each a few times first
            if len(self.times.get(threads, ())) < 3:
                return threads
        best = min(choices, key=lambda threads: statistics.median(self.times[threads]))
        if self.calls % self.PROBE_EVERY == 0:
            return choices[1] if best == choices[0] else choices[0]
        return best

    def record(self, threads: int, seconds: float) -> None:
        self.times.setdefault(threads, collections.deque(maxlen=self.KEEP)).append(seconds)


class MambaStep:
    """The fused decode step of a Mamba model of the given dimensions:
    `step(weights, token, conv, ssm)` → logits (1, vocab), like `MambaLM.step`.

    `weights` is the flat list of MAMBA_LAYER × layers + MAMBA_TAIL (linear layers as three
    tensors each). Their addresses are checked on every call, so weights that were replaced,
    moved or converted are read as they are now; the pointer array is rebuilt only then."""

    name = "mamba_step"
    LAYER, TAIL = MAMBA_LAYER, MAMBA_TAIL
    OPTIONAL: frozenset = frozenset({"conv_bias"})  # names that may be None (a NULL pointer)

    def __init__(self, dims) -> None:
        self.dims, self.library = dims, library()
        self.shapes = self._linear_shapes(dims)
        self.layout = [*self.LAYER * dims.layers, *self.TAIL]
        self._run = getattr(self.library, self.name)
        self._scratch = getattr(self.library, f"{self.name}_scratch")
        self.count = sum(3 if name.endswith("*") else 1 for name in self.layout)
        self._key: list | None = None
        self._array: ctypes.Array | None = None
        self._kept: list = []  # the tensors whose addresses the array holds, kept alive
        self.threads = ThreadChooser()

    @staticmethod
    def _linear_shapes(dims) -> dict[str, tuple[int, int]]:
        return _linear_shapes(dims)

    def _plain_size(self, name: str) -> int | None:
        """The number of elements a plain (non-linear) tensor must have; None: not checked."""
        return None

    def _state_fits(self, conv: torch.Tensor, ssm: torch.Tensor) -> bool:
        return True

    def _pointers(self, weights: list) -> ctypes.Array | None:
        if len(weights) != self.count:
            return None
        key = [0 if t is None else t.data_ptr() for t in weights]
        if key == self._key:
            return self._array
        self._key, self._array, self._kept = key, None, []
        pointers, at = [], 0
        for name in self.layout:
            if name.endswith("*"):
                if weights[at] is None and name[:-1] in self.OPTIONAL:  # no such layer here
                    if weights[at + 1] is not None or weights[at + 2] is not None:
                        return None
                    pointers += [0, 0, 0, 0]
                    at += 3
                    continue
                linear = _linear_pointers(*weights[at:at + 3], self.shapes[name[:-1]])
                if linear is None:
                    return None
                pointers += linear
                at += 3
                continue
            tensor = weights[at]
            at += 1
            if name == "embedding" and tensor is not None and tensor.dtype == torch.int8:
                ok = _readable(tensor, torch.int8) and tensor.shape == (self.dims.vocab, self.dims.d)
            elif name == "embedding_scale":
                ok = tensor is None or (_readable(tensor) and tensor.numel() == self.dims.vocab)
                ok = ok and (tensor is None) == (weights[at - 2].dtype != torch.int8)
            else:
                ok = _readable(tensor) and (tensor is not None or name in self.OPTIONAL)
                ok = ok and (tensor is None or self._plain_size(name) in (None, tensor.numel()))
            if not ok:
                return None
            pointers.append(0 if tensor is None else tensor.data_ptr())
        self._kept = list(weights)
        self._array = (ctypes.c_void_p * len(pointers))(*(p or None for p in pointers))
        return self._array

    def __call__(self, weights: list, token: torch.Tensor, conv: torch.Tensor, ssm: torch.Tensor,
                 logit_bias: torch.Tensor | None = None) -> torch.Tensor | None:
        """Logits (1, vocab), conv (layers, 1, d_in, k) and ssm (layers, 1, d_in, n) advanced in place;
        None (nothing changed) when these weights or states are not ones the step reads.
        ``logit_bias`` (vocab,): added to the logits inside the step (a grammar mask row), as
        ``logits + logit_bias`` would after it, to the same bits."""
        if token.numel() != 1 or conv.shape[1] != 1 or not (_readable(conv) and _readable(ssm)):
            return None
        if not self._state_fits(conv, ssm):
            return None
        return self._step(weights, token, logit_bias, (conv.data_ptr(), ssm.data_ptr()))

    def _step(self, weights: list, token: torch.Tensor, logit_bias: torch.Tensor | None,
              states: tuple[int, ...]) -> torch.Tensor | None:
        """What every fused step shares once its state is checked: the bias, the weights' pointers,
        the token, the threads, the call (``states``: the arguments the C step takes between the
        token and the scratch)."""
        if logit_bias is not None and not (_readable(logit_bias) and logit_bias.numel() == self.dims.vocab):
            return None
        pointers = self._pointers(weights)
        if pointers is None:
            return None
        index = int(token.reshape(-1)[0])
        if not 0 <= index < self.dims.vocab:
            raise IndexError(f"token {index} is outside the vocabulary of {self.dims.vocab}")
        threads = self.threads.pick(torch.get_num_threads()) if ADAPTIVE_THREADS else torch.get_num_threads()
        scratch = torch.empty(self._scratch(ctypes.byref(self.dims), threads))
        logits = torch.empty(1, self.dims.vocab)
        start = time.perf_counter()
        self._run(ctypes.byref(self.dims), pointers, index, *states, scratch.data_ptr(), logits.data_ptr(), threads,
                  None if logit_bias is None else logit_bias.data_ptr())
        self.threads.record(threads, time.perf_counter() - start)
        calls[self.name] += 1
        return logits


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """tensor (b, l, m) with unit stride along m, copied only if it lacks one."""
    return tensor if tensor.stride(-1) == 1 else tensor.contiguous()


def causal_conv_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     conv_state: torch.Tensor) -> torch.Tensor:
    """SiLU(causal depthwise conv of x), continuing from conv_state and advancing it in place.

    x: (b, l, d_in); weight: (d_in, 1, k) as nn.Conv1d keeps it; conv_state: (b, d_in, k).
    Returns (b, l, d_in). For fp32 CPU tensors, outside autograd (dispatch.backend_for says "c")."""
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
            out[row].data_ptr(), torch.get_num_threads(),
        )
    if state is not conv_state:
        conv_state.copy_(state)
    calls["mamba_conv"] += 1
    return out


def selective_scan(
    x: torch.Tensor, dt: torch.Tensor, A2: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
    D: torch.Tensor, z: torch.Tensor, h: torch.Tensor,
) -> torch.Tensor:
    """The gated scan of a prompt: y = (C·h_t + D x) · SiLU(z) with Δ = softplus(dt), advancing h in place.

    x, dt, z: (b, l, d_in); B, C: (b, l, n); A2 = A·log2 e: (d_in, n); D: (d_in,); h: (b, d_in, n).
    Returns y (b, l, d_in). For fp32 CPU tensors, outside autograd (dispatch.backend_for says "c")."""
    x, dt, B, C, z = (_rows(t) for t in (x, dt, B, C, z))
    if B.stride() != C.stride():
        B, C = B.contiguous(), C.contiguous()
    A2, D = A2.contiguous(), D.contiguous()
    state = h if h.is_contiguous() else h.contiguous()
    batch, length, d_in = x.shape
    y = torch.empty(batch, length, d_in)
    threads = torch.get_num_threads()
    scratch = torch.empty(threads * SCAN_TILE * (2 * A2.shape[1] + 2))  # each thread's tile: state, A, Δ, Δ x
    for row in range(batch):
        library().mamba_scan(
            length, d_in, A2.shape[1],
            x[row].data_ptr(), x.stride(1), dt[row].data_ptr(), dt.stride(1),
            A2.data_ptr(), B[row].data_ptr(), C[row].data_ptr(), B.stride(1),
            D.data_ptr(), z[row].data_ptr(), z.stride(1),
            state[row].data_ptr(), scratch.data_ptr(), y[row].data_ptr(), y.stride(1), threads,
        )
    calls["mamba_scan"] += 1
    if state is not h:
        h.copy_(state)
    return y


def mamba2_scan(x: torch.Tensor, dt: torch.Tensor, A2: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                D: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Mamba-2's scan of a prompt with its skip: y = H·C + D x, H ← exp(Δ A) H + Δ x Bᵀ per head,
    advancing h in place.

    x: (b, l, heads, p); dt: (b, l, heads), softplus'd and clamped; B, C: (b, l, groups, n);
    A2 = A·log2 e and D: (heads,); h: (b, heads, p, n). Returns y (b, l, heads, p). For fp32 CPU
    tensors, outside autograd (dispatch.backend_for says "c")."""
    batch, length, heads, p = x.shape
    groups, n = B.shape[-2:]
    x, dt, B, C = (t.flatten(-2) if t.dim() == 4 else t for t in (x, dt, B, C))
    x, dt, B, C = (_rows(t) for t in (x, dt, B, C))
    if B.stride() != C.stride():
        B, C = B.contiguous(), C.contiguous()
    A2, D = A2.contiguous(), D.contiguous()
    state = h if h.is_contiguous() else h.contiguous()
    y = torch.empty(batch, length, heads, p)
    threads = torch.get_num_threads()
    scratch = torch.empty(threads * SSD_TILE * (n + 2))  # each thread's tile of a head's state, transposed, and two rows of Δ x
    for row in range(batch):
        library().mamba2_scan(
            length, heads, p, n, groups,
            x[row].data_ptr(), x.stride(1), dt[row].data_ptr(), dt.stride(1),
            A2.data_ptr(), B[row].data_ptr(), C[row].data_ptr(), B.stride(1), D.data_ptr(),
            state[row].data_ptr(), y[row].data_ptr(), heads * p, scratch.data_ptr(), threads,
        )
    calls["mamba2_scan"] += 1
    if state is not h:
        h.copy_(state)
    return y


def mamba2_gate_norm(y: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, groups: int, eps: float) -> torch.Tensor:
    """Mamba-2's gated RMS norm of a prompt: y · SiLU(z) over each group of d_in / groups
    channels, divided by its RMS, times weight. y, z: (b, l, d_in) (z may be a view with rows
    apart); weight: (d_in,). Returns (b, l, d_in). For fp32 CPU tensors, outside autograd."""
    y, z = y.contiguous(), _rows(z)
    batch, length, d_in = y.shape
    weight = weight.contiguous()
    out = torch.empty(batch, length, d_in)
    for row in range(batch):
        library().mamba2_gate_norm(length, d_in, groups, y[row].data_ptr(), z[row].data_ptr(), z.stride(1),
                                   weight.data_ptr(), eps, out[row].data_ptr(), torch.get_num_threads())
    calls["mamba2_gate_norm"] += 1
    return out


def quantized_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                     scale: torch.Tensor) -> torch.Tensor | None:
    """x (..., in) fp32 through an int8 or 4-bit layer as model/quantize.py stores it (weight, bias,
    scales: `Int8Linear` / `Q4Linear`'s buffers) → (..., out), every row of x quantized per block
    of 32 as the decode step quantizes its token; None where the C code cannot read these tensors.
    For CPU tensors outside autograd (dispatch.backend_for(x, bias) says "c")."""
    in_features, out_features = x.shape[-1], weight.shape[0]
    pointers = _linear_pointers(weight, bias, scale, (in_features, out_features))  # None: a layout it cannot read
    if pointers is None:
        return None
    rows = x.reshape(-1, in_features)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    y = torch.empty(rows.shape[0], out_features)
    if rows.shape[0]:
        # Named, so it outlives the call (a temporary's memory would be freed before the C code writes it).
        scratch = torch.empty(library().quantized_rows_scratch(rows.shape[0], in_features), dtype=torch.uint8)
        library().quantized_rows(
            (ctypes.c_void_p * 4)(*pointers), rows.shape[0], in_features, out_features, rows.data_ptr(),
            rows.stride(0), y.data_ptr(), out_features, scratch.data_ptr(), torch.get_num_threads(),
        )
    calls["quantized_rows"] += 1
    return y.reshape(*x.shape[:-1], out_features)


@functools.lru_cache(maxsize=16)
def mamba_step(d: int, d_in: int, n: int, k: int, rank: int, vocab: int, layers: int, falcon: bool,
               eps: float, mixer_eps: float) -> MambaStep | None:
    """The fused step for Mamba models of these dimensions (one per shape), or None where the
    C file cannot be built."""
    if library() is None:
        return None
    return MambaStep(MambaDims(d=d, d_in=d_in, n=n, k=k, rank=rank, vocab=vocab, layers=layers,
                               falcon=int(falcon), eps=eps, mixer_eps=mixer_eps))


class Mamba2Step(MambaStep):
    """The fused decode step of a Mamba-2 model (`Mamba2LM.fused_weights()`, MAMBA2_LAYER); the
    state is conv (layers, 1, conv_dim, k) and ssm (layers, 1, heads, head_dim, n)."""

    name = "mamba2_step"
    LAYER = MAMBA2_LAYER

    @staticmethod
    def _linear_shapes(dims) -> dict[str, tuple[int, int]]:
        conv_dim = dims.d_in + 2 * dims.groups * dims.n
        return {"in_proj": (dims.d, dims.d_in + conv_dim + dims.heads), "out_proj": (dims.d_in, dims.d),
                "lm_head": (dims.d, dims.vocab)}


@functools.lru_cache(maxsize=16)
def mamba2_step(d: int, d_in: int, n: int, k: int, heads: int, head_dim: int, groups: int, vocab: int,
                layers: int, eps: float, dt_min: float, dt_max: float) -> Mamba2Step | None:
    """The fused step for Mamba-2 models of these dimensions, or None where the C file cannot be built."""
    if library() is None:
        return None
    return Mamba2Step(Mamba2Dims(d=d, d_in=d_in, n=n, k=k, heads=heads, head_dim=head_dim, groups=groups,
                                 vocab=vocab, layers=layers, eps=eps, dt_min=dt_min, dt_max=dt_max))


class GraniteStep(MambaStep):
    """The fused decode step of a Granite-4.0-H hybrid (`GraniteHybridLM.fused_weights()`,
    GRANITE_LAYER per layer, then MAMBA_TAIL): `step(weights, token, state, logit_bias)` with the
    model's `HybridState` (conv and ssm of its Mamba-2 layers, keys and values of its attention
    layers, `seen`), advanced in place except `seen`, which the model counts."""

    name = "granite_step"
    LAYER = GRANITE_LAYER
    OPTIONAL = frozenset({"in_proj", "conv_weight", "conv_bias", "dt_bias", "A_log", "D", "gate_norm", "out_proj",
                          "q_proj", "k_proj", "v_proj", "o_proj"})

    @staticmethod
    def _linear_shapes(dims) -> dict[str, tuple[int, int]]:
        m = dims.mamba
        attention, kv = dims.att_heads * dims.att_dim, dims.kv_heads * dims.att_dim
        return {**Mamba2Step._linear_shapes(m), "q_proj": (m.d, attention), "k_proj": (m.d, kv), "v_proj": (m.d, kv),
                "o_proj": (attention, m.d), "mlp_in": (m.d, 2 * dims.mlp), "mlp_out": (dims.mlp, m.d),
                "lm_head": (m.d, m.vocab)}

    def __call__(self, weights: list, token: torch.Tensor, state, logit_bias: torch.Tensor | None = None):
        """Logits (1, vocab), or None (nothing changed) when these weights or this state are not
        ones the step reads."""
        tensors = (state.conv, state.ssm, state.keys, state.values)
        if token.numel() != 1 or state.conv.shape[1] != 1 or not all(_readable(t) for t in tensors):
            return None
        if state.keys.numel() and state.keys.shape[3] != self.dims.window:
            return None
        return self._step(weights, token, logit_bias, (*(t.data_ptr() for t in tensors), int(state.seen)))


@functools.lru_cache(maxsize=16)
def granite_step(d: int, d_in: int, n: int, k: int, heads: int, head_dim: int, groups: int, vocab: int,
                 layers: int, eps: float, dt_min: float, dt_max: float, att_heads: int, kv_heads: int,
                 att_dim: int, window: int, mlp: int, embedding_multiplier: float, residual_multiplier: float,
                 logits_scaling: float, attention_multiplier: float) -> GraniteStep | None:
    """The fused step for Granite-4.0-H models of these dimensions, or None where the C file
    cannot be built."""
    if library() is None:
        return None
    mamba = Mamba2Dims(d=d, d_in=d_in, n=n, k=k, heads=heads, head_dim=head_dim, groups=groups, vocab=vocab,
                       layers=layers, eps=eps, dt_min=dt_min, dt_max=dt_max)
    return GraniteStep(GraniteDims(mamba=mamba, att_heads=att_heads, kv_heads=kv_heads, att_dim=att_dim,
                                   window=window, mlp=mlp, embedding_multiplier=embedding_multiplier,
                                   residual_multiplier=residual_multiplier, logits_scaling=logits_scaling,
                                   attention_multiplier=attention_multiplier))


class RWKV7Step(MambaStep):
    """The fused decode step of an RWKV-7 model (`RWKV7LM.fused_weights()`, RWKV7_LAYER per layer,
    then RWKV7_TAIL); the state is conv (layers, 1, 2, d), the two token shifts, and ssm
    (layers, 1, heads, K, K), the wkv matrices."""

    name = "rwkv7_step"
    LAYER, TAIL = RWKV7_LAYER, RWKV7_TAIL
    OPTIONAL = frozenset({"pre_norm", "pre_norm_bias", "attn_norm_bias", "g_norm_bias", "ffn_norm_bias",
                          "norm_f_bias", "v_lora0", "v_lora2"})

    @staticmethod
    def _linear_shapes(dims) -> dict[str, tuple[int, int]]:
        d = dims.d
        shapes = {name: (d, d) for name in ("r_proj", "k_proj", "v_proj", "o_proj")}
        for lora, rank in (("w", dims.rank_w), ("v", dims.rank_v), ("a", dims.rank_a), ("g", dims.rank_g)):
            shapes[f"{lora}_lora0"], shapes[f"{lora}_lora2"] = (d, rank), (rank, d)
        return {**shapes, "key": (d, dims.ffn), "value": (dims.ffn, d), "lm_head": (d, dims.vocab)}

    def _plain_size(self, name: str) -> int | None:
        return None if name in ("embedding", "embedding_scale") else self.dims.d

    def _state_fits(self, conv: torch.Tensor, ssm: torch.Tensor) -> bool:
        dims = self.dims
        return (tuple(conv.shape) == (dims.layers, 1, 2, dims.d)
                and tuple(ssm.shape) == (dims.layers, 1, dims.heads, dims.head_dim, dims.head_dim))


@functools.lru_cache(maxsize=16)
def rwkv7_step(d: int, heads: int, head_dim: int, ffn: int, rank_w: int, rank_v: int, rank_a: int, rank_g: int,
               vocab: int, layers: int, eps: float, group_eps: float) -> RWKV7Step | None:
    """The fused step for RWKV-7 models of these dimensions, or None where the C file cannot be built."""
    if library() is None:
        return None
    return RWKV7Step(RWKV7Dims(d=d, heads=heads, head_dim=head_dim, ffn=ffn, rank_w=rank_w, rank_v=rank_v,
                               rank_a=rank_a, rank_g=rank_g, vocab=vocab, layers=layers, eps=eps,
                               group_eps=group_eps))


def read_gb_s(megabytes: int = 512, threads: int = 1, repeats: int = 3) -> float | None:
    """Read bandwidth (GB/s): the best of `repeats` read-only sums over a buffer larger than the
    caches, with `threads` threads; None without the C library."""
    if library() is None:
        return None
    buffer = torch.ones(megabytes * 2**20 // 4)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        library().read_sum(buffer.data_ptr(), buffer.numel(), threads)
        best = min(best, time.perf_counter() - start)
    return buffer.nbytes / best / 1e9


FMA_CHAINS = 12 * 8  # fma_sum's independent lanes per thread


def fma_gflops(threads: int = 1, rounds: int = 20_000_000, repeats: int = 3) -> float | None:
    """Peak fp32 multiply-add rate (GFLOP/s, two per multiply-add), the best of `repeats` runs of
    `fma_sum` with `threads` threads; None without the C library."""
    if library() is None:
        return None
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        library().fma_sum(rounds, threads)
        best = min(best, time.perf_counter() - start)
    return 2 * FMA_CHAINS * rounds * threads / best / 1e9
