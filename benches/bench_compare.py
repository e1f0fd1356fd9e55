"""Paired comparison of many runs: ``bdnsca.compare`` against ranx's ``compare``, same process,
same qrels and runs (ranx's objects are built before timing; its JIT is warmed first).

    python benches/bench_compare.py                      # 10 runs x 10k queries x 3 metrics, 10k resamples
    python benches/bench_compare.py --queries 2000 --resamples 2000   # quick

Both run the paired randomization (Fisher) test with the same number of permutations on every
pair of runs and metric; bdnsca also computes a paired bootstrap interval for every pair (ranx
has none). "Same decisions": with ranx's threshold (p < alpha, no correction) both call the same
pairs significant, apart from pairs whose p-values sit within Monte-Carlo error of alpha.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import best_of, table  # noqa: E402

import bdnsca  # noqa: E402

METRICS = ["mrr@10", "ndcg@10", "recall@100"]


def make_input(n_runs: int, n_queries: int, depth: int, seed: int = 0):
    """Runs that differ by a little: run r moves relevant documents up with probability ~r/40."""
    rng = np.random.default_rng(seed)
    qrels, runs = {}, [dict() for _ in range(n_runs)]
    for q in range(n_queries):
        qid = f"q{q}"
        docs = rng.choice(100_000, size=depth + 10, replace=False)
        rel = docs[rng.choice(depth + 10, size=rng.integers(1, 6), replace=False)]
        qrels[qid] = {f"d{d}": int(rng.integers(1, 3)) for d in rel}
        base = rng.random(depth)
        for r in range(n_runs):
            s = base + rng.normal(0, 0.3, depth)
            boost = np.isin(docs[:depth], rel) * (rng.random(depth) < r / 40)
            runs[r][qid] = {f"d{d}": float(v) for d, v in zip(docs[:depth], s + boost, strict=True)}
    return qrels, runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    qrels, runs = make_input(args.runs, args.queries, args.depth)
    named = {f"run{r}": run for r, run in enumerate(runs)}

    def ours():
        return bdnsca.compare(
            qrels,
            named,
            METRICS,
            test="randomization",
            resamples=args.resamples,
            alpha=args.alpha,
            correction="none",
        )

    rows = []
    import ranx

    rq = ranx.Qrels(qrels)
    rr = [ranx.Run(run, name=name) for name, run in named.items()]
    small = [ranx.Run({q: named[n][q] for q in list(qrels)[:50]}, name=n) for n in list(named)[:2]]
    ranx.compare(
        ranx.Qrels({q: qrels[q] for q in list(qrels)[:50]}),
        small,
        METRICS,
        stat_test="fisher",
        n_permutations=100,
    )  # JIT warm-up

    def theirs():
        return ranx.compare(
            rq, rr, METRICS, stat_test="fisher", n_permutations=args.resamples, max_p=args.alpha
        )

    # interleave: ours, theirs, ours, theirs ... best of each
    t_ours, t_ranx = math.inf, math.inf
    for _ in range(args.repeat):
        t, res = best_of(ours, 1)
        t_ours = min(t_ours, t)
        t, rep = best_of(theirs, 1)
        t_ranx = min(t_ranx, t)
    rows.append(("bdnsca.compare (randomization + CI)", t_ours, ""))
    rows.append(("ranx.compare (fisher)", t_ranx, ""))

    agree, near, total = 0, 0, 0
    mc = 4 * math.sqrt(args.alpha * (1 - args.alpha) / args.resamples)
    for c in res.comparisons:
        p_ranx = rep.comparisons[c.a, c.b][c.metric]["p_value"]
        total += 1
        same = (c.p_value < args.alpha) == (p_ranx < args.alpha)
        agree += same
        near += (not same) and min(abs(c.p_value - args.alpha), abs(p_ranx - args.alpha)) < mc
        assert abs(res.means[c.a][c.metric] - rep.results[c.a][c.metric]) < 1e-9
    title = (
        f"compare: {args.runs} runs x {args.queries:,} queries x {len(METRICS)} metrics, "
        f"{args.resamples:,} permutations ({os.cpu_count()} cores)"
    )
    print(table(title, rows, "ranx.compare (fisher)"))
    print(
        f"same decisions at p < {args.alpha}: {agree}/{total} (disagreements within Monte-Carlo error of "
        f"alpha: {near}); means equal ranx's"
    )


if __name__ == "__main__":
    main()
