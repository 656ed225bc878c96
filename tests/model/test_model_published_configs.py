"""Published config.json files load the way transformers loads them.

Each fixture in tests/fixtures/configs/ (SOURCES.md says where each came from) is shrunk to a
tiny model keeping every quirk (the ratios between widths, the keys that disagree, the keys
transformers ignores); transformers builds and saves a model from the shrunk file; the shrunk
file is written back over the config.json transformers saved (which would be self-consistent);
our loader reads the folder, and its forward and step give transformers' logits (fp32, 1e-4).
"""

import json
from pathlib import Path

import pytest
import torch

from infitool_edit.model import CheckpointError, load_checkpoint
from infitool_edit.model.checkpoint import SUPPORTED_MODEL_TYPES
from infitool_edit.model.config import reading_notes

transformers = pytest.importorskip("transformers")
from helpers.transformers_classes import config_class, model_class  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "configs"
PUBLISHED = sorted(folder.name for folder in FIXTURES.iterdir() if (folder / "config.json").is_file())
LOGITS_ATOL, LOGITS_RTOL = 1e-4, 1e-4
TINY_VOCAB = 96  # a multiple of 8, as every published vocab_size here is
SEQUENCE = 19  # spans more than two Mamba-2 chunks of the shrunk chunk_size


@pytest.fixture(autouse=True)
def quiet_transformers():
    transformers.utils.logging.set_verbosity_error()


def published(name: str) -> dict:
    return json.loads((FIXTURES / name / "config.json").read_text(encoding="utf-8"))


def _scaled(value: int, factor: float) -> int:
    return max(1, round(value * factor))


def shrink(values: dict) -> dict:
    """A tiny copy of a published config: every key kept, the widths scaled by one factor (so
    intermediate_size / hidden_size and expand keep their values and their disagreement),
    2 or 3 layers, a small vocabulary. Keys transformers ignores are scaled alike, so the
    file stays what it was, only smaller."""
    small = dict(values)
    model_type = values["model_type"]
    small["vocab_size"] = TINY_VOCAB
    if model_type in ("mamba", "falcon_mamba"):
        factor = 64 / values["hidden_size"]
        for key in ("hidden_size", "intermediate_size", "d_model", "d_inner"):
            if key in values:
                small[key] = _scaled(values[key], factor)
        if isinstance(values.get("time_step_rank"), int):
            small["time_step_rank"] = _scaled(values["time_step_rank"], factor)
        for key in ("num_hidden_layers", "n_layer"):
            if key in values:
                small[key] = 2
    elif model_type == "mamba2":
        factor = 64 / values["hidden_size"]
        small["hidden_size"] = 64
        if "intermediate_size" in values:
            small["intermediate_size"] = _scaled(values["intermediate_size"], factor)
        if isinstance(values.get("time_step_rank"), int):
            small["time_step_rank"] = _scaled(values["time_step_rank"], factor)
        small["head_dim"] = 8
        small["num_heads"] = int(values.get("expand", 2) * 64) // 8
        small["state_size"] = 8
        small["chunk_size"] = 8
        small["num_hidden_layers"] = 2
    elif model_type == "granitemoehybrid":
        factor = 48 / values["hidden_size"]  # 12 attention heads of 4 and 4 key/value heads stay
        small["hidden_size"] = 48
        for key in ("intermediate_size", "shared_intermediate_size"):
            if key in values:
                small[key] = _scaled(values[key], factor * 1.0) if values[key] else 0
        small["mamba_d_head"] = 8
        small["mamba_n_heads"] = int(values.get("mamba_expand", 2) * 48) // 8
        small["mamba_d_state"] = 8
        small["mamba_chunk_size"] = 8
        small["layer_types"] = ["mamba", "attention", "mamba"]
        small["num_hidden_layers"] = 3
    else:
        raise AssertionError(f"no shrinking rule for model_type {model_type}")
    return small


def built_by_transformers(values: dict, folder: Path):
    """transformers' model for a config.json dict, saved into folder with that dict put back
    over the config.json it wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(values), encoding="utf-8")
    config = config_class(values["model_type"]).from_pretrained(folder)
    torch.manual_seed(0)
    model = model_class(values["model_type"])(config).float().eval()
    model.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(values, indent=2), encoding="utf-8")
    return model


@torch.no_grad()
def assert_our_logits_are_transformers(ours, theirs) -> None:
    ids = torch.randint(0, TINY_VOCAB, (2, SEQUENCE), generator=torch.Generator().manual_seed(1))
    expected = theirs(ids).logits
    forward_logits, _ = ours(ids)
    torch.testing.assert_close(forward_logits, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    state = ours.new_state(batch=2)
    step_logits = torch.stack([ours.step(ids[:, t], state) for t in range(SEQUENCE)], dim=1)
    torch.testing.assert_close(step_logits, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)


@torch.no_grad()
def test_issue_16_falcon_mamba_whose_expand_disagrees_with_intermediate_size_loads(tmp_path):
    """The reproduction in issue 16: hidden 64, intermediate 128, expand 16, built and saved by
    transformers, then the original-style config.json (both keys, disagreeing) put back.
    Before the fix: "tensor backbone.layers.0.mixer.A_log has shape (128, 16), the config
    implies (1024, 16)"."""
    original_style = {
        "architectures": ["FalconMambaForCausalLM"], "model_type": "falcon_mamba",
        "hidden_size": 64, "intermediate_size": 128, "expand": 16, "state_size": 16,
        "num_hidden_layers": 2, "vocab_size": TINY_VOCAB, "time_step_rank": 4, "conv_kernel": 4,
        "tie_word_embeddings": False, "use_bias": False, "use_conv_bias": True,
        "layer_norm_epsilon": 1e-05, "residual_in_fp32": True, "hidden_act": "silu",
    }
    theirs = built_by_transformers(original_style, tmp_path)
    assert theirs.backbone.layers[0].mixer.A_log.shape == (128, 16)
    ours = load_checkpoint(tmp_path)
    assert ours.config.intermediate_size == 128 and ours.config.expand == 16
    assert_our_logits_are_transformers(ours, theirs)


@pytest.mark.parametrize("name", PUBLISHED)
def test_a_published_config_loads_and_gives_transformers_logits(name, tmp_path):
    values = shrink(published(name))
    model_type = values["model_type"]
    if model_type not in transformers.models.auto.configuration_auto.CONFIG_MAPPING:
        pytest.skip(f"transformers {transformers.__version__} has no {model_type} model to compare with")
    theirs = built_by_transformers(values, tmp_path)
    assert model_type in SUPPORTED_MODEL_TYPES, f"{name}: model_type {model_type} is not loaded"
    assert_our_logits_are_transformers(load_checkpoint(tmp_path), theirs)


# Every key that shapes the model or its numbers, set away from its default, so a key we did
# not read (or read as something else) shows in the logits.
UNUSUAL = {
    "falcon_mamba": {"model_type": "falcon_mamba", "hidden_size": 48, "expand": 3, "num_hidden_layers": 2,
                     "vocab_size": TINY_VOCAB, "state_size": 6, "conv_kernel": 3, "time_step_rank": "auto",
                     "use_bias": True, "use_conv_bias": False, "residual_in_fp32": False,
                     "layer_norm_epsilon": 1e-2, "mixer_rms_eps": 1e-1},
    "mamba": {"model_type": "mamba", "hidden_size": 32, "intermediate_size": 80, "num_hidden_layers": 2,
              "vocab_size": TINY_VOCAB, "time_step_rank": 5, "tie_word_embeddings": False, "layer_norm_epsilon": 1e-1},
    "mamba2": {"model_type": "mamba2", "hidden_size": 32, "expand": 2, "num_heads": 8, "head_dim": 8, "n_groups": 2,
               "state_size": 4, "chunk_size": 4, "num_hidden_layers": 2, "vocab_size": TINY_VOCAB,
               "use_bias": True, "use_conv_bias": False, "tie_word_embeddings": True, "layer_norm_epsilon": 1e-1,
               "time_step_limit": [0.05, 2.0], "residual_in_fp32": False, "norm_before_gate": True},
}


@pytest.mark.parametrize("model_type", UNUSUAL)
def test_every_key_that_shapes_the_model_is_read_as_transformers_reads_it(model_type, tmp_path):
    theirs = built_by_transformers(UNUSUAL[model_type], tmp_path)
    assert_our_logits_are_transformers(load_checkpoint(tmp_path), theirs)


@pytest.mark.parametrize("name", PUBLISHED)
def test_shrinking_keeps_every_key_and_every_disagreement(name):
    original = published(name)
    small = shrink(original)
    assert set(small) == set(original)
    for key in ("expand", "tie_word_embeddings", "norm_before_gate", "pad_vocab_size_multiple", "n_groups",
                "time_step_limit", "use_bias", "use_conv_bias", "residual_in_fp32", "mixer_rms_eps"):
        assert small.get(key) == original.get(key), key
    if "intermediate_size" in original and "expand" in original:
        assert small["intermediate_size"] / small["hidden_size"] == original["intermediate_size"] / original["hidden_size"]
    assert [note.split()[0] for note in reading_notes(small)] == [note.split()[0] for note in reading_notes(original)]


def test_the_falcon_mamba_7b_fixture_is_the_published_file_the_issue_quotes():
    values = published("tiiuae--falcon-mamba-7b")
    assert (values["expand"], values["intermediate_size"], values["hidden_size"]) == (16, 8192, 4096)
    assert "intermediate_size 8192 is used" in reading_notes(values)[0]


def test_codestral_norm_before_gate_is_ignored_as_transformers_ignores_it():
    values = published("mistralai--Mamba-Codestral-7B-v0.1")
    assert values["norm_before_gate"] is True
    assert any("norm_before_gate true is ignored" in note for note in reading_notes(values))


# ---- a key that genuinely contradicts the tensors: the tensors decide, the key is named --------


@pytest.fixture(scope="module")
def falcon_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("falcon")
    built_by_transformers(shrink(published("tiiuae--falcon-mamba-7b")), folder)
    return folder


def rewritten(folder: Path, tmp_path: Path, **changes) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "model.safetensors").symlink_to(folder / "model.safetensors")
    values = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    (copy / "config.json").write_text(json.dumps(values))
    return copy


def refusal(folder: Path) -> str:
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(folder)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_wrong_stored_intermediate_size_is_named(falcon_folder, tmp_path):
    message = refusal(rewritten(falcon_folder, tmp_path, intermediate_size=96))
    assert "config.json gives intermediate_size 96, but the weights say 128" in message
    assert "backbone.layers.0.mixer.A_log is (128, 16)" in message


def test_without_intermediate_size_the_expand_key_is_named(falcon_folder, tmp_path):
    message = refusal(rewritten(falcon_folder, tmp_path, intermediate_size=None))
    assert "config.json gives expand 16 · hidden_size 1024, but the weights say 128" in message


def test_a_wrong_time_step_rank_is_named(falcon_folder, tmp_path):
    message = refusal(rewritten(falcon_folder, tmp_path, time_step_rank=8))
    assert "config.json gives time_step_rank 8, but the weights say 4" in message


def test_tie_word_embeddings_false_without_a_head_is_named(falcon_folder, tmp_path):
    copy = rewritten(falcon_folder, tmp_path)
    from safetensors.torch import load_file, save_file

    tensors = load_file(falcon_folder / "model.safetensors")
    del tensors["lm_head.weight"]
    (copy / "model.safetensors").unlink()
    save_file(tensors, copy / "model.safetensors")
    assert "config.json gives tie_word_embeddings false, but the weights say true" in refusal(copy)


def test_a_mamba2_config_whose_groups_disagree_with_the_weights_names_them(tmp_path):
    values = shrink(published("mistralai--Mamba-Codestral-7B-v0.1"))
    built_by_transformers(values, tmp_path / "codestral")
    message = refusal(rewritten(tmp_path / "codestral", tmp_path, n_groups=4))
    assert "config.json gives n_groups · state_size 32, but the weights say 64" in message
