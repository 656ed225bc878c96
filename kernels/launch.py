"""Where a Triton kernel launches."""

from __future__ import annotations

import contextlib

import torch


def on_device_of(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """Make the tensor's GPU current for a launch (Triton launches on the current device), or do
    nothing for a CPU tensor: under TRITON_INTERPRET=1 no CUDA API may be called."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()
