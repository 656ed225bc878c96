"""The recurrent state of a Mamba model: everything it remembers, in a fixed size.

Per layer there are two tensors (the layouts of `mamba_ssm`'s inference cache):
  conv  (b, d_in, k)  the last k inputs of the causal convolution
  ssm   (b, d_in, n)  the selective SSM's hidden state h
Mamba-2 keeps conv (b, conv_dim, k) over x, B and C, and ssm (b, h, p, n), a matrix per head.

They are stored stacked over layers, so the whole state is two tensors however
many tokens the model has read: the editor keeps it with each version, and
rewinding a draft can rewind the model with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from infitool_edit.errors import InfitoolError

from .config import MambaConfig

_FORMAT = "infitool-mamba-state/1"


class StateError(InfitoolError, ValueError):
    """Bytes that are not a saved `State`."""


@dataclass(eq=False)
class State:
    conv: torch.Tensor  # (layers, b, d_in, k); Mamba-2: (layers, b, conv_dim, k)
    ssm: torch.Tensor  # (layers, b, d_in, n); Mamba-2: (layers, b, h, p, n). Always fp32: it accumulates

    @classmethod
    def zeros(
        cls,
        config: MambaConfig,
        batch: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> State:
        """The state before the first token."""
        layers = config.num_hidden_layers
        conv = torch.zeros(layers, batch, *config.conv_state_shape, device=device, dtype=dtype)
        ssm = torch.zeros(layers, batch, *config.ssm_state_shape, device=device, dtype=torch.float32)
        return cls(conv, ssm)

    @property
    def nbytes(self) -> int:
        return self.conv.nbytes + self.ssm.nbytes

    def copy(self) -> State:
        """An independent snapshot: stepping either one leaves the other as it was."""
        return State(self.conv.clone(), self.ssm.clone())

    def copy_(self, other: State) -> State:
        """Overwrite this state with `other`'s values, in place."""
        self.conv.copy_(other.conv)
        self.ssm.copy_(other.ssm)
        return self

    def max_difference(self, other: State) -> float:
        """The largest absolute difference of any entry (inf when the shapes differ)."""
        if self.conv.shape != other.conv.shape or self.ssm.shape != other.ssm.shape:
            return float("inf")
        conv = (self.conv.float() - other.conv.float()).abs().max().item() if self.conv.numel() else 0.0
        ssm = (self.ssm - other.ssm).abs().max().item() if self.ssm.numel() else 0.0
        return max(conv, ssm)

    def matches(self, other: State, *, atol: float = 0.0) -> bool:
        """Same shapes and dtypes, and every entry within `atol` (0: bit for bit equal)."""
        if self.conv.dtype != other.conv.dtype or self.ssm.dtype != other.ssm.dtype:
            return False
        return self.max_difference(other) <= atol

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and self.matches(other)

    def to_bytes(self) -> bytes:
        """The state as a safetensors blob (no pickle): store it, then `State.from_bytes`."""
        tensors = {"conv": self.conv.detach().cpu().contiguous(), "ssm": self.ssm.detach().cpu().contiguous()}
        return save_tensors(tensors, metadata={"format": _FORMAT})

    @classmethod
    def from_bytes(cls, data: bytes, *, device: torch.device | str | None = None) -> State:
        try:
            tensors = load_tensors(bytes(data))
        except (SafetensorError, ValueError, TypeError) as error:
            raise StateError(f"not a saved model state: {error}") from None
        if set(tensors) != {"conv", "ssm"}:
            raise StateError(f"not a saved model state: tensors {sorted(tensors)}, expected conv and ssm")
        conv, ssm = tensors["conv"], tensors["ssm"]
        if conv.dim() != 4 or ssm.dim() not in (4, 5) or conv.shape[:2] != ssm.shape[:2]:
            raise StateError(
                f"not a saved model state: conv {tuple(conv.shape)} and ssm {tuple(ssm.shape)} do not fit together"
            )
        return cls(conv.to(device), ssm.to(device))

    def fits(self, config: MambaConfig) -> bool:
        """Whether this state belongs to a model of this shape."""
        return (
            self.conv.shape[0] == config.num_hidden_layers
            and self.conv.shape[2:] == config.conv_state_shape
            and self.ssm.shape[2:] == config.ssm_state_shape
        )
