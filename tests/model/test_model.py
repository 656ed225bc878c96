"""The model: step decoding equals the parallel forward, and the state copies, compares and round-trips."""

import pytest
import torch

from infitool_edit.model import MambaConfig, MambaLM, State, StateError
from infitool_edit.model import mamba as mamba_module

# fp32 on logits: forward sums in a different order than step, nothing more.
ATOL, RTOL = 1e-5, 1e-5


def tiny(falcon: bool = False, **overrides) -> MambaLM:
    torch.manual_seed(0)
    config = MambaConfig(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, falcon=falcon, **overrides)
    return MambaLM(config).eval()


def step_all(model: MambaLM, ids: torch.Tensor, state: State) -> torch.Tensor:
    return torch.stack([model.step(ids[:, t], state) for t in range(ids.shape[1])], dim=1)


@pytest.mark.parametrize("falcon", [False, True], ids=["mamba", "falcon"])
@torch.no_grad()
def test_stepping_token_by_token_gives_the_forward_logits_and_state(falcon):
    model = tiny(falcon)
    ids = torch.randint(0, 64, (2, 70))  # longer than a scan chunk, two rows
    parallel, parallel_state = model(ids)
    state = model.new_state(batch=2)
    stepped = step_all(model, ids, state)
    torch.testing.assert_close(stepped, parallel, atol=ATOL, rtol=RTOL)
    assert state.matches(parallel_state, atol=1e-5)


@torch.no_grad()
def test_forward_continues_from_a_state_as_if_the_sequence_were_one():
    model = tiny(use_bias=True, conv_kernel=3)
    ids = torch.randint(0, 64, (1, 50))
    whole, whole_state = model(ids)
    first, state = model(ids[:, :2])  # shorter than the convolution window
    second, state = model(ids[:, 2:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=ATOL, rtol=RTOL)
    assert state.matches(whole_state, atol=1e-6)


@torch.no_grad()
def test_last_only_returns_the_last_position_of_the_full_logits():
    model = tiny()
    ids = torch.randint(0, 64, (1, 9))
    full, _ = model(ids)
    last, _ = model(ids, last_only=True)
    torch.testing.assert_close(last, full[:, -1])


def test_the_scan_chunk_size_does_not_change_the_result(monkeypatch):
    model = tiny()
    ids = torch.randint(0, 64, (1, 23))
    with torch.no_grad():
        reference, _ = model(ids)
        monkeypatch.setattr(mamba_module, "SCAN_CHUNK", 5)
        chunked, _ = model(ids)
    torch.testing.assert_close(chunked, reference, atol=ATOL, rtol=RTOL)


def test_forward_trains_gradients_reach_every_parameter_and_match_the_inference_path():
    model = tiny(falcon=True).train()
    ids = torch.randint(0, 64, (2, 12))
    logits, _ = model(ids)
    torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 64), ids[:, 1:].reshape(-1)).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    with torch.no_grad():
        inference, _ = model(ids)
    torch.testing.assert_close(logits.detach(), inference, atol=ATOL, rtol=RTOL)


def test_forward_refuses_a_malformed_batch():
    model = tiny()
    with pytest.raises(ValueError, match="at least one token"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, length"):
        model(torch.zeros(5, dtype=torch.long))


@torch.no_grad()
def test_a_copy_is_independent_and_equal_until_one_moves_on():
    model = tiny()
    _, state = model(torch.randint(0, 64, (1, 10)))
    snapshot = state.copy()
    assert snapshot == state and snapshot.matches(state)
    model.step(3, state)
    assert snapshot != state
    assert snapshot.max_difference(state) > 0
    assert not snapshot.matches(state, atol=1e-9)


@torch.no_grad()
def test_state_bytes_round_trip_and_a_step_from_the_restored_state_equals_one_from_the_original():
    model = tiny(falcon=True)
    _, state = model(torch.randint(0, 64, (1, 17)))
    data = state.to_bytes()
    restored = State.from_bytes(data)
    assert restored == state
    assert restored.nbytes == state.nbytes == 2 * 64 * (4 + 8) * 4  # layers × d_in × (k + n) × fp32
    assert restored.fits(model.config)
    original_logits = model.step(5, state)
    restored_logits = model.step(5, restored)
    assert torch.equal(original_logits, restored_logits)
    assert restored == state


@torch.no_grad()
def test_the_state_has_the_same_size_however_much_was_read():
    model = tiny()
    _, short = model(torch.randint(0, 64, (1, 3)))
    _, long = model(torch.randint(0, 64, (1, 3000)))
    assert short.nbytes == long.nbytes
    assert len(short.to_bytes()) == len(long.to_bytes())


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not a saved model state"),
        (b"\x00" * 40, "not a saved model state"),
    ],
)
def test_bytes_that_are_not_a_state_are_refused_in_one_line(data, message):
    with pytest.raises(StateError, match=message) as error:
        State.from_bytes(data)
    assert "\n" not in str(error.value)


def test_a_safetensors_blob_with_other_tensors_is_refused():
    from safetensors.torch import save

    with pytest.raises(StateError, match="expected conv and ssm"):
        State.from_bytes(save({"weights": torch.zeros(3)}))
    with pytest.raises(StateError, match="do not fit together"):
        State.from_bytes(save({"conv": torch.zeros(2, 1, 8, 4), "ssm": torch.zeros(3, 1, 8, 16)}))


def test_a_state_for_another_shape_does_not_fit():
    small = MambaConfig(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2)
    other = MambaConfig(vocab_size=64, hidden_size=32, state_size=4, num_hidden_layers=2)
    assert not State.zeros(small).fits(other)
    assert State.zeros(small).max_difference(State.zeros(other)) == float("inf")


def test_config_pads_the_vocabulary_and_resolves_the_time_step_rank():
    config = MambaConfig(vocab_size=50277, hidden_size=768, pad_vocab_size_multiple=8)
    assert config.vocab_size == 50280
    assert config.time_step_rank == 48
    assert config.intermediate_size == 1536


@torch.no_grad()
def test_the_kernel_dispatch_path_gives_the_plain_path_logits(monkeypatch):
    """On CUDA the model hands the scan and the state update to infitool_edit.kernels; forcing
    their reference twins runs that path here, so the arguments we pass are checked on the CPU
    (the kernels' own tests hold the Triton kernels to the same twins)."""
    model = tiny(falcon=True)
    ids = torch.randint(0, 64, (1, 20))
    plain, plain_state = model(ids)
    state = model.new_state()
    plain_steps = step_all(model, ids, state)
    monkeypatch.setenv("INFITOOL_KERNELS", "ref")
    from infitool_edit.kernels import dispatch

    calls = []
    for name in ("selective_scan_fn", "selective_state_update"):
        original = getattr(dispatch, name)
        monkeypatch.setattr(dispatch, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    dispatched, dispatched_state = model(ids)
    state = model.new_state()
    dispatched_steps = step_all(model, ids, state)
    torch.testing.assert_close(dispatched, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dispatched_steps, plain_steps, atol=1e-4, rtol=1e-4)
    assert dispatched_state.matches(plain_state, atol=1e-4)
    assert calls.count("selective_scan_fn") == 2 and calls.count("selective_state_update") == 2 * 20


@torch.no_grad()
def test_decoding_notices_new_weights_even_though_it_reuses_A_between_steps(monkeypatch):
    # Bits are compared across two steps: both with the same threads, whatever the load says.
    from infitool_edit.kernels import cpu_step

    monkeypatch.setattr(cpu_step, "ADAPTIVE_THREADS", False)
    model = tiny()
    state = model.new_state()
    model.step(1, state)  # builds the reused A
    other = tiny()
    other.layers[0].mixer.A_log.mul_(3.0)  # an in-place change
    model.load_state_dict(other.state_dict())
    fresh_state = model.new_state()
    stepped = model.step(2, fresh_state)
    parallel, _ = model(torch.tensor([[2]]))
    torch.testing.assert_close(stepped, parallel[:, 0], atol=ATOL, rtol=RTOL)
    reference = other.step(2, other.new_state())
    assert torch.equal(stepped, reference)


def test_a_config_json_vocabulary_is_taken_as_the_embedding_size():
    config = MambaConfig.from_hf_dict(
        {"model_type": "mamba", "vocab_size": 50277, "hidden_size": 64, "num_hidden_layers": 2,
         "pad_vocab_size_multiple": 8, "falcon": True}
    )
    assert config.vocab_size == 50277
    assert not config.falcon  # only model_type says FalconMamba
    assert MambaConfig.from_hf_dict(config.to_hf_dict()) == config
