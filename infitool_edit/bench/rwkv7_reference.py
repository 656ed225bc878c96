"""flash-linear-attention's RWKV-7 (`RWKV7ForCausalLM`) running on the CPU: the reference that the
RWKV-7 peer check (tests/model/test_model_rwkv7.py) and `bench model` compare us with.

fla's Triton kernels need a GPU, so `fla_on_cpu()` swaps each for the pure-PyTorch reference fla
ships beside it: `torch_addcmul_rwkv7`, `k_update_ref`, `gate_output_correction_ref`,
`token_shift_ref`, and for the recurrence the naive loop `dplr_recurrence`
(fla/ops/generalized_delta_rule/dplr/naive.py), which computes what fla's RWKV-7 kernels do
(S ← S·exp(w) + k vᵀ + β (α S), α = -kk, β = kk·a). Only the glue between those and fla's call
sites (argument layout, the token-shift cache) is ours. fla is a test/bench dependency (the
`dev` extra); nothing in the editor imports this module.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import torch


@contextmanager
def fla_on_cpu():
    """Within the block, fla's RWKV-7 modules run on the CPU through fla's PyTorch references."""
    import fla.layers.rwkv7 as layer
    import fla.models.rwkv7.modeling_rwkv7 as modeling
    from fla.modules.token_shift import token_shift_ref
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_recurrence
    from fla.ops.rwkv7.fused_addcmul import torch_addcmul_rwkv7
    from fla.ops.rwkv7.fused_k_update import k_update_ref
    from fla.ops.rwkv7.gate_output_correction import gate_output_correction_ref

    def token_shift(x, cu_seqlens=None, output_cache=False, cache=None, **_):
        delta = token_shift_ref(x)
        if cache is not None:  # the previous call's last token stands before x[0]
            delta[:, 0] = cache.reshape(x.shape[0], -1) - x[:, 0]
        return (delta, x[:, -1].clone()) if output_cache else delta

    def recurrence(r, w, k, v, a, b, initial_state=None, output_final_state=True):
        heads_first = lambda t: t.transpose(1, 2)  # noqa: E731  [B, T, H, D] → [B, H, T, D]
        scale = r.shape[-1] ** 0.5  # dplr_recurrence scales q by d^-1/2; RWKV-7 uses scale 1
        o, S = dplr_recurrence(heads_first(r) * scale, heads_first(k), heads_first(v), heads_first(a),
                               heads_first(b), heads_first(w), initial_state, output_final_state)
        return o.transpose(1, 2), S

    def chunk_rwkv7(r, w, k, v, a, b, scale=1.0, initial_state=None, output_final_state=True, **_):
        return recurrence(r, w, k, v, a, b, initial_state, output_final_state)

    def fused_mul_recurrent_rwkv7(r, w, k, v, kk, a, scale=1.0, initial_state=None, output_final_state=True, **_):
        return recurrence(r, w, k, v, -kk, kk * a, initial_state, output_final_state)

    patches = {
        (layer, "token_shift"): token_shift,
        (modeling, "token_shift"): token_shift,
        (layer, "fused_addcmul_rwkv7"): torch_addcmul_rwkv7,
        (layer, "fused_k_rwkv7"): lambda k, a, ka, *_, **__: k_update_ref(k, a, ka),
        (layer, "gate_output_correction"): gate_output_correction_ref,
        (layer, "chunk_rwkv7"): chunk_rwkv7,
        (layer, "fused_mul_recurrent_rwkv7"): fused_mul_recurrent_rwkv7,
    }
    saved = {key: getattr(*key) for key in patches}
    for (module, name), replacement in patches.items():
        setattr(module, name, replacement)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "you are using a potentially buggy FLA implementation"
            yield
    finally:
        for (module, name), original in saved.items():
            setattr(module, name, original)


def fla_model_sharing_weights(ours):
    """fla's RWKV7ForCausalLM over our model's own tensors (no copy: its (out, in) matrices are
    views of our (in, out) ones), so a 1.5B-shape comparison does not need the memory twice."""
    from fla.models import RWKV7Config, RWKV7ForCausalLM

    from infitool_edit.model.hf_folder import hf_tensors

    values = {k: v for k, v in ours.config.to_hf_dict().items() if k not in ("model_type", "architectures")}
    config = RWKV7Config(**values, fuse_cross_entropy=False)
    orthogonal = torch.nn.init.orthogonal_
    # Built on the meta device (its weights are ours, below); fla initialises its matrices with
    # orthogonal_ whatever transformers says, which meta tensors cannot do: skip it here.
    torch.nn.init.orthogonal_ = lambda tensor, gain=1.0: tensor
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = RWKV7ForCausalLM(config)
    finally:
        torch.nn.init.orthogonal_ = orthogonal
    tensors = hf_tensors(ours)
    if config.tie_word_embeddings:
        tensors["lm_head.weight"] = tensors["model.embeddings.weight"]
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()


def fla_stepper(model):
    """A function that reads one token into fla's cache and returns its logits (b, vocab)."""
    cache = None

    def step(token: torch.Tensor) -> torch.Tensor:
        nonlocal cache
        output = model(token[:, None], past_key_values=cache, use_cache=True)
        cache = output.past_key_values
        return output.logits[:, -1]

    return step
