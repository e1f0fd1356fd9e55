"""The cost of --ray on one machine: local batch search and mining against the same work fanned
out as Ray tasks on a local cluster (``--ray local``), on bench_mining's synthetic Zipf world.
Reports the local runs (best of 2), the cluster start-up separately, the first (cold: worker
processes start and load the index) and second (warm) Ray runs, the end-to-end CLI wall
times, and checks that every Ray output equals the local one byte for byte.

    python benches/bench_ray.py                          # 50k documents, 10k queries
    python benches/bench_ray.py --docs 200000 --queries 50000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))

from bench_mining import make_world  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def write_world(root: Path, n_docs: int, n_queries: int) -> tuple[Path, Path]:
    texts, domains, queries, targets = make_world(n_docs, n_queries)
    corpus, gold = root / "corpus.jsonl", root / "gold.jsonl"
    with corpus.open("w") as f:
        for i, (t, d) in enumerate(zip(texts, domains, strict=True)):
            f.write(json.dumps({"doc_id": str(i), "title": "", "text": t, "domain": str(d)}) + "\n")
    with gold.open("w") as f:
        for i, (q, t) in enumerate(zip(queries, targets, strict=True)):
            f.write(json.dumps({"query_id": f"q{i}", "query": q, "relevant_doc_ids": [str(t)]}) + "\n")
    return corpus, gold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=100)
    args = ap.parse_args()

    from bdnsca import BM25
    from bdnsca.data.io import read_queries
    from bdnsca.retrieval import distributed
    from bdnsca.retrieval.bm25 import search_to_file
    from bdnsca.retrieval.mining import mine_hard_negatives

    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        root = Path(tmp)
        corpus, gold = write_world(root, args.docs, args.queries)
        index = root / "index.bm25"
        subprocess.run(["bdnsca", "index", "--corpus", corpus, "-o", index], check=True, capture_output=True)
        qs = read_queries(gold)
        rows["index load"], bm25 = timed(lambda: BM25.load(index))

        rows["search local"] = min(
            timed(lambda: search_to_file(bm25, qs, root / "l.trec", k=args.k))[0] for _ in range(2)
        )
        rows["ray start (ray.init local)"], _ = timed(lambda: distributed.connect("local"))
        for run in ("cold", "warm"):
            rows[f"search ray ({run})"], _ = timed(
                lambda: distributed.search_to_file_ray(index, qs, root / "r.trec", k=args.k)
            )
            assert (root / "l.trec").read_bytes() == (root / "r.trec").read_bytes()

        def mine(miner=None):
            res = mine_hard_negatives(corpus, gold, bm25=bm25, miner=miner)
            res.summary.pop("timings_s")
            return res

        rows["mine local"], local = timed(mine)
        rows["mine local"] = min(rows["mine local"], timed(mine)[0])
        for run in ("cold", "warm"):
            rows[f"mine ray ({run})"], remote = timed(lambda: mine(distributed.ray_miner(index)))
            assert (remote.hard_negatives, remote.pairs, remote.summary) == (
                local.hard_negatives,
                local.pairs,
                local.summary,
            )
        import ray

        rows["ray shutdown"], _ = timed(ray.shutdown)

        base = ["bdnsca", "search", "--index", index, "--queries", gold, "-k", str(args.k)]
        rows["CLI search local"], _ = timed(
            lambda: subprocess.run([*base, "-o", root / "c.trec"], check=True)
        )
        rows["CLI search --ray local"], _ = timed(
            lambda: subprocess.run([*base, "-o", root / "c2.trec", "--ray", "local"], check=True)
        )
        assert (root / "c.trec").read_bytes() == (root / "c2.trec").read_bytes()

    print(f"\n{args.docs:,} documents, {args.queries:,} queries, k={args.k}, {os.cpu_count()} CPUs")
    for name, s in rows.items():
        print(f"  {name:32s} {s:8.2f} s")
    for what in ("search", "mine"):
        loc = rows[f"{what} local"]
        print(
            f"  {what}: ray/local = {rows[f'{what} ray (cold)'] / loc:.2f}x cold, "
            f"{rows[f'{what} ray (warm)'] / loc:.2f}x warm"
        )
    print(f"  CLI end to end: ray/local = {rows['CLI search --ray local'] / rows['CLI search local']:.2f}x")
    print("  every Ray output equals the local one byte for byte")


if __name__ == "__main__":
    main()
