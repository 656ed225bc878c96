"""The editor opens on an instruct checkpoint (a chat template) and its model writes in prompted mode."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("llguidance")
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

from infitool_edit.agent.prompted import PromptedBackend, system_prompt  # noqa: E402
from infitool_edit.commands import parse  # noqa: E402
from infitool_edit.model import MambaConfig, MambaLM, save_checkpoint  # noqa: E402
from infitool_edit.ui.app import make_app  # noqa: E402

pytestmark = pytest.mark.anyio
TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates" / "granite-4.0-h.jinja"


def instruct_checkpoint(folder: Path) -> Path:
    """A tiny random Mamba with a tiny BPE tokenizer and Granite-4.0's real chat template."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|start_of_role|>", "<|end_of_role|>", "<|end_of_text|>"]
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([system_prompt()] * 4, trainer)
    folder.mkdir()
    torch.manual_seed(1)
    save_checkpoint(MambaLM(MambaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32, state_size=4,
                                        num_hidden_layers=2)).eval(), folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    settings = {"chat_template": TEMPLATE.read_text(encoding="utf-8"), "eos_token": "<|end_of_text|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


async def test_the_editor_runs_an_instruct_checkpoint_in_prompted_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("INFITOOL_EDIT_PROMPT_STATES", str(tmp_path / "states"))
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nTeh method.\n", encoding="utf-8")
    app = make_app(draft, model=instruct_checkpoint(tmp_path / "tiny-chat"), goal="fix the typo")
    async with app.run_test(size=(100, 30)) as pilot:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not any(line.startswith("@") and i > 0 and app.stream.lines[i - 1].startswith("> ")
                      for i, line in enumerate(app.stream.lines)):
            assert loop.time() < deadline, "the model wrote no command"
            await pilot.pause(0.05)
        assert isinstance(app.model_pen.backend, PromptedBackend)
        written = [line[2:] for line in app.stream.lines if line.startswith("> ")]
        parse(written[0])  # one command, held by the mask
        await pilot.press("ctrl+q")
