"""`infitool-edit bench prompted`: what prompted mode's opening costs an RWKV-7 on the CPU.

The opening (the system message generated from the grammar, and the worked turns) rendered with
fla-hub RWKV-7 G1's chat template (tests/fixtures/chat_templates/rwkv7-g1.jinja, if the source
tree is there; else a plain "System: … User: … Assistant: …" rendering of the same messages) and
counted with the RWKV World tokenizer the rwkv package ships (else bytes / 4, said so). Then that
many tokens are prefilled through `RWKV7LM.forward` at fla-hub/rwkv7-1.5B-g1's shape (random
weights; 0.4B's unless INFITOOL_BENCH_LARGE=1), on one thread, and the cached opening state is
timed being read back.

  opening_tokens            tokens of the opening (system message + worked turns)
  opening_prefill_s_{size}  seconds to prefill them, one thread, fp32
  opening_state_load_ms_{size}  reading the cached opening state back (State.from_bytes)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from infitool_edit.agent.chat_template import ChatTemplate
from infitool_edit.agent.prompted import opening_messages
from infitool_edit.bench.model_hybrid import LARGE_ENV, RWKV7_SHAPES
from infitool_edit.model.rwkv7 import RWKV7LM

TEMPLATE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "chat_templates" / "rwkv7-g1.jinja"


def opening_text() -> str:
    if TEMPLATE.is_file():
        return ChatTemplate(TEMPLATE.read_text(encoding="utf-8")).render(opening_messages())
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    return "".join(f"{names[m['role']]}: {m['content']}\n\n" for m in opening_messages())


def opening_ids(text: str) -> tuple[list[int], str]:
    try:
        import rwkv

        from infitool_edit.model.tokenizer import RWKVWorldTokenizer

        tokenizer = RWKVWorldTokenizer(Path(rwkv.__file__).parent)
        return tokenizer.encode(text), "RWKV World tokenizer"
    except (ImportError, OSError, ValueError):
        data = text.encode("utf-8")
        return [b % 256 for b in data[: max(1, len(data) // 4)]], "estimated: UTF-8 bytes / 4"


@torch.no_grad()
def main() -> dict:
    torch.set_num_threads(1)
    text = opening_text()
    ids, counted = opening_ids(text)
    figures: dict[str, float] = {"opening_tokens": len(ids)}
    print(f"opening: {len(text)} characters, {len(ids)} tokens ({counted})")
    size = "1.5b" if os.environ.get(LARGE_ENV) else "0.4b"
    config = RWKV7_SHAPES[size]
    with torch.device("meta"):
        model = RWKV7LM(config)
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    for parameter in model.parameters():  # small random weights (to_empty leaves garbage, even NaN)
        parameter.normal_(0.0, 0.02, generator=generator)
    model.eval()
    tokens = torch.tensor([ids])
    model(tokens[:, :16], model.new_state())  # warm up
    started = time.perf_counter()
    state = model.new_state()
    model(tokens, state, last_only=True)
    figures[f"opening_prefill_s_{size}"] = round(time.perf_counter() - started, 3)
    print(f"prefill of {len(ids)} tokens at RWKV-7 {size}'s shape, one thread, fp32: "
          f"{figures[f'opening_prefill_s_{size}']} s")
    blob = state.to_bytes()
    started = time.perf_counter()
    type(state).from_bytes(blob)
    figures[f"opening_state_load_ms_{size}"] = round(1000 * (time.perf_counter() - started), 2)
    print(f"cached opening state ({len(blob) / 2**20:.1f} MiB) read back in {figures[f'opening_state_load_ms_{size}']} ms")
    return figures
