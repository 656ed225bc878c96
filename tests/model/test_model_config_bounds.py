"""A config.json whose sizes the weights cannot back is refused before
anything is built (issue 13, cases 3 and 8): one CheckpointError, no hang,
no allocation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infitool_edit.agent.ssm import random_tiny_model
from infitool_edit.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

CHECK = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
from infitool_edit.model.checkpoint import CheckpointError, load_checkpoint
try:
    load_checkpoint(sys.argv[1])
except CheckpointError as error:
    print("CheckpointError:", error)
"""


@pytest.mark.parametrize("key,value", [("num_hidden_layers", 10**8), ("hidden_size", 10**9)])
def test_huge_config_sizes_are_refused_before_building(tmp_path, key, value):
    folder = save_checkpoint(random_tiny_model(), tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    try:
        result = subprocess.run([sys.executable, "-c", CHECK, str(folder)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{key} {value} hung the loader")
    assert result.stdout.startswith("CheckpointError:"), result.stdout + result.stderr[-500:]
    assert key in result.stdout and len(result.stdout.strip().splitlines()) == 1


def test_a_garbled_safetensors_header_is_a_checkpoint_error(tmp_path):
    folder = save_checkpoint(random_tiny_model(), tmp_path / "model")
    (folder / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(CheckpointError, match="unreadable safetensors file"):
        load_checkpoint(folder)
