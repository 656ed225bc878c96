"""Prompted mode's prefill before and after issue 10's second session, as ratios in one run.

"Before" is commit 89c387a: its system prompt (exec'd from `git show`) and its chunked RWKV-7
recurrence (the (c, c, K) masked-decay form); "after" is the working tree. Each is timed through
`RWKV7LM.forward` on random weights of fla-hub RWKV-7 shapes (bench/model_hybrid.py), one thread,
rendered with the RWKV-7 G1 template and counted with the RWKV World tokenizer (the rwkv package).

    nice -n 15 .venv/bin/python tools/prefill_before_after.py [0.4b|1.5b] [opening|turn]

`opening`: the system message and worked turns; `turn`: one user turn (goal, view, a 3-line text).
Prints one JSON object: tokens and seconds before/after, and before ÷ after.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from infitool_edit.agent.chat_template import ChatTemplate
from infitool_edit.agent.prompted import ChatTurns
from infitool_edit.bench.model_hybrid import RWKV7_SHAPES
from infitool_edit.bench.prompted import TEMPLATE, opening_ids
from infitool_edit.model import rwkv7

BEFORE = "89c387a"
ROOT = Path(__file__).resolve().parents[1]
TURN = ("@goal Tighten the introduction.\n@view draft.md, 3 lines, cursor 1:1\n@text 1-3 of 3\n1│# The keeper\n2│\n"
        "3│The lamp was lit at dusk, and the keeper wrote it down in the log book every night.")


def old_module(path: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{BEFORE}:{path}"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    module = types.ModuleType(f"before_{Path(path).stem}")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source.replace("from .mamba import", "from infitool_edit.model.mamba import")
                 .replace("from .state import", "from infitool_edit.model.state import"), path, "exec"),
         module.__dict__)
    return module


def texts(which: str) -> tuple[str, str]:
    template = ChatTemplate(TEMPLATE.read_text(encoding="utf-8"))
    if which == "turn":
        piece = ChatTurns(template).user(TURN, after="assistant")
        return piece, piece
    before = old_module("infitool_edit/agent/prompted.py")
    return template.render(before.opening_messages()), ChatTurns(template).opening


def random_model(size: str) -> rwkv7.RWKV7LM:
    with torch.device("meta"):
        model = rwkv7.RWKV7LM(RWKV7_SHAPES[size])
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02, generator=generator)
    return model.eval()


@torch.no_grad()
def main() -> None:
    size = sys.argv[1] if len(sys.argv) > 1 else "0.4b"
    which = sys.argv[2] if len(sys.argv) > 2 else "opening"
    torch.set_num_threads(1)
    old_text, new_text = texts(which)
    old_ids, new_ids = opening_ids(old_text)[0], opening_ids(new_text)[0]
    model = random_model(size)
    new_chunk, old_chunk = rwkv7._wkv_one_chunk, old_module("model/rwkv7.py")._wkv_one_chunk

    def prefill(ids: list[int], chunk) -> float:
        rwkv7._wkv_one_chunk = chunk
        try:
            started = time.perf_counter()
            model(torch.tensor([ids]), model.new_state(), last_only=True)
            return time.perf_counter() - started
        finally:
            rwkv7._wkv_one_chunk = new_chunk

    prefill(new_ids[:16], new_chunk)  # warm up
    after = prefill(new_ids, new_chunk)
    before = prefill(old_ids, old_chunk)
    after_again = prefill(new_ids, new_chunk)  # the machine is shared: bracket the slow run
    figures = {"shape": size, "what": which, "tokens_before": len(old_ids), "tokens_after": len(new_ids),
               "prefill_s_before": round(before, 2), "prefill_s_after": round(min(after, after_again), 2),
               "before_over_after": round(before / min(after, after_again), 2)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
