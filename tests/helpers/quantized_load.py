"""A folder quantized as it is read (load_checkpoint(folder, quantize=)) against the same folder
loaded and then quantized: the same logits, bit for bit."""

from __future__ import annotations

from pathlib import Path

import torch

from infitool_edit.model import load_checkpoint
from infitool_edit.model.quantize import QUANTIZERS


def assert_read_quantized_equals_quantized_after(folder: Path, quantize: str, vocab: int) -> None:
    read_quantized = load_checkpoint(folder, quantize=quantize)
    quantized_after = QUANTIZERS[quantize](load_checkpoint(folder))
    assert type(read_quantized.lm_head) is type(quantized_after.lm_head)
    ids = torch.randint(0, vocab, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(read_quantized(ids, read_quantized.new_state())[0],
                           quantized_after(ids, quantized_after.new_state())[0])
