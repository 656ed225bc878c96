"""`infitool-edit bench model`: the SSM engine's CPU speed, measured side by side in one run.

Every ratio compares two things timed in this same process with the same
thread count (pinned to one: oversubscribed threads make decode many times
slower on a small machine). Random weights of mamba-130m's shape stand in for
the real checkpoint: speed depends on shapes, not values.

Figures
  copy_gb_s           bytes of a 256 MB tensor copied per second (the bandwidth the floor uses)
  floor_ms_130m       bytes of all weights ÷ copy_gb_s: the time to stream the weights once
  step_ms_130m        our fp32 decode time per token (median)
  floor_ratio         step_ms_130m ÷ floor_ms_130m
  transformers_step_ms, vs_transformers   transformers' MambaForCausalLM, same weights, with cache
  int8_step_ms, bf16_vs_fp32_floor        the int8 weight-only decode path ÷ the fp32 floor
  int8_logits_error   max |logit difference| int8 vs fp32 ÷ the std of the fp32 logits
  prefill_tok_s_130m, prefill_vs_step     a 2,048-token prompt through `forward` vs stepping it
  flatness, rss_growth                    small model: step time and RSS at 1,000,000 tokens vs at 1,000
  vs_kv_cache_4k/32k/128k                 a Llama of equal size decoding over a KV cache of that many tokens ÷ us
"""

from __future__ import annotations

import gc
import operator
import statistics
import time
from collections.abc import Callable

import psutil
import torch

from infitool_edit.model import MambaConfig, MambaLM
from infitool_edit.model.checkpoint import hf_state_dict
from infitool_edit.model.quantize import quantize_int8

THREADS = 1
MAMBA_130M = MambaConfig(vocab_size=50280, hidden_size=768, state_size=16, num_hidden_layers=24, expand=2)
SMALL = MambaConfig(vocab_size=264, hidden_size=256, state_size=16, num_hidden_layers=4, expand=2)
KV_CONTEXTS = {"4k": 4096, "32k": 32768, "128k": 131072}
# Llama heads: 12 query heads of 64 over 4 key/value heads (grouped-query attention, as
# Llama 2 70B and Llama 3 do), which keeps a 128k fp32 cache at 3.2 GB on a shared machine.
LLAMA_KV_HEADS = 4

BOUNDS: dict[str, tuple[Callable[[float, float], bool], float, str]] = {
    "vs_transformers": (operator.ge, 2.0, ">="),
    "floor_ratio": (operator.le, 1.5, "<="),
    "bf16_vs_fp32_floor": (operator.lt, 1.0, "<"),
    "int8_logits_error": (operator.le, 0.05, "<="),
    "flatness": (operator.le, 1.05, "<="),
    "rss_growth": (operator.le, 1.05, "<="),
    "vs_kv_cache_128k": (operator.ge, 10.0, ">="),
    "prefill_vs_step": (operator.ge, 8.0, ">="),
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


def copy_bandwidth_gb_s(megabytes: int = 256) -> float:
    """Bytes of a large tensor copied per second (best of five): how fast one thread streams memory."""
    source = torch.rand(megabytes * 2**20 // 4)
    target = torch.empty_like(source)
    target.copy_(source)
    best = min(_time_once(lambda: target.copy_(source)) for _ in range(5))
    return source.nbytes / best / 1e9


def _time_once(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of every distinct parameter and buffer (a tied matrix counts once)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.nbytes for t in tensors.values())


def step_ms(model: MambaLM, *, repeats: int = 25, state=None) -> float:
    state = model.new_state() if state is None else state
    token = torch.tensor([17])
    with torch.no_grad():
        return _median_ms(lambda: model.step(token, state), repeats=repeats)


def transformers_step_ms(model: MambaLM, *, repeats: int = 10) -> tuple[float, float]:
    """transformers' own Mamba on our weights, decoding with its cache: (ms per token, max |Δlogit|)."""
    from transformers import MambaConfig as HFMambaConfig
    from transformers import MambaForCausalLM

    hf = MambaForCausalLM(HFMambaConfig(**{k: v for k, v in model.config.to_hf_dict().items() if k != "architectures"}))
    hf.load_state_dict(hf_state_dict(model), strict=False)  # not strict: the tied head is absent
    hf.eval()
    prompt = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        output = hf(prompt, use_cache=True)
        cache = output.cache
        ours, state = model(prompt)
        difference = (output.logits - ours).abs().max().item()
        token = torch.tensor([[17]])
        elapsed = _median_ms(lambda: hf(token, cache=cache, use_cache=True), repeats=repeats)
    return elapsed, difference


def int8_logits_error(model: MambaLM, quantized: MambaLM, length: int = 64) -> float:
    """max |int8 logit − fp32 logit| over a sequence, relative to the std of the fp32 logits."""
    ids = torch.randint(0, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference, _ = model(ids)
        approximate, _ = quantized(ids)
    return ((approximate - reference).abs().max() / reference.std()).item()


def prefill_tok_s(model: MambaLM, length: int = 2048) -> float:
    ids = torch.randint(0, model.config.vocab_size, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        model(ids[:, :64], last_only=True)
        seconds = min(_time_once(lambda: model(ids, last_only=True)) for _ in range(2))
    return length / seconds


def flatness_and_rss(total_tokens: int = 1_000_000, chunk: int = 4096) -> tuple[float, float, float, float]:
    """Step time and RSS of a small model after 1,000 and after `total_tokens` tokens of history.

    The history is read through `forward` in chunks (the same state update as
    stepping, far faster); a warm-up chunk first brings the allocator to its
    working size, so both RSS readings see the same allocator."""
    torch.manual_seed(0)
    model = MambaLM(SMALL).eval()
    process = psutil.Process()

    def read(tokens: int, state) -> None:
        for start in range(0, tokens, chunk):
            ids = torch.randint(0, SMALL.vocab_size, (1, min(chunk, tokens - start)))
            model(ids, state, last_only=True)

    with torch.no_grad():
        read(chunk, model.new_state())
        state = model.new_state()
        read(1000, state)
        early_ms = step_ms(model, state=state, repeats=300)
        early_rss = process.memory_info().rss
        read(total_tokens - 1000, state)
        late_ms = step_ms(model, state=state, repeats=300)
        late_rss = process.memory_info().rss
    return early_ms, late_ms, early_rss / 2**20, late_rss / 2**20


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


def kv_cache_step_ms(llama, context: int, *, repeats: int = 3) -> float:
    """Per-token decode time with transformers' default (dynamic) KV cache already holding
    `context` tokens of random keys and values (prefilling 128k tokens on a CPU takes hours)."""
    from transformers import DynamicCache

    config = llama.config
    shape = (1, config.num_key_value_heads, context, config.hidden_size // config.num_attention_heads)
    cache = DynamicCache(config=config)
    for layer in range(config.num_hidden_layers):
        cache.update(torch.rand(shape) - 0.5, torch.rand(shape) - 0.5, layer)
    token = torch.tensor([[17]])
    with torch.no_grad():
        elapsed = _median_ms(lambda: llama(token, past_key_values=cache, use_cache=True), repeats=repeats, warmup=1)
    del cache
    gc.collect()
    return elapsed


def check_bounds(figures: dict[str, float]) -> dict[str, bool]:
    return {name: name in figures and meets(figures[name], bound) for name, (meets, bound, _) in BOUNDS.items()}


def main() -> dict:
    torch.set_num_threads(THREADS)
    figures: dict[str, float] = {"threads": THREADS}

    def record(name: str, value: float, note: str = "") -> None:
        figures[name] = round(value, 4)
        print(f"{name:>22} {value:10.4g}  {note}", flush=True)

    torch.manual_seed(0)
    model = MambaLM(MAMBA_130M).eval()
    bandwidth = copy_bandwidth_gb_s()
    record("copy_gb_s", bandwidth, "one thread copying a 256 MB tensor (bytes copied / s)")
    record("weights_mb_130m", weight_bytes(model) / 1e6)
    floor = weight_bytes(model) / (bandwidth * 1e9) * 1e3
    record("floor_ms_130m", floor, "weights read once at copy bandwidth")
    ours = step_ms(model)
    record("step_ms_130m", ours, "fp32, batch 1")
    record("floor_ratio", ours / floor)

    theirs, difference = transformers_step_ms(model)
    ours_again = step_ms(model)
    record("transformers_step_ms", theirs, f"their logits within {difference:.1e} of ours")
    record("vs_transformers", theirs / ((ours + ours_again) / 2), "ours timed before and after theirs")
    gc.collect()

    quantized = quantize_int8(model)
    int8 = step_ms(quantized)
    record("int8_step_ms", int8, "int8 weights, bf16 activations in the matmuls")
    record("bf16_vs_fp32_floor", int8 / floor)
    record("int8_logits_error", int8_logits_error(model, quantized), "max |Δlogit| / std(logits)")
    del quantized
    gc.collect()

    prefill = prefill_tok_s(model)
    record("prefill_tok_s_130m", prefill, "2,048-token prompt through forward")
    record("prefill_vs_step", prefill / (1e3 / ours))

    early_ms, late_ms, early_rss, late_rss = flatness_and_rss()
    record("step_ms_small_1k", early_ms)
    record("step_ms_small_1m", late_ms)
    record("flatness", late_ms / early_ms)
    record("rss_mb_1k", early_rss)
    record("rss_mb_1m", late_rss)
    record("rss_growth", late_rss / early_rss)

    llama = _llama_of_equal_size(weight_bytes(model) // 4)
    record("llama_params_m", sum(p.numel() for p in llama.parameters()) / 1e6, "vs mamba's " + f"{weight_bytes(model) / 4e6:.1f}")
    for label, context in KV_CONTEXTS.items():
        theirs = kv_cache_step_ms(llama, context)
        record(f"kv_step_ms_{label}", theirs)
        record(f"vs_kv_cache_{label}", theirs / ours)

    verdicts = check_bounds(figures)
    for name, (_, bound, reads) in BOUNDS.items():
        print(f"{name:>22} {figures.get(name, float('nan')):10.4g}  bound {reads} {bound:g}: {'ok' if verdicts[name] else 'FAIL'}")
    figures["bounds_met"] = all(verdicts.values())
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(main()))
