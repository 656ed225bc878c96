"""`infitool-edit bench commands` runs and reports its figures (a small run:
the figures themselves are for the benchmark, not for tests)."""

from __future__ import annotations

from infitool_edit.bench import commands as bench
from infitool_edit.commands import command_dfa


def test_the_benchmark_reports_every_figure(monkeypatch, capsys):
    monkeypatch.setattr(bench, "N_LINES", 50)
    monkeypatch.setattr(bench, "PASSES", 1)
    figures = bench.main()
    assert set(figures) == {
        "parse_us", "parse_error_us", "serialize_us", "dfa_build_ms", "dfa_states", "dfa_walk_mb_per_s",
    }
    assert figures["dfa_states"] == command_dfa().n_states
    assert all(value > 0 for value in figures.values())
    assert "µs/line" in capsys.readouterr().out
