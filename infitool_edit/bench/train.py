"""`infitool-edit bench train`: training throughput of the default config, beside the same model
trained through the plain modules (`Mamba2LM.forward`), in the same process and thread count.

One training step is forward + backward + AdamW on one batch of the config's phase-1 windows
(8 × 512 bytes), fp32 or bf16 as the trainer would choose on this CPU. The two paths alternate
step by step, so a burst of load on a shared machine hits both; figures are the best of the
rounds (the least disturbed).

Figures
  train_bytes_s, plain_bytes_s     bytes per second of wall time, training path and plain modules
  train_vs_plain                   the ratio (the training path's speed-up)
  train_bytes_per_cpu_s            bytes per second of this process's CPU time (less sensitive to
                                   other processes on the machine than wall time)
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
    torch.set_num_threads(THREADS)
    config = CONFIGS["default"]
    device = torch.device("cpu")
    dtype = training_dtype(device)
    torch.manual_seed(0)
    model = Mamba2LM(config.model_config())
    trainer = TrainingLM(model, config.chunk)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 256, (config.batch, config.seq_len + 1))
    step_bytes = config.batch * config.seq_len
    load = os.getloadavg()[0]

    def step(loss_of) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with autocast(device, dtype):
            loss = loss_of()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - wall, time.process_time() - cpu

    fast = lambda: _fast_loss(trainer, ids)  # noqa: E731
    plain = lambda: _plain_loss(model, ids)  # noqa: E731
    step(fast), step(plain)  # warm-up: allocator, first-call paths
    fast_times, plain_times = [], []
    for _ in range(ROUNDS):
        fast_times.append(step(fast))
        plain_times.append(step(plain))
    fast_wall = min(t[0] for t in fast_times)
    plain_wall = min(t[0] for t in plain_times)
    fast_cpu = min(t[1] for t in fast_times)
    figures = {
        "config": config.name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": THREADS,
        "chunk": config.chunk,
        "dtype": str(dtype).removeprefix("torch."),
        "load_average": round(load, 2),
        "train_bytes_s": round(step_bytes / fast_wall, 1),
        "plain_bytes_s": round(step_bytes / plain_wall, 1),
        "train_vs_plain": round(plain_wall / fast_wall, 2),
        "train_bytes_per_cpu_s": round(step_bytes / fast_cpu, 1),
    }
    for name, value in figures.items():
        print(f"{name:>22} {value}", flush=True)
    return figures
