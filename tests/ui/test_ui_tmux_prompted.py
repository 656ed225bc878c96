"""End to end in a real terminal (tmux): `infitool-edit draft.md --model DIR` on a tiny random
checkpoint folder that carries a real chat template runs in prompted mode.

The folder: a byte-level Mamba (random weights, 2 layers of 32) and a tokenizer_config.json with
Granite-4.0's template (tests/fixtures/chat_templates). The editor must name the backend as
prompted once the model is loaded, and the model's commands must reach the draft: a version
authored by the model in the history, and every model line in the stream one command.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import torch

from infitool_edit.commands import parse
from infitool_edit.history.location import locate
from infitool_edit.model import MambaConfig, MambaLM, save_checkpoint
from infitool_edit.model.tokenizer import ByteTokenizer

REPOSITORY = Path(__file__).resolve().parents[2]
TEMPLATE = REPOSITORY / "tests" / "fixtures" / "chat_templates" / "granite-4.0-h.jinja"
# The checkout's editor, whatever is installed (as tests/ui/test_ui_tmux.py launches it).
BOOT = """
import sys
repository = sys.argv.pop(1)
sys.path.insert(0, repository)
import infitool_edit
infitool_edit.__path__.append(repository)
import infitool_edit.cli
sys.argv[0] = "infitool-edit"
infitool_edit.cli.main()
"""

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def chat_checkpoint(folder: Path) -> Path:
    folder.mkdir()
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)  # with the session's seed 0, this model's third command is an insert
    try:
        model = MambaLM(MambaConfig(vocab_size=ByteTokenizer().vocab_size, hidden_size=32, state_size=4,
                                    num_hidden_layers=2)).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    save_checkpoint(model, folder)
    settings = {"chat_template": TEMPLATE.read_text(encoding="utf-8"), "eos_token": "<|end_of_text|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


def model_versions(draft: Path) -> list[str]:
    """The subjects of the history's versions the model authored (read while the editor holds the
    draft's lock: locate() finds the repository without taking it)."""
    location = locate(draft)
    git_dir = location.repo.git_dir
    location.repo.close()
    out = subprocess.run(["git", "--git-dir", str(git_dir), "log", "--all", "--format=%an%x09%s"],
                         check=True, capture_output=True, text=True).stdout
    return [line.split("\t", 1)[1] for line in out.splitlines() if line.startswith("model:")]


def test_the_editor_runs_a_checkpoint_with_a_chat_template_in_prompted_mode(tmp_path: Path):
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nTeh method works.\n", encoding="utf-8")
    folder = chat_checkpoint(tmp_path / "tiny-chat")
    session = f"infitool-prompted-{uuid.uuid4().hex[:8]}"
    socket = Path(tempfile.mkdtemp(prefix="tmux-")) / "server"  # short: a socket path has a length limit
    command = shlex.join([sys.executable, "-c", BOOT, str(REPOSITORY), str(draft), "--model", str(folder),
                          "--goal", "Fix the typo."])
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "TMUX", "INFITOOL"))}
    env["INFITOOL_EDIT_PROMPT_STATES"] = str(tmp_path / "prompt-states")  # not the writer's cache
    tmux = lambda *args, check=True: subprocess.run(  # noqa: E731
        ["tmux", "-S", str(socket), "-f", "/dev/null", *args], check=check, capture_output=True, text=True, env=env)
    screen = lambda: tmux("capture-pane", "-p", "-t", session).stdout  # noqa: E731

    def wait_for(condition, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen()}")
            time.sleep(0.1)

    tmux("new-session", "-d", "-s", session, "-x", "110", "-y", "30", "-c", str(tmp_path), command)
    try:
        # Python, torch and Textual starting on a loaded shared machine can take a while.
        wait_for(lambda: "prompted" in screen(), "the editor to name the backend as prompted", 120)
        wait_for(lambda: model_versions(draft), "a version written by the model", 60)
        tmux("send-keys", "-t", session, "C-q")
        wait_for(lambda: tmux("has-session", "-t", session, check=False).returncode != 0, "the editor to quit", 30)
    finally:
        tmux("kill-server", check=False)
        shutil.rmtree(socket.parent, ignore_errors=True)

    assert list((tmp_path / "prompt-states").glob("*.state")), "the opening state was not cached"
    stream = next(tmp_path.rglob("stream.txt")).read_text(encoding="utf-8")
    assert stream.startswith("@goal Fix the typo.\n")  # on disk, the raw stream
    model_lines = [line[2:] for line in stream.split("\n") if line.startswith("> ")]
    for line in model_lines[:-1]:  # the last may have been cut by the quit
        parse(line)
    assert "@ok v2" in stream
    assert model_versions(draft)
