"""The recurrent state of a Mamba model: everything it remembers, in a fixed size.

Per layer there are two tensors (the layouts of `mamba_ssm`'s inference cache):
  conv  (b, d_in, k)  the last k inputs of the causal convolution
  ssm   (b, d_in, n)  the selective SSM's hidden state h

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

from .config import MambaConfig

_FORMAT = "infitool-mamba-state/1"


class StateError(ValueError):
    """Bytes that are not a saved `State`."""


@dataclass(eq=False)
class State:
    conv: torch.Tensor  # (layers, b, d_in, k)
    ssm: torch.Tensor  # (layers, b, d_in, n), always fp32: it accumulates over the whole session

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
        layers, d_in = config.num_hidden_layers, config.intermediate_size
        conv = torch.zeros(layers, batch, d_in, config.conv_kernel, device=device, dtype=dtype)
        ssm = torch.zeros(layers, batch, d_in, config.state_size, device=device, dtype=torch.float32)
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
        if conv.dim() != 4 or ssm.dim() != 4 or conv.shape[:3] != ssm.shape[:3]:
            raise StateError(
                f"not a saved model state: conv {tuple(conv.shape)} and ssm {tuple(ssm.shape)} do not fit together"
            )
        return cls(conv.to(device), ssm.to(device))

    def fits(self, config: MambaConfig) -> bool:
        """Whether this state belongs to a model of this shape."""
        layers, d_in = config.num_hidden_layers, config.intermediate_size
        return (
            self.conv.shape[0] == layers
            and self.conv.shape[2:] == (d_in, config.conv_kernel)
            and self.ssm.shape[2:] == (d_in, config.state_size)
        )
