"""transformers' own classes for each model_type we compare with, named explicitly.

Not through ``AutoConfig``/``AutoModelForCausalLM``: flash-linear-attention (imported
by the RWKV-7 peer check) registers its own "mamba" and "mamba2" models with the Auto
classes, ``exist_ok=True``, so after it is imported the Auto classes build fla's
models (untied heads, Triton kernels) instead of transformers'."""

from __future__ import annotations

import transformers

CLASSES = {
    "mamba": (transformers.MambaConfig, transformers.MambaForCausalLM),
    "falcon_mamba": (transformers.FalconMambaConfig, transformers.FalconMambaForCausalLM),
    "mamba2": (transformers.Mamba2Config, transformers.Mamba2ForCausalLM),
    "granitemoehybrid": (transformers.GraniteMoeHybridConfig, transformers.GraniteMoeHybridForCausalLM),
}


def config_class(model_type: str):
    return CLASSES[model_type][0]


def model_class(model_type: str):
    return CLASSES[model_type][1]
