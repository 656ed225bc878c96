"""Checkpoints: the peer check against transformers' own Mamba and FalconMamba, and every bad folder."""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from infitool_edit.model import CheckpointError, MambaConfig, MambaLM, load_checkpoint, save_checkpoint

transformers = pytest.importorskip("transformers")

# fp32 logits of a 2-layer model: the two implementations differ only in summation order.
LOGITS_ATOL, LOGITS_RTOL = 1e-4, 1e-4
HF_MODELS = {
    "mamba": (transformers.MambaConfig, transformers.MambaForCausalLM),
    "falcon_mamba": (transformers.FalconMambaConfig, transformers.FalconMambaForCausalLM),
}


@pytest.fixture(autouse=True)
def quiet_transformers():
    # transformers warns that mamba_ssm is missing, on purpose: the CPU must use its slow path.
    transformers.utils.logging.set_verbosity_error()


def test_the_test_environment_makes_transformers_use_its_plain_pytorch_path():
    import importlib.util

    assert importlib.util.find_spec("mamba_ssm") is None
    assert importlib.util.find_spec("causal_conv1d") is None


def hf_model(model_type: str, *, tie: bool = True, **overrides):
    config_class, model_class = HF_MODELS[model_type]
    torch.manual_seed(0)
    config = config_class(
        vocab_size=99, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
        tie_word_embeddings=tie, **overrides,
    )
    return vary_the_constant_weights(model_class(config).eval())


@torch.no_grad()
def vary_the_constant_weights(model):
    """transformers initialises D, every RMSNorm weight, norm_f and the biases
    to one constant each, and every channel's A_log row to the same log(1..N):
    a loader that dropped or swapped any of them would still match. Vary them."""
    for name, parameter in model.named_parameters():
        if _constant(parameter) or _same_rows(parameter):
            parameter.add_(torch.randn_like(parameter) * 0.2)
        assert not _constant(parameter) and not _same_rows(parameter), name
    return model


def _constant(tensor) -> bool:
    return bool(torch.all(tensor == tensor.flatten()[0]))


def _same_rows(tensor) -> bool:
    return tensor.dim() >= 2 and bool(torch.all(tensor == tensor[:1]))


def saved(model, folder: Path, **options) -> Path:
    model.save_pretrained(folder, **options)
    return folder


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("model_type", HF_MODELS)
@torch.no_grad()
def test_our_forward_and_step_give_transformers_logits_on_their_checkpoint(model_type, tie, tmp_path):
    theirs = hf_model(model_type, tie=tie, use_bias=not tie)
    ours = load_checkpoint(saved(theirs, tmp_path))
    assert ours.config.falcon == (model_type == "falcon_mamba")
    ids = torch.randint(0, 99, (2, 24))
    expected = theirs(ids).logits
    forward_logits, _ = ours(ids)
    state = ours.new_state(batch=2)
    step_logits = torch.stack([ours.step(ids[:, t], state) for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(forward_logits, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    torch.testing.assert_close(step_logits, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)


@pytest.mark.parametrize("model_type", HF_MODELS)
@torch.no_grad()
def test_our_step_matches_transformers_cached_decoding(model_type, tmp_path):
    theirs = hf_model(model_type)
    ours = load_checkpoint(saved(theirs, tmp_path))
    prompt, continuation = torch.randint(0, 99, (1, 6)), torch.randint(0, 99, (1, 5))
    output = theirs(prompt, use_cache=True)
    cache = output.cache
    logits, state = ours(prompt)
    torch.testing.assert_close(logits, output.logits, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    for t in range(continuation.shape[1]):
        expected = theirs(continuation[:, t : t + 1], cache=cache, use_cache=True).logits[:, -1]
        torch.testing.assert_close(ours.step(continuation[:, t], state), expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)


@pytest.mark.parametrize("falcon", [False, True], ids=["mamba", "falcon"])
@torch.no_grad()
def test_a_checkpoint_we_save_loads_in_transformers_and_back_with_the_same_logits(falcon, tmp_path):
    torch.manual_seed(1)
    ours = MambaLM(MambaConfig(vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, falcon=falcon)).eval()
    vary_the_constant_weights(ours)
    save_checkpoint(ours, tmp_path)
    model_class = HF_MODELS["falcon_mamba" if falcon else "mamba"][1]
    theirs = model_class.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 64, (1, 10))
    expected, _ = ours(ids)
    torch.testing.assert_close(theirs(ids).logits, expected, atol=LOGITS_ATOL, rtol=LOGITS_RTOL)
    again, _ = load_checkpoint(tmp_path)(ids)
    assert torch.equal(again, expected)


@torch.no_grad()
def test_sharded_safetensors_and_pytorch_bin_folders_load_the_same_weights(tmp_path):
    theirs = hf_model("mamba")
    reference = load_checkpoint(saved(theirs, tmp_path / "single"))
    sharded = load_checkpoint(saved(theirs, tmp_path / "sharded", max_shard_size="20KB"))
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "config.json").write_bytes((tmp_path / "single" / "config.json").read_bytes())
    torch.save(load_file(tmp_path / "single" / "model.safetensors"), binary / "pytorch_model.bin")
    from_bin = load_checkpoint(binary)
    ids = torch.randint(0, 99, (1, 8))
    expected, _ = reference(ids)
    assert torch.equal(sharded(ids)[0], expected)
    assert torch.equal(from_bin(ids)[0], expected)


# ---- bad folders: each is one line naming the problem --------------------------------------


@pytest.fixture
def good_folder(tmp_path) -> Path:
    return saved(hf_model("mamba"), tmp_path / "good")


def edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    values = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    path.write_text(json.dumps(values))


def edit_tensors(folder: Path, change) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


def refused(folder: Path, pattern: str) -> str:
    with pytest.raises(CheckpointError, match=pattern) as error:
        load_checkpoint(folder)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_missing_folder(tmp_path):
    refused(tmp_path / "nowhere", "not a folder")


def test_a_folder_without_config(good_folder):
    (good_folder / "config.json").unlink()
    refused(good_folder, "no config.json")


def test_a_config_that_is_not_json(good_folder):
    (good_folder / "config.json").write_text("{ not json")
    refused(good_folder, "config.json: not valid JSON")


def test_a_config_of_another_model_type(good_folder):
    edit_config(good_folder, model_type="llama")
    refused(good_folder, "model_type 'llama' is not one of mamba, falcon_mamba")


def test_a_config_without_a_required_field(good_folder):
    edit_config(good_folder, hidden_size=None)
    refused(good_folder, "missing hidden_size")


def test_a_config_with_a_nonsense_value(good_folder):
    edit_config(good_folder, num_hidden_layers="two")
    refused(good_folder, "num_hidden_layers must be a positive integer")


def test_a_folder_without_weights(good_folder):
    (good_folder / "model.safetensors").unlink()
    refused(good_folder, "no weights")


def test_a_truncated_safetensors_file(good_folder):
    path = good_folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    refused(good_folder, "unreadable safetensors file")


def test_a_missing_tensor_is_named(good_folder):
    edit_tensors(good_folder, lambda t: t.pop("backbone.layers.1.mixer.A_log"))
    refused(good_folder, "missing tensor backbone.layers.1.mixer.A_log")


def test_a_config_with_more_layers_than_the_weights_names_the_key(good_folder):
    edit_config(good_folder, num_hidden_layers=3)
    refused(good_folder, "config.json gives num_hidden_layers 3, but the weights say 2")


def test_an_unexpected_tensor_is_named(good_folder):
    edit_tensors(good_folder, lambda t: t.update({"backbone.layers.0.mixer.extra": torch.zeros(3)}))
    refused(good_folder, "unexpected tensor backbone.layers.0.mixer.extra")


def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes(good_folder):
    edit_tensors(good_folder, lambda t: t.update({"backbone.layers.0.mixer.D": torch.ones(63)}))
    refused(good_folder, r"backbone.layers.0.mixer.D has shape \(63,\), the config implies \(64,\)")


def test_a_config_whose_width_disagrees_with_the_weights_names_the_key(good_folder):
    edit_config(good_folder, state_size=4)
    refused(good_folder, r"config.json gives state_size 4, but the weights say 8 \(backbone.layers.0.mixer.A_log is \(64, 8\)\)")


def test_a_tied_checkpoint_whose_head_differs_from_the_embedding(good_folder):
    edit_tensors(good_folder, lambda t: t.update({"lm_head.weight": torch.zeros_like(t["backbone.embeddings.weight"])}))
    refused(good_folder, "lm_head.weight differs from the embedding")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_that_is_not_just_tensors_is_never_unpickled(good_folder, tmp_path):
    (good_folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (good_folder / "pytorch_model.bin").write_bytes(pickle.dumps({"backbone.embeddings.weight": Exploit()}))
    refused(good_folder, "pytorch_model.bin: refused or unreadable")
    assert not marker.exists()


def test_a_shard_index_naming_a_missing_shard(tmp_path):
    folder = saved(hf_model("mamba"), tmp_path / "sharded", max_shard_size="20KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    next(folder / name for name in set(index["weight_map"].values())).unlink()
    refused(folder, "shard .* is missing")


# glibc serves a block of up to 32 MB from its heap once a block that size has been freed, and
# keeps freed heap blocks: the 9 MB matrices of the models below then stay in RssAnon after they
# are freed, 70 to 200 MB in three runs of the same test. A real model's matrices (a 7B's are
# hundreds of MB) are always mapped and go back to the system when freed; a fixed threshold makes
# these small ones behave the same, so the tests measure what the loader holds, not the heap.
EVERY_LARGE_BLOCK_MAPPED = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}

_LOAD_AND_SAMPLE = """\
import sys, threading, time
from infitool_edit.model import load_checkpoint
quantize = sys.argv[3] or None
def anon():
    for line in open('/proc/self/status'):
        if line.startswith('RssAnon:'): return int(line.split()[1]) * 1024
load_checkpoint(sys.argv[2], quantize=quantize)  # every import a load makes, before the sampling
start, peak, done = anon(), [0], threading.Event()
def sample():
    while not done.is_set(): peak[0] = max(peak[0], anon()); time.sleep(0.001)
sampler = threading.Thread(target=sample); sampler.start()
model = load_checkpoint(sys.argv[1], quantize=quantize)
done.set(); sampler.join()
print(max(peak[0], anon()) - start, model.layers[0].mixer.in_proj.__class__.__name__,
      getattr(model.layers[0].mixer.in_proj, "weight", None) is not None
      and str(model.layers[0].mixer.in_proj.weight.dtype))
"""


def memory_of_a_load(folder: Path, quantize: str | None = None) -> tuple[int, str, str]:
    """(bytes RssAnon grew by at its peak while `load_checkpoint(folder, quantize=)` ran, in a
    child process; the class of layer 0's in_proj; its weight's dtype, or False)."""
    import subprocess
    import sys

    tiny = folder.parent / "tiny"
    if not tiny.exists():
        save_checkpoint(MambaLM(MambaConfig(vocab_size=64, hidden_size=32, state_size=4, num_hidden_layers=1)), tiny)
    out = subprocess.run([sys.executable, "-c", _LOAD_AND_SAMPLE, str(folder), str(tiny), quantize or ""],
                         capture_output=True, text=True, check=True, env=EVERY_LARGE_BLOCK_MAPPED)
    grown, layer, dtype = out.stdout.split()
    return int(grown), layer, dtype


def big_model(dtype: torch.dtype = torch.float32) -> MambaLM:
    """~47M parameters (178 MB in fp32), in matrices of up to 9 MB."""
    torch.manual_seed(0)
    return MambaLM(MambaConfig(vocab_size=2048, hidden_size=768, state_size=16, num_hidden_layers=12)).to(dtype)


def test_a_bf16_checkpoint_is_read_into_fp32_without_a_second_copy_of_the_model(tmp_path):
    """The file is mapped, not copied, and each tensor is converted as it is copied into the model,
    so a load's own memory (RssAnon, sampled while it runs; the file's pages are page cache) grows
    by about the fp32 model (measured: 177 MB for a 178 MB model). Converted copies of every
    tensor had held the fp32 model twice (356 MB), beside a copy of the file."""
    model = big_model(torch.bfloat16)
    save_checkpoint(model, tmp_path / "big")
    fp32_bytes = sum(p.numel() for p in model.parameters()) * 4
    grown, _, dtype = memory_of_a_load(tmp_path / "big")
    assert dtype == "torch.float32"
    assert grown < 1.4 * fp32_bytes, (grown >> 20, fp32_bytes >> 20)
    loaded = load_checkpoint(tmp_path / "big")
    torch.testing.assert_close(loaded.layers[0].mixer.in_proj.weight, model.layers[0].mixer.in_proj.weight.float())


@pytest.mark.parametrize("quantize", ["int8", "q4"])
@pytest.mark.parametrize("tie", [True, False])
def test_quantizing_as_the_layers_are_read_gives_the_model_quantizing_after_gives(tmp_path, quantize, tie):
    from infitool_edit.model.quantize import QUANTIZERS

    torch.manual_seed(0)
    config = MambaConfig(vocab_size=96, hidden_size=64, state_size=16, num_hidden_layers=2, tie_word_embeddings=tie)
    save_checkpoint(MambaLM(config), tmp_path)
    ids = torch.randint(0, 96, (1, 12), generator=torch.Generator().manual_seed(1))
    read_quantized = load_checkpoint(tmp_path, quantize=quantize)
    quantized_after = QUANTIZERS[quantize](load_checkpoint(tmp_path))
    assert type(read_quantized.layers[0].mixer.in_proj) is type(quantized_after.layers[0].mixer.in_proj)
    assert (read_quantized.lm_head.weight_int8 is read_quantized.embeddings.weight_int8) == tie
    with torch.no_grad():
        assert torch.equal(read_quantized(ids)[0], quantized_after(ids)[0])


def test_a_checkpoint_read_in_4_bits_never_holds_its_fp32_layers_whole(tmp_path):
    """Each layer is quantized as it is read: a load's own memory (RssAnon, sampled while it runs)
    stays well under the fp32 model's (measured: 51 MB for a 178 MB model), where quantizing after
    the load needed all of it."""
    model = big_model()
    save_checkpoint(model, tmp_path / "big")
    fp32_bytes = sum(p.numel() for p in model.parameters()) * 4
    grown, layer, _ = memory_of_a_load(tmp_path / "big", quantize="q4")
    assert layer == "Q4Linear"
    assert grown < 0.5 * fp32_bytes, (grown >> 20, fp32_bytes >> 20)
