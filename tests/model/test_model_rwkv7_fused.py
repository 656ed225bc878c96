"""RWKV-7's fused CPU step (kernels/cpu_step.c, `rwkv7_step`) against its plain twin, `RWKV7LM.step`."""

import pytest
import torch

from infitool_edit.kernels import cpu_step
from infitool_edit.model.quantize import quantize_int8, quantize_q4
from infitool_edit.model.rwkv7 import RWKV7Config, RWKV7LM
from helpers.fused_decode import decode as decode_steps

pytestmark = pytest.mark.skipif(cpu_step.library() is None, reason=f"{cpu_step.unavailable_reason()}")

STEPS = 30


@pytest.fixture(autouse=True)
def every_thread_it_is_given(monkeypatch):
    monkeypatch.setattr(cpu_step, "ADAPTIVE_THREADS", False)


def small(**overrides) -> RWKV7LM:
    """Three layers (layer 0's pre_norm and v_first, two value-residual layers), four heads of 32,
    every parameter nudged off its initial value so every term of the step matters."""
    torch.manual_seed(0)
    settings = dict(vocab_size=97, hidden_size=128, num_hidden_layers=3, head_dim=32, decay_low_rank_dim=32,
                    gate_low_rank_dim=64, a_low_rank_dim=32, v_low_rank_dim=16, intermediate_size=256)
    model = RWKV7LM(RWKV7Config(**{**settings, **overrides})).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def decode(model, monkeypatch, *, fused: bool, threads: int = 1):
    return decode_steps(model, monkeypatch, "rwkv7_step", STEPS, fused=fused, threads=threads)


VARIANTS = {
    "plain": {},
    "no-norm-bias-no-pre-norm-tied": {"norm_bias": False, "norm_first": False, "tie_word_embeddings": True},
    "heads-of-16": {"head_dim": 16, "hidden_size": 96, "intermediate_size": 192},
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
def test_the_fused_rwkv7_step_gives_the_plain_steps_logits_and_state(monkeypatch, overrides, threads):
    model = small(**overrides)
    fused, fused_state, ran = decode(model, monkeypatch, fused=True, threads=threads)
    plain, plain_state, ran_plain = decode(model, monkeypatch, fused=False)
    assert ran == STEPS and ran_plain == 0  # the fused path ran every step; the twin never called it
    torch.testing.assert_close(fused, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fused_state.conv, plain_state.conv, atol=1e-5, rtol=1e-5)  # both token shifts
    torch.testing.assert_close(fused_state.ssm, plain_state.ssm, atol=1e-4, rtol=1e-4)  # every wkv matrix
    assert plain.std() > 0.05 and plain_state.ssm.abs().max() > 0.1  # the figures compared are not all ~0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("quantize", [quantize_int8, quantize_q4], ids=["int8", "q4"])
def test_the_fused_rwkv7_step_reads_quantized_layers(monkeypatch, quantize, threads):
    """Each step taken from the same state by both (Int8Linear / Q4Linear are the twins' layers;
    the LoRAs' second layers of rank 16 stay fp32, so a step mixes the kinds). The integer block
    products are the same, summed in another order, so now and then an activation lands on the
    other side of a rounding step of the on-the-fly int8 quantization (measured: 1 step in 30):
    such a step may differ by one quantum, every other step equals the twin's to fp32 tolerance.
    Over many steps the recurrence carries a flip on, which is why each step starts from one state."""
    quantized = quantize(small())
    previous = torch.get_num_threads()
    state, differences, before = quantized.new_state(), [], cpu_step.calls["rwkv7_step"]
    try:
        with torch.no_grad(), monkeypatch.context() as patch:
            for token in range(1, STEPS + 1):
                fused_state = quantized.new_state()
                fused_state.conv.copy_(state.conv)
                fused_state.ssm.copy_(state.ssm)
                patch.delenv(cpu_step.ENV_VAR, raising=False)
                torch.set_num_threads(threads)
                fused = quantized.step(token, fused_state)
                torch.set_num_threads(1)  # the twin on one thread: torch's own team is slow on a busy machine
                patch.setenv(cpu_step.ENV_VAR, "off")
                plain = quantized.step(token, state)
                pairs = ((fused, plain), (fused_state.ssm, state.ssm), (fused_state.conv, state.conv))
                differences.append(max((ours - twins).abs().max().item() for ours, twins in pairs))
    finally:
        torch.set_num_threads(previous)
    assert cpu_step.calls["rwkv7_step"] - before == STEPS
    assert sum(difference > 1e-4 for difference in differences) <= 2, differences
    assert max(differences) < 0.05, differences
    fp32, _, _ = decode(small(), monkeypatch, fused=True)
    ours, _, _ = decode(quantized, monkeypatch, fused=True)
    # Quantized, and near fp32 (4 bits on a random 128-wide model: 0.22 measured; int8: 0.01).
    assert 0 < ((ours - fp32).pow(2).mean().sqrt() / fp32.std()).item() < (0.05 if quantize is quantize_int8 else 0.4)


def test_what_the_fused_rwkv7_step_cannot_read_runs_the_twin(monkeypatch):
    model = small()
    with torch.no_grad():
        before = cpu_step.calls["rwkv7_step"]
        batch = model.new_state(2)
        two_rows = model.step(torch.tensor([3, 5]), batch)  # a batch of two
        assert two_rows.shape == (2, 97) and cpu_step.calls["rwkv7_step"] == before
        model.layers[1].attn.k_k.data = model.layers[1].attn.k_k.data.repeat(2)[::2]  # not contiguous
        state = model.new_state()
        model.step(3, state)
        assert cpu_step.calls["rwkv7_step"] == before and state.ssm.abs().sum() > 0
        with pytest.raises(IndexError):
            model.layers[1].attn.k_k.data = model.layers[1].attn.k_k.data.contiguous()
            model.step(97, model.new_state())
