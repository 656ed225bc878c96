"""The history's speed figures for `infitool-edit bench core`.

- ``versions_per_s``: versions recorded per second over the first 10,000
  records of a fresh history (a 4 KB draft, one line changed per version,
  the notes every 50th, as in an editing session).
- ``cost_growth``: the median cost of one record around version 100,000
  over the median around version 1,000 (1.0 = no growth).
- ``rewind_ms_100k``: the slowest of 50 restores of random versions of the
  100,000-version history, each followed by reading the restored draft as
  the session does (``rewind_ms_100k_median`` beside it).
- ``log_ms_100k``: the median time to list the newest 1,000 versions.
- ``open_ms_100k``: the time to reopen the 100,000-version history.

Everything runs in a temporary folder outside any git work tree, so the
history lives in a hidden repository there.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from infitool_edit.history import History

RATE_VERSIONS = 10_000
TOTAL_VERSIONS = 100_000
GROWTH_WINDOW = 1_000  # records whose median cost stands for "at version N"
REWIND_SAMPLES = 50
LOG_SAMPLES = 20
_PARAGRAPHS = 60


def _draft(number: int) -> str:
    """A 4 KB markdown draft in which version ``number`` changed one line."""
    changed = number % _PARAGRAPHS
    lines = ["# A long essay", ""]
    for paragraph in range(_PARAGRAPHS):
        edit = number if paragraph == changed else paragraph
        lines.append(f"Paragraph {paragraph}: the writer's sentence, revised {edit} times.")
    return "\n".join(lines) + "\n"


def measure(total: int = TOTAL_VERSIONS) -> dict:
    rate_versions = min(RATE_VERSIONS, total)
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        draft_path = Path(folder) / "essay.md"
        costs: list[float] = []
        with History.open(draft_path) as history:
            started = time.perf_counter()
            for number in range(1, total + 1):
                draft = _draft(number)
                notes = f"notes revised at {number - number % 50}\n"
                before = time.perf_counter()
                history.record(draft, notes, f'replace {number % _PARAGRAPHS + 3} "x" "y"',
                               "model:bench")
                costs.append(time.perf_counter() - before)
                if number == rate_versions:
                    versions_per_s = rate_versions / (time.perf_counter() - started)
                    print(f"history: {versions_per_s:,.0f} versions/s over {rate_versions:,}",
                          flush=True)
                elif number % 10_000 == 0:
                    print(f"history: {number:,} versions recorded", flush=True)

        started = time.perf_counter()
        history = History.open(draft_path)
        open_ms = (time.perf_counter() - started) * 1000
        with history:
            rewind_ms = _rewind_times(history, total)
            log_ms = _log_times(history)

    early = _median_around(costs, min(1_000, total // 2))
    late = _median_around(costs, total)
    figures = {
        "versions_per_s": round(versions_per_s, 1),
        "rewind_ms_100k": round(max(rewind_ms), 3),
        "rewind_ms_100k_median": round(statistics.median(rewind_ms), 3),
        "log_ms_100k": round(statistics.median(log_ms), 3),
        "open_ms_100k": round(open_ms, 3),
        "cost_growth": round(late / early, 3),
    }
    print(
        f"history: at {total:,} versions: rewind max {figures['rewind_ms_100k']} ms "
        f"(median {figures['rewind_ms_100k_median']}), log of 1,000 "
        f"{figures['log_ms_100k']} ms, reopen {figures['open_ms_100k']} ms; a record costs "
        f"{early * 1e6:.0f} µs near version 1,000 and {late * 1e6:.0f} µs near {total:,}",
        flush=True,
    )
    return figures


def _rewind_times(history: History, total: int) -> list[float]:
    chooser = random.Random(2)
    times = []
    for _ in range(REWIND_SAMPLES):
        number = chooser.randint(1, total)
        started = time.perf_counter()
        restored = history.restore(number, "Writer")
        snapshot = history.read(restored.number)
        times.append((time.perf_counter() - started) * 1000)
        if snapshot.draft != _draft(number):
            raise AssertionError(f"restoring v{number} gave the wrong draft")
    return times


def _log_times(history: History) -> list[float]:
    times = []
    for _ in range(LOG_SAMPLES):
        started = time.perf_counter()
        versions = history.log(limit=1000)
        times.append((time.perf_counter() - started) * 1000)
        if len(versions) != 1000:
            raise AssertionError(f"log listed {len(versions)} versions, not 1,000")
    return times


def _median_around(costs: list[float], number: int) -> float:
    """The median record cost over the ``GROWTH_WINDOW`` records ending at ``number``."""
    start = max(0, number - GROWTH_WINDOW)
    return statistics.median(costs[start:number])


def main() -> dict:
    return measure()
