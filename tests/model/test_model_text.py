"""Tokenizers round-trip text; sampling is deterministic under a seed and applies the logits hook;
the int8 decode path stays within its stated tolerance of fp32."""

import pytest
import torch

from infitool_edit.model import ByteTokenizer, HFTokenizer, MambaConfig, MambaLM, quantize_int8, sample, sample_token

TEXTS = ["", "plain ascii", "naïve café — “quotes” 😀\n\ttabs", "> replace 13 \"Teh\" \"The\"\n"]


@pytest.mark.parametrize("text", TEXTS)
def test_byte_tokenizer_round_trips_any_text(text):
    tokenizer = ByteTokenizer()
    ids = tokenizer.encode(text)
    assert len(ids) == len(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(tokenizer.encode(text, bos=True) + [tokenizer.eos_id]) == text


def test_byte_tokenizer_specials_and_bytes():
    tokenizer = ByteTokenizer()
    assert tokenizer.vocab_size == 259
    assert {tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id} == {256, 257, 258}
    assert tokenizer.token_bytes(ord("A")) == b"A"
    assert tokenizer.token_bytes(tokenizer.eos_id) == b""
    assert tokenizer.decode([0xE2, 0x80]) == "\ufffd"  # a cut multibyte character does not raise
    with pytest.raises(ValueError, match="outside"):
        tokenizer.token_bytes(300)


@pytest.fixture
def tokenizer_json(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TEXTS * 20 + ["the draft and the notes"] * 20, trainer)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.mark.parametrize("text", TEXTS)
def test_hf_tokenizer_round_trips_text_from_a_tokenizer_json(tokenizer_json, text):
    tokenizer = HFTokenizer(tokenizer_json.parent)  # a checkpoint folder works as well as the file
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.eos_id == 0
    assert tokenizer.vocab_size <= 300


def test_hf_tokenizer_refuses_a_missing_or_broken_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        HFTokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ValueError, match="not a tokenizer.json"):
        HFTokenizer(tmp_path)


def tiny() -> MambaLM:
    torch.manual_seed(0)
    return MambaLM(MambaConfig(vocab_size=264, hidden_size=32, state_size=8, num_hidden_layers=2)).eval()


def test_sampling_with_the_same_seed_gives_the_same_tokens_and_another_seed_differs():
    model = tiny()

    def draw(seed):
        generator = torch.Generator().manual_seed(seed)
        return list(sample(model, [1, 2, 3], max_new_tokens=40, generator=generator, temperature=1.5))

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


def test_the_hook_sees_each_step_and_its_mask_is_obeyed():
    model = tiny()
    seen = []
    allowed = torch.full((264,), float("-inf"))
    allowed[[ord("a"), ord("b")]] = 0.0

    def hook(index, logits):
        seen.append(index)
        return logits + allowed

    tokens = list(sample(model, [5], max_new_tokens=30, logits_hook=hook, generator=torch.Generator().manual_seed(0)))
    assert seen == list(range(30))
    assert set(tokens) <= {ord("a"), ord("b")} and len(set(tokens)) == 2


@torch.no_grad()
def test_streamed_tokens_are_already_read_into_the_state():
    model = tiny()
    state = model.new_state()
    tokens = list(sample(model, [9, 8], state=state, max_new_tokens=6, temperature=0))
    _, expected = model(torch.tensor([[9, 8, *tokens]]))
    assert state.matches(expected, atol=1e-5)


def test_streaming_stops_after_a_stop_token():
    model = tiny()
    stop = 65

    def only_stop_after_three(index, logits):
        return logits if index < 3 else torch.where(torch.arange(264) == stop, 0.0, float("-inf"))

    tokens = list(sample(model, [1], max_new_tokens=50, logits_hook=only_stop_after_three, stop_ids={stop}))
    assert len(tokens) == 4 and tokens[-1] == stop


def test_greedy_takes_the_argmax_and_top_p_keeps_only_the_nucleus():
    logits = torch.tensor([0.0, 3.0, 2.9, -5.0])
    assert sample_token(logits, temperature=0) == 1
    generator = torch.Generator().manual_seed(0)
    draws = {sample_token(logits, top_p=0.5, generator=generator) for _ in range(200)}
    assert draws == {1}  # token 1 alone holds more than half the mass
    draws = {sample_token(logits, top_p=0.9, generator=generator) for _ in range(200)}
    assert draws == {1, 2}


def test_sampling_refuses_nonsense_settings_and_a_fully_masked_step():
    with pytest.raises(ValueError, match="top_p"):
        sample_token(torch.zeros(4), top_p=0)
    with pytest.raises(ValueError, match="masked out"):
        sample_token(torch.full((4,), float("-inf")))


@torch.no_grad()
def test_the_int8_path_stays_within_its_stated_tolerance_and_steps_like_its_forward():
    model = tiny()
    quantized = quantize_int8(model)
    ids = torch.randint(0, 264, (1, 40))
    reference, _ = model(ids)
    approximate, _ = quantized(ids)
    # The tolerance the benchmark states: RMS |Δlogit| ≤ 5% of the spread of the fp32 logits.
    assert (approximate - reference).pow(2).mean().sqrt() <= 0.05 * reference.std()
    assert (approximate.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.95
    state = quantized.new_state()
    stepped = torch.stack([quantized.step(ids[:, t], state) for t in range(ids.shape[1])], dim=1)
    # The fused CPU step sums the same integer block products as forward, in another order.
    torch.testing.assert_close(stepped, approximate, atol=1e-4, rtol=8e-3)
    assert model.lm_head.weight.dtype == torch.float32  # the original is left as it was


def test_layers_the_int8_kernel_cannot_take_stay_fp32():
    from infitool_edit.model.mamba import Linear
    from infitool_edit.model.quantize import Int8Linear

    quantized = quantize_int8(tiny())
    mixer = quantized.layers[0].mixer
    assert isinstance(mixer.in_proj, Int8Linear) and isinstance(quantized.lm_head, Int8Linear)
    assert type(mixer.dt_proj) is Linear  # rank 2: not a multiple of 32, the activations' block
    with pytest.raises(ValueError, match="multiple of 32"):
        Int8Linear(Linear(24, 8, bias=False))
