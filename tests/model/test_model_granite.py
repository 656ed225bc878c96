"""Granite-4.0-H: the peer check against transformers' GraniteMoeHybridForCausalLM (forward, step,
forward-then-step, within the attention window), the window beyond it, and the hybrid state."""

from __future__ import annotations

import json

import pytest
import torch

from infitool_edit.model import CheckpointError, load_checkpoint, quantize_int8
from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM, HybridState
from infitool_edit.model.hf_folder import save_folder
from infitool_edit.model.state import State, StateError

transformers = pytest.importorskip("transformers")

ATOL = RTOL = 1e-4
SHAPE = dict(vocab_size=99, hidden_size=32, intermediate_size=16, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, layer_types=["mamba", "attention", "mamba", "attention"], mamba_n_heads=4,
             mamba_d_state=8, mamba_d_head=16, mamba_n_groups=2, mamba_chunk_size=8, shared_intermediate_size=24,
             position_embedding_type="nope", embedding_multiplier=12.0, residual_multiplier=0.22,
             attention_multiplier=0.0625, logits_scaling=6.0)


@pytest.fixture(autouse=True)
def quiet_and_one_thread():
    transformers.utils.logging.set_verbosity_error()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def hf_model(**overrides):
    torch.manual_seed(0)
    config = transformers.GraniteMoeHybridConfig(**{**SHAPE, **overrides})
    model = transformers.GraniteMoeHybridForCausalLM(config).eval()
    with torch.no_grad():  # vary what transformers initialises to constants
        for name, parameter in model.named_parameters():
            if name.endswith(("mamba.D", "norm.weight", "layernorm.weight", "dt_bias")):
                parameter.uniform_(0.5, 1.5)
    return model


VARIANTS = {
    "dense": {"num_local_experts": 0},
    "moe-tied": {"num_local_experts": 4, "num_experts_per_tok": 2, "tie_word_embeddings": True},
}


@pytest.mark.parametrize("overrides", VARIANTS.values(), ids=VARIANTS.keys())
@torch.no_grad()
def test_forward_and_step_equal_transformers_on_its_checkpoint(overrides, tmp_path):
    theirs = hf_model(**overrides)
    theirs.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path)
    assert isinstance(ours, GraniteHybridLM)
    ids = torch.randint(0, 99, (2, 21))
    expected = theirs(ids).logits
    logits, forward_state = ours(ids)
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=RTOL)
    state = ours.new_state(batch=2)
    stepped = torch.stack([ours.step(ids[:, t], state) for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(stepped, expected, atol=ATOL, rtol=RTOL)
    assert state.matches(forward_state, atol=1e-4)


@torch.no_grad()
def test_forward_then_step_equals_transformers_cached_decoding(tmp_path):
    theirs = hf_model(num_local_experts=0)
    theirs.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path, attention_window=64)
    prompt, continuation = torch.randint(0, 99, (1, 13)), torch.randint(0, 99, (1, 6))
    output = theirs(prompt, use_cache=True)
    cache = output.cache
    logits, state = ours(prompt)
    torch.testing.assert_close(logits, output.logits, atol=ATOL, rtol=RTOL)
    for t in range(continuation.shape[1]):
        out = theirs(continuation[:, t : t + 1], cache=cache, use_cache=True)
        cache = out.cache
        torch.testing.assert_close(ours.step(continuation[:, t], state), out.logits[:, -1], atol=ATOL, rtol=RTOL)


@torch.no_grad()
def test_beyond_the_window_each_token_sees_only_the_last_w():
    """A ring of W slots: stepping, a prompt in one forward, and a prompt in pieces (across ring
    wraps and attention blocks) agree, and equal plain attention over each token's last W tokens."""
    torch.manual_seed(5)
    config = GraniteHybridConfig(**{**SHAPE, "num_local_experts": 0})
    model = GraniteHybridLM(config, attention_window=5).eval()
    for layer in model.layers:  # attention strong enough that what it sees shows in the logits
        if layer.is_attention:
            for projection in ("q_proj", "k_proj", "v_proj", "o_proj"):
                getattr(layer.self_attn, projection).weight.normal_(0, 0.5)
    ids = torch.randint(0, 99, (1, 23))
    whole, whole_state = model(ids)
    state = model.new_state()
    stepped = torch.stack([model.step(ids[:, t], state) for t in range(23)], dim=1)
    torch.testing.assert_close(stepped, whole, atol=1e-5, rtol=1e-5)
    assert state.matches(whole_state, atol=1e-5)
    pieces, state, start = [], model.new_state(), 0
    for length in (3, 1, 8, 11):
        logits, state = model(ids[:, start : start + length], state)
        pieces.append(logits)
        start += length
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-5)
    assert state.matches(whole_state, atol=1e-5)
    # the window really bounds what is seen: a model with a wide window differs after token 5 only
    wide = GraniteHybridLM(config, attention_window=64).eval()
    wide.load_state_dict(model.state_dict())
    unbounded, _ = wide(ids)
    torch.testing.assert_close(unbounded[:, :5], whole[:, :5], atol=1e-5, rtol=1e-5)
    assert (unbounded[:, 5:] - whole[:, 5:]).abs().max() > 1e-2
    assert state.nbytes == model.new_state().nbytes  # the state does not grow


@torch.no_grad()
def test_the_hybrid_state_round_trips_through_bytes():
    torch.manual_seed(6)
    model = GraniteHybridLM(GraniteHybridConfig(**{**SHAPE, "num_local_experts": 0}), attention_window=16).eval()
    state = model.new_state()
    model(torch.randint(0, 99, (1, 7)), state)
    blob = state.to_bytes()
    again = HybridState.from_bytes(blob)
    assert again == state and again.fits(model.config) and int(again.seen) == 7
    token = torch.tensor([3])
    assert torch.equal(model.step(token, again), model.step(token, state))
    assert len(blob) < model.new_state().nbytes  # only the 7 held slots are written
    model(torch.randint(0, 99, (1, 30)), state)  # the ring wraps
    assert HybridState.from_bytes(state.to_bytes()) == state
    with pytest.raises(StateError):
        HybridState.from_bytes(State.zeros(model.config.mamba_config).to_bytes())
    with pytest.raises(StateError):
        State.from_bytes(blob)
    assert not again.fits(GraniteHybridConfig(**{**SHAPE, "num_local_experts": 0}, attention_window=8))


@torch.no_grad()
def test_a_checkpoint_we_save_loads_in_transformers(tmp_path):
    torch.manual_seed(7)
    ours = GraniteHybridLM(GraniteHybridConfig(**{**SHAPE, "num_local_experts": 4})).eval()
    save_folder(ours, tmp_path)
    theirs = transformers.GraniteMoeHybridForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 99, (1, 11))
    expected, _ = ours(ids)
    torch.testing.assert_close(theirs(ids).logits, expected, atol=ATOL, rtol=RTOL)


@torch.no_grad()
def test_int8_decoding_stays_close_to_fp32():
    torch.manual_seed(8)
    model = GraniteHybridLM(GraniteHybridConfig(**{**SHAPE, "vocab_size": 256, "num_local_experts": 0,
                                                    "hidden_size": 64, "num_attention_heads": 4,
                                                    "mamba_d_head": 32})).eval()
    quantized = quantize_int8(model)
    ids = torch.randint(0, 256, (1, 16))
    reference, _ = model(ids)
    state = quantized.new_state()
    approximate = torch.stack([quantized.step(ids[:, t], state) for t in range(16)], dim=1)
    # int8 weights AND activations (per block of 32, as llama.cpp's Q8_0): ~6% of the logits' spread here
    assert ((approximate - reference).pow(2).mean().sqrt() / reference.std()) < 0.1


def test_a_rope_config_is_one_line(tmp_path):
    hf_model(num_local_experts=0).save_pretrained(tmp_path)
    values = json.loads((tmp_path / "config.json").read_text())
    values["position_embedding_type"] = "rope"
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="position_embedding_type 'rope' is not supported") as error:
        load_checkpoint(tmp_path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("quantize", ["int8", "q4"])
def test_a_folder_quantized_as_it_is_read_equals_one_quantized_after(tmp_path, quantize):
    from helpers.quantized_load import assert_read_quantized_equals_quantized_after

    torch.manual_seed(0)
    save_folder(GraniteHybridLM(GraniteHybridConfig(**SHAPE)), tmp_path)
    assert_read_quantized_equals_quantized_after(tmp_path, quantize, SHAPE["vocab_size"])
