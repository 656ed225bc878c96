"""Decoding a few tokens through a model's step, fused (kernels/cpu_step.c) or its plain twin."""

from __future__ import annotations

import torch

from infitool_edit.kernels import cpu_step


def decode(model, monkeypatch, kernel: str, steps: int, *, fused: bool, threads: int = 1):
    """(logits of tokens 1..steps, the state after them, how often ``kernel`` ran) with the fused
    step on, or off (``cpu_step.ENV_VAR``), on ``threads`` threads."""
    with monkeypatch.context() as patch:
        if not fused:
            patch.setenv(cpu_step.ENV_VAR, "off")
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        before = cpu_step.calls[kernel]
        try:
            with torch.no_grad():
                state = model.new_state()
                logits = torch.cat([model.step(token, state) for token in range(1, steps + 1)])
        finally:
            torch.set_num_threads(previous)
    return logits, state, cpu_step.calls[kernel] - before


def stir(model):
    """The model with non-zero biases and varied decays (every bias, A_log and D moved by noise),
    so every term of a step matters when a fused step is held to its twin."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("bias", "A_log", ".D")):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return model
