"""compare (paired randomization test + bootstrap CIs over every pair of runs): bdnsca vs ranx
(pytest-benchmark). The full-size table comes from ``python benches/bench_compare.py``."""

from __future__ import annotations

import os

import pytest
from bench_compare import METRICS, make_input

import bdnsca

pytest.importorskip("pytest_benchmark")

QUERIES = int(os.environ.get("BDNSCA_BENCH_COMPARE_QUERIES", "2000"))
RESAMPLES = int(os.environ.get("BDNSCA_BENCH_COMPARE_RESAMPLES", "1000"))


@pytest.fixture(scope="module")
def runs():
    qrels, runs = make_input(5, QUERIES, 100)
    return qrels, {f"run{i}": r for i, r in enumerate(runs)}


@pytest.mark.benchmark(group="compare")
def test_compare_bdnsca(benchmark, runs):
    qrels, named = runs
    res = benchmark(lambda: bdnsca.compare(qrels, named, METRICS, resamples=RESAMPLES, correction="none"))
    assert len(res.comparisons) == 10 * len(METRICS)


@pytest.mark.benchmark(group="compare")
@pytest.mark.skipif(
    not os.environ.get("BDNSCA_BENCH_RANX"), reason="set BDNSCA_BENCH_RANX=1 (JIT warm-up > 1 min)"
)
def test_compare_ranx(benchmark, runs):
    ranx = pytest.importorskip("ranx")
    qrels, named = runs
    rq, rr = ranx.Qrels(qrels), [ranx.Run(r, name=n) for n, r in named.items()]
    ranx.compare(rq, rr[:2], METRICS, stat_test="fisher", n_permutations=10)
    benchmark(lambda: ranx.compare(rq, rr, METRICS, stat_test="fisher", n_permutations=RESAMPLES))
