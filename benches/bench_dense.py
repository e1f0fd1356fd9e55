"""Exact dense top-k: bdnsca's DenseIndex (Rust, sgemm tiles + bounded heaps) against numpy
(BLAS matrix product per block of queries, then argpartition and a sort of the k best), on the
same unit-length float32 embeddings, same process. Reports queries per second; the index
build (copy + id ranks) is timed apart. The two top-k sets are compared (float32 rounding can
swap documents whose scores differ in the last bits).

    python benches/bench_dense.py      # 1M docs x 384 dims, 1k queries, top-100 (~3 GB of RAM)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import best_of, table  # noqa: E402

from bdnsca._core import DenseIndex  # noqa: E402


def unit_rows(rng: np.random.Generator, n: int, dim: int, chunk: int = 100_000) -> np.ndarray:
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        block = rng.standard_normal((min(chunk, n - s), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s : s + len(block)] = block
    return out


def numpy_topk(docs: np.ndarray, queries: np.ndarray, k: int, block: int = 64) -> np.ndarray:
    """Positions of each query's k best documents, best first (ties in numpy's order)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), block):
        scores = queries[s : s + block] @ docs.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(scores, part, axis=1)
        out[s : s + block] = np.take_along_axis(part, np.argsort(-best, axis=1, kind="stable"), axis=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="bdnsca threads (default: all cores)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    docs = unit_rows(rng, args.docs, args.dim)
    queries = unit_rows(rng, args.queries, args.dim)
    ids = [f"doc{i}" for i in range(args.docs)]
    print(f"built {args.docs:,} x {args.dim} float32 embeddings in {time.perf_counter() - t0:.1f}s")
    t_build, index = best_of(lambda: DenseIndex(docs, ids, normalize=False), 1)
    t_np, ref = best_of(lambda: numpy_topk(docs, queries, args.k), args.repeat)
    t_rs, (pos, _) = best_of(
        lambda: index.search(queries, args.k, normalize=False, threads=args.threads), args.repeat
    )
    pairs = zip(pos.tolist(), ref.tolist(), strict=True)
    overlap = float(np.mean([len(set(a) & set(b)) / args.k for a, b in pairs]))
    top1 = float(np.mean(pos[:, 0] == ref[:, 0]))
    nq = args.queries
    rows = [
        ("numpy matmul + argpartition", t_np, f"{nq / t_np:,.1f} queries/s; blocks of 64 queries"),
        ("bdnsca DenseIndex.search", t_rs, f"{nq / t_rs:,.1f} queries/s; exact, tie rule"),
    ]
    print(table(f"exact top-{args.k}, {args.docs:,} x {args.dim} float32, {nq:,} queries", rows, rows[0][0]))
    print(f"index build (copy + id ranks, once): {t_build:.2f}s")
    print(f"agreement with numpy: top-{args.k} overlap {overlap:.4f}, same top-1 {top1:.4f}")


if __name__ == "__main__":
    main()
