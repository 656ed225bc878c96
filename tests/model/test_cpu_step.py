"""The fused CPU kernels (kernels/cpu_step.c) against their plain PyTorch twins in model/mamba.py."""

import os
import subprocess
import sys

import pytest
import torch

from infitool_edit.kernels import cpu_step, dispatch
from infitool_edit.model import MambaConfig, MambaLM
from infitool_edit.model.quantize import quantize_int8

ATOL, RTOL = 1e-5, 1e-5

pytestmark = pytest.mark.skipif(cpu_step.library() is None, reason=f"{cpu_step.unavailable_reason()}")


def tiny(**overrides) -> MambaLM:
    torch.manual_seed(0)
    settings = dict(vocab_size=97, hidden_size=32, state_size=16, num_hidden_layers=2)
    config = MambaConfig(**{**settings, **overrides})
    model = MambaLM(config).eval()
    with torch.no_grad():  # non-zero biases and varied A, so every term of the step matters
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or name.endswith("A_log") or name.endswith(".D"):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return model


def plain(monkeypatch, run):
    """run() with the fused kernels off: the PyTorch twin."""
    with monkeypatch.context() as patch:
        patch.setenv(cpu_step.ENV_VAR, "off")
        return run()


def step_all(model, ids, state):
    return torch.cat([model.step(ids[:, t], state) for t in range(ids.shape[1])])


def fused_calls(run, kernel="mamba_step"):
    """(run()'s result, how many times the fused kernel ran meanwhile): a test of a fused path
    must see it run, or a model that stopped calling it would pass unnoticed."""
    before = cpu_step.calls[kernel]
    result = run()
    return result, cpu_step.calls[kernel] - before


VARIANTS = {
    "mamba": {},
    "falcon": {"falcon": True},
    "biases-k3": {"use_bias": True, "conv_kernel": 3},
    "n8": {"state_size": 8},  # the general inner loop, not the one unrolled for n = 16
}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
@torch.no_grad()
def test_the_fused_step_gives_the_plain_steps_logits_and_state(monkeypatch, overrides):
    model = tiny(**overrides)
    ids = torch.randint(0, 97, (1, 60))
    fused_state, plain_state = model.new_state(), model.new_state()
    fused, ran = fused_calls(lambda: step_all(model, ids, fused_state))
    assert ran == 60
    reference = plain(monkeypatch, lambda: step_all(model, ids, plain_state))
    torch.testing.assert_close(fused, reference, atol=ATOL, rtol=RTOL)
    assert fused_state.matches(plain_state, atol=1e-5)
    assert reference.std() > 0.01  # logits that could differ


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
@pytest.mark.parametrize("lengths", [(50, 20), (1, 2, 1, 30), (7,)], ids=["long", "shorter-than-kernel", "one"])
@torch.no_grad()
def test_the_fused_prompt_path_gives_the_plain_forward(monkeypatch, overrides, lengths):
    model = tiny(**overrides)
    ids = torch.randint(0, 97, (2, sum(lengths)))  # two rows: the kernels run row by row

    def read():
        state, logits, start = model.new_state(batch=2), [], 0
        for length in lengths:
            chunk, state = model(ids[:, start : start + length], state)
            logits.append(chunk)
            start += length
        return torch.cat(logits, dim=1), state

    (fused, fused_state), ran = fused_calls(read, "mamba_scan")
    assert ran == len(lengths) * model.config.num_hidden_layers
    reference, plain_state = plain(monkeypatch, read)
    torch.testing.assert_close(fused, reference, atol=ATOL, rtol=RTOL)
    assert fused_state.matches(plain_state, atol=1e-5)


@pytest.mark.parametrize("n", [16, 5])
@torch.no_grad()
def test_the_prompt_scan_in_tiles_of_channels_gives_the_twins_numbers(n):
    """mamba_scan walks the prompt once per tile of SCAN_TILE channels (state and A transposed in
    the thread's scratch), SCAN_TOKENS tokens at a time: 396 channels (threads' shares in lines of
    16 but the last, tiles of 128 and a narrower last one), 300 tokens (a whole run and part of
    one), n = 16 and another, z a view into a wider row as in_proj's output hands it over, from a
    state, at 1 to 3 threads, against model/mamba.py's selective_scan with the softplus, skip and
    gate around it."""
    from infitool_edit.model.mamba import selective_scan

    torch.manual_seed(n)
    length, d_in = 300, 396
    xz = torch.randn(1, length, 2 * d_in)
    x, z = xz[..., :d_in], xz[..., d_in:]
    dt, B, C = torch.randn(1, length, d_in) - 1, torch.randn(1, length, n), torch.randn(1, length, n)
    A = -torch.exp(torch.randn(d_in, n) * 1.5)
    D, h = torch.randn(d_in), torch.randn(1, d_in, n)
    y, plain_h = selective_scan(x, torch.nn.functional.softplus(dt), A, B, C, h.clone())
    plain_y = (y + x * D) * torch.nn.functional.silu(z)
    threads_before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            state = h.clone()
            fused = cpu_step.selective_scan(x, dt, A * 1.4426950408889634, B, C, D, z, state)
            torch.testing.assert_close(fused, plain_y, atol=ATOL, rtol=RTOL)
            torch.testing.assert_close(state, plain_h, atol=ATOL, rtol=RTOL)
    finally:
        torch.set_num_threads(threads_before)


@pytest.mark.parametrize("length", [200, 2])
@torch.no_grad()
def test_the_prompt_convolution_shared_by_channels_gives_the_twins_numbers(length):
    """mamba_conv shares the channels across the team for a prompt of at least CONV_ALONE values
    (396 channels × 200 tokens; 2 tokens, fewer than the window, stay on one thread): x a view
    into a wider row, from a state, at 1 to 3 threads, against model/mamba.py's causal_conv_silu."""
    from infitool_edit.model.mamba import causal_conv_silu

    torch.manual_seed(length)
    d_in = 396
    conv = torch.nn.Conv1d(d_in, d_in, 4, groups=d_in)
    xz = torch.randn(1, length, 2 * d_in)
    x, state = xz[..., :d_in], torch.randn(1, d_in, 4)
    plain_state = state.clone()
    plain = causal_conv_silu(x, conv, plain_state)
    threads_before = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            fused_state = state.clone()
            fused = cpu_step.causal_conv_silu(x, conv.weight, conv.bias, fused_state)
            torch.testing.assert_close(fused, plain, atol=ATOL, rtol=RTOL)
            torch.testing.assert_close(fused_state, plain_state, atol=0, rtol=0)
    finally:
        torch.set_num_threads(threads_before)


@torch.no_grad()
def test_the_fused_step_reads_int8_layers_as_their_own_matmul_does(monkeypatch):
    """quantize_int8 leaves a tiny model's dt_proj fp32 (its width is not a multiple of 32), so this
    runs both kinds of layer in one step. Both paths quantize activations per block of 32 and sum
    the same integer products; only their summation order differs."""
    model = tiny()
    quantized = quantize_int8(model)
    ids = torch.randint(0, 97, (1, 40))
    fused, ran = fused_calls(lambda: step_all(quantized, ids, quantized.new_state()))
    assert ran == 40
    plain_int8 = plain(monkeypatch, lambda: step_all(quantized, ids, quantized.new_state()))
    fp32 = plain(monkeypatch, lambda: step_all(model, ids, model.new_state()))

    def relative_rms(a, b):
        return ((a - b).pow(2).mean().sqrt() / fp32.std()).item()

    assert relative_rms(fused, plain_int8) < 1e-3
    assert relative_rms(fused, fp32) < 0.05  # the tolerance `infitool-edit bench model` states
    assert (fused.argmax(-1) == fp32.argmax(-1)).float().mean() > 0.9


@torch.no_grad()
def test_the_fused_step_sees_weights_changed_between_steps(monkeypatch):
    model = tiny()
    state = model.new_state()
    model.step(3, state)
    model.layers[0].mixer.A_log.mul_(0.5)  # in place: A·log2 e must be derived again
    model.layers[1].mixer.out_proj.weight = torch.nn.Parameter(torch.randn(64, 32))  # replaced
    model.norm_f.weight.fill_(2.0)  # in place, same address
    copy = state.copy()
    fused = model.step(5, state)
    reference = plain(monkeypatch, lambda: model.step(5, copy))
    torch.testing.assert_close(fused, reference, atol=ATOL, rtol=RTOL)


@torch.no_grad()
def test_what_the_fused_step_does_not_take_runs_the_plain_step():
    model = tiny()
    state, pair = model.new_state(), model.new_state(batch=2)
    fused = dispatch.fused_step("mamba", model.fused_dims(), state.conv, state.ssm)
    assert fused(model.fused_weights(), torch.tensor([1, 2]), pair.conv, pair.ssm) is None  # a batch of two
    assert model.step(torch.tensor([1, 2]), model.new_state(batch=2)).shape == (2, 97)
    bf16 = tiny().to(torch.bfloat16)
    assert fused(bf16.fused_weights(), torch.tensor([1]), state.conv, state.ssm) is None
    assert dispatch.fused_step("mamba", model.fused_dims(), pair.conv.bfloat16(), pair.ssm) is None
    with pytest.raises(IndexError):
        model.step(97, model.new_state())  # outside the vocabulary: an error, never a stray read


def test_with_autograd_recording_step_takes_the_plain_path():
    model = tiny()
    recorded = model.step(4, model.new_state())
    assert recorded.requires_grad  # PyTorch ran it: the C step has no backward
    with torch.no_grad():
        fused = model.step(4, model.new_state())
    torch.testing.assert_close(recorded.detach(), fused, atol=ATOL, rtol=RTOL)


def run_without_the_fused_step(env: dict) -> str:
    """Decode and read a prompt in a fresh process with `env`; what unavailable_reason() says."""
    script = (
        "import torch\n"
        "from infitool_edit.kernels import cpu_step\n"
        "from infitool_edit.model import MambaConfig, MambaLM\n"
        "model = MambaLM(MambaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1)).eval()\n"
        "with torch.no_grad():\n"
        "    state = model.new_state()\n"
        "    logits = model.step(3, state)\n"
        "    model(torch.tensor([[1, 2, 3]]), state)\n"
        "assert logits.shape == (1, 50)\n"
        "assert not cpu_step.calls\n"
        "print(cpu_step.unavailable_reason())\n"
    )
    env = {key: value for key, value in env.items() if key != cpu_step.ENV_VAR}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    reason = result.stdout.strip()
    assert reason.startswith("could not build cpu_step.c") and "\n" not in reason
    return reason


def test_without_a_c_compiler_decoding_still_works(tmp_path):
    """A machine without cc decodes and reads prompts through PyTorch, and says why in one line."""
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert "no-such-compiler" in run_without_the_fused_step(env)
    assert not list((tmp_path / "cache").rglob("*.so"))  # nothing half-built left behind


def test_an_unwritable_cache_folder_falls_back_too(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # the cache folder would have to be made inside a file
    assert "cannot write to" in run_without_the_fused_step({**os.environ, "XDG_CACHE_HOME": str(blocked)})


def test_the_library_is_built_once_into_the_cache(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    script = "from infitool_edit.kernels import cpu_step; assert cpu_step.library() is not None"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    built = list((tmp_path / "infitool-edit" / "kernels").iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"
