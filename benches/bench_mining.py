"""Hard-negative mining at corpus scale: bdnsca against a straightforward Python reference
(bm25s retrieval plus Python filtering) on the same synthetic input. Each side runs in its own
process so that its peak memory is its own; prints wall times, peak RSS and the ratio.

    python benches/bench_mining.py                     # 1M documents, 10k queries, 10 + 4 negatives
    python benches/bench_mining.py --docs 100000 --queries 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import vocabulary, zipf_texts  # noqa: E402

N_DOMAINS = 20


def make_world(n_docs: int, n_queries: int, seed: int = 0):
    """Zipf documents in 20 domains; 1% of documents are near duplicates of another; each query
    is 5 words of a target document (its positive)."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(100_000, seed, max_syllables=5)
    texts = zipf_texts(n_docs, vocab, mean_len=40, seed=seed + 1)
    domains = rng.integers(0, N_DOMAINS, size=n_docs)
    targets = rng.choice(n_docs, size=n_queries, replace=False)
    n_twins = n_docs // 100
    for i, src in zip(rng.choice(n_docs, n_twins, replace=False), targets[:n_twins], strict=False):
        texts[i] = texts[src] + " revised"  # a near duplicate of a query's positive
        domains[i] = domains[src]
    queries = []
    for t in targets:
        words = texts[t].split()
        queries.append(" ".join(rng.choice(words, size=min(5, len(words)), replace=False)))
    return texts, domains.tolist(), queries, targets.tolist()


def run_ours(texts, domains, queries, targets, args):
    from bdnsca.data.io import Corpus, Document, Query
    from bdnsca.retrieval.mining import mine_hard_negatives

    corpus = Corpus(
        [Document(str(i), t, "", {"domain": d}) for i, (t, d) in enumerate(zip(texts, domains, strict=True))]
    )
    qs = [
        Query(f"q{i}", q, {str(t): 1}, {"domain": domains[t]})
        for i, (q, t) in enumerate(zip(queries, targets, strict=True))
    ]
    t0 = time.perf_counter()
    res = mine_hard_negatives(corpus, qs, stopwords=None, stemmer=None)
    wall = time.perf_counter() - t0
    return (
        wall,
        res.summary["negatives"]["total"],
        res.summary["suspected_false_negatives"]["count"],
        res.summary["timings_s"],
    )


def shingles(text: str) -> set[str]:
    norm = " ".join(text.lower().split())
    return {norm[i : i + 5] for i in range(len(norm) - 4)} or {norm}


def run_reference(texts, domains, queries, targets, args):
    import bm25s

    backend = "numba" if args.reference_backend == "numba" else "numpy"
    warm = bm25s.BM25(backend=backend)  # numba compiles on first use: keep that out of the timing
    warm.index(bm25s.tokenize(texts[:100], stopwords=None, show_progress=False), show_progress=False)
    warm.retrieve(bm25s.tokenize(queries[:2], stopwords=None, show_progress=False), k=5, show_progress=False)
    t0 = time.perf_counter()
    model = bm25s.BM25(backend=backend)
    model.index(bm25s.tokenize(texts, stopwords=None, show_progress=False), show_progress=False)
    t_index = time.perf_counter()
    q_tokens = bm25s.tokenize(queries, stopwords=None, show_progress=False)
    docs, scores = model.retrieve(q_tokens, k=100, show_progress=False, n_threads=args.threads)
    t_retrieve = time.perf_counter()
    negatives = suspects = 0
    for qi, target in enumerate(targets):
        pos_sh = shingles(texts[target])
        same, cross = [], {}
        for d, s in zip(docs[qi], scores[qi], strict=True):
            d = int(d)
            if d == target or s <= 0:
                continue
            sh = shingles(texts[d])
            if len(pos_sh & sh) / len(pos_sh | sh) >= 0.8:
                suspects += 1
                continue
            if domains[d] == domains[target]:
                same.append(d)
            else:
                cross.setdefault(domains[d], []).append(d)
        picked_cross, rnd = [], 0
        while len(picked_cross) < 4 and any(len(v) > rnd for v in cross.values()):
            for v in cross.values():
                if rnd < len(v) and len(picked_cross) < 4:
                    picked_cross.append(v[rnd])
            rnd += 1
        negatives += len(same[:10]) + len(picked_cross)
    t_done = time.perf_counter()
    phases = {"index": t_index - t0, "retrieve": t_retrieve - t_index, "filter": t_done - t_retrieve}
    return t_done - t0, negatives, suspects, {k: round(v, 4) for k, v in phases.items()}


def child(args) -> None:
    os.environ.setdefault("DISABLE_TQDM", "1")
    texts, domains, queries, targets = make_world(args.docs, args.queries)
    fn = run_ours if args.child == "ours" else run_reference
    wall, negatives, suspects, timings = fn(texts, domains, queries, targets, args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_mib": peak,
                "negatives": negatives,
                "suspects": suspects,
                "timings": timings,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2, help="reference retrieval threads (bm25s n_threads)")
    ap.add_argument("--reference-backend", choices=["numba", "numpy"], default="numba")
    ap.add_argument("--child", choices=["ours", "reference"], default=None)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    results = {}
    for side in ("ours", "reference"):
        cmd = [
            sys.executable,
            __file__,
            "--child",
            side,
            "--docs",
            str(args.docs),
            "--queries",
            str(args.queries),
            "--threads",
            str(args.threads),
            "--reference-backend",
            args.reference_backend,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    o, r = results["ours"], results["reference"]
    print(f"\nMining 10 + 4 negatives, {args.docs:,} documents, {args.queries:,} queries, 2 cores")
    print(f"{'':<40}{'wall (s)':>10}{'peak RSS (MiB)':>16}{'negatives':>11}{'twins kept out':>16}")
    for name, x in (
        ("bdnsca (index + mine, Rust)", o),
        (f"bm25s[{args.reference_backend}] + Python filtering", r),
    ):
        print(f"{name:<40}{x['wall_s']:>10.2f}{x['peak_mib']:>16.0f}{x['negatives']:>11}{x['suspects']:>16}")
    print(f"speed-up: {r['wall_s'] / o['wall_s']:.1f}x")
    print(f"bdnsca phases (s): {o['timings']}")
    print(f"reference phases (s): {r['timings']}")
    print(f"load average after the run (1, 5, 15 min): {os.getloadavg()}")
    print("peak RSS includes the corpus held as Python strings by each process")


if __name__ == "__main__":
    main()
