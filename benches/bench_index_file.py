"""Index files at scale: build, save and load a BM25 index over a synthetic Zipf corpus.

python benches/bench_index_file.py               # 1M documents
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import vocabulary, zipf_texts  # noqa: E402

import bdnsca  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1_000_000)
    args = ap.parse_args()
    texts = zipf_texts(args.docs, vocabulary(100_000, 0, max_syllables=5), mean_len=40, seed=1)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "index.bdnsca")
        t = time.perf_counter()
        bm = bdnsca.BM25().index(texts)
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        bm.save(path)
        t_save = time.perf_counter() - t
        size = os.path.getsize(path)
        t = time.perf_counter()
        back = bdnsca.BM25.load(path)
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        back.search(texts[123][:40], k=10)
        t_query = time.perf_counter() - t
    print(
        f"{args.docs:,} docs, {back.n_postings:,} postings: build {t_build:.2f}s, save {t_save:.2f}s, "
        f"file {size / 2**20:.0f} MiB, load {t_load:.2f}s, first query {t_query * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
