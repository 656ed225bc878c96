"""`infitool-edit bench model`: the SSM engine's CPU speed, measured side by side in one run.

Every ratio compares two things timed in this same process with the same
thread count (pinned to one: oversubscribed threads make decode many times
slower on a small machine). Random weights of mamba-130m's shape stand in for
the real checkpoint: speed depends on shapes, not values.

Figures
  copy_gb_s           bytes of a 256 MB tensor copied per second (the bandwidth the floor uses)
  floor_ms_130m       bytes of all weights ÷ copy_gb_s: the time to stream the weights once
  fused_cpu_step      1 when the fused C step (kernels/cpu_step.c) ran, 0 when it could not be built
  step_ms_130m        our fp32 decode time per token (median)
  plain_step_ms_130m, fused_vs_plain      the same step through its plain PyTorch twin, and twin ÷ fused
  floor_ratio         step_ms_130m ÷ floor_ms_130m
  transformers_step_ms, vs_transformers   transformers' MambaForCausalLM, same weights, with cache
  read_gb_s           bytes per second of a read-only sum over a 256 MB buffer, one thread (cpu_step.read_gb_s)
  step_share_of_read_bw   (weights' bytes ÷ read_gb_s) ÷ step_ms_130m: the share of the read
                      bandwidth one fp32 step streams its weights at (target ≥ 0.8), per round
  threads2_vs_1       fp32 step with 2 threads ÷ with 1, per round (target ≤ 0.7 on an idle machine);
                      load_before / load_after: /proc/loadavg's 1-minute load around the run
  int8_step_ms, bf16_vs_fp32_floor        the int8 decode path (activations quantized per block of
                      32, integer dot products, int8 head and embedding) ÷ the fp32 floor
  int8_logits_*       RMS and max |logit difference| int8 vs fp32 ÷ the std of the fp32 logits
                      (stated tolerance: RMS ≤ 0.05), and how often the argmax agrees (≥ 0.95)
  q4_step_ms, q4_logits_*                 the same for 4-bit weights (Q4_0-like groups of 32), no bounds
  int8_threads2_vs_1  the int8 step with 2 threads ÷ with 1
  adaptive2_vs_1      the fp32 step given 2 threads, choosing 2 or 1 by recent times (the default), ÷ 1 thread
  vs_transformers_int8                    transformers fp32 ÷ our int8 path
  prefill_tok_s_130m, prefill_vs_step     a 2,048-token prompt through `forward` vs stepping it
  flatness, rss_growth                    small model: step time and RSS at 1,000,000 tokens vs at 1,000
  mamba2_step_ms_130m, mamba2_vs_transformers, mamba2_prefill_vs_step, mamba2_fused_vs_plain
                                          the same for Mamba-2 of mamba2-130m's shape (fused C step, no bounds)
  vs_kv_cache_4k/32k/128k                 a Llama of equal size decoding over a KV cache of that many tokens ÷ us
  rwkv7_*, granite_*                      RWKV-7 beside fla's reference, and Granite-4.0-H-1B with its KV window
                                          full: see bench/model_hybrid.py (1.5B-class shapes: INFITOOL_BENCH_LARGE=1)

With `--llamacpp BIN` (a llama-bench binary) it prints instead the table of issue 14: each row
ours ÷ llama.cpp's ms per token (vs_llamacpp_*; below 1 we are faster), see bench/_llamacpp.py;
then fma_gflops_t1/t2 (the peak fp32 multiply-add rate, cpu_step.fma_gflops) and, per
F32 prefill row, floor_vs_llamacpp_*: the linear layers alone at that peak ÷ llama.cpp's whole prefill.
"""

from __future__ import annotations

import gc
import operator
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import torch

from infitool_edit.bench import model_hybrid
from infitool_edit.kernels import cpu_step
from infitool_edit.model import Mamba2Config, Mamba2LM, MambaConfig, MambaLM
from infitool_edit.model.mamba import Linear
from infitool_edit.model.checkpoint import hf_state_dict
from infitool_edit.model.memory import on_huge_pages
from infitool_edit.model.quantize import quantize_int8, quantize_q4

THREADS = 1
MAMBA_130M = MambaConfig(vocab_size=50280, hidden_size=768, state_size=16, num_hidden_layers=24, expand=2)
# Mamba-2 at the size of state-spaces/mamba2-130m: the same width and depth, a (64 × 128) state per head.
MAMBA2_130M = Mamba2Config(vocab_size=50288, hidden_size=768, state_size=128, num_hidden_layers=24, expand=2,
                           num_heads=24, head_dim=64, n_groups=1, tie_word_embeddings=True)
SMALL = MambaConfig(vocab_size=264, hidden_size=256, state_size=16, num_hidden_layers=4, expand=2)
KV_CONTEXTS = {"4k": 4096, "32k": 32768, "128k": 131072}
# Llama heads: 12 query heads of 64 over 4 key/value heads (grouped-query attention, as
# Llama 2 70B and Llama 3 do), which keeps a 128k fp32 cache at 3.2 GB on a shared machine.
LLAMA_KV_HEADS = 4

BOUNDS: dict[str, tuple[Callable[[float, float], bool], float, str]] = {
    "vs_transformers": (operator.ge, 2.0, ">="),
    "floor_ratio": (operator.le, 1.5, "<="),
    "bf16_vs_fp32_floor": (operator.lt, 1.0, "<"),
    "int8_logits_rms_error": (operator.le, 0.05, "<="),
    "int8_top1_agreement": (operator.ge, 0.95, ">="),
    "flatness": (operator.le, 1.05, "<="),
    "rss_growth": (operator.le, 1.05, "<="),
    "vs_kv_cache_128k": (operator.ge, 10.0, ">="),
    "prefill_vs_step": (operator.ge, 8.0, ">="),
    "rwkv7_int8_vs_reference_0.4b": (operator.ge, 2.0, ">="),
}


def _median_ms(run: Callable[[], object], *, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def interleaved(
    first: Callable[[], float], second: Callable[[], float], *, rounds: int
) -> tuple[float, float, float]:
    """Time two things in alternating rounds: (median of first, median of second, median of
    first/second per round). On a shared machine the load changes from second to second; a
    ratio of neighbours is far steadier than a ratio of two separate runs."""
    firsts, seconds = [], []
    for _ in range(rounds):
        firsts.append(first())
        seconds.append(second())
    ratios = [a / b for a, b in zip(firsts, seconds)]
    return statistics.median(firsts), statistics.median(seconds), statistics.median(ratios)


class CopyFloor:
    """The time to stream `weight_bytes` through one core, from the copy rate of a large tensor."""

    def __init__(self, weight_bytes: int, megabytes: int = 256):
        self.weight_bytes = weight_bytes
        self.source = torch.rand(megabytes * 2**20 // 4)
        self.target = torch.empty_like(self.source)
        self.target.copy_(self.source)

    def bandwidth_gb_s(self) -> float:
        """Bytes copied per second, best of three."""
        best = min(_time_once(lambda: self.target.copy_(self.source)) for _ in range(3))
        return self.source.nbytes / best / 1e9

    def ms(self) -> float:
        return self.weight_bytes / (self.bandwidth_gb_s() * 1e9) * 1e3


def _time_once(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (a tied matrix counts once)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.nbytes for t in tensors.values())


def step_ms(model: MambaLM, *, repeats: int = 3, warmup: int = 1, state=None) -> float:
    """Median ms of `repeats` steps (after `warmup` untimed ones), advancing `state`."""
    state = model.new_state() if state is None else state
    token = torch.tensor([17])
    with torch.no_grad():
        return _median_ms(lambda: model.step(token, state), repeats=repeats, warmup=warmup)


def plain_step_ms(model: MambaLM) -> float:
    """`step_ms` with the fused C step turned off: its plain PyTorch twin."""
    previous = os.environ.get(cpu_step.ENV_VAR)
    os.environ[cpu_step.ENV_VAR] = "off"
    try:
        return step_ms(model)
    finally:
        if previous is None:
            del os.environ[cpu_step.ENV_VAR]
        else:
            os.environ[cpu_step.ENV_VAR] = previous


def transformers_stepper(model: MambaLM) -> tuple[Callable[[], float], float]:
    """transformers' own Mamba (or Mamba-2) on our weights, decoding with its cache: (a timer of
    its ms per token, max |Δlogit| between its logits and ours on a prompt)."""
    import transformers

    values = {k: v for k, v in model.config.to_hf_dict().items() if k != "architectures"}
    if isinstance(model, Mamba2LM):
        hf = transformers.Mamba2ForCausalLM(transformers.Mamba2Config(**values))
    else:
        hf = transformers.MambaForCausalLM(transformers.MambaConfig(**values))
    hf.load_state_dict(hf_state_dict(model), strict=False)  # not strict: a tied head is absent
    hf.eval()
    prompt = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        output = hf(prompt, use_cache=True)
        cache = output.cache
        ours, state = model(prompt)
        difference = (output.logits - ours).abs().max().item()
    token = torch.tensor([[17]])

    def timer() -> float:
        with torch.no_grad():
            return _median_ms(lambda: hf(token, cache=cache, use_cache=True), repeats=3, warmup=1)

    return timer, difference


def int8_logits_error(model: MambaLM, quantized: MambaLM, length: int = 64, prefix: str = "int8") -> dict[str, float]:
    """How far the int8 path's logits are from fp32 over a sequence: RMS and max of the
    difference relative to the std of the fp32 logits, and how often the argmax agrees."""
    ids = torch.randint(0, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference, _ = model(ids)
        approximate, _ = quantized(ids)
    difference, spread = approximate - reference, reference.std()
    return {
        f"{prefix}_logits_rms_error": (difference.pow(2).mean().sqrt() / spread).item(),
        f"{prefix}_logits_max_error": (difference.abs().max() / spread).item(),
        f"{prefix}_top1_agreement": (approximate.argmax(-1) == reference.argmax(-1)).float().mean().item(),
    }


def prefill_ms_per_token(model: MambaLM, length: int = 2048) -> float:
    """Milliseconds per prompt token for one `length`-token prompt through `forward`."""
    ids = torch.randint(0, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(ids[:, :64], last_only=True)
        return _time_once(lambda: model(ids, last_only=True)) / length * 1e3


def flatness_and_rss(total_tokens: int = 1_000_000, chunk: int = 4096, rounds: int = 200) -> dict[str, float]:
    """Step time and RSS of a small model after 1,000 and after `total_tokens` tokens of history.

    The history is read through `forward` in chunks (the same state update as
    stepping, far faster); a warm-up chunk first brings the allocator to its
    working size, so both RSS readings see the same allocator. The state at
    1,000 tokens is kept (it is small and fixed in size), so the two step times
    are measured at the end, a few steps from a fresh copy of each in turn."""
    torch.manual_seed(0)
    model = MambaLM(SMALL).eval()
    process = psutil.Process()

    def read(tokens: int, state) -> None:
        for start in range(0, tokens, chunk):
            ids = torch.randint(0, SMALL.vocab_size, (1, min(chunk, tokens - start)))
            model(ids, state, last_only=True)

    with torch.no_grad():
        read(chunk, model.new_state())
        late = model.new_state()
        read(1000, late)
        early_rss = process.memory_info().rss
        early = late.copy()
        read(total_tokens - 1000, late)
        late_rss = process.memory_info().rss
    early_ms, late_ms, _ = interleaved(
        lambda: step_ms(model, state=early.copy(), repeats=5, warmup=0),
        lambda: step_ms(model, state=late.copy(), repeats=5, warmup=0),
        rounds=rounds,
    )
    return {
        "step_ms_small_1k": early_ms,
        "step_ms_small_1m": late_ms,
        "flatness": late_ms / early_ms,  # medians over many rounds: steadier than per-round ratios of ~1 ms
        "rss_mb_1k": early_rss / 2**20,
        "rss_mb_1m": late_rss / 2**20,
        "rss_growth": late_rss / early_rss,
    }


def _llama_of_equal_size(target_parameters: int):
    """A Llama-style transformers model with mamba-130m's width and vocabulary, its MLP sized
    so the parameter count matches."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads = 768, 12, 12
    head_dim = hidden // heads
    attention = 2 * hidden * hidden + 2 * hidden * LLAMA_KV_HEADS * head_dim
    embedding = MAMBA_130M.vocab_size * hidden
    per_layer = (target_parameters - embedding - hidden) / layers
    intermediate = round((per_layer - attention - 2 * hidden) / (3 * hidden))
    config = LlamaConfig(
        vocab_size=MAMBA_130M.vocab_size,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=LLAMA_KV_HEADS,
        max_position_embeddings=max(KV_CONTEXTS.values()) + 64,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def kv_cache_stepper(llama, context: int) -> Callable[[], float]:
    """Per-token decode time with transformers' default (dynamic) KV cache already holding
    `context` tokens of random keys and values (prefilling 128k tokens on a CPU takes hours)."""
    from transformers import DynamicCache

    config = llama.config
    shape = (1, config.num_key_value_heads, context, config.hidden_size // config.num_attention_heads)
    cache = DynamicCache(config=config)
    for layer in range(config.num_hidden_layers):
        cache.update(torch.rand(shape) - 0.5, torch.rand(shape) - 0.5, layer)
    token = torch.tensor([[17]])

    def timer() -> float:
        with torch.no_grad():
            return _median_ms(lambda: llama(token, cache=cache, use_cache=True), repeats=1, warmup=0)

    timer()  # the first decode over a new cache pays one-off allocations
    return timer


def with_threads(threads: int, run: Callable[[], float]) -> Callable[[], float]:
    """run() with torch (and so the fused step) pinned to `threads` threads, then back."""
    def timed() -> float:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return run()
        finally:
            torch.set_num_threads(previous)
    return timed


def load_1min() -> float:
    try:
        with open("/proc/loadavg", encoding="ascii") as loadavg:
            return float(loadavg.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def check_bounds(figures: dict[str, float]) -> dict[str, bool]:
    return {name: name in figures and meets(figures[name], bound) for name, (meets, bound, _) in BOUNDS.items()}


def llamacpp_figures(binary: Path) -> dict[str, float]:
    """`--llamacpp BIN`: the issue's table, ours ÷ llama.cpp's per row (bench/_llamacpp.py)."""
    from infitool_edit.bench import _llamacpp

    if not binary.is_file():
        raise _llamacpp.LlamaCppError(f"{binary}: no llama-bench binary there (docs/kernels.md says how to build one)")
    torch.manual_seed(0)
    models = {"mamba": MambaLM(MAMBA_130M).eval(), "mamba2": Mamba2LM(MAMBA2_130M).eval()}
    quantizers = {"f32": lambda m: m, "q8_0": quantize_int8, "q4_0": quantize_q4}
    made: dict[tuple[str, str], MambaLM] = {}

    def ours(name: str, kind: str, threads: int, prompt: int) -> float:
        model = made.get((name, kind))
        if model is None:
            model = made[(name, kind)] = on_huge_pages(quantizers[kind](models[name]))  # as load_model places it
        cpu_step.ADAPTIVE_THREADS = False
        try:
            run = (lambda: prefill_ms_per_token(model, prompt)) if prompt else (lambda: step_ms(model, repeats=9))
            return with_threads(threads, run)()
        finally:
            cpu_step.ADAPTIVE_THREADS = True

    print("| row | ours | llama.cpp | ratio |\n|---|---|---|---|", flush=True)
    figures = _llamacpp.compare(binary, models, ours)
    return figures | prefill_floors(models, figures)


def projection_flops(model: MambaLM) -> int:
    """Floating-point operations a prompt token costs in the model's linear layers (two per
    multiply-add), the head left out: a prompt needs the logits of its last token only."""
    return sum(2 * m.in_features * m.out_features for m in model.modules()
               if isinstance(m, Linear) and m is not model.lm_head)


def prefill_floors(models: dict[str, MambaLM], figures: dict[str, float]) -> dict[str, float]:
    """What a prompt's linear layers alone would take at the machine's peak multiply-add rate
    (cpu_step.fma_gflops), ÷ llama.cpp's whole prefill: the lowest prefill ratio any sgemm could
    give, before the scan and everything else is counted."""
    floors: dict[str, float] = {}
    for threads in (1, 2):
        peak = cpu_step.fma_gflops(threads)
        if peak is None:
            return floors
        floors[f"fma_gflops_t{threads}"] = round(peak, 1)
        for name, model in models.items():
            theirs = figures.get(f"llamacpp_{name}_f32_prefill_t{threads}_ms")
            floor_ms = projection_flops(model) / (peak * 1e9) * 1e3
            floors[f"projections_at_peak_{name}_prefill_t{threads}_ms"] = round(floor_ms, 3)
            if theirs:
                floors[f"floor_vs_llamacpp_{name}_f32_prefill_t{threads}"] = round(floor_ms / theirs, 3)
                print(f"| {name}_f32_prefill_t{threads}: linear layers at the peak {peak:.0f} GFLOP/s | "
                      f"{floor_ms:.2f} ms | {theirs:.1f} ms | {floor_ms / theirs:.2f} |", flush=True)
    return floors


def main(llamacpp: Path | None = None) -> dict:
    torch.set_num_threads(THREADS)
    if llamacpp is not None:
        # The machine is shared: the 1-minute load before and after says how much the ratios can be trusted.
        before = load_1min()
        figures = llamacpp_figures(llamacpp)
        return {"threads": THREADS, "load_1min_before": before, **figures, "load_1min_after": load_1min()}
    # transformers says, rightly, that mamba_ssm is missing: its plain PyTorch path is what we time.
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    figures: dict[str, float] = {"threads": THREADS}

    def record(name: str, value: float, note: str = "") -> None:
        figures[name] = round(value, 4)
        print(f"{name:>22} {value:10.4g}  {note}", flush=True)

    torch.manual_seed(0)
    model = on_huge_pages(MambaLM(MAMBA_130M).eval())  # where load_model places a checkpoint's weights
    ours = lambda: step_ms(model)  # noqa: E731
    floor = CopyFloor(weight_bytes(model))
    record("weights_mb_130m", floor.weight_bytes / 1e6, "every distinct parameter, read once per token")
    record("copy_gb_s", floor.bandwidth_gb_s(), "one thread copying a 256 MB tensor (bytes copied / s)")
    reason = cpu_step.unavailable_reason()
    record("fused_cpu_step", float(reason is None), reason or "the C step, compiled for this CPU")
    step, floor_ms, ratio = interleaved(ours, floor.ms, rounds=15)
    record("floor_ms_130m", floor_ms, "the weights' bytes at copy bandwidth")
    record("step_ms_130m", step, "fp32, batch 1")
    record("floor_ratio", ratio, "per round, median")
    bytes_130m = floor.weight_bytes
    read_ms = lambda: bytes_130m / (cpu_step.read_gb_s(256, threads=1, repeats=2) * 1e9) * 1e3  # noqa: E731
    if reason is None:
        read_floor, step, ratio = interleaved(read_ms, ours, rounds=7)
        record("read_gb_s", bytes_130m / read_floor / 1e6, "one thread summing a 256 MB buffer (read only)")
        record("step_share_of_read_bw", ratio, f"weights at read bandwidth {read_floor:.1f} ms ÷ step {step:.1f} ms")
        record("load_before", load_1min(), "1-minute load average of this machine (/proc/loadavg)")
        cpu_step.ADAPTIVE_THREADS = False  # the team of 2 itself, not the step's choice between 2 and 1
        two, one, ratio = interleaved(with_threads(2, ours), with_threads(1, ours), rounds=9)
        record("threads2_vs_1", ratio, f"fp32 step: {two:.1f} ms with 2 threads, {one:.1f} ms with 1")
        cpu_step.ADAPTIVE_THREADS = True
        two, one, ratio = interleaved(with_threads(2, lambda: step_ms(model, repeats=9)), with_threads(1, ours), rounds=5)
        record("adaptive2_vs_1", ratio, "given 2 threads, the step uses the faster of 2 and 1 (ThreadChooser)")
        record("load_after", load_1min())
    plain_ms, _, ratio = interleaved(lambda: plain_step_ms(model), ours, rounds=9)
    record("plain_step_ms_130m", plain_ms, "the PyTorch twin of the fused step")
    record("fused_vs_plain", ratio, "twin ÷ fused, per round")

    theirs, difference = transformers_stepper(model)
    theirs_ms, ours_ms, ratio = interleaved(theirs, ours, rounds=15)
    record("transformers_step_ms", theirs_ms, f"their logits within {difference:.1e} of ours")
    record("vs_transformers", ratio, f"fp32 both; ours {ours_ms:.1f} ms in the same rounds")
    del theirs
    gc.collect()

    quantized = on_huge_pages(quantize_int8(model))
    int8_ms, floor_ms, ratio = interleaved(lambda: step_ms(quantized), floor.ms, rounds=15)
    record("int8_step_ms", int8_ms, "int8 weights, activations quantized per block of 32")
    record("bf16_vs_fp32_floor", ratio, "int8 step / fp32 floor, per round")
    for name, value in int8_logits_error(model, quantized).items():
        record(name, value, "÷ std of the fp32 logits" if "error" in name else "")
    theirs, _ = transformers_stepper(model)
    _, _, ratio = interleaved(theirs, lambda: step_ms(quantized), rounds=9)
    record("vs_transformers_int8", ratio, "transformers fp32 / our int8 path")
    cpu_step.ADAPTIVE_THREADS = False
    two, one, ratio = interleaved(with_threads(2, lambda: step_ms(quantized)), with_threads(1, lambda: step_ms(quantized)),
                                  rounds=5)
    cpu_step.ADAPTIVE_THREADS = True
    record("int8_threads2_vs_1", ratio, f"int8 step: {two:.1f} ms with 2 threads, {one:.1f} ms with 1")
    del quantized, theirs
    gc.collect()

    q4 = on_huge_pages(quantize_q4(model))
    q4_ms, _, ratio = interleaved(lambda: step_ms(q4), ours, rounds=9)
    record("q4_step_ms", q4_ms, f"4-bit weights in groups of 32; {ratio:.2f}× the fp32 step")
    record("q4_weights_mb", weight_bytes(q4) / 1e6, "4-bit layers, int8 head and embedding (tied: one copy)")
    for name, value in int8_logits_error(model, q4, prefix="q4").items():
        record(name, value, "÷ std of the fp32 logits" if "error" in name else "")
    del q4
    gc.collect()

    prefill_ms, step, ratio = interleaved(lambda: prefill_ms_per_token(model), ours, rounds=2)
    record("prefill_tok_s_130m", 1e3 / prefill_ms, "2,048-token prompt through forward")
    record("prefill_vs_step", 1 / ratio, f"vs stepping at {1e3 / step:.1f} tokens/s")

    for name, value in flatness_and_rss().items():
        record(name, value)

    # Mamba-2 through its fused CPU step (kernels/cpu_step.c, mamba2_step). No bounds.
    torch.manual_seed(0)
    mamba2 = on_huge_pages(Mamba2LM(MAMBA2_130M).eval())
    ours2 = lambda: step_ms(mamba2)  # noqa: E731
    theirs, difference = transformers_stepper(mamba2)
    theirs_ms, ours_ms, ratio = interleaved(theirs, ours2, rounds=5)
    record("mamba2_step_ms_130m", ours_ms, f"fp32, batch 1; logits within {difference:.1e} of transformers'")
    record("mamba2_vs_transformers", ratio, f"transformers' Mamba-2 at {theirs_ms:.1f} ms")
    _, _, ratio = interleaved(lambda: plain_step_ms(mamba2), ours2, rounds=3)
    record("mamba2_fused_vs_plain", ratio, "its PyTorch twin ÷ the fused step, per round")
    prefill_ms, step2, ratio = interleaved(lambda: prefill_ms_per_token(mamba2), ours2, rounds=2)
    record("mamba2_prefill_vs_step", 1 / ratio, f"2,048-token prompt at {1e3 / prefill_ms:.0f} tokens/s (SSD scan)")
    del mamba2, theirs
    gc.collect()

    llama = _llama_of_equal_size(floor.weight_bytes // 4)
    mamba_params = floor.weight_bytes / 4e6
    record("llama_params_m", sum(p.numel() for p in llama.parameters()) / 1e6, f"mamba: {mamba_params:.1f}")
    for label, context in KV_CONTEXTS.items():
        theirs = kv_cache_stepper(llama, context)
        theirs_ms, _, ratio = interleaved(theirs, ours, rounds=3)
        record(f"kv_step_ms_{label}", theirs_ms)
        record(f"vs_kv_cache_{label}", ratio)
        del theirs
        gc.collect()

    # RWKV-7 and Granite-4.0-H (bench/model_hybrid.py); the 1.5B-class shapes only with INFITOOL_BENCH_LARGE=1.
    model_hybrid.rows(record, lambda run: _median_ms(run, repeats=3, warmup=1), interleaved)

    verdicts = check_bounds(figures)
    for name, (_, bound, reads) in BOUNDS.items():
        shown = figures.get(name, float("nan"))
        print(f"{name:>22} {shown:10.4g}  bound {reads} {bound:g}: {'ok' if verdicts[name] else 'FAIL'}")
    figures["bounds_met"] = all(verdicts.values())
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(main()))
