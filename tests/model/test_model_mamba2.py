"""Mamba-2: the peer check against transformers' Mamba2ForCausalLM, forward against step, states."""

import json
from pathlib import Path

import pytest
import torch

from infitool_edit.kernels import cpu_step
from infitool_edit.model import CheckpointError, Mamba2Config, Mamba2LM, State, load_checkpoint, save_checkpoint
from infitool_edit.model.mamba2 import segment_sum

transformers = pytest.importorskip("transformers")

LOGITS_ATOL, LOGITS_RTOL = 1e-4, 1e-4
SHAPE = dict(vocab_size=99, hidden_size=32, state_size=16, num_hidden_layers=2, expand=2, num_heads=4, head_dim=16)


@pytest.fixture(autouse=True)
def quiet_transformers():
    transformers.utils.logging.set_verbosity_error()


def hf_model(**overrides):
    torch.manual_seed(0)
    config = transformers.Mamba2Config(**{**SHAPE, "n_groups": 2, "chunk_size": 8, **overrides})
    model = transformers.Mamba2ForCausalLM(config).eval()
    with torch.no_grad():  # HF initialises D to 1 and the conv bias to small values: vary them
        for layer in model.backbone.layers:
            layer.mixer.D.uniform_(0.5, 1.5)
            layer.mixer.norm.weight.uniform_(0.5, 1.5)
    return model


def ours_tiny(**overrides) -> Mamba2LM:
    torch.manual_seed(0)
    return Mamba2LM(Mamba2Config(**{**SHAPE, "n_groups": 2, "chunk_size": 8, **overrides})).eval()


VARIANTS = {
    "two-groups": {},
    "one-group-tied": {"n_groups": 1, "tie_word_embeddings": True},
    "biases-k3-chunk5": {"use_bias": True, "conv_kernel": 3, "chunk_size": 5},
    # heads of 48: the C prompt scan's tile of 32 rows (ssd_tile32) and a tail of 16 (ssd_tile)
    "heads-of-48": {"hidden_size": 48, "num_heads": 2, "head_dim": 48},
}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
@torch.no_grad()
def test_our_forward_and_step_give_transformers_logits_on_their_checkpoint(overrides, tmp_path):
    theirs = hf_model(**overrides)
    theirs.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path)
    assert isinstance(ours, Mamba2LM)
    ids = torch.randint(0, 99, (2, 21))  # several chunks and a ragged end
    expected = theirs(ids).logits
    forward_logits, forward_state = ours(ids)
    state = ours.new_state(batch=2)
    stepped = torch.stack([ours.step(ids[:, t], state) for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(forward_logits, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    torch.testing.assert_close(stepped, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    assert state.matches(forward_state, atol=1e-4)


@torch.no_grad()
def test_our_step_matches_transformers_cached_decoding(tmp_path):
    theirs = hf_model()
    theirs.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path)
    prompt, continuation = torch.randint(0, 99, (1, 11)), torch.randint(0, 99, (1, 5))
    output = theirs(prompt, use_cache=True)
    cache = output.cache
    logits, state = ours(prompt)
    torch.testing.assert_close(logits, output.logits, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    for t in range(continuation.shape[1]):
        expected = theirs(continuation[:, t : t + 1], cache=cache, use_cache=True).logits[:, -1]
        torch.testing.assert_close(ours.step(continuation[:, t], state), expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)


@torch.no_grad()
def test_a_mamba2_checkpoint_we_save_loads_in_transformers_and_back(tmp_path):
    ours = ours_tiny()
    save_checkpoint(ours, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "mamba2"
    theirs = transformers.Mamba2ForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 99, (1, 13))
    expected, _ = ours(ids)
    torch.testing.assert_close(theirs(ids).logits, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    again, _ = load_checkpoint(tmp_path)(ids)
    assert torch.equal(again, expected)


@torch.no_grad()
def test_forward_continues_from_a_state_as_if_the_sequence_were_one():
    model = ours_tiny(chunk_size=4)
    ids = torch.randint(0, 99, (2, 30))
    whole, whole_state = model(ids)
    pieces, state, start = [], model.new_state(batch=2), 0
    for length in (2, 1, 9, 18):  # shorter than the conv window, one token, across chunk borders
        logits, state = model(ids[:, start : start + length], state)
        pieces.append(logits)
        start += length
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-5)
    assert state.matches(whole_state, atol=1e-5)


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
@torch.no_grad()
def test_the_c_scan_of_a_prompt_equals_its_plain_twin(overrides, monkeypatch):
    """forward on the CPU runs kernels/cpu_step.c's mamba2_scan (token by token, heads across
    threads); with the C kernels off it runs ssd_scan. Same logits and states, from a state."""
    model = ours_tiny(**overrides)
    ids = torch.randint(0, 99, (2, 37))
    results = {}
    for kernels in ("on", "off"):
        monkeypatch.setenv(cpu_step.ENV_VAR, kernels)
        state = model.new_state(batch=2)
        model(ids[:, :5], state)  # a state that is not zero
        before = +cpu_step.calls
        results[kernels] = (*model(ids[:, 5:], state), cpu_step.calls - before)
    (c_logits, c_state, c_calls), (plain_logits, plain_state, plain_calls) = results["on"], results["off"]
    assert c_calls["mamba2_scan"] == c_calls["mamba2_gate_norm"] == len(model.layers) and not plain_calls
    torch.testing.assert_close(c_logits, plain_logits, atol=1e-5, rtol=1e-5)
    assert c_state.matches(plain_state, atol=1e-5)
    monkeypatch.setenv(cpu_step.ENV_VAR, "on")
    threads_before = torch.get_num_threads()
    for threads in (2, 3):  # heads shared unevenly
        torch.set_num_threads(threads)
        try:
            state = model.new_state(batch=2)
            model(ids[:, :5], state)
            logits, _ = model(ids[:, 5:], state)
        finally:
            torch.set_num_threads(threads_before)
        torch.testing.assert_close(logits, c_logits, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
@torch.no_grad()
def test_the_c_scan_holds_to_its_twin_at_extreme_decays(threads):
    """mamba2_scan keeps each tile of the state divided by the decays since it was last made whole
    and folds them back before they fall below 2^-24: heads whose decay is 0, tiny, or 1 (and
    between), over a prompt long enough to fold many times, an odd length (a token left after
    the pairs), a head of 40 rows (a tile of 32 and one of 8) and 3 groups, from a state."""
    from infitool_edit.model.mamba2 import ssd_scan

    torch.manual_seed(threads)
    length, heads, p, n, groups = 301, 6, 40, 16, 3
    x = torch.randn(1, length, heads, p)
    dt = torch.rand(1, length, heads) * 0.2
    dt[..., 0] = 0.0  # decay 1 throughout
    dt[..., 1] = 50.0  # decay exp(-50·8): 0 in fp32
    dt[:, ::7, 2] = 3.0  # now and then tiny, otherwise ordinary
    A = -torch.tensor([1.0, 8.0, 4.0, 0.01, 16.0, 2.0])
    B, C = torch.randn(1, length, groups, n), torch.randn(1, length, groups, n)
    D, h = torch.randn(heads), torch.randn(1, heads, p, n)
    per_head = lambda t: t.repeat_interleave(heads // groups, dim=-2).double()  # noqa: E731
    # The twin in float64: what both fp32 loops are held to, each head to its own scale.
    exact_y, exact_h = ssd_scan((x * dt[..., None]).double(), (dt * A).double(), per_head(B), per_head(C),
                                h.double(), 64)
    exact_y = exact_y + x.double() * D.double()[:, None]
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        state = h.clone()
        y = cpu_step.mamba2_scan(x, dt, A * 1.4426950408889634, B, C, D, state)
    finally:
        torch.set_num_threads(threads_before)
    for head in range(heads):
        for ours, exact in ((y[:, :, head], exact_y[:, :, head]), (state[:, head], exact_h[:, head])):
            assert (ours.double() - exact).abs().max() <= 1e-5 * exact.abs().max(), head


@pytest.mark.parametrize("groups", [1, 2, 3])
@torch.no_grad()
def test_the_c_gated_norm_of_a_prompt_equals_its_plain_twin(groups):
    """mamba2_gate_norm (one pass per token, tokens across threads) against GatedRMSNorm.forward,
    z a view into a wider projection as the mixer hands it over, at 1 to 3 threads."""
    from infitool_edit.model.mamba2 import GatedRMSNorm

    torch.manual_seed(groups)
    norm = GatedRMSNorm(48, groups, 1e-5)
    norm.weight.copy_(torch.randn(48))
    y, projected = torch.randn(2, 23, 48) * 3, torch.randn(2, 23, 100)
    z = projected[..., 7:55]
    plain = norm(y, z)
    threads_before = torch.get_num_threads()
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        try:
            fused = cpu_step.mamba2_gate_norm(y, z, norm.weight, groups, norm.eps)
        finally:
            torch.set_num_threads(threads_before)
        torch.testing.assert_close(fused, plain, atol=1e-6, rtol=1e-5)
    assert not torch.equal(cpu_step.mamba2_gate_norm(y, z, norm.weight, groups, 1.0), plain)  # eps is read


@torch.no_grad()
def test_the_chunk_size_does_not_change_the_result(monkeypatch):
    monkeypatch.setenv(cpu_step.ENV_VAR, "off")  # ssd_scan's chunks: the C scan has none
    ids = torch.randint(0, 99, (1, 23))
    reference, _ = ours_tiny(chunk_size=23)(ids)
    for chunk in (1, 4, 7, 64):
        logits, _ = ours_tiny(chunk_size=chunk)(ids)
        torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_a_long_checkpoint_chunk_is_cut_to_the_cpu_chunk(monkeypatch):
    """On the CPU the scan runs in chunks of at most CPU_SCAN_CHUNK, whatever the checkpoint says;
    the logits are those of the checkpoint's own chunk."""
    import infitool_edit.model.mamba2 as mamba2

    monkeypatch.setenv(cpu_step.ENV_VAR, "off")  # ssd_scan's path (the C scan has no chunks)
    model = ours_tiny(chunk_size=256)
    ids = torch.randint(0, 99, (1, 40))
    assert model.layers[0].mixer.scan_chunk(torch.zeros(1)) == mamba2.CPU_SCAN_CHUNK == 64
    monkeypatch.setattr(mamba2, "CPU_SCAN_CHUNK", 16)
    chunks, scan = [], mamba2.ssd_scan

    def counted(*args):
        chunks.append(args[-1])
        return scan(*args)

    monkeypatch.setattr(mamba2, "ssd_scan", counted)
    cut, _ = model(ids)
    monkeypatch.setattr(mamba2, "CPU_SCAN_CHUNK", 256)
    whole, _ = model(ids)
    assert chunks == [16] * len(model.layers) + [256] * len(model.layers)
    torch.testing.assert_close(cut, whole, atol=1e-5, rtol=1e-5)


def test_segment_sum_is_the_sum_between_two_steps():
    a = torch.randn(6)
    sums = segment_sum(a)
    for i in range(6):
        for j in range(6):
            expected = a[j + 1 : i + 1].sum() if i >= j else float("-inf")
            torch.testing.assert_close(sums[i, j], torch.as_tensor(expected, dtype=a.dtype))


@torch.no_grad()
def test_a_mamba2_state_has_its_own_shape_and_round_trips_through_bytes():
    model = ours_tiny()
    state = model.new_state()
    model(torch.randint(0, 99, (1, 9)), state)
    config = model.config
    assert state.ssm.shape == (2, 1, config.num_heads, config.head_dim, config.state_size)
    assert state.conv.shape == (2, 1, config.conv_dim, config.conv_kernel)
    again = State.from_bytes(state.to_bytes())
    assert again == state and again.fits(config)
    assert not again.fits(Mamba2Config(**{**SHAPE, "n_groups": 1}))  # another conv width


def test_an_inconsistent_mamba2_config_is_one_line(tmp_path):
    hf_model().save_pretrained(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    values["num_heads"] = 3
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match=r"num_heads · head_dim \(3 · 16\) must equal") as error:
        load_checkpoint(tmp_path)
    assert "\n" not in str(error.value)


def test_the_editor_runs_a_byte_level_mamba2_checkpoint(tmp_path: Path):
    """The agent's backend is the model's interface (forward, step, states), not Mamba-1's."""
    from typer.testing import CliRunner

    from infitool_edit.cli import app

    torch.manual_seed(0)
    save_checkpoint(Mamba2LM(Mamba2Config(**{**SHAPE, "vocab_size": 259, "n_groups": 1})), tmp_path / "m2")
    draft = tmp_path / "draft.md"
    draft.write_text("# Notes\n\nTeh first line.\n")
    ran = CliRunner().invoke(app, ["run", str(draft), "--goal", "Fix.", "--model", str(tmp_path / "m2"),
                                   "--max-commands", "3", "--seed", "0"])
    assert ran.exit_code == 0, ran.output
    assert ran.output.startswith("> ") and "finished: " in ran.output
