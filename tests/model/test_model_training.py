"""The training forward (model/training.py) computes what Mamba2LM.forward computes."""

from __future__ import annotations

import pytest
import torch

from infitool_edit.model import Mamba2Config, Mamba2LM
from infitool_edit.model.training import TrainingLM, causal_conv_silu_from_zero, forward


def small_model(groups: int) -> Mamba2LM:
    config = Mamba2Config(
        vocab_size=259, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2, num_heads=4,
        head_dim=16, n_groups=groups, chunk_size=16, tie_word_embeddings=True, initializer_range=0.1,
    )
    torch.manual_seed(groups)
    model = Mamba2LM(config)
    with torch.no_grad():  # Δ large enough that decays matter within a chunk
        for block in model.layers:
            block.mixer.dt_bias.add_(2.0)
    return model


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("chunk", [8, 32])
def test_logits_and_gradients_match_the_model_forward(groups, chunk):
    model = small_model(groups)
    ids = torch.randint(0, 256, (2, 45))  # not a multiple of either chunk: padding is exercised
    reference, _ = model(ids)
    reference.square().mean().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()

    logits = forward(model, ids, chunk)
    logits.square().mean().backward()
    torch.testing.assert_close(logits, reference, atol=1e-4, rtol=1e-4)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], atol=1e-5, rtol=1e-3, msg=name)


def test_the_convolution_from_zero_matches_conv1d():
    conv = torch.nn.Conv1d(6, 6, 4, groups=6)
    x = torch.randn(2, 9, 6)
    expected = torch.nn.functional.silu(conv(torch.nn.functional.pad(x.transpose(1, 2), (3, 0)))).transpose(1, 2)
    torch.testing.assert_close(causal_conv_silu_from_zero(x, conv.weight, conv.bias), expected)


def test_the_loss_counts_only_masked_bytes():
    trainer = TrainingLM(small_model(1))
    ids = torch.randint(0, 256, (1, 20))
    mask = torch.zeros(1, 20, dtype=torch.bool)
    mask[0, 10:14] = True
    total, count = trainer(ids, mask)
    logits = forward(trainer.lm, ids[:, :-1])
    losses = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:], reduction="none")
    assert count.item() == 4
    torch.testing.assert_close(total, losses[9:13].sum())


@pytest.mark.parametrize("window, kv_heads", [(64, 2), (20, 4)])
def test_a_hybrids_training_forward_matches_its_model_forward(window, kv_heads):
    """Granite-4.0-H's layers (Mamba-2, attention, MLPs): the same logits and gradients; a window
    shorter than the read (20 of 45) bands the attention as the ring does."""
    from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM

    config = GraniteHybridConfig(
        vocab_size=259, hidden_size=32, intermediate_size=16, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=kv_heads, layer_types=["mamba", "attention", "mamba"], num_local_experts=2,
        num_experts_per_tok=1, shared_intermediate_size=24, mamba_n_heads=4, mamba_d_state=8, mamba_d_head=16,
        mamba_chunk_size=16, tie_word_embeddings=True, initializer_range=0.1, embedding_multiplier=1.5,
        residual_multiplier=0.7, logits_scaling=2.0, attention_multiplier=0.3,
    )
    torch.manual_seed(3)
    model = GraniteHybridLM(config, attention_window=window)
    ids = torch.randint(0, 256, (2, 45))
    reference, _ = model(ids)
    reference.square().mean().backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    logits = forward(model, ids, 8)
    logits.square().mean().backward()
    torch.testing.assert_close(logits, reference, atol=1e-4, rtol=1e-4)
    for name, parameter in model.named_parameters():
        if name in expected:
            torch.testing.assert_close(parameter.grad, expected[name], atol=1e-5, rtol=1e-3, msg=name)
    assert len(expected) > 20
