"""Fusion and dense top-k at small sizes (pytest-benchmark): bdnsca.fuse vs ranx's fuse, and
DenseIndex.search vs numpy. Full-size tables: ``python benches/bench_fusion.py`` and
``python benches/bench_dense.py``. Sizes: BDNSCA_BENCH_FUSE_QUERIES (default 1000),
BDNSCA_BENCH_DENSE_DOCS (default 50000)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from bench_dense import numpy_topk, unit_rows
from bench_fusion import make_runs

import bdnsca
from bdnsca._core import DenseIndex

pytest.importorskip("pytest_benchmark")

FUSE_QUERIES = int(os.environ.get("BDNSCA_BENCH_FUSE_QUERIES", "1000"))
DENSE_DOCS = int(os.environ.get("BDNSCA_BENCH_DENSE_DOCS", "50000"))


@pytest.fixture(scope="module")
def runs():
    return make_runs(FUSE_QUERIES, 5, 200)


@pytest.fixture(scope="module")
def embeddings():
    rng = np.random.default_rng(0)
    return unit_rows(rng, DENSE_DOCS, 384), unit_rows(rng, 100, 384)


@pytest.mark.benchmark(group="fuse")
@pytest.mark.parametrize("method", ["rrf", "combsum"])
def test_fuse_bdnsca(benchmark, runs, method):
    out = benchmark(lambda: bdnsca.fuse(runs, method=method))
    assert len(out) == FUSE_QUERIES


@pytest.mark.benchmark(group="fuse")
@pytest.mark.parametrize("method", ["rrf", "sum"])
@pytest.mark.skipif(
    not os.environ.get("BDNSCA_BENCH_RANX"), reason="set BDNSCA_BENCH_RANX=1 (JIT warm-up > 1 min)"
)
def test_fuse_ranx(benchmark, runs, method):
    ranx = pytest.importorskip("ranx")
    warnings.simplefilter("ignore")
    ranx.fuse([ranx.Run(r) for r in runs], method=method)  # numba JIT warm-up
    benchmark(lambda: ranx.fuse([ranx.Run(r) for r in runs], method=method))


@pytest.mark.benchmark(group="dense top-100")
def test_dense_bdnsca(benchmark, embeddings):
    docs, queries = embeddings
    index = DenseIndex(docs, [str(i) for i in range(len(docs))], normalize=False)
    pos, _ = benchmark(lambda: index.search(queries, 100, normalize=False))
    assert pos.shape == (100, 100)


@pytest.mark.benchmark(group="dense top-100")
def test_dense_numpy(benchmark, embeddings):
    docs, queries = embeddings
    benchmark(lambda: numpy_topk(docs, queries, 100))
