"""Rank fusion from the same dict-of-dicts runs: bdnsca.fuse against ranx's fuse, same process.

Three ranx figures: dicts in and a Run out (``ranx.fuse(runs=[ranx.Run(d), ...])``, what a ranx
user calls from the same dicts: the headline ratio against ``bdnsca.fuse([d, ...])``), dicts in and
dict out (``to_dict()`` added: bdnsca.fuse's exact contract), and ``fuse`` alone on prebuilt Runs
(ranx's own conversion not counted, a lower bound for ranx). ranx's numba JIT is warmed
up first (on a small input) and not timed. Scores are checked equal on a sample of queries. The
runs' documents are in random order (runs read from files are usually already ranked).

    python benches/bench_fusion.py      # 10k queries x 5 runs x 1,000 docs; rrf and combsum
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import best_of, table  # noqa: E402

import bdnsca  # noqa: E402

RANX_NAME = {"rrf": "rrf", "combsum": "sum", "combmnz": "mnz"}


def make_runs(n_queries: int, n_runs: int, depth: int, pool: int = 2, seed: int = 0) -> list[dict]:
    """``n_runs`` runs of ``depth`` documents per query, drawn from ``pool * depth`` candidates
    per query (runs overlap in part, as retrievers over one corpus do); distinct random scores."""
    rng = np.random.default_rng(seed)
    names = [f"d{i}" for i in range(1_000_000)]  # shared str objects, as a real run's ids are
    runs: list[dict] = [{} for _ in range(n_runs)]
    for q in range(n_queries):
        qid = f"q{q}"
        cands = rng.choice(len(names), size=pool * depth, replace=False)
        for run in runs:
            picked = cands[rng.choice(pool * depth, size=depth, replace=False)]
            scores = (rng.random(depth) * 40.0).tolist()
            run[qid] = {names[d]: s for d, s in zip(picked.tolist(), scores, strict=True)}
    return runs


def time_ranx(ranx, runs: list[dict], method: str, norm: str, repeat: int, sample: dict) -> tuple[float, ...]:
    """(Run(dict), fuse, to_dict) seconds for ``runs``, best of ``repeat`` each; checks the
    fused scores of the ``sample`` queries found here."""
    t_build, built = best_of(lambda: [ranx.Run(r) for r in runs], repeat)
    t_fuse, fused = best_of(lambda: ranx.fuse(built, norm=norm, method=method), repeat)
    for q, want in sample.items():
        if q in runs[0]:
            assert dict(fused[q]) == want, f"{method}: scores differ from ranx on {q}"
    built = None  # free the input Runs before to_dict
    t0 = time.perf_counter()
    d = fused.to_dict()
    t_out = time.perf_counter() - t0
    del d, fused
    return t_build, t_fuse, t_out


def bench_method(runs: list[dict], method: str, args: argparse.Namespace, ranx) -> tuple[float, ...]:
    """Prints the table for one method; returns bdnsca's speed-up over ranx from dicts to a dict,
    from dicts to a Run, and over ranx's fuse alone (NaN without ranx)."""
    norm = "min-max"
    rows = []
    t_ours, ours = best_of(lambda: bdnsca.fuse(runs, method=method, norm=norm), args.repeat)
    n_fused = len(ours)
    sample = {q: ours[q] for q in list(ours)[:: max(1, len(ours) // 50)]}
    del ours
    ratios = (float("nan"),) * 3
    if ranx is not None:
        rm = RANX_NAME[method]
        small = [{q: run[q] for q in list(run)[:20]} for run in runs]
        t0 = time.perf_counter()
        ranx.fuse([ranx.Run(r) for r in small], norm=norm, method=rm)  # numba JIT warm-up
        warm = time.perf_counter() - t0
        # ranx's fuse holds ~2 GB per 1,000 queries of 5 x 1,000 docs: slices of queries keep
        # it in memory; per-query work is independent, so the slices' times add up.
        qids = list(runs[0])
        step = args.ranx_slice or len(qids)
        t_build = t_fuse = t_out = 0.0
        for s in range(0, len(qids), step):
            part = [{q: run[q] for q in qids[s : s + step]} for run in runs]
            b, f, o = time_ranx(ranx, part, rm, norm, args.ranx_repeat, sample)
            t_build, t_fuse, t_out = t_build + b, t_fuse + f, t_out + o
            del part
        sliced = f"{-(-len(qids) // step)} slices of {step:,} queries" if step < len(qids) else "one call"
        rows.append(
            ("ranx Run(dict) + fuse + to_dict", t_build + t_fuse + t_out, f"dicts in, dict out; {sliced}")
        )
        rows.append(("ranx Run(dict) + fuse", t_build + t_fuse, f"JIT warm-up {warm:.1f}s, not timed"))
        rows.append(("ranx fuse on prebuilt Runs", t_fuse, "conversion not counted"))
        ratios = ((t_build + t_fuse + t_out) / t_ours, (t_build + t_fuse) / t_ours, t_fuse / t_ours)
    rows.append(("bdnsca.fuse (dicts in, dict out)", t_ours, f"{n_fused:,} queries, one call"))
    size = f"{args.queries:,} queries x {args.runs} runs x {args.depth:,} docs"
    print(table(f"fuse {method} (norm {norm}), {size}", rows, rows[0][0]))
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--depth", type=int, default=1_000)
    ap.add_argument("--methods", default="rrf,combsum")
    ap.add_argument("--repeat", type=int, default=3, help="bdnsca timings: best of N")
    ap.add_argument("--ranx-repeat", type=int, default=1, help="ranx timings: best of N")
    ap.add_argument(
        "--ranx-slice",
        type=int,
        default=1000,
        help="queries per ranx call (0: all at once; see bench_method)",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = make_runs(args.queries, args.runs, args.depth)
    took = time.perf_counter() - t0
    print(f"built {args.runs} runs of {args.queries:,} queries x {args.depth:,} docs in {took:.1f}s")
    try:
        import ranx
    except ImportError:
        ranx = None
        print("ranx not installed: bdnsca alone")
    warnings.simplefilter("ignore")  # numba's type-safety chatter
    for method in args.methods.split(","):
        a, b, c = bench_method(runs, method, args, ranx)
        print(
            f"{method}: HEADLINE (each library's own call from the same dicts: ranx.fuse([Run(d), ...]) "
            f"returning a Run vs bdnsca.fuse([d, ...]) returning dicts): bdnsca {b:.1f}x ranx\n"
            f"{method}: also: {a:.1f}x with ranx's Run.to_dict() added (a dict out from both); "
            f"{c:.1f}x against ranx's fuse alone on prebuilt Runs (ranx's Run(dict) building not counted)"
        )


if __name__ == "__main__":
    main()
