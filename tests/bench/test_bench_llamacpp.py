"""The GGUF conversion behind `bench model --llamacpp`, read back with gguf's own reader, and,
where llama.cpp's source is on the machine, against its convert_hf_to_gguf.py (docs/kernels.md)."""

import numpy as np
import pytest
import torch

from infitool_edit.model import Mamba2Config, Mamba2LM, MambaConfig, MambaLM

gguf = pytest.importorskip("gguf")
from infitool_edit.bench._llamacpp import write_gguf  # noqa: E402


def test_a_mamba_checkpoint_converts_to_gguf_as_llama_cpp_names_it(tmp_path):
    torch.manual_seed(0)
    model = MambaLM(MambaConfig(vocab_size=300, hidden_size=32, state_size=16, num_hidden_layers=2)).eval()
    reader = gguf.GGUFReader(write_gguf(model, tmp_path / "m.gguf"))
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors  # tied: llama.cpp reads the embedding
    assert set(tensors) >= {"token_embd.weight", "blk.1.ssm_in.weight", "blk.0.ssm_a", "blk.0.ssm_conv1d.weight",
                            "blk.0.ssm_dt.bias", "output_norm.weight"}
    A = np.asarray(tensors["blk.0.ssm_a"].data)
    torch.testing.assert_close(torch.from_numpy(A.copy()), -torch.exp(model.layers[0].mixer.A_log.detach()))
    assert tuple(tensors["blk.0.ssm_conv1d.weight"].shape) == (4, 64)  # GGUF lists dims innermost first
    assert reader.fields["mamba.ssm.time_step_rank"].parts[-1][0] == model.config.time_step_rank
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 300


def test_a_mamba2_checkpoint_converts_too(tmp_path):
    torch.manual_seed(0)
    config = Mamba2Config(vocab_size=300, hidden_size=32, state_size=16, num_hidden_layers=1, num_heads=4,
                          head_dim=16, n_groups=2, tie_word_embeddings=True)
    reader = gguf.GGUFReader(write_gguf(Mamba2LM(config).eval(), tmp_path / "m2.gguf"))
    tensors = {t.name: t for t in reader.tensors}
    assert tuple(tensors["blk.0.ssm_norm.weight"].shape) == (32, 2)
    assert tuple(tensors["blk.0.ssm_a"].shape) == (1, 4) and "blk.0.ssm_dt.bias" in tensors


# --- against llama.cpp's own converter, when its source is on this machine --------------------------

def _converter(llama_cpp):
    """INFITOOL_LLAMA_CONVERT's script, else the one in the source tree `llama_cpp` (the conftest
    fixture: INFITOOL_LLAMA_SERVER's build, or tools/build_llamacpp.sh's) was built from."""
    from infitool_edit.bench._llamacpp import find_converter

    converter = find_converter(llama_cpp.server, llama_cpp.bench)
    if converter is None:
        pytest.skip("no llama.cpp convert_hf_to_gguf.py beside the llama.cpp build: set INFITOOL_LLAMA_CONVERT "
                    "(docs/kernels.md)")
    return converter


@pytest.mark.parametrize("mamba2", [False, True], ids=["mamba", "mamba2"])
def test_our_gguf_has_the_tensors_and_hyperparameters_llama_cpps_converter_writes(tmp_path, mamba2, llama_cpp):
    """write_gguf (what `bench model --llamacpp` times) against convert_hf_to_gguf.py on the same
    checkpoint: every tensor equal in name, shape and value, every hyperparameter equal. Only the
    vocabulary differs (the converter writes its built-in GPT-NeoX one), so the vocabulary is
    GPT-NeoX-sized. ~20 s of CPU for the converter's imports; runs where llama.cpp can be had."""
    from infitool_edit.bench._llamacpp import convert_with_llama_cpp
    from infitool_edit.model.checkpoint import save_checkpoint

    converter = _converter(llama_cpp)
    torch.manual_seed(0)
    if mamba2:
        config = Mamba2Config(vocab_size=50288, hidden_size=64, state_size=16, num_hidden_layers=2, num_heads=4,
                              head_dim=32, n_groups=2, tie_word_embeddings=True)
        model = Mamba2LM(config).eval()
    else:
        model = MambaLM(MambaConfig(vocab_size=50280, hidden_size=64, state_size=8, num_hidden_layers=2)).eval()
    theirs = gguf.GGUFReader(convert_with_llama_cpp(converter, save_checkpoint(model, tmp_path / "hf"),
                                                    tmp_path / "theirs.gguf"))
    ours = gguf.GGUFReader(write_gguf(model, tmp_path / "ours.gguf"))
    their_tensors = {t.name: t for t in theirs.tensors}
    our_tensors = {t.name: t for t in ours.tensors}
    assert set(our_tensors) == set(their_tensors)
    for name, tensor in their_tensors.items():
        assert tuple(our_tensors[name].shape) == tuple(tensor.shape), name
        assert our_tensors[name].tensor_type == tensor.tensor_type, name
        np.testing.assert_array_equal(np.asarray(our_tensors[name].data), np.asarray(tensor.data), err_msg=name)
    skipped = ("general.", "tokenizer.")
    their_fields = {k: f for k, f in theirs.fields.items() if not k.startswith(skipped)}
    our_fields = {k: f for k, f in ours.fields.items() if not k.startswith(skipped)}
    assert set(our_fields) == set(their_fields)
    for key, field in their_fields.items():
        if key.startswith("GGUF."):
            continue
        assert our_fields[key].contents() == field.contents(), key
    assert len(ours.fields["tokenizer.ggml.tokens"].data) == len(theirs.fields["tokenizer.ggml.tokens"].data)
