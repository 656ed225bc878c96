"""A weight-only int8 copy of a model for faster decoding on the CPU.

Decoding one token reads every weight once, so its time is the bytes of the
weights over memory bandwidth. Storing the linear layers' weights as int8
(one fp32 scale per output row) reads a quarter of the bytes; activations
are bf16 inside the matmul (`torch.ops.aten._weight_int8pack_mm`, which has a
fast CPU kernel) and fp32 everywhere else, and the state stays fp32. Decoding
one token on the CPU goes through the fused C step instead (kernels/cpu_step.c),
which reads the same int8 rows and scales and rounds as the aten kernel does.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .mamba import Linear, MambaLM


KERNEL_K_MULTIPLE = 16


class Int8Linear(nn.Module):
    """y = x Wᵀ (+ bias) with W stored as int8 rows times per-row scales."""

    def __init__(self, linear: Linear):
        super().__init__()
        if linear.in_features % KERNEL_K_MULTIPLE:
            raise ValueError(f"in_features must be a multiple of {KERNEL_K_MULTIPLE}, not {linear.in_features}")
        weight = linear.weight.detach().float().t().contiguous()  # the kernel takes (out, in) rows
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()  # the kernel wants dense rows
        y = torch.ops.aten._weight_int8pack_mm(rows, self.weight_int8, self.scale).float()
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias


def quantize_int8(model: MambaLM) -> MambaLM:
    """A copy of model whose linear layers (and LM head) hold int8 weights; for inference only."""
    # A tied head gets its own int8 copy; the embedding stays fp32 (one column is read per token).
    quantized = copy.deepcopy(model).eval()
    for module in list(quantized.modules()):
        for name, child in module.named_children():
            # The CPU kernel gives garbage (or crashes) unless the inner dimension is a multiple
            # of 16; such layers (a tiny model's dt_proj) are small and stay fp32.
            if isinstance(child, Linear) and child.in_features % KERNEL_K_MULTIPLE == 0:
                setattr(module, name, Int8Linear(child))
    return quantized
