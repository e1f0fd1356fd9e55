"""BM25 retrieval over corpora read by :mod:`bdnsca.data.io`: index building and runs."""

from __future__ import annotations

from collections.abc import Sequence

from bdnsca._core import BM25, Tokenizer
from bdnsca.errors import BdnscaError
from bdnsca.data.io import Corpus, Query, Run


def make_tokenizer(
    stopwords: str | None = None, stemmer: str | None = None, lowercase: bool = True
) -> Tokenizer:
    return Tokenizer(lowercase=lowercase, stopwords=stopwords, stemmer=stemmer)


def build_index(
    corpus: Corpus,
    *,
    method: str = "lucene",
    k1: float = 1.5,
    b: float = 0.75,
    delta: float = 0.5,
    tokenizer: Tokenizer | None = None,
    include_title: bool = True,
) -> BM25:
    """A BM25 index over ``corpus`` (title and text, or the text alone)."""
    bm25 = BM25(method=method, k1=k1, b=b, delta=delta, tokenizer=tokenizer)
    bm25.index(corpus.texts(include_title), ids=corpus.ids)
    return bm25


def search_run(bm25: BM25, queries: Sequence[Query], k: int = 100, threads: int | None = None) -> Run:
    """Top-k for every query as a run ``{query_id: {doc_id: score}}``; a query with no
    known term gets an empty entry."""
    if k <= 0:
        raise BdnscaError(f"k must be >= 1, got {k}")
    ids, scores = bm25.search_batch([q.text for q in queries], k=k, threads=threads)
    run: Run = {}
    for q, doc_ids, row in zip(queries, ids, scores, strict=True):
        run[q.query_id] = {d: float(s) for d, s in zip(doc_ids, row[: len(doc_ids)], strict=True)}
    return run


__all__ = ["BM25", "Tokenizer", "build_index", "search_run", "make_tokenizer"]
