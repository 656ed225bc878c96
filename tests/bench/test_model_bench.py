"""The model benchmark's parts run and measure what they say (no timing assertions: figures
come from `infitool-edit bench model`)."""

import pytest
import torch

from infitool_edit.bench import model as bench
from infitool_edit.model import MambaLM

pytest.importorskip("transformers")


def test_the_llama_it_compares_against_has_mambas_parameter_count_and_decodes_over_a_filled_cache():
    with torch.device("meta"):
        mamba_parameters = sum(p.numel() for p in MambaLM(bench.MAMBA_130M).parameters())
    llama = bench._llama_of_equal_size(mamba_parameters)
    llama_parameters = sum(p.numel() for p in llama.parameters())
    assert abs(llama_parameters - mamba_parameters) / mamba_parameters < 0.01
    assert llama.config.num_key_value_heads == bench.LLAMA_KV_HEADS
    timer = bench.kv_cache_stepper(llama, context=16)
    assert timer() > 0


def test_weight_bytes_counts_a_tied_matrix_once():
    model = MambaLM(bench.SMALL)
    distinct = sum(p.nbytes for p in model.parameters())  # parameters() already skips the tied duplicate
    assert bench.weight_bytes(model) == distinct
    assert model.lm_head.weight is model.embeddings.weight


def test_flatness_reads_the_history_it_claims_and_reports_every_figure():
    figures = bench.flatness_and_rss(total_tokens=3000, chunk=1000, rounds=5)
    assert set(figures) == {"step_ms_small_1k", "step_ms_small_1m", "flatness", "rss_mb_1k", "rss_mb_1m", "rss_growth"}
    assert all(value > 0 for value in figures.values())


def test_interleaved_takes_the_median_ratio_of_neighbouring_rounds():
    firsts, seconds = iter([2.0, 4.0, 30.0]), iter([1.0, 2.0, 10.0])
    first, second, ratio = bench.interleaved(lambda: next(firsts), lambda: next(seconds), rounds=3)
    assert (first, second, ratio) == (4.0, 2.0, 2.0)
