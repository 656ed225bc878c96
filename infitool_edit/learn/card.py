"""The model card (model/weights/README.md), written from what training recorded.

    python -m infitool_edit.learn.card CHECKPOINT [EVAL_OUTPUT] > model/weights/README.md

CHECKPOINT is a training checkpoint folder (``OUT/latest``: its ``training.json`` holds the
config, the data manifest, bytes read, time, hardware and held-out losses); EVAL_OUTPUT, if
given, is a file holding what ``infitool-edit eval`` printed, pasted in as the evaluation.
Every figure in the card comes from those files: none is typed in by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _size_mb(folder: Path) -> str:
    weights = folder / "model.safetensors"
    return f"{weights.stat().st_size / 1e6:.1f} MB" if weights.is_file() else "—"


def _architecture(config: dict, folder_config: dict) -> tuple[str, str]:
    """The card's architecture line and the HuggingFace class whose names the weights use."""
    shape = (f"width {config.get('hidden_size', '—')}, state {config.get('state_size', '—')} per head of "
             f"{config.get('head_dim', '—')} channels")
    after = config.get("attention_after") or []
    if not after:
        return f"Mamba-2, {config.get('layers', '—')} layers, {shape}", "Mamba2ForCausalLM"
    mamba = f"{config.get('layers', '—')} Mamba-2 layers, {shape}"
    window = folder_config.get("attention_window", "8,192")
    layers = ", ".join(str(layer + 1) for layer in after)
    return (f"a Granite-4.0-H-style hybrid: {mamba}; an attention layer ({config.get('attention_heads')} heads, "
            f"no positions, keys and values of the last {window} bytes) after Mamba-2 layer {layers}; "
            f"a SwiGLU of {config.get('mlp_size')} after every layer", "GraniteMoeHybridForCausalLM")


def render(checkpoint: Path | None, evaluation: str | None = None) -> str:
    record = json.loads((checkpoint / "training.json").read_text()) if checkpoint else {}
    folder_config = json.loads((checkpoint / "config.json").read_text()) if checkpoint else {}
    config = record.get("config", {})
    architecture, names = _architecture(config, folder_config)
    kind = "hybrid of Mamba-2 and attention" if config.get("attention_after") else "Mamba-2"
    manifest = record.get("manifest", {})
    seen = record.get("bytes_seen", {})
    hours = record.get("training_seconds", 0) / 3600
    merged = record.get("merge")
    lines = [
        "# The built-in model",
        "",
        f"A byte-level {kind} trained by `infitool-edit train` on this project's own data: first plain",
        "language modelling on clean permissive prose, then the editor's command streams (traces of real",
        "revision histories and synthetic tasks), learning only the bytes of its own commands. It is the",
        "model `infitool-edit` runs when no `--model` is given; the byte-level grammar mask holds its lines",
        "to the command language, line numbers to the draft and search strings to text that occurs in it.",
        "",
        "This card is generated: `python -m infitool_edit.learn.card CHECKPOINT [EVAL_OUTPUT]`.",
        "",
        *(
            []
            if checkpoint
            else [
                "**No trained weights are installed yet.** Until `config.json` and `model.safetensors` are in",
                "this folder the default is the untrained random model (`agent/ssm.py: random_tiny_model`).",
                "This skeleton is regenerated from the training run's checkpoint when a model is committed.",
                "",
            ]
        ),
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {architecture} |",
        f"| parameters | {record['parameters']:,} |" if "parameters" in record else "| parameters | — |",
        f"| weights | {_size_mb(checkpoint) if checkpoint else '—'} (fp32 safetensors, HuggingFace `{names}` names) |",
        "| tokenizer | bytes (256) + pad, bos, eos |",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| config | `{config.get('name', '—')}` (infitool_edit/learn/train.py) |",
        f"| phase 1, prose | {seen.get('prose', 0) / 1e6:.2f} MB read, loss on every byte |",
        f"| phase 2, streams | {seen.get('streams', 0) / 1e6:.2f} MB read, loss on the model's command bytes; "
        f"{config.get('prose_mix', '—')} of its batches prose |",
        f"| steps | {record.get('steps', '—')} |",
        *([f"| merged | {merged['share']:g} of these weights with {1 - merged['share']:g} of step {merged.get('base_steps')}'s, "
           f"the weights this fine-tuning started from (`infitool-edit merge`, WiSE-FT) |"] if merged else []),
        f"| training time | {hours:.2f} h |",
        f"| hardware | {record.get('hardware', '—')} |",
        "",
        "Held-out losses during training (bits per learnt byte; files held out by `learn/split.py`):",
        "",
        "| step | phase | MB read | prose bpb | streams bpb | copied names bpb |",
        "|---|---|---|---|---|---|",
    ]
    for figures in record.get("evaluations", [])[-8:]:
        lines.append(
            f"| {figures.get('step')} | {figures.get('phase')} | {figures.get('bytes', 0) / 1e6:.2f} | "
            f"{figures.get('heldout_prose_bpb', '—')} | {figures.get('heldout_streams_bpb', '—')} | "
            f"{figures.get('heldout_copy_bpb', '—')} |"
        )
    lines += ["", "## Data and licences", "", "| source | licence | documents | MB |", "|---|---|---|---|"]
    sources = manifest.get("sources", {})
    if isinstance(sources, list):  # prepare's manifest: a list of {"source", "licence", ...}
        sources = {entry.get("source", "?"): entry for entry in sources}
    for name, source in sorted(sources.items()):
        documents = source.get("documents", "—")
        size = source.get("bytes")
        lines.append(f"| {name} | {source.get('licence', '—')} | {documents} | {size / 1e6:.2f} |" if size else
                     f"| {name} | {source.get('licence', '—')} | {documents} | — |")
    for key, value in sorted(manifest.get("counts", {}).items()):
        lines.append(f"- {key}: {value}")
    lines += [
        "",
        "## Evaluation",
        "",
        "`infitool-edit eval` on held-out data, with the copy and dictionary baselines in the same run:",
        "",
        "```",
        evaluation.strip() if evaluation else "(not yet run for this checkpoint)",
        "```",
        "",
        "## What it can and cannot do",
        "",
        "Stated from the evaluation above: see its tables for each suite. A model of this size reads a",
        "small window well and a long page poorly; it is trained to read a paragraph, act, and move on.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m infitool_edit.learn.card CHECKPOINT [EVAL_OUTPUT]")
    evaluation_text = Path(sys.argv[2]).read_text() if len(sys.argv) == 3 else None
    print(render(Path(sys.argv[1]), evaluation_text))
