"""The history's speed figures for `infitool-edit bench core`.

- ``versions_per_s``: versions recorded per second over the first 10,000
  records of a fresh history (a 4 KB draft, one line changed per version,
  the notes every 50th, as in an editing session).
- ``versions_per_cpu_s``: the same records per second of this process's
  CPU time (user and system): what the machine would give with a core to
  spare, where ``versions_per_s`` also counts waiting for a busy one.
- ``cost_growth``: the median cost of one record over the 1,000 records
  ending at version 100,000, divided by the median over versions 501-1,500
  of a second, young history, the two recorded in turns (1.0 = no growth).
- ``rewind_ms_100k``: the slowest of 50 rewinds to random versions of the
  100,000-version history, each followed by reading the draft it brought back as
  the session does (``rewind_ms_100k_median`` beside it).
- ``log_ms_100k``: the median time to list the newest 1,000 versions.
- ``open_ms_100k``: the time to reopen the 100,000-version history.

Versions 10,001 to 99,000 are not recorded one by one: they are streamed
into the same line with ``git fast-import`` (the same trees, messages and
trailers ``History.record`` writes), which leaves them packed, as ``git gc``
would, and the reopened history's index catches up with them from git.
The last 1,000 versions are recorded through ``History.record`` again, so
both ends of ``cost_growth`` are real records. This keeps the benchmark to
a minute or two where recording all 100,000 would take many.

Everything runs in a temporary folder outside any git work tree, so the
history lives in a hidden repository there; automatic ``git gc`` is off for
the run so no background packing competes with the timings.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from infitool_edit.history import History

RATE_VERSIONS = 10_000
TOTAL_VERSIONS = 100_000
GROWTH_WINDOW = 1_000  # the records whose median cost stands for "at version N"
REWIND_SAMPLES = 50
LOG_SAMPLES = 20
AUTHOR = "model:bench"
_PARAGRAPHS = 60
_DRAFT_NAME = "essay.md"
_NOTES_NAME = "essay.notes.md"


def _draft(number: int) -> str:
    """A 4 KB markdown draft in which version ``number`` changed one line."""
    changed = number % _PARAGRAPHS
    lines = ["# A long essay", ""]
    for paragraph in range(_PARAGRAPHS):
        edit = number if paragraph == changed else paragraph
        lines.append(f"Paragraph {paragraph}: the writer's sentence, revised {edit} times.")
    return "\n".join(lines) + "\n"


def _notes(number: int) -> str:
    return f"notes revised at {number - number % 50}\n"


def _message(number: int) -> str:
    return f'replace {number % _PARAGRAPHS + 3} "x" "y"'


def measure(total: int = TOTAL_VERSIONS) -> dict:
    rate_versions = min(RATE_VERSIONS, total - GROWTH_WINDOW)
    imported_until = total - GROWTH_WINDOW
    with _no_automatic_gc(), tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        big = Path(folder) / "big" / _DRAFT_NAME
        small = Path(folder) / "small" / _DRAFT_NAME
        big.parent.mkdir()
        small.parent.mkdir()

        with History.open(big) as history:
            started, cpu_started = time.perf_counter(), time.process_time()
            _record(history, range(1, rate_versions + 1))
            versions_per_s = rate_versions / (time.perf_counter() - started)
            versions_per_cpu_s = rate_versions / (time.process_time() - cpu_started)
            print(f"history: {versions_per_s:,.0f} versions/s over {rate_versions:,} "
                  f"({versions_per_cpu_s:,.0f} per second of this process's CPU time)",
                  flush=True)
            git_dir, branch_ref, tip = history.git_dir, history.branch_ref("main"), history.head()

        started = time.perf_counter()
        _import(git_dir, branch_ref, tip.commit, rate_versions + 1, imported_until)
        print(f"history: versions {rate_versions + 1:,}-{imported_until:,} imported with git "
              f"fast-import in {time.perf_counter() - started:.1f} s", flush=True)

        early, late = _growth(small, big, total)

        started = time.perf_counter()
        history = History.open(big)
        open_ms = (time.perf_counter() - started) * 1000
        with history:
            rewind_ms = _rewind_times(history, total)
            log_ms = _log_times(history)

    figures = {
        "versions_per_s": round(versions_per_s, 1),
        "versions_per_cpu_s": round(versions_per_cpu_s, 1),
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
        f"{early * 1e6:.0f} µs near version {GROWTH_WINDOW:,} and {late * 1e6:.0f} µs "
        f"near {total:,}",
        flush=True,
    )
    return figures


def _growth(small: Path, big: Path, total: int) -> tuple[float, float]:
    """Median record cost around version 1,000 and up to version ``total``.

    The two are measured in turns, one record into a young history and one
    into the old one, so that a busy machine slows both alike and the ratio
    stays about the history, not about the moment.
    """
    half = GROWTH_WINDOW // 2
    with History.open(small) as young, History.open(big) as old:
        print("history: the index caught up with the imported versions", flush=True)
        _record(young, range(1, half + 1))
        young_costs, old_costs = [], []
        for step in range(GROWTH_WINDOW):
            turns = [
                (young, half + 1 + step, young_costs),
                (old, total - GROWTH_WINDOW + 1 + step, old_costs),
            ]
            if step % 2:
                turns.reverse()  # neither history always follows the other
            for history, number, costs in turns:
                costs += _record(history, [number])
    return statistics.median(young_costs), statistics.median(old_costs)


def _record(history: History, numbers) -> list[float]:
    costs = []
    for number in numbers:
        draft, notes, message = _draft(number), _notes(number), _message(number)
        started = time.perf_counter()
        info = history.record(draft, notes, message, AUTHOR)
        costs.append(time.perf_counter() - started)
        if info.number != number:
            raise AssertionError(f"recorded v{info.number}, expected v{number}")
    return costs


def _import(git_dir: Path, branch_ref: str, parent: str, first: int, last: int) -> None:
    """Versions ``first``..``last`` on the main line, as ``History.record`` makes them."""
    importer = subprocess.Popen(
        ["git", "--git-dir", str(git_dir), "fast-import", "--quiet"],
        stdin=subprocess.PIPE,
    )
    when = f"{int(time.time())} +0000"
    for number in range(first, last + 1):
        message = f"{_message(number)}\n\nInfitool-Version: {number}\nInfitool-Line: main\n"
        parts = [
            f"commit {branch_ref}\n",
            f"author {AUTHOR} <model-bench@infitool-edit.invalid> {when}\n",
            f"committer infitool-edit <infitool-edit@infitool-edit.invalid> {when}\n",
            _data(message),
            f"from {parent}\n" if number == first else "",
            "deleteall\n",
            f"M 100644 inline {_DRAFT_NAME}\n",
            _data(_draft(number)),
            f"M 100644 inline {_NOTES_NAME}\n",
            _data(_notes(number)),
            "\n",
        ]
        importer.stdin.write("".join(parts).encode("utf-8"))
    importer.stdin.close()
    if importer.wait() != 0:
        raise RuntimeError("git fast-import failed")


def _data(text: str) -> str:
    return f"data {len(text.encode('utf-8'))}\n{text}"


def _rewind_times(history: History, total: int) -> list[float]:
    chooser = random.Random(2)
    times = []
    for _ in range(REWIND_SAMPLES):
        number = chooser.randint(1, total)
        started = time.perf_counter()
        restored = history.rewind(number, "Writer")
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


@contextmanager
def _no_automatic_gc():
    saved = {key: os.environ.get(key) for key in _GC_OFF}
    os.environ.update(_GC_OFF)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# git >= 2.31 reads extra configuration from the environment.
_GC_OFF = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0"}


def main() -> dict:
    return measure()
