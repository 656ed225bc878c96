"""`infitool-edit bench learn`: how fast training data is made.

Figures
  plan_tasks_per_s       synthetic tasks drawn and planned (expert script
                         checked on the document engine), per second
  render_streams_per_s   those tasks rendered by one ``Renderer`` (the real
                         session and runner, scratch folders in /dev/shm,
                         each history copied from one empty repository)
  render_commands_per_s  model lines rendered per second
  render_kbytes_per_s    stream bytes rendered per second (thousands)
  fresh_streams_per_s    the same streams each in a fresh temporary folder
                         on disk (``git init`` per session): the naive way
  render_speedup         render_streams_per_s ÷ fresh_streams_per_s (same
                         run, same tasks: robust to a noisy machine)
  render_streams_per_cpu_s  streams per second of this process's CPU time
                         (on a crowded machine wall time mostly measures the
                         others; subprocesses, e.g. git, are not counted)

Tasks come from Python's doc topics and the project's docs (no bundle
needed); ``INFITOOL_BENCH_STREAMS`` sets how many (default 60).
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path


def _fresh_render(task) -> str:
    from infitool_edit.agent.runner import Runner
    from infitool_edit.agent.scripted import ScriptedBackend
    from infitool_edit.session.editing import EditingSession

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / task.name
        path.write_text(task.draft, encoding="utf-8")
        with EditingSession.open(path, author="writer") as session:
            Runner(session, ScriptedBackend(list(task.script)), task.goal, stream_dir=Path(folder) / "s").run()
        return (Path(folder) / "s" / "stream.txt").read_text(encoding="utf-8")


def main() -> dict:
    from infitool_edit.learn import corpus
    from infitool_edit.learn.render import Renderer
    from infitool_edit.learn.synth import sources, synthetic_tasks
    from infitool_edit.learn.tasks import render_task

    count = int(os.environ.get("INFITOOL_BENCH_STREAMS", "60"))
    pool = sources(corpus.documents("all", sources=("python-docs", "infitool-docs")))
    per_kind = max(1, count // 5)
    started = time.perf_counter()
    tasks = list(synthetic_tasks(random.Random(0), pool, dict.fromkeys(
        ("typos", "mechanics", "structure", "process", "clean"), per_kind)))
    plan_s = time.perf_counter() - started
    print(f"planned {len(tasks)} tasks in {plan_s:.2f} s")

    started, cpu = time.perf_counter(), time.process_time()
    commands = size = 0
    with Renderer() as renderer:
        for task in tasks:
            record = render_task(renderer, task)
            commands += record["stream"].count("\n> ") + record["stream"].startswith("> ")
            size += len(record["stream"].encode("utf-8"))
    render_s, render_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"rendered {len(tasks)} streams ({commands} commands, {size} bytes) in {render_s:.2f} s")

    started = time.perf_counter()
    for task in tasks:
        _fresh_render(task)
    fresh_s = time.perf_counter() - started
    print(f"the same in fresh folders on disk: {fresh_s:.2f} s")
    return {
        "plan_tasks_per_s": round(len(tasks) / plan_s, 1),
        "render_streams_per_s": round(len(tasks) / render_s, 1),
        "render_commands_per_s": round(commands / render_s, 1),
        "render_kbytes_per_s": round(size / render_s / 1000, 1),
        "fresh_streams_per_s": round(len(tasks) / fresh_s, 1),
        "render_speedup": round(fresh_s / render_s, 2),
        "render_streams_per_cpu_s": round(len(tasks) / render_cpu, 1),
        "streams": len(tasks),
    }
