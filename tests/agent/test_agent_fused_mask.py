"""The grammar mask added inside the fused CPU step (cpu_step.c's head_part) against its plain
twin (`logits + bias`), and the mask's short path in `LineConstraint` against the full one."""

import random

import pytest
import torch

from infitool_edit.agent.constrain import LineConstraint, byte_mask_table
from infitool_edit.agent.ssm import random_tiny_model
from infitool_edit.kernels import cpu_step
from infitool_edit.model import Mamba2Config, Mamba2LM
from infitool_edit.model.rwkv7 import RWKV7Config, RWKV7LM

fused_only = pytest.mark.skipif(cpu_step.library() is None, reason=f"{cpu_step.unavailable_reason()}")


def masks_along(line: bytes, vocab: int) -> list[torch.Tensor]:
    """The bias rows the constraint gives while ``line`` is written (0 / -inf over the vocabulary)."""
    constraint = LineConstraint(byte_mask_table(vocab), 40)
    rows = []
    for byte in line:
        rows.append(constraint.mask()[0])
        constraint.advance(byte)
    return rows


def models():
    torch.manual_seed(0)
    rwkv = RWKV7LM(RWKV7Config(vocab_size=260, hidden_size=64, num_hidden_layers=2, head_dim=16,
                               decay_low_rank_dim=16, gate_low_rank_dim=32, a_low_rank_dim=16,
                               v_low_rank_dim=16, intermediate_size=96)).eval()
    mamba2 = Mamba2LM(Mamba2Config(vocab_size=260, hidden_size=64, state_size=16, num_hidden_layers=2,
                                   num_heads=8, head_dim=16, n_groups=2)).eval()
    return {"mamba_step": random_tiny_model(), "mamba2_step": mamba2, "rwkv7_step": rwkv}


@fused_only
@pytest.mark.parametrize("kernel", ["mamba_step", "mamba2_step", "rwkv7_step"])
@torch.no_grad()
def test_the_fused_step_adds_the_mask_as_the_plain_add_does(monkeypatch, kernel):
    model = models()[kernel]
    monkeypatch.setattr(cpu_step, "ADAPTIVE_THREADS", False)
    line = b'replace 3 "an old word" "a new one"\n'
    rows = masks_along(line, model.config.vocab_size)
    masked_state, bare_state = model.new_state(), model.new_state()
    before = cpu_step.calls[kernel]
    for byte, row in zip(b"> " + line[:-1], rows):
        masked = model.step(byte, masked_state, row)[0]
        bare = model.step(byte, bare_state)[0]
        # The same fused step without the bias, plus the bias in torch: the very same bits.
        assert torch.equal(masked, bare + row)
        assert torch.equal(torch.isinf(masked), torch.isinf(row))
    assert cpu_step.calls[kernel] - before == 2 * len(rows)  # both ran fused
    assert torch.equal(masked_state.ssm, bare_state.ssm)  # the mask never reaches the state

    # And the plain PyTorch twin (fused step off) gives the same masked logits, to fp32 tolerance.
    monkeypatch.setenv(cpu_step.ENV_VAR, "off")
    plain_state = model.new_state()
    for byte, row in zip(b"> " + line[:-1], rows):
        plain = model.step(byte, plain_state, row)[0]
    assert torch.equal(torch.isinf(plain), torch.isinf(masked))
    finite = torch.isfinite(masked)
    torch.testing.assert_close(plain[finite], masked[finite], atol=1e-5, rtol=1e-5)


def full_mask(line: LineConstraint):
    """What `LineConstraint.mask` gives, the long way round (no short path)."""
    return line._full_mask()


@pytest.mark.parametrize("max_bytes", [512, 40])
def test_the_short_path_gives_the_full_masks_row(max_bytes):
    """Random lines sampled under the mask (line numbers, quotes, escapes, search strings, a tight
    budget): every row the short path hands out is the full path's, with the same forced token."""
    table = byte_mask_table(256, max_bytes)
    draft = "# Title\n\nOne line with \"quotes\" and a \\ back.\nAnother line.\n" * 3
    chooser = random.Random(1)
    short_taken = 0
    for _ in range(300):
        line = LineConstraint(table, 12, lambda: draft)
        while not line.finished:
            row, forced = line.mask()
            expected_row, expected_forced = full_mask(line)
            assert forced == expected_forced
            assert torch.equal(row, expected_row)
            short_taken += line._plain_next and len(line.written) <= line._loose_until[line.state]
            allowed = torch.isfinite(row).nonzero().flatten().tolist()
            line.advance(forced if forced >= 0 else chooser.choice(allowed))
    assert short_taken > 1000  # the short path was taken, and often
