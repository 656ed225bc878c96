"""Large drafts and large commands (issue 13): the time and peak memory of
one command on a 50 MB draft after opening, and the peak memory of one
10 MB command. Peak memory is the process's peak RSS growth (ru_maxrss),
measured in a fresh child process so earlier figures do not hide it."""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = r"""
import json, os, resource, sys, tempfile, time
from pathlib import Path
from infitool_edit.commands import ast
from infitool_edit.session.editing import EditingSession

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

kind = sys.argv[1]
folder = Path(tempfile.mkdtemp())
draft = folder / "draft.md"
out = {}
if kind == "draft":
    line = "A sentence of prose that runs on for a while, as prose does.\n"
    draft.write_text("# Big\n\n" + line * (50 * 2**20 // len(line)))
    with EditingSession.open(draft, author="bench") as session:
        base = peak_mb()
        times = []
        for n in range(3):
            started = time.perf_counter()
            session.execute(ast.Insert(ast.Line(3), f"inserted {n}\n"))
            times.append(time.perf_counter() - started)
        out = {"large_draft_mb": round(draft.stat().st_size / 2**20, 1),
               "large_draft_command_s": round(min(times), 2),
               "large_draft_peak_rss_mb": round(peak_mb(), 0),
               "large_draft_open_peak_rss_mb": round(base, 0)}
else:
    draft.write_text("# Small\n")
    with EditingSession.open(draft, author="bench") as session:
        base = peak_mb()
        session.execute(ast.Insert(ast.End(), "word " * (2 * 2**20)))
        out = {"large_command_mb": 10.0, "large_command_peak_rss_growth_mb": round(peak_mb() - base, 0)}
print(json.dumps(out))
"""


def measure() -> dict:
    figures: dict = {}
    for kind in ("draft", "command"):
        result = subprocess.run([sys.executable, "-c", _CHILD, kind], capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            figures[f"large_{kind}_error"] = (result.stderr.strip().splitlines() or ["?"])[-1]
            continue
        figures.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return figures


if __name__ == "__main__":
    print(json.dumps(measure()))
