"""`infitool-edit bench core`: the core's speed figures against issue 2's
bounds, and the large-draft figures against issue 13's.

The document engine's figure comes from ``bench.core_document``, the
history's from ``bench.core_history``, the large drafts' from
``bench.core_large``; this suite runs all three, prints every bounded
figure beside its bound with pass or fail, and returns them all (plus
``bounds_met``) for the CLI to print as one JSON object.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from infitool_edit.bench import core_document, core_history, core_large

# name -> (comparison, bound, how the comparison reads)
BOUNDS: dict[str, tuple[Callable[[float, float], bool], float, str]] = {
    "apply_ms_1mb": (operator.le, 0.2, "<="),
    "versions_per_s": (operator.ge, 1000.0, ">="),
    "rewind_ms_100k": (operator.le, 100.0, "<="),
    "log_ms_100k": (operator.le, 200.0, "<="),
    "cost_growth": (operator.le, 1.1, "<="),
    # Issue 13: a 50 MB draft in at most 3x its size (growth over the RSS
    # before opening), a command on it within a second, a 10 MB command in
    # at most 10x its size.
    "large_draft_open_growth_mb": (operator.le, 150.0, "<="),
    "large_draft_command_growth_mb": (operator.le, 150.0, "<="),
    "large_draft_command_s": (operator.le, 1.0, "<="),
    "large_command_peak_rss_growth_mb": (operator.le, 100.0, "<="),
}


def check_bounds(figures: dict[str, float]) -> dict[str, bool]:
    """Whether each bounded figure meets its bound; a missing figure fails."""
    verdicts = {}
    for name, (meets, bound, _) in BOUNDS.items():
        value = figures.get(name)
        verdicts[name] = value is not None and meets(value, bound)
    return verdicts


def report(figures: dict[str, float], verdicts: dict[str, bool]) -> str:
    lines = []
    for name, (_, bound, reads) in BOUNDS.items():
        value = figures.get(name)
        shown = "missing" if value is None else f"{value:.4g}"
        lines.append(f"{name:>32} {shown:>10}  (bound {reads} {bound:g})  "
                     f"{'pass' if verdicts[name] else 'FAIL'}")
    return "\n".join(lines)


def main() -> dict:
    figures: dict = {}
    figures.update(core_document.measure())
    figures.update(core_history.measure())
    figures.update(core_large.measure())
    verdicts = check_bounds(figures)
    print(report(figures, verdicts), flush=True)
    figures["bounds_met"] = all(verdicts.values())
    return figures
