"""`infitool-edit inspect DIR`: what a checkpoint folder is, reading no weights.

Every published fixture is reported with transformers' own parameter count for the full-size
model (built on the meta device, so nothing is allocated), and a real folder's report agrees
with what load_checkpoint then does."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models
from typer.testing import CliRunner

from infitool_edit.cli import app
from infitool_edit.model import load_checkpoint
from infitool_edit.model.checkpoint import PENDING_MODEL_TYPES, SUPPORTED_MODEL_TYPES
from infitool_edit.model.inspect import inspect_folder

transformers = pytest.importorskip("transformers")
from helpers.transformers_classes import config_class, model_class  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "configs"
PUBLISHED = sorted(folder.name for folder in FIXTURES.iterdir() if (folder / "config.json").is_file())
runner = CliRunner()
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


@pytest.fixture(autouse=True)
def quiet_transformers():
    transformers.utils.logging.set_verbosity_error()


def transformers_parameter_count(folder: Path) -> int:
    """transformers' own count for the full-size config, put together from models of one or two
    layers built on the meta device: layers of one kind all hold the same parameters, and
    building 64 layers' init ops costs seconds even on meta."""

    values = json.loads((folder / "config.json").read_text())

    def count(layer_types: list[str]) -> int:
        overrides = {"num_hidden_layers": len(layer_types)}
        if "layer_types" in values:
            overrides["layer_types"] = layer_types
        settings = {key: value for key, value in values.items() if key != "model_type"} | overrides
        config = config_class(values["model_type"])(**settings)
        with torch.device("meta"):
            model = model_class(values["model_type"])(config)
        return sum(parameter.numel() for parameter in model.parameters())

    types = values.get("layer_types") or ["mamba"] * values["num_hidden_layers"]
    kinds = sorted(set(types))
    per_layer = {kind: count([kind, kind]) - count([kind]) for kind in kinds}
    rest = count([kinds[0]]) - per_layer[kinds[0]]  # embedding, final norm, head
    return rest + sum(per_layer[kind] for kind in types)


@pytest.mark.parametrize("name", PUBLISHED)
def test_each_published_fixture_is_reported_with_transformers_parameter_count(name):
    folder = FIXTURES / name
    values = json.loads((folder / "config.json").read_text())
    report = inspect_folder(folder)
    assert report.model_type == values["model_type"]
    assert f"{values['num_hidden_layers']} layers" in report.architecture
    assert f"hidden {values['hidden_size']}" in report.architecture
    assert report.parameters_from == "config.json"
    assert report.parameters == transformers_parameter_count(folder)
    assert report.memory_bytes["fp32"] == 4 * report.parameters
    assert report.memory_bytes["4-bit"] < report.memory_bytes["int8"] < report.memory_bytes["fp32"]
    expected_refusals = ["no weights (model.safetensors, its index, or pytorch_model.bin): config only",
                         "no tokenizer.json: HFTokenizer reads only that file"]
    if values["model_type"] in PENDING_MODEL_TYPES:
        expected_refusals.insert(1, f"model_type {values['model_type']} ({PENDING_MODEL_TYPES[values['model_type']]}) "
                                    "has no model code in this build yet")
    else:
        assert values["model_type"] in SUPPORTED_MODEL_TYPES
        assert report.state_bytes > 0
    assert report.refusals == expected_refusals
    assert not report.loads


def test_falcon_mamba_7b_is_reported_as_transformers_reads_it():
    report = inspect_folder(FIXTURES / "tiiuae--falcon-mamba-7b")
    assert "FalconMamba" in report.architecture and "d_inner 8192" in report.architecture
    assert "untied head" in report.architecture and "Δ rank 256" in report.architecture
    assert report.notes == [
        "intermediate_size 8192 is used; expand 16 · hidden_size 4096 = 65536 is overridden by it, as in transformers"
    ]
    assert report.tokenizer == "tokenizer_config.json (PreTrainedTokenizerFast, eos <|endoftext|>)"
    assert report.chat_template == "none"
    # 64 layers of (8192 channels × (4 conv + 16 state)) fp32 values.
    assert report.state_bytes == 64 * 8192 * (4 + 16) * 4


def test_mamba_130m_reports_the_defaults_and_ignored_keys_it_relies_on():
    report = inspect_folder(FIXTURES / "state-spaces--mamba-130m-hf")
    assert "tied head" in report.architecture
    assert "tie_word_embeddings absent: true, transformers' default for mamba" in report.notes
    assert any(note.startswith("d_model, d_inner, n_layer") for note in report.notes)


# ---- a real folder: weights (headers only), tokenizer, chat template -------------------------


def tiny_tokenizer(folder: Path) -> None:
    vocab = {f"w{i}": i for i in range(95)} | {"<|endoftext|>": 95}
    Tokenizer(models.WordLevel(vocab, unk_token="w0")).save(str(folder / "tokenizer.json"))


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory) -> tuple[Path, int]:
    """The falcon-mamba-7b fixture shrunk (intermediate_size still disagreeing with expand),
    built and saved by transformers, with a tokenizer and a chat template."""
    folder = tmp_path_factory.mktemp("real")
    values = json.loads((FIXTURES / "tiiuae--falcon-mamba-7b" / "config.json").read_text())
    values.update(hidden_size=64, intermediate_size=128, time_step_rank=4, num_hidden_layers=2, vocab_size=96)
    config = transformers.FalconMambaConfig(**values)
    torch.manual_seed(0)
    model = transformers.FalconMambaForCausalLM(config)
    model.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(values))
    tiny_tokenizer(folder)
    settings = json.loads((FIXTURES / "tiiuae--falcon-mamba-7b" / "tokenizer_config.json").read_text())
    settings["chat_template"] = CHAT_TEMPLATE
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return folder, sum(p.numel() for p in model.parameters())


def test_a_real_folder_is_counted_from_its_headers_and_loads(real_folder):
    folder, parameters = real_folder
    report = inspect_folder(folder)
    assert report.refusals == [] and report.loads
    assert report.parameters_from == "tensor headers"
    assert report.parameters == parameters
    assert report.tokenizer == "tokenizer.json + tokenizer_config.json (PreTrainedTokenizerFast, eos <|endoftext|>)"
    assert report.chat_template == f"tokenizer_config.json chat_template ({len(CHAT_TEMPLATE)} characters)"
    assert report.lines()[-1] == "loads: yes"
    load_checkpoint(folder)  # what inspect said


def test_a_config_the_headers_contradict_is_refused_with_the_key_load_checkpoint_names(real_folder, tmp_path):
    folder, _ = real_folder
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    values = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**values, "state_size": 8}))
    report = inspect_folder(copy)
    assert report.refusals == [
        "config.json gives state_size 8, but the weights say 16 (backbone.layers.0.mixer.A_log is (128, 16))"
    ]
    with pytest.raises(ValueError, match="config.json gives state_size 8, but the weights say 16"):
        load_checkpoint(copy)


def test_a_chat_template_file_and_a_pickled_checkpoint_are_reported(real_folder, tmp_path):
    folder, parameters = real_folder
    copy = tmp_path / "bin"
    copy.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(folder / name, copy / name)
    (copy / "chat_template.jinja").write_text("{{ messages }}")
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), copy / "pytorch_model.bin")
    report = inspect_folder(copy)
    assert report.chat_template == "chat_template.jinja"
    assert report.parameters == parameters and report.parameters_from == "config.json"
    assert "weights are in pytorch_model.bin: its shapes are not read (that needs unpickling)" in report.notes
    assert report.loads


def test_the_command_prints_the_report_and_exits_1_when_something_would_be_refused(real_folder):
    folder, parameters = real_folder
    good = runner.invoke(app, ["inspect", str(folder)])
    assert good.exit_code == 0
    assert f"parameters: {parameters:,} (from tensor headers)" in good.output
    assert good.output.strip().endswith("loads: yes")
    fixture = runner.invoke(app, ["inspect", str(FIXTURES / "tiiuae--falcon-mamba-7b"), "--json"])
    assert fixture.exit_code == 1
    assert json.loads(fixture.output)["parameters"] == 7_272_665_088
    missing = runner.invoke(app, ["inspect", str(FIXTURES / "no-such-model")])
    assert missing.exit_code == 1
    assert "not a folder" in missing.output
