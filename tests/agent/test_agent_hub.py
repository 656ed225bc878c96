"""Models found the way the ecosystem finds them: a hub id resolved from the
local Hugging Face cache (a real cache layout built in a temporary HF_HOME:
blobs, snapshot symlinks, refs/main), `pull` failing in one line without a
network, and `models` reading a cached model's size from its tensor headers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import run_cli
from typer.testing import CliRunner

from infitool_edit.agent.hub import HubError, resolve_model
from infitool_edit.agent.ssm import random_tiny_model
from infitool_edit.cli import app
from infitool_edit.model import save_checkpoint

REVISION = "0123456789abcdef0123456789abcdef01234567"


def fake_cached_model(hf_home: Path, hub_id: str) -> Path:
    """A tiny random checkpoint laid out as huggingface_hub caches a download:
    hub/models--org--name/{blobs/<sha256>, snapshots/<rev>/<file> -> blob, refs/main}."""
    source = hf_home / "scratch" / hub_id.replace("/", "--")
    save_checkpoint(random_tiny_model(5, hidden_size=16, layers=1), source)
    repo = hf_home / "hub" / ("models--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in sorted(source.iterdir()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may leave the machine, whatever the code does
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))  # read at import in this process
    return home


def test_a_hub_id_resolves_to_its_cached_snapshot_and_a_missing_one_names_pull(hf_home: Path) -> None:
    snapshot = fake_cached_model(hf_home, "tiny-org/tiny-mamba")
    assert resolve_model("tiny-org/tiny-mamba") == (snapshot, "tiny-org/tiny-mamba")
    assert resolve_model(snapshot) == (snapshot, REVISION)  # a folder is itself
    with pytest.raises(HubError) as missing:
        resolve_model("tiny-org/absent")
    assert str(missing.value) == (
        f"tiny-org/absent is not in the Hugging Face cache ({hf_home / 'hub'}); "
        "get it with `infitool-edit pull tiny-org/absent`"
    )
    with pytest.raises(HubError, match="no such checkpoint folder"):
        resolve_model("./not-here")


def test_run_with_a_hub_id_edits_end_to_end_headless(hf_home: Path, tmp_path: Path) -> None:
    fake_cached_model(hf_home, "tiny-org/tiny-mamba")
    draft = tmp_path / "draft.md"
    draft.write_text("# Title\n\nSome prose.\n")
    runner = CliRunner()
    ran = runner.invoke(app, ["run", str(draft), "--goal", "Tidy.", "--model", "tiny-org/tiny-mamba", "--max-commands", "2", "--seed", "3"])
    assert ran.exit_code == 0, ran.output
    assert ran.output.count("> ") == 2 and "reached the budget of 2 commands" in ran.output
    from infitool_edit.agent.stream import StreamLog, stream_dir_for
    from infitool_edit.history import History

    with History.open(draft) as history:
        assert StreamLog(stream_dir_for(history)).tail_text().startswith("@goal Tidy.")
    # The session remembers the model by its hub id: resuming with it goes on.
    again = runner.invoke(app, ["resume", str(draft), "--model", "tiny-org/tiny-mamba", "--max-commands", "1"])
    assert again.exit_code == 0, again.output

    missing = runner.invoke(app, ["run", str(draft), "--goal", "Tidy.", "--model", "tiny-org/absent"])
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        f"infitool-edit: tiny-org/absent is not in the Hugging Face cache ({hf_home / 'hub'}); "
        "get it with `infitool-edit pull tiny-org/absent`"
    ]


def test_pull_without_a_network_is_one_line(hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # and were it online: an unroutable hub
    result = run_cli("pull", "fla-hub/rwkv7-0.1B-g1", timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "infitool-edit: cannot download fla-hub/rwkv7-0.1B-g1: the hub cannot be reached (no network, or HF_HUB_OFFLINE is set)"
    ]
    assert not (hf_home / "hub" / "models--fla-hub--rwkv7-0.1B-g1" / "snapshots").exists()


def test_models_lists_the_catalogue_with_memory_computed_from_the_count(hf_home: Path) -> None:
    # A catalogue id in the cache (holding a tiny stand-in): its size comes from its tensor headers.
    fake_cached_model(hf_home, "fla-hub/rwkv7-0.1B-g1")
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in map(json.loads, result.output.splitlines())}
    assert len(rows) == 10 and "ibm-granite/granite-4.0-h-1b" in rows
    cached = rows["fla-hub/rwkv7-0.1B-g1"]
    tiny = sum(p.numel() for p in random_tiny_model(5, hidden_size=16, layers=1).parameters())
    assert cached["cached"] is True and cached["use"] == "--model fla-hub/rwkv7-0.1B-g1"
    assert (cached["parameters"], cached["parameters_from"]) == (tiny, "tensor headers")
    assert cached["cpu_fp32_bytes"] == 4 * tiny
    falcon = rows["tiiuae/Falcon3-Mamba-7B-Instruct"]
    assert falcon["cached"] is False and falcon["use"] == "infitool-edit pull tiiuae/Falcon3-Mamba-7B-Instruct"
    assert falcon["cpu_fp32_bytes"] == 4 * falcon["parameters"] and falcon["gpu_bf16_bytes"] == 2 * falcon["parameters"]
    assert falcon["parameters"] < falcon["cpu_int8_bytes"] < 1.01 * falcon["parameters"]

    table = CliRunner().invoke(app, ["models"])
    assert table.exit_code == 0 and "granite-4.0-h-350m" in table.output and "Apache-2.0" in table.output


def test_the_editor_refuses_a_missing_hub_id_before_its_screen_opens(hf_home: Path, tmp_path: Path) -> None:
    from infitool_edit.ui.app import make_app

    draft = tmp_path / "draft.md"
    draft.write_text("Prose.\n")
    with pytest.raises(HubError, match="get it with `infitool-edit pull tiny-org/absent`$"):
        make_app(draft, model="tiny-org/absent")
    fake_cached_model(hf_home, "tiny-org/tiny-mamba")
    app_ = make_app(draft, model="tiny-org/tiny-mamba")
    try:
        assert app_.backend_name == "ssm tiny-org/tiny-mamba"
        assert app_.model_pen.backend_factory().name == "tiny-org/tiny-mamba"
    finally:
        app_.session.close()
