"""Choosing tokens: temperature, top-p, seeded generators, a per-step logits hook, streaming."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .mamba import MambaLM
from .state import State

# (step_index, logits (vocab,)) -> logits. The agent adds its grammar mask here (-inf on banned tokens).
LogitsHook = Callable[[int, torch.Tensor], torch.Tensor]


GENERATION_CONFIG = "generation_config.json"


@dataclass(frozen=True)
class Decoding:
    """How a checkpoint wants its tokens chosen, read from the folder's ``generation_config.json``
    as transformers' ``GenerationConfig`` writes it: ``do_sample: false`` is greedy (temperature
    0), else ``temperature`` and ``top_p``. A folder without the file samples plainly (1.0, 1.0),
    which is what the runtime did before checkpoints could say otherwise. ``copy_prior`` (ours,
    0 to 1, default 0) is the strength of the editor's copy prior for byte-level models
    (infitool_edit/agent/copy_prior.py): the built-in model's folder sets it. ``min_address_p``
    (ours, 0 to 1, default 0: off): an edit whose place in the draft the model chose a byte of
    with a lower probability is held back, not applied (infitool_edit/agent/held_back.py).
    ``min_plan_p`` (ours, 0 to 1, default 0: off): when the model chooses its first command since
    the goal with a lower probability, it stops and leaves the goal to the writer (the same
    module)."""

    temperature: float = 1.0
    top_p: float = 1.0
    copy_prior: float = 0.0
    min_address_p: float = 0.0
    min_plan_p: float = 0.0

    @classmethod
    def from_folder(cls, folder: str | Path) -> Decoding:
        from .checkpoint import CheckpointError

        path = Path(folder) / GENERATION_CONFIG
        if not path.is_file():
            return cls()
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(settings, dict):
                raise ValueError("not a JSON object")
            copy_prior = float(settings.get("copy_prior", 0.0))
            min_address_p = float(settings.get("min_address_p", 0.0))
            min_plan_p = float(settings.get("min_plan_p", 0.0))
            if settings.get("do_sample") is False:
                temperature, top_p = 0.0, 1.0
            else:
                temperature, top_p = float(settings.get("temperature", 1.0)), float(settings.get("top_p", 1.0))
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
            raise CheckpointError(f"{path}: not a generation config ({error})") from None
        if not (temperature >= 0 and 0 < top_p <= 1):  # also refuses NaN
            raise CheckpointError(f"{path}: need temperature >= 0 and 0 < top_p <= 1, got {temperature} and {top_p}")
        for key, value in (("copy_prior", copy_prior), ("min_address_p", min_address_p), ("min_plan_p", min_plan_p)):
            if not 0 <= value <= 1:
                raise CheckpointError(f"{path}: need 0 <= {key} <= 1, got {value}")
        return cls(temperature=temperature, top_p=top_p, copy_prior=copy_prior, min_address_p=min_address_p,
                   min_plan_p=min_plan_p)


def sample_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> int:
    """One token id from logits (vocab,). temperature 0 is greedy; top_p keeps the smallest
    set of most likely tokens whose probability reaches top_p."""
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature} and {top_p}")
    logits = logits.float()
    if not torch.isfinite(logits).any():
        raise ValueError("every token is masked out")
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep a token if the tokens before it have not reached top_p yet (the first is always kept).
        keep = (torch.cumsum(sorted_probs, dim=-1) - sorted_probs) < top_p
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs * keep)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def sample(
    model: MambaLM,
    prompt: Iterable[int],
    *,
    state: State | None = None,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    logits_hook: LogitsHook | None = None,
    stop_ids: Iterable[int] = (),
) -> Iterator[int]:
    """Read `prompt` after `state`, then yield each new token as soon as it is decided.

    When a token is yielded the model has already read it: `state` (advanced in
    place; pass one to keep it) is ready for whatever the caller feeds next.
    Stops after `max_new_tokens` or after yielding a token in `stop_ids`.
    """
    stop_ids = frozenset(stop_ids)
    device = model.embeddings.weight.device
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    state = model.new_state() if state is None else state
    logits, _ = model(ids, state, last_only=True)
    for index in range(max_new_tokens):
        step_logits = logits[0]
        if logits_hook is not None:
            step_logits = logits_hook(index, step_logits)
        token = sample_token(step_logits, temperature=temperature, top_p=top_p, generator=generator)
        logits = model.step(torch.tensor([token], device=device), state)
        yield token
        if token in stop_ids:
            return
