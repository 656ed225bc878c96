"""RWKV-7: the peer check against flash-linear-attention's RWKV7ForCausalLM, forward against step,
the chunked recurrence against the plain one, states, checkpoints and int8.

The reference is fla's own model code (its modules, names, cache) run on the CPU, its Triton
kernels swapped for the PyTorch references fla ships beside them (the naive `dplr_recurrence`
for the recurrence): see infitool_edit/bench/rwkv7_reference.py, which `bench model` uses too.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from infitool_edit.bench import rwkv7_reference
from infitool_edit.model import CheckpointError, State, load_checkpoint, quantize_int8
from infitool_edit.model.hf_folder import save_folder
from infitool_edit.model.rwkv7 import RWKV7Config, RWKV7LM, wkv_chunked, wkv_step

fla = pytest.importorskip("fla")

ATOL = RTOL = 1e-4
SHAPE = dict(vocab_size=99, hidden_size=64, num_hidden_layers=3, head_dim=16, decay_low_rank_dim=16,
             gate_low_rank_dim=32, a_low_rank_dim=16, v_low_rank_dim=16, intermediate_size=96)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fla_on_cpu():
    with rwkv7_reference.fla_on_cpu():
        yield


def fla_model(**overrides):
    from fla.models import RWKV7Config as FlaConfig
    from fla.models import RWKV7ForCausalLM

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "you are using a potentially buggy FLA implementation"
        config = FlaConfig(**{**SHAPE, **overrides}, fuse_norm=False, fuse_cross_entropy=False)
        model = RWKV7ForCausalLM(config).eval()
    with torch.no_grad():  # fla zeroes o_proj, the FFN's value and LoRA A matrices at init: vary everything
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5) if name.endswith("weight") else parameter.uniform_(-0.2, 0.2)
            elif name.endswith(("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "ffn.x_k")):
                parameter.uniform_(0, 1)
            elif name.endswith(("k_k", "k_a", "r_k")) or "lora" in name or "proj" in name or "ffn." in name:
                parameter.normal_(0, 0.3)
    return model


def their_logits_and_state(model, ids, cache=None):
    output = model(ids, past_key_values=cache, use_cache=True)
    return output.logits, output.past_key_values


def as_our_state(cache, layers: int) -> State:
    """fla's cache (per layer: conv_state = the time mix's last input, ffn_state, recurrent_state)."""
    conv = torch.stack([torch.stack([cache[i]["conv_state"], cache[i]["ffn_state"]], dim=1) for i in range(layers)])
    ssm = torch.stack([cache[i]["recurrent_state"] for i in range(layers)])
    return State(conv.float(), ssm.float())


def assert_state_close(ours: State, theirs: State) -> None:
    """Within 1e-4 as allclose reads it (absolute plus relative): the wkv matrices grow to tens."""
    torch.testing.assert_close(ours.conv, theirs.conv, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ours.ssm, theirs.ssm, atol=ATOL, rtol=RTOL)


VARIANTS = {"plain": {}, "tied-no-ln0": {"tie_word_embeddings": True, "norm_first": False}}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
@torch.no_grad()
def test_forward_step_and_states_equal_fla_on_its_own_checkpoint(fla_on_cpu, overrides, tmp_path):
    theirs = fla_model(**overrides)
    theirs.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path)
    assert isinstance(ours, RWKV7LM)
    layers = ours.config.num_hidden_layers
    ids = torch.randint(0, 99, (2, 37))  # two full chunks and a ragged end
    expected, cache = their_logits_and_state(theirs, ids)
    logits, state = ours(ids)
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=RTOL)
    assert_state_close(state, as_our_state(cache, layers))

    stepped_state = ours.new_state(batch=2)
    stepped = torch.stack([ours.step(ids[:, t], stepped_state) for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(stepped, expected, atol=ATOL, rtol=RTOL)
    assert_state_close(stepped_state, as_our_state(cache, layers))

    # forward, then step: fla decodes with its cache, one token at a time
    for token in torch.randint(0, 99, (5, 2)):
        expected, cache = their_logits_and_state(theirs, token[:, None], cache)
        torch.testing.assert_close(ours.step(token, state), expected[:, -1], atol=ATOL, rtol=RTOL)
    assert_state_close(state, as_our_state(cache, layers))


@torch.no_grad()
def test_a_checkpoint_we_save_loads_in_fla_and_back(fla_on_cpu, tmp_path):
    from fla.models import RWKV7ForCausalLM

    torch.manual_seed(1)
    ours = RWKV7LM(RWKV7Config(**SHAPE)).eval()
    save_folder(ours, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "rwkv7"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = RWKV7ForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 99, (1, 20))
    expected, _ = ours(ids)
    torch.testing.assert_close(theirs(ids).logits, expected, atol=ATOL, rtol=RTOL)
    assert torch.equal(load_checkpoint(tmp_path)(ids)[0], expected)


@torch.no_grad()
def test_the_chunked_recurrence_is_the_step_loop_at_any_chunk_size():
    torch.manual_seed(2)
    b, h, l, K = 2, 3, 23, 8
    r, k, v = torch.randn(b, h, l, K), torch.randn(b, h, l, K), torch.randn(b, h, l, K)
    log_w = -0.6 * torch.rand(b, h, l, K)
    kk = torch.nn.functional.normalize(torch.randn(b, h, l, K), dim=-1)
    a_rate = torch.rand(b, h, l, K)
    S0 = torch.randn(b, h, K, K)
    S, outputs = S0.clone(), []
    for t in range(l):
        outputs.append(wkv_step(r[:, :, t], log_w[:, :, t].exp(), k[:, :, t], v[:, :, t], -kk[:, :, t],
                                kk[:, :, t] * a_rate[:, :, t], S))
    expected = torch.stack(outputs, dim=2)
    for chunk in (1, 5, 16, 64):
        o, last = wkv_chunked(r, log_w, k, v, -kk, kk * a_rate, S0.clone(), chunk=chunk)
        torch.testing.assert_close(o, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(last, S, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_forward_continues_from_a_state_as_if_the_sequence_were_one():
    torch.manual_seed(3)
    model = RWKV7LM(RWKV7Config(**SHAPE)).eval()
    ids = torch.randint(0, 99, (2, 40))
    whole, whole_state = model(ids)
    pieces, state, start = [], model.new_state(batch=2), 0
    for length in (1, 2, 17, 20):
        logits, state = model(ids[:, start : start + length], state)
        pieces.append(logits)
        start += length
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-5)
    assert state.matches(whole_state, atol=1e-5)


@torch.no_grad()
def test_the_state_is_fixed_in_size_and_round_trips_through_bytes():
    model = RWKV7LM(RWKV7Config(**SHAPE)).eval()
    state = model.new_state()
    size = state.nbytes
    model(torch.randint(0, 99, (1, 50)), state)
    assert state.nbytes == size
    config = model.config
    assert state.conv.shape == (3, 1, 2, 64) and state.ssm.shape == (3, 1, 4, 16, 16)
    again = State.from_bytes(state.to_bytes())
    assert again == state and again.fits(config)
    token = torch.tensor([5])
    assert torch.equal(model.step(token, again), model.step(token, state))
    assert not again.fits(RWKV7Config(**{**SHAPE, "head_dim": 32}))


@torch.no_grad()
def test_int8_decoding_stays_close_to_fp32():
    torch.manual_seed(4)
    model = RWKV7LM(RWKV7Config(**{**SHAPE, "vocab_size": 256})).eval()
    quantized = quantize_int8(model)
    assert any(type(m).__name__ == "Int8Linear" for m in quantized.modules())
    ids = torch.randint(0, 256, (1, 24))
    reference, _ = model(ids)
    state = quantized.new_state()
    approximate = torch.stack([quantized.step(ids[:, t], state) for t in range(24)], dim=1)
    relative = (approximate - reference).pow(2).mean().sqrt() / reference.std()
    assert relative < 0.05
    assert (approximate.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9


@torch.no_grad()
def test_a_folder_with_the_older_stacked_mixing_coefficients_loads(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(5)
    model = RWKV7LM(RWKV7Config(**SHAPE)).eval()
    save_folder(model, tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    for layer in range(SHAPE["num_hidden_layers"]):
        prefix = f"model.layers.{layer}.attn."
        parts = [tensors.pop(prefix + part).reshape(-1) for part in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g")]
        tensors[prefix + "x_x"] = torch.stack(parts)
    save_file(tensors, tmp_path / "model.safetensors")
    ids = torch.randint(0, 99, (1, 9))
    assert torch.equal(load_checkpoint(tmp_path)(ids)[0], model(ids)[0])


def test_an_unsupported_rwkv7_config_is_one_line(tmp_path):
    torch.manual_seed(0)
    save_folder(RWKV7LM(RWKV7Config(**SHAPE)), tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    values["hidden_act"] = "gelu"
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="hidden_act 'gelu' is not supported") as error:
        load_checkpoint(tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("quantize", ["int8", "q4"])
def test_a_folder_quantized_as_it_is_read_equals_one_quantized_after(tmp_path, quantize):
    from helpers.quantized_load import assert_read_quantized_equals_quantized_after

    torch.manual_seed(0)
    save_folder(RWKV7LM(RWKV7Config(**SHAPE)), tmp_path)
    assert_read_quantized_equals_quantized_after(tmp_path, quantize, SHAPE["vocab_size"])
