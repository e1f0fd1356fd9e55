"""pytest-benchmark suite: ``pytest benches/`` times bdnsca against its peers on the same inputs.

Sizes: BDNSCA_BENCH_DOCS (default 20000), BDNSCA_BENCH_QUERIES (2000). ranx's numba JIT warm-up
takes over a minute here, so its benchmark runs only with BDNSCA_BENCH_RANX=1. The full-size
comparison tables come from ``python benches/bench_retrieval.py`` and ``bench_metrics.py``.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("DISABLE_TQDM", "1")

from common import corpus_and_queries  # noqa: E402

N_DOCS = int(os.environ.get("BDNSCA_BENCH_DOCS", "20000"))
N_QUERIES = int(os.environ.get("BDNSCA_BENCH_QUERIES", "2000"))


@pytest.fixture(scope="session")
def zipf():
    return corpus_and_queries(N_DOCS, N_QUERIES)
