"""Benchmark of the command language: how fast lines are read and written,
and what the decoder's DFA costs to build and walk.

    infitool-edit bench commands

Lines come from ``generate.random_command`` with a fixed seed, so runs
compare. Figures are medians over repeated passes (a shared machine is
noisy; the median of passes shrugs off the odd slow one).
"""

from __future__ import annotations

import random
import statistics
import time

from infitool_edit.commands import CommandError, parse, serialize
from infitool_edit.commands.fsm import build_dfa, command_dfa
from infitool_edit.commands.generate import random_command

N_LINES = 5000
PASSES = 5


def _per_item_us(function, items) -> float:
    """Median over passes of the mean time per item, in microseconds."""
    times = []
    for _ in range(PASSES):
        started = time.perf_counter()
        for item in items:
            function(item)
        times.append((time.perf_counter() - started) / len(items) * 1e6)
    return statistics.median(times)


def _parse_or_error(line: str) -> None:
    try:
        parse(line)
    except CommandError:
        pass


def main() -> dict:
    rng = random.Random(2026)
    commands = [random_command(rng) for _ in range(N_LINES)]
    lines = [serialize(command) for command in commands]
    # A bad line for each good one: cut at a random place and given a stray byte.
    broken = [line[: rng.randrange(len(line))] + "\x01" for line in lines]
    mean_bytes = statistics.mean(len(line.encode()) for line in lines)
    print(f"{N_LINES} random command lines, {mean_bytes:.0f} bytes on average")

    figures = {
        "parse_us": _per_item_us(parse, lines),
        "parse_error_us": _per_item_us(_parse_or_error, broken),
        "serialize_us": _per_item_us(serialize, commands),
    }
    print(f"parse {figures['parse_us']:.1f} µs/line, a bad line {figures['parse_error_us']:.1f} µs, "
          f"serialize {figures['serialize_us']:.1f} µs")

    builds = []
    for _ in range(PASSES):
        started = time.perf_counter()
        dfa = build_dfa()
        builds.append((time.perf_counter() - started) * 1e3)
    figures["dfa_build_ms"] = statistics.median(builds)
    figures["dfa_states"] = dfa.n_states

    data = [line.encode() for line in lines]
    shared = command_dfa()
    walk_us = _per_item_us(shared.walk, data)
    figures["dfa_walk_mb_per_s"] = mean_bytes / walk_us  # bytes per µs = MB/s
    print(f"DFA: {dfa.n_states} states, built in {figures['dfa_build_ms']:.0f} ms, "
          f"walked at {figures['dfa_walk_mb_per_s']:.1f} MB/s in Python")
    return {name: round(value, 3) if isinstance(value, float) else value for name, value in figures.items()}


if __name__ == "__main__":
    print(main())
