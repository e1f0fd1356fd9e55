"""evaluate from the same dict-of-dicts: bdnsca vs pytrec_eval and ranx (pytest-benchmark)."""

from __future__ import annotations

import os

import pytest
from bench_metrics import OURS, RANX, TREC, make_input

import bdnsca

pytest.importorskip("pytest_benchmark")


@pytest.fixture(scope="module")
def judged():
    return make_input(int(os.environ.get("BDNSCA_BENCH_EVAL_QUERIES", "10000")), 100)


@pytest.mark.benchmark(group="evaluate")
def test_evaluate_bdnsca(benchmark, judged):
    qrels, run = judged
    means = benchmark(lambda: bdnsca.evaluate(qrels, run, OURS))
    assert set(means) == set(OURS)


@pytest.mark.benchmark(group="evaluate")
def test_evaluate_pytrec_eval(benchmark, judged):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    qrels, run = judged
    benchmark(lambda: pytrec_eval.RelevanceEvaluator(qrels, TREC).evaluate(run))


@pytest.mark.benchmark(group="evaluate")
@pytest.mark.skipif(
    not os.environ.get("BDNSCA_BENCH_RANX"), reason="set BDNSCA_BENCH_RANX=1 (JIT warm-up > 1 min)"
)
def test_evaluate_ranx(benchmark, judged):
    ranx = pytest.importorskip("ranx")
    qrels, run = judged
    ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), RANX)
    benchmark(lambda: ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), RANX))
