"""`infitool-edit train`: the smoke config learns real streams, resumes into another phase, the
checkpoint runs in the editor, and two processes train in step (DDP over gloo)."""

from __future__ import annotations

import io
import json
import shutil
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from rich.console import Console

from infitool_edit.agent.headless import run_headless
from infitool_edit.agent.ssm import SSMBackend
from infitool_edit.agent.stream import StreamLog, stream_dir_for
from infitool_edit.learn.card import render
from infitool_edit.learn.train import TrainError, TrainOptions, train, training_dtype
from infitool_edit.model import load_checkpoint
from infitool_edit.session.editing import EditingSession

from helpers.training_data import data_folder


def test_smoke_training_learns_streams_resumes_and_runs_in_the_editor(tmp_path, example_draft):
    data, out = data_folder(tmp_path), tmp_path / "out"
    lines: list[str] = []
    first = train(TrainOptions(data=data, out=out, config="smoke", phase="streams", max_steps=60, threads=1),
                  report=lines.append)
    assert first["phase"] == "streams" and first["steps"] == 60
    assert first["last_loss"] < 0.6 * first["first_loss"]  # loss on the command bytes falls
    assert any("B/s" in line for line in lines)

    # Resume, back into phase 1 (prose) in the same folder: counters and optimizer carry on.
    second = train(TrainOptions(data=data, out=out, resume=True, phase="prose", max_steps=3, threads=1), report=lines.append)
    assert second["steps"] == 63 and second["phase"] == "prose"
    assert second["bytes_seen"]["streams"] == first["bytes_seen"]["streams"]
    record = json.loads((out / "latest" / "training.json").read_text())
    assert record["steps"] == 63 and record["parameters"] > 0
    # The card's hardware row says the precision the run trained in, as chosen from the CPU's flags.
    precision = "bf16 autocast" if training_dtype(torch.device("cpu")) == torch.bfloat16 else "fp32"
    assert record["hardware"].startswith("CPU ") and record["hardware"].endswith(f", {precision}")

    # Fine-tuning on new data: a lower peak and the phase's schedule started afresh.
    third = train(TrainOptions(data=data, out=out, resume=True, phase="streams", max_steps=2, threads=1,
                               lr=1e-3, new_schedule=True, streams_mb=0.01, prose_mix=0.5, decisions=0.25),
                   report=lines.append)
    assert third["steps"] == 65
    trainer = torch.load(out / "latest" / "trainer.pt", map_location="cpu", weights_only=False)
    assert trainer["progress"]["phase_step"] == 2 and trainer["config"]["lr"] == 1e-3
    assert trainer["config"]["streams_mb"] == 0.01 and trainer["config"]["prose_mix"] == 0.5
    assert trainer["config"]["stream_decisions"] == 0.25
    record = json.loads((out / "latest" / "training.json").read_text())
    card = render(out / "latest", "typos_f05 0.5")  # the model card is written from that record
    assert f"| parameters | {record['parameters']:,} |" in card and "typos_f05 0.5" in card

    # A shipped model (weights and training.json, no trainer.pt) starts a new run with --from:
    # its counters and time carry on, its weights are where the new run begins.
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("config.json", "model.safetensors", "training.json"):
        shutil.copyfile(out / "latest" / name, shipped / name)
    with pytest.raises(TrainError, match="--prose-mix 1.5"):
        train(TrainOptions(data=data, out=tmp_path / "again", config="smoke", prose_mix=1.5, threads=1))
    with pytest.raises(TrainError, match="--decisions 0.6: give a share from 0 to 0.5"):
        train(TrainOptions(data=data, out=tmp_path / "again", config="smoke", decisions=0.6, threads=1))
    with pytest.raises(TrainError, match="give one"):
        train(TrainOptions(data=data, out=tmp_path / "again", resume=True, start_from=shipped, threads=1))
    with pytest.raises(TrainError, match="is not config 'default'"):
        train(TrainOptions(data=data, out=tmp_path / "again", start_from=shipped, threads=1))
    again = tmp_path / "again"
    fourth = train(TrainOptions(data=data, out=again, config="smoke", start_from=shipped, phase="streams",
                                max_steps=1, threads=1), report=lines.append)
    assert fourth["steps"] == 66 and fourth["bytes_seen"]["prose"] == third["bytes_seen"]["prose"]
    carried = json.loads((again / "latest" / "training.json").read_text())
    assert carried["training_seconds"] >= record["training_seconds"] > 0
    assert carried["evaluations"][: len(record["evaluations"])] == record["evaluations"]

    # The checkpoint is an ordinary model folder: it loads and writes commands under the byte mask.
    model = load_checkpoint(out / "latest")
    run_headless(example_draft, "Fix the typos.", backend=SSMBackend(model, name="smoke"), max_commands=2,
                 console=Console(file=io.StringIO()))
    with EditingSession.open(example_draft, author="writer") as session:
        log = StreamLog(stream_dir_for(session.history))
        assert sum(1 for r in log.chain(log.head) if r.model_bytes) == 2
        log.close()


def _ddp_worker(rank: int, port: int, data: str, out: str, results) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    summary = train(TrainOptions(data=Path(data), out=Path(out), config="smoke", max_steps=2, threads=1, quiet=True))
    results.put((rank, summary["parameter_checksum"], summary["bytes_seen"]["prose"]))


def test_two_processes_train_in_step_over_gloo(tmp_path):
    data, out = data_folder(tmp_path), tmp_path / "out"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = mp.get_context("fork")  # the children inherit the imports: no second torch start-up
    results = context.Queue()
    mp.start_processes(_ddp_worker, args=(port, str(data), str(out), results), nprocs=2, start_method="fork")
    reports = sorted(results.get(timeout=10) for _ in range(2))
    (_, checksum0, bytes0), (_, checksum1, _) = reports
    assert checksum0 == checksum1  # gradients were averaged: the two copies stayed identical
    assert bytes0 == 2 * 2 * 4 * 128  # steps × processes × batch × window
    assert load_checkpoint(out / "latest").config.hidden_size == 64
