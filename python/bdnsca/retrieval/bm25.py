"""BM25 retrieval over corpora read by :mod:`bdnsca.data.io`: index building and runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bdnsca._core import BM25, Tokenizer
from bdnsca.data.io import Corpus, Query, Run, open_run_writer
from bdnsca.data.runs import RunWriter
from bdnsca.errors import BdnscaError


def make_tokenizer(
    stopwords: str | None = None, stemmer: str | None = None, lowercase: bool = True, pattern: str = "alnum"
) -> Tokenizer:
    """The tokenizer ``bdnsca index`` builds: ``pattern="bm25s"`` with ``stopwords="en"`` gives
    exactly ``bm25s.tokenize``'s tokens."""
    return Tokenizer(lowercase=lowercase, stopwords=stopwords, stemmer=stemmer, pattern=pattern)


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


SEARCH_BATCH = 4096
"""Queries searched (and written) per batch by :func:`search_to_file`."""


def search_run(bm25: BM25, queries: Sequence[Query], k: int = 100, threads: int | None = None) -> Run:
    """Top-k for every query as a run ``{query_id: {doc_id: score}}``, each query's documents
    in the order search returned them (the tie rule, :data:`bdnsca.data.io.TIE_RULE`); a query
    with no known term gets an empty entry. Holds the whole run in memory: for large query
    sets use :func:`search_to_file`."""
    if k <= 0:
        raise BdnscaError(f"k must be >= 1, got {k}")
    ids, scores = bm25.search_batch([q.text for q in queries], k=k, threads=threads)
    run: Run = {}
    for q, doc_ids, row in zip(queries, ids, scores, strict=True):
        run[q.query_id] = {d: float(s) for d, s in zip(doc_ids, row[: len(doc_ids)], strict=True)}
    return run


def write_search_batch(
    writer: RunWriter, queries: Sequence[Query], ids: list[list[str]], scores: npt.NDArray[np.float32]
) -> None:
    """Writes one ``search_batch`` result (``queries`` in order) and flushes: the one writing
    step of :func:`search_to_file` and of the Ray path (:mod:`bdnsca.retrieval.distributed`)."""
    for q, doc_ids, row in zip(queries, ids, scores, strict=True):
        writer.write(q.query_id, doc_ids, row[: len(doc_ids)])
    writer.flush()


@dataclass
class SearchSummary:
    queries: int
    empty: int
    """Queries with no known term (no result)."""
    rows: int


def search_to_file(
    bm25: BM25,
    queries: Sequence[Query],
    path: str | os.PathLike[str],
    *,
    k: int = 100,
    threads: int | None = None,
    tag: str = "bdnsca",
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SearchSummary:
    """Search every query and stream the run to ``path`` (JSONL when it ends in .jsonl, else
    TREC), one batch of ``batch_size`` queries (default :data:`SEARCH_BATCH`) at a time: memory
    holds one batch's results, never the whole run. The file is written atomically (a temporary
    file renamed over ``path`` at the end; removed when anything fails) and equals
    ``write_run(path, search_run(...))``. ``progress(n)`` is called after each batch of n."""
    if k <= 0:
        raise BdnscaError(f"k must be >= 1, got {k}")
    size = SEARCH_BATCH if batch_size is None else batch_size
    if size <= 0:
        raise BdnscaError(f"batch_size must be >= 1, got {size}")
    with open_run_writer(path, tag) as writer:
        for start in range(0, len(queries), size):
            chunk = queries[start : start + size]
            ids, scores = bm25.search_batch([q.text for q in chunk], k=k, threads=threads)
            write_search_batch(writer, chunk, ids, scores)
            del ids, scores
            if progress is not None:
                progress(len(chunk))
    return SearchSummary(writer.queries, writer.empty, writer.rows)


__all__ = [
    "BM25",
    "SEARCH_BATCH",
    "SearchSummary",
    "Tokenizer",
    "build_index",
    "make_tokenizer",
    "search_run",
    "search_to_file",
    "write_search_batch",
]
