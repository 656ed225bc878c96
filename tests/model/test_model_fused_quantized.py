"""The fused CPU step's threads and quantized layers against their plain PyTorch twins.

Each test also counts the fused step's calls (`cpu_step.calls`): a model that stopped calling
the fused step would otherwise compare the twin with itself and pass."""

import os

import pytest
import torch

from infitool_edit.kernels import cpu_step
from infitool_edit.model import MambaConfig, MambaLM
from infitool_edit.model.mamba import Linear
from infitool_edit.model.quantize import (
    Int8Embedding, Int8Linear, Q4Linear, pack_q4, quantize_activations, quantize_int8, quantize_q4, unpack_q4,
)

pytestmark = pytest.mark.skipif(cpu_step.library() is None, reason=f"{cpu_step.unavailable_reason()}")


@pytest.fixture(autouse=True)
def every_thread_it_is_given(monkeypatch):
    """The step uses all its threads (not the faster of all and one), so the team always runs."""
    monkeypatch.setattr(cpu_step, "ADAPTIVE_THREADS", False)


def small(**overrides) -> MambaLM:
    torch.manual_seed(0)
    config = MambaConfig(**{**dict(vocab_size=97, hidden_size=64, state_size=16, num_hidden_layers=2), **overrides})
    model = MambaLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("bias", "A_log", ".D")):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return model


def decode(model, ids, *, fused=True, threads=None):
    """Logits of stepping ids one by one, and how many fused steps ran."""
    previous_threads, previous_env = torch.get_num_threads(), os.environ.get(cpu_step.ENV_VAR)
    if threads:
        torch.set_num_threads(threads)
    if not fused:
        os.environ[cpu_step.ENV_VAR] = "off"
    before = cpu_step.calls["mamba_step"]
    try:
        with torch.no_grad():
            state = model.new_state()
            logits = torch.cat([model.step(int(token), state) for token in ids])
    finally:
        torch.set_num_threads(previous_threads)
        if previous_env is None:
            os.environ.pop(cpu_step.ENV_VAR, None)
        else:
            os.environ[cpu_step.ENV_VAR] = previous_env
    return logits, cpu_step.calls["mamba_step"] - before


IDS = torch.randint(0, 97, (24,), generator=torch.Generator().manual_seed(1))


def relative_rms(a, b, spread):
    return ((a - b).pow(2).mean().sqrt() / spread).item()


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_split_the_step_without_changing_it(threads):
    """Rows and channels split across threads give the one-thread step's numbers (to summation order).
    Three threads over 128 channels in blocks of 32 leave one thread a short share."""
    model = small(use_bias=True)
    one, ran_one = decode(model, IDS, threads=1)
    many, ran_many = decode(model, IDS, threads=threads)
    assert ran_one == ran_many == len(IDS)
    torch.testing.assert_close(many, one, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("quantize", [quantize_int8, quantize_q4], ids=["int8", "q4"])
@pytest.mark.parametrize("threads", [1, 2])
def test_quantized_fused_step_gives_its_twins_logits(quantize, threads):
    model = small()
    quantized = quantize(model)
    assert isinstance(quantized.embeddings, Int8Embedding) and isinstance(quantized.lm_head, Int8Linear)
    assert isinstance(quantized.layers[0].mixer.in_proj, Int8Linear if quantize is quantize_int8 else Q4Linear)
    fused, ran = decode(quantized, IDS, threads=threads)
    twin, ran_twin = decode(quantized, IDS, fused=False)
    fp32, _ = decode(model, IDS, fused=False)
    assert ran == len(IDS) and ran_twin == 0
    spread = fp32.std()
    # The same integers; only the summation order differs, which can tip an activation across a
    # rounding boundary now and then (one level of one block), far below the quantization error.
    assert relative_rms(fused, twin, spread) < 2e-3
    assert relative_rms(fused, fp32, spread) < (0.05 if quantize is quantize_int8 else 0.25)
    assert relative_rms(fused, fp32, spread) > 10 * relative_rms(fused, twin, spread)  # it did quantize


@pytest.mark.parametrize("threads", [1, 3])
def test_q4_rows_with_an_odd_number_of_blocks(threads):
    """The 4-bit dot product takes blocks in pairs (one 32-byte load); a row or a thread's share
    with an odd number of blocks ends in a single one: 96 = 3 blocks into in_proj, and 192
    channels over 3 threads leave each thread 2 blocks of x_proj and out_proj, 1 thread: 6."""
    model = small(hidden_size=96)
    quantized = quantize_q4(model)
    fused, ran = decode(quantized, IDS, threads=threads)
    twin, _ = decode(quantized, IDS, fused=False)
    fp32, _ = decode(model, IDS, fused=False)
    assert ran == len(IDS)
    spread = fp32.std()
    assert relative_rms(fused, twin, spread) < 2e-3
    assert relative_rms(fused, fp32, spread) > 10 * relative_rms(fused, twin, spread)


@pytest.mark.parametrize("quantize", [quantize_int8, quantize_q4], ids=["int8", "q4"])
def test_the_quantized_prompt_path_matches_stepping(quantize):
    """A prompt read through `forward` (quantized_rows, many tokens a call) gives the logits that
    stepping its tokens one by one gives (the fused step), so a prompt and the tokens after it
    see the same numbers: to summation order, which can tip an activation across a rounding
    boundary (it does once in these 4-bit logits, by 1e-3, the twin's prompt as much)."""
    quantized = quantize(small())
    stepped, _ = decode(quantized, IDS)
    before = cpu_step.calls["quantized_rows"]
    with torch.no_grad():
        read, _ = quantized(IDS[None])
    assert cpu_step.calls["quantized_rows"] > before
    assert relative_rms(read[0], stepped, stepped.std()) < 2e-3
    assert (read[0] - stepped).abs().max() < (1e-4 if quantize is quantize_int8 else 3e-3)


def plain_twin(layer, x):
    """layer(x) through `_blockwise`, the C code switched off."""
    previous = os.environ.get(cpu_step.ENV_VAR)
    os.environ[cpu_step.ENV_VAR] = "off"
    try:
        with torch.no_grad():
            return layer(x)
    finally:
        if previous is None:
            os.environ.pop(cpu_step.ENV_VAR, None)
        else:
            os.environ[cpu_step.ENV_VAR] = previous


# Blocks of 32 in a row: 1, 3 (a pair and an odd one), 6 (a quad and a pair: the 512-bit code takes
# four 4-bit blocks or two int8 ones a load), 7 (quad, pair, odd), 24 (a mamba-130m in_proj's row).
@pytest.mark.parametrize("in_features", [32, 96, 192, 224, 768])
@pytest.mark.parametrize("layer_class", [Int8Linear, Q4Linear], ids=["int8", "q4"])
def test_a_prompts_rows_through_a_quantized_layer_equal_the_plain_twin(in_features, layer_class):
    """quantized_rows against `_blockwise`: tokens in tiles of 4 (5 and 9 leave a short last tile),
    output rows in pairs (an odd count leaves one alone) split over 1-3 threads, x a strided view,
    with and without a bias. The integer sums are exact; only the float sums' order differs."""
    torch.manual_seed(in_features)
    for out_features, bias in ((7, True), (40, False)):
        linear = Linear(in_features, out_features, bias=bias)
        with torch.no_grad():
            linear.weight.normal_()
            if bias:
                linear.bias.normal_()
        layer = layer_class(linear)
        wide = torch.randn(9, in_features + 8)
        for rows in (1, 5, 9):
            x = wide[:rows, 3:3 + in_features]  # rows in_features + 8 apart
            twin = plain_twin(layer, x)
            for threads in (1, 2, 3):
                torch.set_num_threads(threads)
                before = cpu_step.calls["quantized_rows"]
                try:
                    with torch.no_grad():
                        fused = layer(x)
                finally:
                    torch.set_num_threads(1)
                assert cpu_step.calls["quantized_rows"] == before + 1
                assert fused.shape == (rows, out_features)
                torch.testing.assert_close(fused, twin, atol=1e-4 * twin.abs().max().item(), rtol=0)


def test_activations_quantize_per_block_of_32():
    x = torch.cat([torch.linspace(-1, 1, 32), torch.zeros(32), 100 * torch.randn(32)])
    q, scale = quantize_activations(x)
    assert scale.shape == (3,) and scale[1] == 0 and q[32:64].eq(0).all()
    assert q.abs().max() <= 127 and q[:32].abs().max() == 127
    torch.testing.assert_close((q.unflatten(-1, (3, 32)) * scale[:, None]).flatten(), x, atol=scale.max().item(), rtol=0)


def test_4_bit_packing_round_trips_and_fits_a_7b_model_in_4_gb():
    weight = torch.randn(8, 64)
    packed, scale = pack_q4(weight)
    assert packed.dtype == torch.uint8 and packed.shape == (8, 32) and scale.shape == (8, 2)
    q = unpack_q4(packed)
    assert q.min() >= -8 and q.max() <= 7
    restored = (q.unflatten(-1, (2, 32)) * scale.float()[..., None]).flatten(-2)
    # Half a step, plus the bf16 rounding of the scale; as in Q4_0 a value opposite the group's
    # extreme may be clamped from 8 to 7 steps, a whole step.
    step = scale.float().abs().repeat_interleave(32, -1)
    assert ((restored - weight).abs() <= 1.05 * step).all()
    assert ((restored - weight).abs() <= 0.55 * step).float().mean() > 0.95
    bytes_per_weight = (packed.nbytes + scale.nbytes) / weight.numel()
    assert bytes_per_weight == 0.5625 and 7e9 * bytes_per_weight / 2**30 < 4


def test_a_tied_head_and_embedding_share_one_int8_copy():
    quantized = quantize_int8(small())
    assert quantized.embeddings.weight_int8.data_ptr() == quantized.lm_head.weight_int8.data_ptr()


def test_the_thread_chooser_keeps_to_the_faster_choice_and_probes_the_other():
    chooser = cpu_step.ThreadChooser()
    assert chooser.pick(1) == 1
    picks = []
    for _ in range(200):
        threads = chooser.pick(2)
        picks.append(threads)
        chooser.record(threads, 2.0 if threads == 2 else 1.0)  # a busy machine: the team is slower
    assert picks[:3] == [2, 2, 2] and picks[3:6] == [1, 1, 1]
    assert 2 in picks[6:] and picks[6:].count(1) > 0.9 * len(picks[6:])


def test_read_bandwidth_is_measured():
    assert cpu_step.read_gb_s(megabytes=16, threads=1, repeats=1) > 0.1


def test_peak_multiply_add_rate_and_a_prompts_linear_flops():
    # fma_sum's chains run one multiply-add a lane per round: a slower loop (chains that wait on
    # each other, or one left out) reads far below the ~95 GFLOP/s measured here, never 0.
    assert cpu_step.fma_gflops(threads=1, rounds=200_000, repeats=1) > 1.0
    from infitool_edit.bench.model import projection_flops
    from infitool_edit.model import Mamba2Config, Mamba2LM

    config = Mamba2Config(vocab_size=300, hidden_size=64, state_size=16, num_hidden_layers=2, expand=2,
                          num_heads=4, head_dim=32, n_groups=1)
    in_proj = 64 * (2 * 128 + 2 * 16 + 4)  # z, x, B, C, Δ
    out_proj = 128 * 64
    assert projection_flops(Mamba2LM(config)) == 2 * 2 * (in_proj + out_proj)  # the head is not counted
