"""BM25 index build and batch search: bdnsca against bm25s, rank-bm25 and tantivy, same input,
same process. Prints a table of times and ratios.

    python benches/bench_retrieval.py                 # 100k documents, 10k queries
    python benches/bench_retrieval.py --docs 20000 --queries 2000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import best_of, corpus_and_queries, table  # noqa: E402

import bdnsca  # noqa: E402


def bm25s_memory(model) -> int:
    """bm25s's index: its score matrix arrays and its vocabulary dict (table and key strings)."""
    s = model.scores
    vocab = sys.getsizeof(model.vocab_dict) + sum(sys.getsizeof(k) for k in model.vocab_dict)
    return s["data"].nbytes + s["indices"].nbytes + s["indptr"].nbytes + vocab


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--rank-bm25-sample", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("DISABLE_TQDM", "1")
    import bm25s

    docs, queries = corpus_and_queries(args.docs, args.queries)
    print(
        f"corpus: {len(docs):,} docs, {sum(len(d.split()) for d in docs):,} tokens; {len(queries):,} queries"
    )

    # ---------------------------------------------------------------- index build
    def build_ours():
        return bdnsca.BM25().index(docs)

    def build_bm25s():
        tokens = bm25s.tokenize(docs, stopwords=None, show_progress=False, lower=True)
        m = bm25s.BM25()
        m.index(tokens, show_progress=False)
        return m

    t_ours, ours = best_of(build_ours, args.repeat)
    t_ref, ref = best_of(build_bm25s, 1)
    rows = [("bm25s (tokenize + index)", t_ref, ""), ("bdnsca (tokenize + index)", t_ours, "")]
    try:
        import tantivy

        def build_tantivy():
            d = tempfile.mkdtemp()
            sb = tantivy.SchemaBuilder()
            sb.add_text_field("body", stored=False)
            schema = sb.build()
            ix = tantivy.Index(schema, path=d)
            w = ix.writer(heap_size=512_000_000, num_threads=1)
            for i, t in enumerate(docs):
                w.add_document(tantivy.Document(body=t))
                del i
            w.commit()
            w.wait_merging_threads()
            ix.reload()
            return ix, d

        t_tan, (tan_ix, tan_dir) = best_of(build_tantivy, 1)
        rows.append(("tantivy (1 writer thread)", t_tan, ""))
    except ImportError:
        tan_ix = None
    print(table(f"Index build from raw text, {len(docs):,} documents", rows, "bm25s (tokenize + index)"))
    mem_ours, mem_ref = ours.memory_bytes, bm25s_memory(ref)
    print(
        f"index memory: bdnsca {mem_ours / 2**20:.2f} MiB (the flat search index plus the segments it is "
        f"compiled from, ids included), bm25s {mem_ref / 2**20:.2f} MiB (score matrix and vocabulary; "
        f"ratio {mem_ours / mem_ref:.3f})"
    )

    # ---------------------------------------------------------------- batch search
    k = args.k
    q_tokens_ref = bm25s.tokenize(queries, stopwords=None, show_progress=False, lower=True)
    rows = []
    t1, (ids1, _) = best_of(lambda: ours.search_batch(queries, k=k, threads=1), args.repeat)
    t2, _ = best_of(lambda: ours.search_batch(queries, k=k, threads=2), args.repeat)
    t_ref, (ref_docs, _) = best_of(
        lambda: ref.retrieve(q_tokens_ref, k=k, show_progress=False, n_threads=1, backend_selection="numpy"),
        1,
    )
    rows.append(("bm25s numpy backend, 1 thread", t_ref, f"{len(queries) / t_ref:,.0f} q/s"))
    try:
        ref_nb = bm25s.BM25(backend="numba")
        ref_nb.index(bm25s.tokenize(docs, stopwords=None, show_progress=False), show_progress=False)
        ref_nb.retrieve(q_tokens_ref, k=k, show_progress=False, n_threads=1)  # JIT warm-up
        t_nb, _ = best_of(lambda: ref_nb.retrieve(q_tokens_ref, k=k, show_progress=False, n_threads=1), 1)
        rows.append(("bm25s numba backend, 1 thread", t_nb, f"{len(queries) / t_nb:,.0f} q/s (after JIT)"))
    except Exception as exc:  # numba missing or failing: report, go on
        print(f"bm25s numba backend unavailable: {exc!r}")
    rows.append(("bdnsca search_batch, 1 thread", t1, f"{len(queries) / t1:,.0f} q/s"))
    rows.append(
        ("bdnsca search_batch, 2 threads", t2, f"{len(queries) / t2:,.0f} q/s; scaling {t1 / t2:.2f}x")
    )
    if tan_ix is not None:
        searcher = tan_ix.searcher()

        def tantivy_search():
            out = []
            for q in queries:
                out.append(searcher.search(tan_ix.parse_query(q, ["body"]), k).hits)
            return out

        t_tan, _ = best_of(tantivy_search, 1)
        rows.append(("tantivy, 1 thread (python loop)", t_tan, f"{len(queries) / t_tan:,.0f} q/s"))
        shutil.rmtree(tan_dir, ignore_errors=True)
    try:
        from rank_bm25 import BM25Okapi

        rb = BM25Okapi([d.split() for d in docs], k1=1.5, b=0.75)
        sample = queries[: args.rank_bm25_sample]

        def rank_bm25_search():
            return [np.argsort(-rb.get_scores(q.split()))[:k] for q in sample]

        t_rb, _ = best_of(rank_bm25_search, 1)
        t_rb_all = t_rb * len(queries) / len(sample)
        rows.append(("rank-bm25 (extrapolated)", t_rb_all, f"{len(sample)} queries timed, scaled"))
    except ImportError:
        pass
    print(
        table(
            f"Batch top-{k} search, {len(docs):,} docs, {len(queries):,} queries",
            rows,
            "bm25s numpy backend, 1 thread",
        )
    )

    # Same documents as bm25s at the top, where scores are not tied.
    agree = sum(
        1 for a, b in zip(ids1[:1000], ref_docs[:1000], strict=True) if a[:1] == [str(x) for x in b[:1]]
    )
    print(
        f"top-1 agreement with bm25s on the first 1000 queries: {agree}/1000 (differences are ties "
        "or tokenizer differences: bm25s drops 1-character tokens)"
    )


if __name__ == "__main__":
    main()
