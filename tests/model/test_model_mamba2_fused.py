"""Mamba-2's fused CPU step (kernels/cpu_step.c, `mamba2_step`) against its plain twin, `Mamba2Mixer.step`."""

import pytest
import torch

from infitool_edit.kernels import cpu_step
from infitool_edit.model import Mamba2Config, Mamba2LM
from infitool_edit.model.quantize import quantize_int8, quantize_q4
from helpers.fused_decode import decode as decode_steps
from helpers.fused_decode import stir

pytestmark = pytest.mark.skipif(cpu_step.library() is None, reason=f"{cpu_step.unavailable_reason()}")


@pytest.fixture(autouse=True)
def every_thread_it_is_given(monkeypatch):
    monkeypatch.setattr(cpu_step, "ADAPTIVE_THREADS", False)


def small(**overrides) -> Mamba2LM:
    torch.manual_seed(0)
    settings = dict(vocab_size=97, hidden_size=64, state_size=16, num_hidden_layers=2, num_heads=8, head_dim=16,
                    n_groups=2)
    model = Mamba2LM(Mamba2Config(**{**settings, **overrides})).eval()
    return stir(model)


def decode(model, monkeypatch, *, fused: bool, threads: int = 1):
    return decode_steps(model, monkeypatch, "mamba2_step", 40, fused=fused, threads=threads)


VARIANTS = {
    "groups2": {},
    "one-group-biases": {"n_groups": 1, "use_bias": True},
    "clamped-dt": {"time_step_limit": (0.01, 0.05)},
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_fused_mamba2_step_gives_the_plain_steps_logits_and_state(monkeypatch, overrides, threads):
    model = small(**overrides)
    fused, fused_state, ran = decode(model, monkeypatch, fused=True, threads=threads)
    plain, plain_state, ran_plain = decode(model, monkeypatch, fused=False)
    assert ran == 40 and ran_plain == 0
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    assert fused_state.matches(plain_state, atol=1e-5)
    assert plain.std() > 0.01


@pytest.mark.parametrize("quantize", [quantize_int8, quantize_q4], ids=["int8", "q4"])
def test_the_fused_mamba2_step_reads_quantized_layers(monkeypatch, quantize):
    quantized = quantize(small())
    fused, _, ran = decode(quantized, monkeypatch, fused=True, threads=2)
    plain, _, _ = decode(quantized, monkeypatch, fused=False)
    assert ran == 40
    assert ((fused - plain).pow(2).mean().sqrt() / plain.std()).item() < 2e-3
