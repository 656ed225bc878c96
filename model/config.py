"""The shape of a Mamba model, with the field names of HuggingFace's `MambaConfig`.

The same names mean a `config.json` written by `transformers` (for
`state-spaces/mamba-130m-hf`, `tiiuae/falcon-mamba-7b`, ...) loads straight
into this dataclass, and one we write loads straight into `transformers`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


@dataclass
class MambaConfig:
    vocab_size: int = 50280  # rows of the embedding (already padded, as HF stores it)
    hidden_size: int = 768  # d_model: width of the residual stream
    state_size: int = 16  # n: size of each channel's SSM state
    num_hidden_layers: int = 24
    expand: int = 2  # d_in = expand * hidden_size channels inside the mixer
    conv_kernel: int = 4  # k: width of the causal depthwise convolution
    time_step_rank: int | str = "auto"  # R: rank of the Δ projection; "auto" = ceil(d_model / 16)
    use_bias: bool = False  # bias on in_proj and out_proj
    use_conv_bias: bool = True
    layer_norm_epsilon: float = 1e-5
    residual_in_fp32: bool = True  # keep the residual stream in fp32 when the weights are not
    tie_word_embeddings: bool = True  # the LM head reuses the embedding matrix
    pad_vocab_size_multiple: int = 1  # round vocab_size up to a multiple of this when building
    # FalconMamba: weightless RMS norms on Δ (before dt_proj), B and C, with this epsilon.
    falcon: bool = False
    mixer_rms_eps: float = 1e-6
    # Only used to initialise fresh weights; a checkpoint overrides them.
    time_step_min: float = 0.001
    time_step_max: float = 0.1
    time_step_floor: float = 1e-4
    initializer_range: float = 0.02
    bos_token_id: int | None = 0
    eos_token_id: int | None = 0
    pad_token_id: int | None = 0

    def __post_init__(self) -> None:
        if self.time_step_rank == "auto":
            self.time_step_rank = math.ceil(self.hidden_size / 16)
        multiple = self.pad_vocab_size_multiple
        if multiple > 1 and self.vocab_size % multiple:
            self.vocab_size += multiple - self.vocab_size % multiple

    @property
    def intermediate_size(self) -> int:
        """d_in: the number of channels the selective scan runs over."""
        return self.expand * self.hidden_size

    @property
    def conv_state_shape(self) -> tuple[int, ...]:
        """One layer's convolution state for one sequence: the last k inputs of each channel."""
        return (self.intermediate_size, self.conv_kernel)

    @property
    def ssm_state_shape(self) -> tuple[int, ...]:
        """One layer's SSM state for one sequence: n entries per channel."""
        return (self.intermediate_size, self.state_size)

    @property
    def model_type(self) -> str:
        return "falcon_mamba" if self.falcon else "mamba"

    def to_hf_dict(self) -> dict:
        """The `config.json` contents `transformers` expects for this model."""
        values = asdict(self)
        del values["falcon"]
        if not self.falcon:
            del values["mixer_rms_eps"]
        architecture = "FalconMambaForCausalLM" if self.falcon else "MambaForCausalLM"
        return {
            "model_type": self.model_type,
            "architectures": [architecture],
            **values,
            "intermediate_size": self.intermediate_size,
            "hidden_act": "silu",
        }

    @classmethod
    def from_hf_dict(cls, values: dict) -> MambaConfig:
        """Build from a `config.json` dict, ignoring keys that do not shape the model.

        Raises `ValueError` / `TypeError` naming the first bad field."""
        # vocab_size in a config.json is already the embedding's row count: pad nothing more.
        known = {f.name for f in fields(cls)} - {"falcon", "pad_vocab_size_multiple"}
        kwargs = {key: value for key, value in values.items() if key in known}
        kwargs["falcon"] = values.get("model_type") == "falcon_mamba"
        for name in ("vocab_size", "hidden_size", "state_size", "num_hidden_layers", "expand", "conv_kernel"):
            if name in kwargs and (not isinstance(kwargs[name], int) or isinstance(kwargs[name], bool) or kwargs[name] < 1):
                raise ValueError(f"{name} must be a positive integer, not {kwargs[name]!r}")
        rank = kwargs.get("time_step_rank", "auto")
        if rank != "auto" and (not isinstance(rank, int) or rank < 1):
            raise ValueError(f"time_step_rank must be a positive integer or 'auto', not {rank!r}")
        if values.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {values['hidden_act']!r} is not supported (only silu)")
        return cls(**kwargs)


def _json_float(value) -> float:
    """A float from config.json: a number, "Infinity", or transformers 5's {"__float__": "Infinity"}."""
    if isinstance(value, dict) and set(value) == {"__float__"}:
        value = value["__float__"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"time_step_limit holds {value!r}, not a number")
    return float(value)


@dataclass
class Mamba2Config:
    """The shape of a Mamba-2 model (Dao & Gu, 2024), with the field names of HuggingFace's
    `Mamba2Config`: the state is a (head_dim, state_size) matrix per head, its decay one scalar
    per head and step, and B and C are shared by the heads of a group."""

    # Defaults are HuggingFace's, so a config.json that leaves a field out means the same here.
    vocab_size: int = 32768
    hidden_size: int = 4096
    state_size: int = 128  # n: columns of each head's state matrix
    num_hidden_layers: int = 64
    expand: int = 2
    num_heads: int = 128  # h: heads of head_dim channels; h · head_dim = expand · hidden_size
    head_dim: int = 64  # p
    n_groups: int = 8  # g: B and C are shared by h / g heads each
    conv_kernel: int = 4
    use_bias: bool = False
    use_conv_bias: bool = True
    layer_norm_epsilon: float = 1e-5
    residual_in_fp32: bool = True
    tie_word_embeddings: bool = False
    chunk_size: int = 256  # tokens per block of the chunked (SSD) scan
    time_step_limit: tuple[float, float] = (0.0, float("inf"))  # Δ is clamped to this range
    # Only used to initialise fresh weights; a checkpoint overrides them.
    time_step_min: float = 0.001
    time_step_max: float = 0.1
    time_step_floor: float = 1e-4
    initializer_range: float = 0.1
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2
    pad_token_id: int | None = 1

    def __post_init__(self) -> None:
        self.time_step_limit = tuple(_json_float(limit) for limit in self.time_step_limit)
        if self.num_heads * self.head_dim != self.expand * self.hidden_size:
            raise ValueError(
                f"num_heads · head_dim ({self.num_heads} · {self.head_dim}) must equal "
                f"expand · hidden_size ({self.expand} · {self.hidden_size})"
            )
        if self.num_heads % self.n_groups:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of n_groups ({self.n_groups})")

    @property
    def intermediate_size(self) -> int:
        return self.expand * self.hidden_size

    @property
    def conv_dim(self) -> int:
        """The convolution runs over x, B and C together."""
        return self.intermediate_size + 2 * self.n_groups * self.state_size

    @property
    def conv_state_shape(self) -> tuple[int, ...]:
        return (self.conv_dim, self.conv_kernel)

    @property
    def ssm_state_shape(self) -> tuple[int, ...]:
        return (self.num_heads, self.head_dim, self.state_size)

    model_type = "mamba2"

    def to_hf_dict(self) -> dict:
        values = asdict(self)
        values["time_step_limit"] = list(self.time_step_limit)
        return {"model_type": self.model_type, "architectures": ["Mamba2ForCausalLM"], **values, "hidden_act": "silu"}

    @classmethod
    def from_hf_dict(cls, values: dict) -> Mamba2Config:
        known = {f.name for f in fields(cls)}
        kwargs = {key: value for key, value in values.items() if key in known}
        for name in ("vocab_size", "hidden_size", "state_size", "num_hidden_layers", "expand", "num_heads",
                     "head_dim", "n_groups", "conv_kernel", "chunk_size"):
            if name in kwargs and (not isinstance(kwargs[name], int) or isinstance(kwargs[name], bool) or kwargs[name] < 1):
                raise ValueError(f"{name} must be a positive integer, not {kwargs[name]!r}")
        if values.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {values['hidden_act']!r} is not supported (only silu)")
        if values.get("norm_before_gate", False):
            raise ValueError("norm_before_gate is not supported (HuggingFace's Mamba-2 gates first)")
        return cls(**kwargs)
