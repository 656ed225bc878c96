"""Grow a trained byte-level Mamba-2 deeper without changing what it computes.

A block adds its mixer's output to the residual stream, and the mixer's last step is
``out_proj``. A copy of a trained block whose ``out_proj`` is zero therefore adds nothing: the
grown model's logits equal the checkpoint's, bit for bit, and training starts from what the
smaller model knew instead of from noise (LLaMA Pro's block expansion, Wu et al. 2024). The
copy's other weights are its original's, so the gradient that reaches its ``out_proj`` on the
first step already carries a trained block's features.

``train --from`` calls this when ``--config`` asks for more layers of the same width.
"""

from __future__ import annotations

import copy

import torch

from infitool_edit.model import Mamba2LM


def copies_after(layers: int, wanted: int) -> list[int]:
    """How many new blocks follow each of ``layers`` blocks to make ``wanted``, spread evenly
    (the later blocks get the remainder, where a deeper model's extra layers help most)."""
    extra = wanted - layers
    return [extra // layers + (1 if layer >= layers - extra % layers else 0) for layer in range(layers)]


def grow_depth(model: Mamba2LM, layers: int) -> Mamba2LM:
    """A new model with ``layers`` blocks computing exactly what ``model`` computes."""
    old = model.config.num_hidden_layers
    if layers < old:
        raise ValueError(f"cannot grow {old} layers to {layers}")
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = layers
    grown = Mamba2LM(config)
    blocks = []
    for block, copies in zip(model.layers, copies_after(old, layers)):
        blocks.append(copy.deepcopy(block))
        for _ in range(copies):
            twin = copy.deepcopy(block)
            with torch.no_grad():
                twin.mixer.out_proj.weight.zero_()
            blocks.append(twin)
    grown.layers = torch.nn.ModuleList(blocks)
    state = {name: tensor for name, tensor in model.state_dict().items() if not name.startswith("layers.")}
    missing, unexpected = grown.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith("layers.") for name in missing):
        raise ValueError(f"grow_depth: unexpected parameters {unexpected or missing}")
    return grown
