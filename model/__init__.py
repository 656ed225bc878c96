"""The SSM engine: Mamba and Mamba-2 in plain PyTorch, its state, checkpoints, tokenizers and sampling."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import Mamba2Config, MambaConfig
from .mamba import MambaLM
from .mamba2 import Mamba2LM
from .quantize import quantize_int8
from .sampling import sample, sample_token
from .state import State, StateError
from .tokenizer import ByteTokenizer, HFTokenizer

__all__ = [
    "ByteTokenizer",
    "CheckpointError",
    "HFTokenizer",
    "Mamba2Config",
    "Mamba2LM",
    "MambaConfig",
    "MambaLM",
    "State",
    "StateError",
    "load_checkpoint",
    "quantize_int8",
    "sample",
    "sample_token",
    "save_checkpoint",
]
