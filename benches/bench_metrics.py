"""IR metrics from the same dict-of-dicts input: bdnsca against pytrec_eval and ranx, same
process. The conversion from Python objects is part of what is timed, for every library.

    python benches/bench_metrics.py            # 10k queries x 100 ranked documents, 5 metrics
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import best_of, table  # noqa: E402

import bdnsca  # noqa: E402

OURS = ["mrr@10", "ndcg@10", "recall@100", "precision@10", "map"]
TREC = {"recip_rank", "ndcg_cut.10", "recall.100", "P.10", "map"}
RANX = ["mrr@10", "ndcg@10", "recall@100", "precision@10", "map"]


def make_input(n_queries: int, depth: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        docs = rng.choice(100_000, size=depth + 20, replace=False)
        rels = docs[rng.choice(depth + 20, size=rng.integers(1, 12), replace=False)]
        qrels[qid] = {f"d{d}": int(rng.integers(1, 4)) for d in rels}
        scores = np.round(rng.random(depth) * 50, 2)  # 2 decimals: some ties
        run[qid] = {f"d{d}": float(s) for d, s in zip(docs[:depth], scores, strict=True)}
    return qrels, run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    qrels, run = make_input(args.queries, args.depth)
    rows = []
    t_ours, ours = best_of(lambda: bdnsca.evaluate(qrels, run, OURS), args.repeat)
    t1, _ = best_of(lambda: bdnsca.evaluate(qrels, run, OURS, per_query=True), args.repeat)
    try:
        import pytrec_eval

        def trec():
            per_q = pytrec_eval.RelevanceEvaluator(qrels, TREC).evaluate(run)
            return {m: np.mean([v[m] for v in per_q.values()]) for m in next(iter(per_q.values()))}

        t_trec, ref = best_of(trec, args.repeat)
        rows.append(("pytrec_eval", t_trec, ""))
        assert abs(ref["map"] - ours["map"]) < 1e-9 and abs(ref["ndcg_cut_10"] - ours["ndcg@10"]) < 1e-9
    except ImportError:
        print("pytrec_eval not installed")
    try:
        import ranx

        t0 = time.perf_counter()
        ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), RANX)  # numba JIT warm-up
        warm = time.perf_counter() - t0
        t_ranx, _ = best_of(lambda: ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), RANX), args.repeat)
        rows.append(("ranx (after JIT warm-up)", t_ranx, f"warm-up took {warm:.1f}s"))
    except ImportError:
        print("ranx not installed")
    rows.append(("bdnsca evaluate", t_ours, ""))
    rows.append(("bdnsca evaluate, per_query=True", t1, "per-query dicts built too"))
    base = rows[0][0]
    print(table(f"evaluate, {args.queries:,} queries x {args.depth} ranked docs, 5 metrics", rows, base))
    if any(r[0].startswith("ranx") for r in rows):
        t_r = dict((r[0], r[1]) for r in rows)["ranx (after JIT warm-up)"]
        print(f"bdnsca vs ranx: {t_r / t_ours:.1f}x faster")


if __name__ == "__main__":
    main()
