"""Granite-4.0-H's fused CPU step (kernels/cpu_step.c, `granite_step`) against its plain twin,
`GraniteHybridLM.step` in PyTorch: Mamba-2 and attention layers, MLPs, multipliers, a ring that
wraps, fp32 and quantized, one and two threads."""

import pytest
import torch

from infitool_edit.kernels import cpu_step
from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM
from infitool_edit.model.quantize import quantize_int8, quantize_q4
from helpers.fused_decode import decode as decode_steps
from helpers.fused_decode import stir

pytestmark = pytest.mark.skipif(cpu_step.library() is None, reason=f"{cpu_step.unavailable_reason()}")

STEPS = 40


@pytest.fixture(autouse=True)
def every_thread_it_is_given(monkeypatch):
    monkeypatch.setattr(cpu_step, "ADAPTIVE_THREADS", False)


def small(**overrides) -> GraniteHybridLM:
    torch.manual_seed(0)
    settings = dict(vocab_size=97, hidden_size=64, intermediate_size=16, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, layer_types=["mamba", "attention", "mamba", "attention"],
                    num_local_experts=0, shared_intermediate_size=64, mamba_n_heads=8, mamba_d_state=16,
                    mamba_d_head=16, mamba_n_groups=2, embedding_multiplier=3.0, residual_multiplier=0.5,
                    attention_multiplier=0.2, logits_scaling=2.0, initializer_range=0.1)
    config = GraniteHybridConfig(**{**settings, **overrides})
    model = GraniteHybridLM(config, attention_window=8).eval()  # 40 tokens: the ring wraps five times
    return stir(model)


def decode(model, monkeypatch, *, fused: bool, threads: int = 1):
    return decode_steps(model, monkeypatch, "granite_step", STEPS, fused=fused, threads=threads)


VARIANTS = {
    "two-kv-groups": {},
    "one-kv-head-tied": {"num_key_value_heads": 1, "tie_word_embeddings": True},
    "attention-first-biases": {"layer_types": ["attention", "mamba", "mamba", "attention"], "attention_bias": True,
                               "mamba_proj_bias": True},
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_fused_granite_step_gives_the_plain_steps_logits_and_state(monkeypatch, overrides, threads):
    model = small(**overrides)
    fused, fused_state, ran = decode(model, monkeypatch, fused=True, threads=threads)
    plain, plain_state, ran_plain = decode(model, monkeypatch, fused=False)
    assert ran == STEPS and ran_plain == 0
    torch.testing.assert_close(fused, plain, atol=2e-5, rtol=1e-4)
    assert fused_state.matches(plain_state, atol=1e-5) and int(fused_state.seen) == STEPS
    assert plain.std() > 0.01


@pytest.mark.parametrize("quantize", [quantize_int8, quantize_q4], ids=["int8", "q4"])
def test_the_fused_granite_step_reads_quantized_layers(monkeypatch, quantize):
    quantized = quantize(small())
    fused, _, ran = decode(quantized, monkeypatch, fused=True, threads=2)
    plain, _, _ = decode(quantized, monkeypatch, fused=False)
    assert ran == STEPS
    assert ((fused - plain).pow(2).mean().sqrt() / plain.std()).item() < 2e-3


def test_a_granite_model_with_experts_steps_in_pytorch(monkeypatch):
    model = small(num_local_experts=2, num_experts_per_tok=1)
    _, _, ran = decode(model, monkeypatch, fused=True)
    assert ran == 0
