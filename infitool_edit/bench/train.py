"""`infitool-edit bench train`: training throughput of the default config, beside the same model
trained through the plain modules (`Mamba2LM.forward`), in the same process and thread count.

One training step is forward + backward + AdamW on one batch of the config's phase-1 windows
(8 × 512 bytes), fp32 or bf16 as the trainer would choose on this CPU. The paths alternate
step by step, so a burst of load on a shared machine hits all; figures are the best of the
rounds (the least disturbed). Two threads, or one when the machine's load already exceeds its
cores.

Figures
  train_bytes_s, plain_bytes_s     bytes per second of wall time, training path and plain modules
  *_bytes_per_cpu_s                bytes per second of this process's CPU time (far less sensitive
                                   to other processes on a shared machine than wall time)
  train_vs_plain                   plain ÷ training CPU time per step, the same chunk size
  train_vs_plain_chunk256          the same against the plain modules at HF's default chunk (256)
  parameters, threads, chunk, dtype, load_average (the machine's 1-minute load when it began)
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F

from infitool_edit.learn.train import CONFIGS, autocast, training_dtype
from infitool_edit.model import Mamba2LM
from infitool_edit.model.training import TrainingLM

THREADS = 2
ROUNDS = 3


def _plain_loss(model: Mamba2LM, ids: torch.Tensor) -> torch.Tensor:
    logits, _ = model(ids[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


def _fast_loss(trainer: TrainingLM, ids: torch.Tensor) -> torch.Tensor:
    total, count = trainer(ids)
    return total / count


def main() -> dict:
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    # On a machine already loaded past its cores, two threads wait on each other: one step took
    # ~3× the CPU time on two threads than on one here. Time what training would run with.
    threads = THREADS if load < cores else 1
    torch.set_num_threads(threads)
    config = CONFIGS["default"]
    device = torch.device("cpu")
    dtype = training_dtype(device)
    torch.manual_seed(0)
    model = Mamba2LM(config.model_config())
    trainer = TrainingLM(model, config.chunk)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 256, (config.batch, config.seq_len + 1))
    step_bytes = config.batch * config.seq_len

    def step(loss_of) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with autocast(device, dtype):
            loss = loss_of()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - wall, time.process_time() - cpu

    def plain_at(chunk: int):
        def run():
            for block in model.layers:
                block.mixer.chunk = chunk
            try:
                return _plain_loss(model, ids)
            finally:
                for block in model.layers:
                    block.mixer.chunk = config.chunk
        return run

    paths = {
        "train": lambda: _fast_loss(trainer, ids),
        "plain": plain_at(config.chunk),  # the same model and chunk through Mamba2LM.forward
        "plain_chunk256": plain_at(256),  # ... at HuggingFace's default chunk size
    }
    for run in paths.values():
        step(run)  # warm-up: allocator, first-call paths
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for _ in range(ROUNDS):  # interleaved, so a burst of load hits every path
        for name, run in paths.items():
            times[name].append(step(run))
    wall = {name: min(t[0] for t in values) for name, values in times.items()}
    cpu = {name: min(t[1] for t in values) for name, values in times.items()}
    figures = {
        "config": config.name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": threads,
        "chunk": config.chunk,
        "dtype": str(dtype).removeprefix("torch."),
        "load_average": round(load, 2),
        "train_bytes_s": round(step_bytes / wall["train"], 1),
        "plain_bytes_s": round(step_bytes / wall["plain"], 1),
        "train_bytes_per_cpu_s": round(step_bytes / cpu["train"], 1),
        "plain_bytes_per_cpu_s": round(step_bytes / cpu["plain"], 1),
        "plain_chunk256_bytes_per_cpu_s": round(step_bytes / cpu["plain_chunk256"], 1),
        "train_vs_plain": round(cpu["plain"] / cpu["train"], 2),
        "train_vs_plain_chunk256": round(cpu["plain_chunk256"] / cpu["train"], 2),
    }
    for name, value in figures.items():
        print(f"{name:>30} {value}", flush=True)
    return figures
