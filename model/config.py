"""The shape of a Mamba model, with the field names of HuggingFace's `MambaConfig`.

The same names mean a `config.json` written by `transformers` (for
`state-spaces/mamba-130m-hf`, `tiiuae/falcon-mamba-7b`, ...) loads into these
dataclasses, and one we write loads straight into `transformers`.

`from_hf_dict` reads a `config.json` the way `transformers` reads it, key by
key: a key that is absent takes `transformers`' default, and where
`transformers` derives one key from others *and then lets a stored key
override it* (`intermediate_size` over `expand · hidden_size` for Mamba and
FalconMamba) the stored key wins here too. Keys `transformers` stores but never
reads into the model (`norm_before_gate`, `rms_norm`, `d_model`, ...) are
ignored here as there; `reading_notes` lists the ones a reader would trip over.
Published configs exercise every one of these rules: see
tests/fixtures/configs/ and tests/model/test_model_published_configs.py.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


class _Keys:
    """Typed reads from a config.json dict; every error names the key and its value."""

    def __init__(self, values: dict):
        self.values = values

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def positive_int(self, name: str, default: int) -> int:
        value = self.values.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")
        return value

    def positive_number(self, name: str, default: float) -> float:
        value = self.values.get(name, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"{name} must be a positive number, not {value!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.values.get(name, default)
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, not {value!r}")
        return value

    def token_id(self, name: str, default: int | None) -> int | list[int] | None:
        value = self.values.get(name, default)
        ids = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise ValueError(f"{name} must be a token id, a list of them, or null, not {value!r}")
        return value

    def time_step_rank(self, hidden_size: int) -> int:
        """transformers: `ceil(hidden_size / 16) if time_step_rank == "auto" else time_step_rank`."""
        value = self.values.get("time_step_rank", "auto")
        if value == "auto":
            return math.ceil(hidden_size / 16)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"time_step_rank must be a positive integer or 'auto', not {value!r}")
        return value

    def silu(self) -> None:
        if self.values.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {self.values['hidden_act']!r} is not supported (only silu)")


@dataclass
class MambaConfig:
    vocab_size: int = 50280  # rows of the embedding (already padded, as HF stores it)
    hidden_size: int = 768  # d_model: width of the residual stream
    state_size: int = 16  # n: size of each channel's SSM state
    num_hidden_layers: int = 24
    expand: int = 2  # d_in = expand * hidden_size channels inside the mixer, unless intermediate_size says otherwise
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
    # d_in, the channels the selective scan runs over. None derives it as transformers does,
    # int(expand · hidden_size); a stored value wins (falcon-mamba-7b: expand 16, intermediate_size 8192).
    intermediate_size: int | None = None
    # Only used to initialise fresh weights; a checkpoint overrides them.
    time_step_min: float = 0.001
    time_step_max: float = 0.1
    time_step_floor: float = 1e-4
    initializer_range: float = 0.02
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 0
    pad_token_id: int | None = 0

    def __post_init__(self) -> None:
        if self.time_step_rank == "auto":
            self.time_step_rank = math.ceil(self.hidden_size / 16)
        if self.intermediate_size is None:
            self.intermediate_size = int(self.expand * self.hidden_size)
        multiple = self.pad_vocab_size_multiple
        if multiple > 1 and self.vocab_size % multiple:
            self.vocab_size += multiple - self.vocab_size % multiple

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
        return {"model_type": self.model_type, "architectures": [architecture], **values, "hidden_act": "silu"}

    @classmethod
    def from_hf_dict(cls, values: dict) -> MambaConfig:
        """Read a `mamba` or `falcon_mamba` `config.json` as transformers' `MambaConfig` /
        `FalconMambaConfig` does (their defaults for absent keys).

        Raises `ValueError` naming the first bad key."""
        keys = _Keys(values)
        keys.silu()
        hidden = keys.positive_int("hidden_size", 768)
        expand = keys.positive_number("expand", 2)
        falcon = values.get("model_type") == "falcon_mamba"
        return cls(
            # vocab_size in a config.json is already the embedding's row count: pad nothing more
            # (mamba-130m-hf stores pad_vocab_size_multiple 8 beside an already padded 50280).
            vocab_size=keys.positive_int("vocab_size", 50280),
            hidden_size=hidden,
            state_size=keys.positive_int("state_size", 16),
            num_hidden_layers=keys.positive_int("num_hidden_layers", 32),
            expand=expand,
            # transformers' __post_init__ sets int(expand · hidden_size), then the stored keys are
            # set over it: a stored intermediate_size wins.
            intermediate_size=keys.positive_int("intermediate_size", int(expand * hidden)),
            conv_kernel=keys.positive_int("conv_kernel", 4),
            time_step_rank=keys.time_step_rank(hidden),
            use_bias=keys.flag("use_bias", False),
            use_conv_bias=keys.flag("use_conv_bias", True),
            # The block and final norms are RMS norms whose epsilon is layer_norm_epsilon; an
            # rms_norm_eps key is not read by transformers' Mamba, so not here either.
            layer_norm_epsilon=keys.positive_number("layer_norm_epsilon", 1e-5),
            residual_in_fp32=keys.flag("residual_in_fp32", True),
            tie_word_embeddings=keys.flag("tie_word_embeddings", True),
            falcon=falcon,
            mixer_rms_eps=keys.positive_number("mixer_rms_eps", 1e-6) if falcon else 1e-6,
            time_step_min=keys.positive_number("time_step_min", 0.001),
            time_step_max=keys.positive_number("time_step_max", 0.1),
            time_step_floor=keys.positive_number("time_step_floor", 1e-4),
            initializer_range=keys.positive_number("initializer_range", 0.1),
            bos_token_id=keys.token_id("bos_token_id", 0),
            eos_token_id=keys.token_id("eos_token_id", 0),
            pad_token_id=keys.token_id("pad_token_id", 0),
        )


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
    eos_token_id: int | list[int] | None = 2
    pad_token_id: int | None = 1

    def __post_init__(self) -> None:
        self.time_step_limit = tuple(_json_float(limit) for limit in self.time_step_limit)
        if self.num_heads * self.head_dim != self.intermediate_size:
            raise ValueError(
                f"num_heads · head_dim ({self.num_heads} · {self.head_dim}) must equal "
                f"expand · hidden_size ({self.expand} · {self.hidden_size})"
            )
        if self.num_heads % self.n_groups:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of n_groups ({self.n_groups})")

    @property
    def intermediate_size(self) -> int:
        """d_in. transformers' Mamba-2 mixer always derives it, int(expand · hidden_size): a stored
        intermediate_size key is kept on its config but never shapes the model."""
        return int(self.expand * self.hidden_size)

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
        """Read a `mamba2` `config.json` as transformers' `Mamba2Config` does.

        `norm_before_gate` and `rms_norm` are ignored, as transformers' Mamba-2 ignores them
        (it always gates, then norms: Mamba-Codestral-7B stores norm_before_gate true).
        Raises `ValueError` naming the first bad key."""
        keys = _Keys(values)
        keys.silu()
        limit = values.get("time_step_limit", (0.0, float("inf")))
        if not isinstance(limit, (list, tuple)) or len(limit) != 2:
            raise ValueError(f"time_step_limit must be a pair of numbers, not {limit!r}")
        return cls(
            vocab_size=keys.positive_int("vocab_size", 32768),
            hidden_size=keys.positive_int("hidden_size", 4096),
            state_size=keys.positive_int("state_size", 128),
            num_hidden_layers=keys.positive_int("num_hidden_layers", 64),
            expand=keys.positive_number("expand", 2),
            num_heads=keys.positive_int("num_heads", 128),
            head_dim=keys.positive_int("head_dim", 64),
            n_groups=keys.positive_int("n_groups", 8),
            conv_kernel=keys.positive_int("conv_kernel", 4),
            use_bias=keys.flag("use_bias", False),
            use_conv_bias=keys.flag("use_conv_bias", True),
            layer_norm_epsilon=keys.positive_number("layer_norm_epsilon", 1e-5),
            residual_in_fp32=keys.flag("residual_in_fp32", True),
            tie_word_embeddings=keys.flag("tie_word_embeddings", False),
            chunk_size=keys.positive_int("chunk_size", 256),
            time_step_limit=tuple(limit),
            time_step_min=keys.positive_number("time_step_min", 0.001),
            time_step_max=keys.positive_number("time_step_max", 0.1),
            time_step_floor=keys.positive_number("time_step_floor", 1e-4),
            initializer_range=keys.positive_number("initializer_range", 0.1),
            bos_token_id=keys.token_id("bos_token_id", 0),
            eos_token_id=keys.token_id("eos_token_id", 2),
            pad_token_id=keys.token_id("pad_token_id", 1),
        )


# Keys of the original mamba_ssm format that transformers keeps on the config but never reads.
_MAMBA_SSM_KEYS = ("d_model", "d_inner", "n_layer", "ssm_cfg", "fused_add_norm", "rms_norm")


def reading_notes(values: dict) -> list[str]:
    """One line for each key of a `config.json` that is read differently from how it looks:
    a derived key a stored one overrides, or a key transformers stores but ignores."""
    model_type = values.get("model_type")
    notes = []
    hidden, expand = values.get("hidden_size"), values.get("expand", 2)
    derived = expand * hidden if isinstance(hidden, int) and isinstance(expand, (int, float)) else None
    stored = values.get("intermediate_size")
    if model_type in ("mamba", "falcon_mamba") and stored is not None and derived is not None and stored != derived:
        notes.append(
            f"intermediate_size {stored} is used; expand {expand} · hidden_size {hidden} = {int(derived)} "
            f"is overridden by it, as in transformers"
        )
    if model_type == "mamba2" and stored is not None and derived is not None and stored != derived:
        notes.append(
            f"intermediate_size {stored} is ignored: transformers' Mamba-2 uses expand · hidden_size = {int(derived)}"
        )
    if model_type == "mamba2" and values.get("norm_before_gate"):
        notes.append("norm_before_gate true is ignored: transformers' Mamba-2 always gates before its norm")
    if model_type in ("mamba", "falcon_mamba", "mamba2") and "rms_norm_eps" in values:
        notes.append("rms_norm_eps is ignored: the norms use layer_norm_epsilon, as in transformers")
    if model_type == "mamba2" and values.get("time_step_rank") not in (None, "auto"):
        notes.append("time_step_rank is ignored: Mamba-2 has no low-rank Δ projection")
    if model_type in ("mamba", "falcon_mamba") and values.get("pad_vocab_size_multiple", 1) != 1:
        notes.append("pad_vocab_size_multiple is ignored: vocab_size is already the embedding's row count")
    legacy = [key for key in _MAMBA_SSM_KEYS if key in values]
    if legacy and model_type in ("mamba", "falcon_mamba", "mamba2"):
        notes.append(f"{', '.join(legacy)} (mamba_ssm's names) ignored, as transformers does")
    if model_type in ("mamba", "falcon_mamba", "mamba2") and "tie_word_embeddings" not in values:
        default = model_type != "mamba2"
        notes.append(f"tie_word_embeddings absent: {'true' if default else 'false'}, transformers' default for {model_type}")
    return notes
