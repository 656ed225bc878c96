"""The GGUF conversion behind `bench model --llamacpp`, read back with gguf's own reader.
(llama.cpp itself is not built here: see docs/kernels.md.)"""

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
