"""Quantized copies of a model for decoding on the CPU: int8 (like llama.cpp's Q8_0) and 4-bit (Q4_0).

Decoding one token reads every weight once, so its time is the bytes of the weights over
memory bandwidth. `quantize_int8` stores each linear layer as int8 rows with one fp32 scale per
row (a quarter of fp32's bytes); `quantize_q4` stores 4-bit weights in groups of 32 along the
input, each group with a bf16 scale (0.5625 bytes a weight: a 7B model in about 4 GB). Both
quantize the LM head and the embedding to int8 rows (sharing one copy when they are tied): the
head is the largest single matrix of a small model, and is read whole every token.

The activations entering a quantized layer are quantized too, on the fly, in blocks of 32 with
one fp32 scale each (`quantize_activations`), and every block's dot product is an integer one:
that is what the fused C step does (kernels/cpu_step.c, AVX2 `maddubs`), and `_blockwise` here
is its plain twin — the same integers and scales, summed by PyTorch in another order. A prompt
(many rows at once) goes through the C code's `quantized_rows` where it can run (fp32 rows on
the CPU, outside autograd), and through `_blockwise` elsewhere.
Layers whose input width is not a multiple of 32 (a small dt_proj) stay fp32.

Accuracy against fp32 (logit RMS error, top-1 agreement) is printed beside each path's speed
by `infitool-edit bench model`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from infitool_edit.kernels import cpu_step, dispatch

from .mamba import Embedding, Linear, MambaLM

BLOCK = 32  # activations and 4-bit weights are quantized in blocks of this many (kernels/cpu_step.c's QBLOCK)


def quantize_activations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (..., m) fp32, m a multiple of BLOCK → (q (..., m) int8 as floats, scales (..., m / BLOCK)):
    per block scale = max|x| / 127 and q = round(x / scale) (ties to even; 0 where the block is 0)."""
    blocks = x.float().unflatten(-1, (-1, BLOCK))
    scale = blocks.abs().amax(-1) / 127.0
    q = torch.where(scale[..., None] > 0, torch.round(blocks / scale[..., None]), torch.zeros_like(blocks))
    return q.flatten(-2), scale


def dequantized_activations(x: torch.Tensor) -> torch.Tensor:
    """x as the quantized layers see it: each block's integers times its scale."""
    q, scale = quantize_activations(x)
    return (q.unflatten(-1, (-1, BLOCK)) * scale[..., None]).flatten(-2)


def _blockwise(x: torch.Tensor, weight: torch.Tensor, block_scales: torch.Tensor | None) -> torch.Tensor:
    """Σ_b xs_b · (xq_b · w_b) [· ws_b]: the integer dot product of every block, scaled per block,
    for rows x (r, in) and integer weights (out, in) held as floats. Exact integer sums per block
    (|sum| < 2^24), so only the order of the float sum differs from the C step."""
    q, xs = quantize_activations(x)  # (r, in), (r, nb)
    nb = q.shape[-1] // BLOCK
    dots = torch.einsum("rbi,obi->rob", q.unflatten(-1, (nb, BLOCK)), weight.unflatten(-1, (nb, BLOCK)))
    scales = xs[:, None, :] if block_scales is None else xs[:, None, :] * block_scales[None]
    return (dots * scales).sum(-1)  # (r, out)


def _in_c(x: torch.Tensor, layer: nn.Module, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor | None:
    """x through `layer` by cpu_step.quantized_rows, or None where it does not run (its twin runs then)."""
    if dispatch.backend_for(x, layer.bias) != "c":
        return None
    return cpu_step.quantized_linear(x, weight, layer.bias, scale)


class Int8Linear(nn.Module):
    """y = x Wᵀ (+ bias) with W stored as int8 rows (out, in) times one fp32 scale per row, and x
    quantized per block of 32 (`quantize_activations`)."""

    def __init__(self, linear: Linear):
        super().__init__()
        if linear.in_features % BLOCK:
            raise ValueError(f"in_features must be a multiple of {BLOCK}, not {linear.in_features}")
        weight = linear.weight.detach().float().t().contiguous()  # (out, in) rows
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        self.register_buffer("weight_int8", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale.float())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = _in_c(x, self, self.weight_int8, self.scale)
        if fused is not None:
            return fused
        rows = x.reshape(-1, self.in_features)
        y = _blockwise(rows, self.weight_int8.float(), None) * self.scale
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def fused_tensors(self):
        return self._buffers["weight_int8"], self._parameters.get("bias"), self._buffers["scale"]


def pack_q4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (out, in) fp32 → (bytes (out, in/2) uint8, scales (out, in/32) bf16), as Q4_0: per
    group of 32, scale = the signed value of largest magnitude / -8 and q = round(w / scale) + 8
    in 0..15; element j of a group in the low nibble of byte j, element j+16 in its high nibble."""
    out, fan_in = weight.shape
    groups = weight.float().reshape(out, fan_in // BLOCK, BLOCK)
    extreme = groups.gather(-1, groups.abs().argmax(-1, keepdim=True)).squeeze(-1)
    scale = (extreme / -8.0).to(torch.bfloat16)
    inverse = torch.where(scale != 0, 1.0 / scale.float(), torch.zeros_like(extreme))
    q = (torch.round(groups * inverse[..., None]) + 8).clamp(0, 15).to(torch.uint8)
    packed = q[..., : BLOCK // 2] | (q[..., BLOCK // 2 :] << 4)
    return packed.reshape(out, fan_in // 2).contiguous(), scale.contiguous()


def unpack_q4(packed: torch.Tensor) -> torch.Tensor:
    """pack_q4's bytes (out, in/2) → the integers (out, in) in -8..7, as floats."""
    out = packed.shape[0]
    groups = packed.reshape(out, -1, BLOCK // 2)
    q = torch.cat([groups & 0x0F, groups >> 4], dim=-1).float() - 8
    return q.reshape(out, -1)


class Q4Linear(nn.Module):
    """y = x Wᵀ (+ bias) with W in 4-bit groups of 32 (`pack_q4`), x quantized per block of 32."""

    def __init__(self, linear: Linear):
        super().__init__()
        if linear.in_features % BLOCK:
            raise ValueError(f"in_features must be a multiple of {BLOCK}, not {linear.in_features}")
        packed, scale = pack_q4(linear.weight.detach().float().t())
        self.register_buffer("weight_q4", packed)
        self.register_buffer("scale", scale)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = _in_c(x, self, self.weight_q4, self.scale)
        if fused is not None:
            return fused
        rows = x.reshape(-1, self.in_features)
        y = _blockwise(rows, unpack_q4(self.weight_q4), self.scale.float())
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def fused_tensors(self):
        return self._buffers["weight_q4"], self._parameters.get("bias"), self._buffers["scale"]


class Int8Embedding(nn.Module):
    """Token vectors as int8 rows (vocab, d) with one fp32 scale per token; a tied int8 head shares them."""

    def __init__(self, weight_int8: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("scale", scale)

    @property
    def weight(self) -> torch.Tensor:
        """The int8 rows, for callers that ask the embedding for the model's device."""
        return self.weight_int8

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight_int8[ids].float() * self.scale[ids][..., None]

    def fused_tensors(self):
        return self._buffers["weight_int8"], self._buffers["scale"]


def quantized_layers(model: nn.Module) -> list[tuple[nn.Module, str, Linear]]:
    """Every linear layer a quantizer replaces, as (parent, attribute, layer): not the head (it
    becomes int8 rows, shared with the embedding when tied), nor a layer whose input width is not
    a multiple of BLOCK (it stays fp32)."""
    head = model.lm_head
    return [(module, name, child) for module in list(model.modules()) for name, child in module.named_children()
            if isinstance(child, Linear) and child is not head and child.in_features % BLOCK == 0]


def _quantized(model: MambaLM, make_linear: type[nn.Module], in_place: bool) -> MambaLM:
    # In place, each fp32 matrix is freed as its quantized twin replaces it. A checkpoint loaded to
    # decode quantized has had its layers replaced as they were read (checkpoint.read_into), and
    # comes here for its head and embedding only.
    quantized = (model if in_place else copy.deepcopy(model)).eval()
    tied = model.lm_head.weight is model.embeddings.weight
    head = Int8Linear(quantized.lm_head)
    for module, name, child in quantized_layers(quantized):
        setattr(module, name, make_linear(child))
    if tied:
        embedding = Int8Embedding(head.weight_int8, head.scale)  # the head's rows are the token vectors
    else:
        embedding = Int8Embedding(*_int8_rows(quantized.embeddings.weight.detach().t()))
    quantized.lm_head, quantized.embeddings = head, embedding
    return quantized


def _int8_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = rows.float().contiguous()
    scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    return torch.round(rows / scale[:, None]).to(torch.int8), scale


def quantize_int8(model: MambaLM, *, in_place: bool = False) -> MambaLM:
    """A copy of model (`in_place`: the model itself) whose linear layers, LM head and embedding
    hold int8 weights; for inference only."""
    return _quantized(model, Int8Linear, in_place)


def quantize_q4(model: MambaLM, *, in_place: bool = False) -> MambaLM:
    """A copy of model (`in_place`: the model itself) whose linear layers hold 4-bit weights (the
    head and embedding int8); for inference only."""
    return _quantized(model, Q4Linear, in_place)


QUANTIZERS = {"int8": quantize_int8, "q4": quantize_q4}
"""The `--quantize` choices: name → quantizer."""
QUANTIZED_LINEAR = {"int8": Int8Linear, "q4": Q4Linear}
"""The same names → the layer each quantizer puts in a linear layer's place."""


__all__ = ["QUANTIZED_LINEAR", "QUANTIZERS", "Embedding", "Int8Embedding", "Int8Linear", "Q4Linear", "quantize_int8",
           "quantize_q4", "quantized_layers"]
