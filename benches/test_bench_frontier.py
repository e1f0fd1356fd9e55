"""pareto_frontier on 1M points (d = 2) and 100k points (d = 3): bdnsca vs paretoset on the same
arrays (pytest-benchmark). paretoset's numba JIT is warmed up before timing."""

from __future__ import annotations

import numpy as np
import pytest

import bdnsca

pytest.importorskip("pytest_benchmark")
CASES = {"1M-d2": (1_000_000, 2), "100k-d3": (100_000, 3)}


@pytest.fixture(scope="module", params=list(CASES))
def points(request):
    n, d = CASES[request.param]
    return np.random.default_rng(0).random((n, d)), [False] + [True] * (d - 1)


@pytest.mark.benchmark(group="pareto")
def test_pareto_bdnsca(benchmark, points):
    pts, maximize = points
    idx = benchmark(lambda: bdnsca.pareto_frontier(pts, maximize))
    assert len(idx) > 0


@pytest.mark.benchmark(group="pareto")
def test_pareto_paretoset(benchmark, points):
    paretoset = pytest.importorskip("paretoset")
    pts, maximize = points
    sense = ["max" if m else "min" for m in maximize]
    paretoset.paretoset(pts[:1000], sense=sense)
    mask = benchmark(lambda: paretoset.paretoset(pts, sense=sense))
    assert np.flatnonzero(mask).tolist() == bdnsca.pareto_frontier(pts, maximize).tolist()
