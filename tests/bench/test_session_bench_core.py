"""The bounds check of `bench core` (the figures themselves are measured by
`infitool-edit bench core`, never in tests)."""

from infitool_edit.bench.core import BOUNDS, check_bounds, report


def test_every_bound_of_issues_2_and_13_is_checked_and_a_missing_figure_fails():
    within = {"apply_ms_1mb": 0.05, "versions_per_s": 5000.0, "rewind_ms_100k": 10.0,
              "log_ms_100k": 50.0, "cost_growth": 1.0, "large_draft_open_growth_mb": 100.0,
              "large_draft_command_growth_mb": 128.0, "large_draft_command_s": 0.8,
              "large_command_peak_rss_growth_mb": 58.0}
    assert set(BOUNDS) == set(within)
    assert all(check_bounds(within).values())
    slow = {**within, "versions_per_s": 999.0, "cost_growth": 1.2}
    verdicts = check_bounds(slow)
    assert [name for name, ok in verdicts.items() if not ok] == ["versions_per_s", "cost_growth"]
    partial = dict(within)
    del partial["log_ms_100k"]
    assert check_bounds(partial)["log_ms_100k"] is False
    text = report(slow, verdicts)
    assert "versions_per_s" in text and "FAIL" in text and ">= 1000" in text
