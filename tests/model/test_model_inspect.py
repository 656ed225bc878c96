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
from infitool_edit.model.checkpoint import SUPPORTED_MODEL_TYPES
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


def test_granite_is_reported_loadable_with_its_bounded_kv_window():
    report = inspect_folder(FIXTURES / "ibm-granite--granite-4.0-h-1b")
    assert "Granite-4.0-H hybrid" in report.architecture
    assert "KV cache bounded by a window of 8,192 tokens" in report.architecture
    assert not any("no model code" in reason for reason in report.refusals)


@pytest.mark.parametrize("model_type", ["rwkv7", "granitemoehybrid"])
def test_rwkv7_and_granite_state_bytes_are_the_state_the_model_builds(model_type, tmp_path):
    """The reported state per sequence equals what a tiny model of that type really allocates,
    and a tiny saved folder is reported loadable with its headers' parameter count."""
    from infitool_edit.model.hf_folder import architecture_classes, save_folder

    config_class, model_class = architecture_classes(model_type)
    if model_type == "rwkv7":
        config = config_class(vocab_size=96, hidden_size=32, num_hidden_layers=2, head_dim=8, decay_low_rank_dim=8,
                              gate_low_rank_dim=8, a_low_rank_dim=8, v_low_rank_dim=8)
    else:
        config = config_class(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, intermediate_size=16, shared_intermediate_size=16,
                              num_local_experts=2, num_experts_per_tok=1, layer_types=["mamba", "attention"],
                              mamba_n_heads=8, mamba_d_head=8, mamba_d_state=8, mamba_chunk_size=8,
                              attention_window=8192)
    torch.manual_seed(0)
    model = model_class(config)
    save_folder(model, tmp_path)
    tiny_tokenizer(tmp_path)
    report = inspect_folder(tmp_path)
    assert report.loads, report.refusals
    state = model.new_state()
    built = sum(t.numel() * t.element_size() for t in (state.conv, state.ssm, getattr(state, "keys", None),
                                                       getattr(state, "values", None)) if t is not None)
    assert report.state_bytes == built
    assert report.parameters == sum(p.numel() for p in model.state_dict().values()) - (
        config.vocab_size * config.hidden_size if config.tie_word_embeddings else 0)
