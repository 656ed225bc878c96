"""The SSM engine: Mamba in plain PyTorch, its state, checkpoints, tokenizers and sampling."""

from .config import MambaConfig
from .mamba import MambaLM
from .state import State, StateError

__all__ = ["MambaConfig", "MambaLM", "State", "StateError"]
