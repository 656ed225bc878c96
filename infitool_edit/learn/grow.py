"""Grow a trained byte-level Mamba-2 deeper without changing what it computes.

A block adds its mixer's output to the residual stream, and the mixer's last step is
``out_proj``. A copy of a trained block whose ``out_proj`` is zero therefore adds nothing: the
grown model's logits equal the checkpoint's, bit for bit, and training starts from what the
smaller model knew instead of from noise (LLaMA Pro's block expansion, Wu et al. 2024). The
copy's other weights are its original's, so the gradient that reaches its ``out_proj`` on the
first step already carries a trained block's features.

``train --from`` calls this when ``--config`` asks for more layers of the same width, and
`with_attention` when it asks for a hybrid: the same Mamba-2 layers with attention layers (and
an MLP after each layer) between them, Granite-4.0-H's frame, the new parts silent at first.
"""

from __future__ import annotations

import copy

import torch

from infitool_edit.model import Mamba2Config, Mamba2LM
from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM


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


def hybrid_config(mamba: Mamba2Config, attention_after: tuple[int, ...], heads: int, kv_heads: int,
                  mlp_size: int, window: int) -> GraniteHybridConfig:
    """A Granite-4.0-H shape (granite.py) around ``mamba``'s Mamba-2 layers: an attention layer
    after each of the Mamba-2 layers ``attention_after`` names (0-based), a SwiGLU of ``mlp_size``
    after every layer, no experts, no multipliers (all 1; attention scaled by 1/√head_dim).
    ``window``: the tokens attention sees at run time, saved with the folder: the longest read it
    trains on, so it never meets more keys than it learnt to weigh (no positions tell it how far)."""
    types = []
    for layer in range(mamba.num_hidden_layers):
        types.append("mamba")
        if layer in attention_after:
            types.append("attention")
    return GraniteHybridConfig(
        vocab_size=mamba.vocab_size, hidden_size=mamba.hidden_size, num_hidden_layers=len(types),
        num_attention_heads=heads, num_key_value_heads=kv_heads, rms_norm_eps=mamba.layer_norm_epsilon,
        tie_word_embeddings=mamba.tie_word_embeddings, attention_multiplier=(mamba.hidden_size // heads) ** -0.5,
        num_local_experts=0, shared_intermediate_size=mlp_size, layer_types=types,
        mamba_n_heads=mamba.num_heads, mamba_n_groups=mamba.n_groups, mamba_d_state=mamba.state_size,
        mamba_d_head=mamba.head_dim, mamba_d_conv=mamba.conv_kernel, mamba_expand=mamba.expand,
        mamba_chunk_size=mamba.chunk_size, mamba_conv_bias=mamba.use_conv_bias, mamba_proj_bias=mamba.use_bias,
        time_step_limit=mamba.time_step_limit, initializer_range=mamba.initializer_range,
        bos_token_id=mamba.bos_token_id, eos_token_id=mamba.eos_token_id, pad_token_id=mamba.pad_token_id,
        attention_window=window,
    )


def with_attention(model: Mamba2LM, config: GraniteHybridConfig) -> GraniteHybridLM:
    """``model`` as the hybrid ``config`` describes (`hybrid_config`), computing exactly what it
    computed: its Mamba-2 layers, norms, embedding and head as they were; every new part (the
    attention layers, an MLP after each layer) freshly initialised with its output projection
    zero, so it adds nothing until training gives it something to add. Attention is what a
    recurrent state does badly: copying a name seen a few hundred bytes back exactly."""
    hybrid = GraniteHybridLM(config)
    mamba_layers = iter(model.layers)
    with torch.no_grad():
        for layer in hybrid.layers:
            if layer.is_attention:
                layer.self_attn.o_proj.weight.zero_()
            else:
                block = next(mamba_layers)
                layer.input_layernorm.load_state_dict(block.norm.state_dict())
                layer.mamba.load_state_dict(block.mixer.state_dict())
            layer.shared_mlp.output_linear.weight.zero_()
        if next(mamba_layers, None) is not None:
            raise ValueError("with_attention: the config has fewer Mamba-2 layers than the model")
        hybrid.embeddings.weight.copy_(model.embeddings.weight)
        hybrid.norm.load_state_dict(model.norm_f.state_dict())
        if not config.tie_word_embeddings:
            hybrid.lm_head.weight.copy_(model.lm_head.weight)
    return hybrid
