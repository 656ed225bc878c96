"""on_huge_pages: a model's weights moved into one mapping on 2 MB pages, and nothing else changed."""

import mmap
from pathlib import Path

import pytest
import torch

from infitool_edit.model import MambaConfig, MambaLM
from infitool_edit.model.memory import HUGE_PAGE, on_huge_pages
from infitool_edit.model.quantize import quantize_int8

pytestmark = pytest.mark.skipif(not hasattr(mmap, "MADV_HUGEPAGE"), reason="no MADV_HUGEPAGE on this system")


def model_of(hidden: int) -> MambaLM:
    torch.manual_seed(0)
    config = MambaConfig(vocab_size=259, hidden_size=hidden, state_size=16, num_hidden_layers=2)
    return MambaLM(config).eval()


def huge_pages_offered() -> bool:
    """Transparent huge pages in `always` or `madvise` mode (the kernel may still decline)."""
    try:
        return "[never]" not in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


def anon_huge_kb(address: int) -> int:
    """AnonHugePages of the mapping that holds `address` (/proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            low, high = (int(part, 16) for part in head.split("-"))
            inside = low <= address < high
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    return 0


@torch.no_grad()
def test_the_weights_move_into_one_aligned_mapping_and_the_model_computes_the_same_bits():
    model = model_of(256)  # ~4 MB of weights: room for a 2 MB page
    ids = torch.randint(0, 259, (1, 40), generator=torch.Generator().manual_seed(1))
    before_logits, before_state = model(ids)
    token = torch.tensor([7])
    before_step = model.step(token, before_state)
    old = {name: p.data_ptr() for name, p in model.named_parameters()}

    assert on_huge_pages(model) is model
    logits, state = model(ids)
    assert torch.equal(logits, before_logits)
    assert torch.equal(model.step(token, state), before_step)
    moved = {name: p.data_ptr() for name, p in model.named_parameters()}
    assert all(moved[name] != old[name] for name in moved)
    assert model.lm_head.weight is model.embeddings.weight  # still tied: one storage
    low = min(moved.values())
    assert low % HUGE_PAGE == 0 and all(ptr % 64 == 0 for ptr in moved.values())
    total = sum(p.untyped_storage().nbytes() for p in model.parameters())
    assert max(moved.values()) - low < total + 64 * len(moved)  # one arena, packed
    if huge_pages_offered():
        assert anon_huge_kb(low) >= 2048


@torch.no_grad()
def test_a_tied_int8_head_keeps_sharing_its_rows_with_the_embedding():
    quantized = quantize_int8(model_of(256))
    state = quantized.new_state()
    before = quantized.step(torch.tensor([5]), state)
    on_huge_pages(quantized)
    assert quantized.lm_head.weight_int8 is quantized.embeddings.weight_int8
    assert quantized.lm_head.weight_int8.data_ptr() == quantized.embeddings.weight_int8.data_ptr()
    assert torch.equal(quantized.step(torch.tensor([5]), quantized.new_state()), before)


def test_a_model_smaller_than_a_huge_page_is_left_where_it_is_and_moved_weights_still_train():
    tiny = model_of(32)
    where = [p.data_ptr() for p in tiny.parameters()]
    on_huge_pages(tiny)
    assert [p.data_ptr() for p in tiny.parameters()] == where

    model = on_huge_pages(model_of(256).train())
    ids = torch.randint(0, 259, (2, 16), generator=torch.Generator().manual_seed(2))
    weight = model.layers[0].mixer.in_proj.weight
    start = weight.detach().clone()
    loss = model(ids)[0].logsumexp(-1).mean()
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert weight.grad is not None and not torch.equal(weight.detach(), start)
