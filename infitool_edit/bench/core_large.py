"""Large drafts and large commands (issue 13): `infitool-edit bench core_large`
(also part of `bench core`).

- A 50 MB draft (prose wrapped at 60 columns, 860,000 lines, one heading):
  the peak memory of opening it, the peak over three one-line inserts near
  its top, and the time of each insert.
- A 10 MB command (one insert into a small draft): its peak memory.

Memory is the process's peak RSS (``ru_maxrss``), in a fresh child process
that has imported everything before the draft is opened and that did not
write the draft itself (the parent writes it a line at a time), so the peak
is the editor's. ``*_growth_mb`` is that peak less the RSS before opening:
the draft's own cost, which issue 13 bounds at 3x the file (150 MB);
``*_peak_rss_mb`` is the whole process, interpreter and libraries included.

Time under load: one command on a 50 MB draft copies the draft a few times
(the new text, its UTF-8 for the file, the history's comparison), so its
seconds follow the machine's memory bandwidth, which on a shared machine
swings several-fold. ``large_draft_command_copies`` is the command's time
in units of one copy of the draft's text, timed in the same process right
after: the load-independent figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

DRAFT_MB = 50
COMMAND_MB = 10
# Prose hard-wrapped near 60 columns: many short lines, the costly shape for
# anything that keeps a Python object per line.
PROSE_LINE = "A sentence of prose that runs on for a while, as prose does.\n"

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from infitool_edit.commands import ast
from infitool_edit.session.editing import EditingSession

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return peak_mb()

kind, draft = sys.argv[1], Path(sys.argv[2])
before = rss_mb()
out = {}
if kind == "draft":
    started = time.perf_counter()
    session = EditingSession.open(draft, author="bench")
    open_s = time.perf_counter() - started
    open_peak = peak_mb()
    times = []
    for n in range(3):
        started = time.perf_counter()
        session.execute(ast.Insert(ast.Line(3), f"inserted {n}\n"))
        times.append(time.perf_counter() - started)
    peak = peak_mb()
    text = session.workspace.text
    copies = []
    for _ in range(3):
        started = time.perf_counter()
        copy = text[1:]
        copies.append(time.perf_counter() - started)
        del copy
    session.close()
    out = {"large_draft_mb": round(draft.stat().st_size / 2**20, 1),
           "large_draft_open_s": round(open_s, 2),
           "large_draft_open_peak_rss_mb": round(open_peak),
           "large_draft_open_growth_mb": round(open_peak - before),
           "large_draft_peak_rss_mb": round(peak),
           "large_draft_command_growth_mb": round(peak - before),
           "large_draft_command_s": round(min(times), 2),
           "large_draft_command_copies": round(min(times) / min(copies), 1)}
else:
    with EditingSession.open(draft, author="bench") as session:
        base = peak_mb()
        session.execute(ast.Insert(ast.End(), "word " * (COMMAND_MB * 2**20 // 5)))
        out = {"large_command_mb": float(COMMAND_MB),
               "large_command_peak_rss_growth_mb": round(peak_mb() - base)}
print(json.dumps(out))
""".replace("COMMAND_MB", str(COMMAND_MB))


def write_prose_draft(path: Path, megabytes: float) -> None:
    """A draft of ``megabytes`` of wrapped prose under one heading, written
    a line at a time (never held whole)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("# Big\n\n")
        for _ in range(int(megabytes * 2**20) // len(PROSE_LINE)):
            handle.write(PROSE_LINE)


def measure() -> dict:
    figures: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("draft", "command"):
            draft = Path(folder) / kind / "draft.md"
            draft.parent.mkdir()
            if kind == "draft":
                write_prose_draft(draft, DRAFT_MB)
            else:
                draft.write_text("# Small\n")
            result = subprocess.run([sys.executable, "-c", _CHILD, kind, str(draft)],
                                    capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                figures[f"large_{kind}_error"] = (result.stderr.strip().splitlines() or ["?"])[-1]
                continue
            figures.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return figures


def main() -> dict:
    figures = measure()
    for name, value in figures.items():
        print(f"{name:>34} {value}", flush=True)
    return figures


if __name__ == "__main__":
    print(json.dumps(main()))
