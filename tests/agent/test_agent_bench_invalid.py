"""The agent benchmark's headline figure, "0 invalid commands in 10,000",
measured by the benchmark's own code on a smaller sample: a mask that lets
one malformed line through fails here, not only in `infitool-edit bench agent`."""

from __future__ import annotations

import torch

from infitool_edit.bench import agent as bench


def test_the_benchmarks_invalid_command_count_is_zero_on_a_sample(monkeypatch, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(bench, "VALIDITY_BATCH", 100)  # one batch: ~3 s on one core
    try:
        invalid = bench.invalid_commands(100)
    finally:
        torch.set_num_threads(threads)
    assert "invalid_commands: 0 of 100" in capsys.readouterr().out
    assert invalid == 0
