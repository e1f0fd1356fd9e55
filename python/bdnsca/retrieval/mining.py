"""Hard-negative mining and reranker pair assembly, computed in the Rust core.

For each query the BM25 index ranks the corpus; judged-relevant documents are never negatives;
candidates that are exact or near duplicates of a relevant document are reported as suspected
false negatives instead; the rank window and the positive-aware score ceiling filter the rest;
same-domain negatives come from the query's domain, cross-domain negatives from the other
domains in turn. Same inputs and seed give the same outputs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bdnsca import _core
from bdnsca.data.io import (
    Corpus,
    Document,
    Query,
    file_sha256,
    read_corpus,
    read_queries,
    write_json,
    write_jsonl,
)
from bdnsca.errors import BdnscaError
from bdnsca.retrieval.pairs import PAIR_FORMATS, Mined, assemble, mined_per_query

RETRIEVAL_FIELDS = ("method", "k1", "b", "delta", "lowercase", "stopwords", "stemmer", "pattern")
"""The settings that decide the BM25 ranking; recorded in every summary."""


@dataclass
class MiningSettings:
    """Every knob of the miner; the CLI maps its flags onto these one to one, and the
    summary records them."""

    hard_negatives_per_query: int = 10
    """Same-domain negatives per query."""
    cross_domain_negatives_per_query: int = 4
    """Negatives from other domains per query, spread across domains round-robin."""
    candidate_depth: int = 100
    """How deep in the BM25 ranking to look for candidates."""
    rank_range: tuple[int, int] | None = None
    """Only negatives ranked MIN..MAX (1 = top); skipping the very top cuts false negatives."""
    max_score_ratio: float | None = None
    """Drop candidates scoring above this times the lowest non-zero score of a positive
    (0.95 is sensible). Positives scoring 0 share no term with the query and set no ceiling; a
    query whose positives all score 0 is skipped and counted (``positives_all_score_zero``)."""
    near_duplicate_threshold: float | None = 0.8
    """Character 5-gram Jaccard at which a candidate is a near duplicate of a relevant document;
    None catches exact duplicates (after normalisation) only. 0.8 separates cleanly on the NPC
    corpora: text twins measure 0.87-0.95, distinct documents of one domain at most 0.75."""
    sampling: str = "top"
    """'top': the hardest eligible candidates; 'random': sampled within the window."""
    seed: int = 0
    domain_field: str = "domain"
    min_positive_grade: int = 1
    """Positives to pair with have at least this grade; any grade > 0 is never a negative."""
    pair_format: str = "pairwise"
    max_pairs_per_query: int | None = None
    strict: bool = False
    """Gold rows naming documents missing from the corpus are an error instead of a count."""
    method: str = "lucene"
    k1: float = 1.5
    b: float = 0.75
    delta: float = 0.5
    lowercase: bool = True
    stopwords: str | list[str] | None = None
    """None (the default, as ``bdnsca index``), ``"en"`` or a list of words."""
    stemmer: str | None = None
    """None (the default, as ``bdnsca index``) or ``"english"``."""
    pattern: str = "alnum"
    """How text splits into words: ``"alnum"`` (the default) or ``"bm25s"`` (see ``Tokenizer``)."""
    include_title: bool = True

    def validate(self) -> None:
        if self.hard_negatives_per_query < 0 or self.cross_domain_negatives_per_query < 0:
            raise BdnscaError("negatives per query must be >= 0")
        if self.candidate_depth <= 0:
            raise BdnscaError(f"candidate depth must be >= 1, got {self.candidate_depth}")
        if self.sampling not in ("top", "random"):
            raise BdnscaError(f"sampling must be 'top' or 'random', got {self.sampling!r}")
        if self.pair_format not in PAIR_FORMATS:
            raise BdnscaError(
                f"pair format must be one of {', '.join(PAIR_FORMATS)}, got {self.pair_format!r}"
            )
        if self.max_pairs_per_query is not None and self.max_pairs_per_query < 0:
            raise BdnscaError("max pairs per query must be >= 0")
        if self.min_positive_grade < 1:
            raise BdnscaError("min positive grade must be >= 1")
        if self.rank_range is not None:
            lo, hi = self.rank_range
            if lo < 1 or hi < lo:
                raise BdnscaError(f"rank range {lo}:{hi} is empty: use MIN:MAX with 1 <= MIN <= MAX")

    def core_params(self) -> _core.MiningParams:
        """The Rust miner's part of these settings (checked again there)."""
        lo, hi = self.rank_range or (1, self.candidate_depth)
        return _core.MiningParams(
            depth=self.candidate_depth,
            rank_min=lo,
            rank_max=hi,
            same_domain=self.hard_negatives_per_query,
            cross_domain=self.cross_domain_negatives_per_query,
            max_score_ratio=self.max_score_ratio,
            near_dup_threshold=self.near_duplicate_threshold,
            sampling=self.sampling,
            seed=self.seed,
            max_pairs=self.max_pairs_per_query,
        )


@dataclass
class MiningResult:
    hard_negatives: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


def parse_rank_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = text.split(":")
        return int(lo), int(hi)
    except ValueError:
        raise BdnscaError(f"rank range must look like MIN:MAX (e.g. 3:50), got {text!r}") from None


def default_output_paths(gold_path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """Beside the gold file, named as the playbook names them: retrieval_gold_wide.jsonl ->
    retrieval_hard_negatives_wide.jsonl, retrieval_reranker_pairs_wide.jsonl and
    retrieval_hard_negatives_wide.summary.json."""
    gold = Path(gold_path)
    stem = gold.name[: -len(".jsonl")] if gold.name.endswith(".jsonl") else gold.stem
    if "gold" in stem:
        hn, pairs = stem.replace("gold", "hard_negatives", 1), stem.replace("gold", "reranker_pairs", 1)
    else:
        hn, pairs = f"{stem}_hard_negatives", f"{stem}_reranker_pairs"
    return (
        gold.with_name(f"{hn}.jsonl"),
        gold.with_name(f"{pairs}.jsonl"),
        gold.with_name(f"{hn}.summary.json"),
    )


def retrieval_settings(bm25: _core.BM25) -> dict[str, Any]:
    """What decides an index's ranking: the method, k1, b, delta and its tokenizer
    (lowercase, stopwords as None / "en" / the list, stemmer, pattern)."""
    tok = bm25.tokenizer
    words = tok.stopwords
    stopwords: str | list[str] | None = None
    if words:
        stopwords = "en" if sorted(words) == sorted(_core.STOPWORDS_EN) else words
    return {
        "method": bm25.method,
        "k1": bm25.k1,
        "b": bm25.b,
        "delta": bm25.delta,
        "lowercase": tok.lowercase,
        "stopwords": stopwords,
        "stemmer": tok.stemmer,
        "pattern": tok.pattern,
    }


def documents_in_index_order(corpus: Corpus, bm25: _core.BM25) -> list[Document]:
    """The corpus's documents in the index's order, matched by id. A corpus whose ids are not
    exactly the index's (a document missing, extra or repeated) is refused, naming the first
    differing id: mining maps the index's positions back to documents."""
    by_id: dict[str, Document] = {}
    for d in corpus.documents:
        if d.doc_id in by_id:
            raise BdnscaError(f"the corpus holds document id {d.doc_id!r} twice; the index holds it once")
        if bm25.doc_index(d.doc_id) is None:
            raise BdnscaError(
                f"the corpus holds document {d.doc_id!r}, the index does not: mine with the corpus "
                "the index was built from"
            )
        by_id[d.doc_id] = d
    ids = bm25.ids
    if len(by_id) != len(ids):
        lacking = next(i for i in ids if i not in by_id)
        raise BdnscaError(
            f"the index holds document {lacking!r}, the corpus does not: mine with the corpus the "
            "index was built from"
        )
    return [by_id[i] for i in ids]


MINE_BATCH = 4096
"""Queries per ``_core.mine`` call in :func:`mine_local`."""


@dataclass
class MiningJob:
    """The Rust miner's inputs for the queries mined, in order; documents are index positions.
    Each query's result depends on its own row only (its sampling is seeded by
    ``params.seed`` and its id), so any contiguous split of the rows mines the same results."""

    bm25: _core.BM25
    domains: list[int]
    """Domain code of every document, in index order."""
    queries: list[str]
    query_ids: list[str]
    positives: list[list[int]]
    relevant: list[list[int]]
    query_domains: list[int]
    params: _core.MiningParams

    def mine(self, doc_texts: _core.DocTexts, start: int, stop: int) -> _core.MiningOutput:
        """``_core.mine`` over rows ``start:stop``."""
        return _core.mine(
            self.bm25,
            doc_texts,
            domains=self.domains,
            queries=self.queries[start:stop],
            positives=self.positives[start:stop],
            relevant=self.relevant[start:stop],
            query_domains=self.query_domains[start:stop],
            query_ids=self.query_ids[start:stop],
            params=self.params,
        )


Miner = Callable[[MiningJob, list[str], Callable[[int, int], None] | None], list[Mined]]
"""Runs a :class:`MiningJob` given the documents' indexed texts (index order) and a progress
callback; returns one :class:`Mined` per query, in order."""


def mine_local(
    job: MiningJob, doc_texts: _core.DocTexts, progress: Callable[[int, int], None] | None = None
) -> list[Mined]:
    """Mines every query of ``job`` in this process, :data:`MINE_BATCH` queries per call."""
    mined: list[Mined] = []
    n = len(job.queries)
    for start in range(0, n, MINE_BATCH):
        stop = min(start + MINE_BATCH, n)
        mined.extend(mined_per_query(job.mine(doc_texts, start, stop)))
        if progress:
            progress(stop, n)
    return mined


def mine_hard_negatives(
    corpus: Corpus | str | os.PathLike[str],
    queries: Sequence[Query] | str | os.PathLike[str],
    settings: MiningSettings | None = None,
    *,
    bm25: _core.BM25 | None = None,
    progress: Callable[[int, int], None] | None = None,
    miner: Miner | None = None,
    **overrides: Any,
) -> MiningResult:
    """Mines hard negatives and assembles reranker pairs; returns the rows the CLI writes.

    ``corpus`` and ``queries`` are loaded objects or paths (corpus JSONL / BEIR; gold JSONL).
    ``settings`` fields may also be given as keyword arguments. ``bm25`` reuses an index built
    over ``corpus``: documents are matched to it by id (any order), a corpus with other ids is
    refused, and the index's method and tokenizer are used and recorded in place of the
    settings'. ``progress(done, total)`` is called between batches. ``miner`` runs the per-query
    work in place of :func:`mine_local` (e.g. :func:`bdnsca.retrieval.distributed.ray_miner`);
    it must return what ``mine_local`` returns, in query order.
    """
    settings = settings or MiningSettings()
    if overrides:
        settings = MiningSettings(**{**asdict(settings), **overrides})
    settings.validate()
    t0 = time.perf_counter()
    inputs: dict[str, str] = {}
    if not isinstance(corpus, Corpus):
        inputs["corpus"] = str(corpus)
        corpus = read_corpus(corpus)
    if isinstance(queries, str | os.PathLike):
        inputs["gold"] = str(queries)
        queries = read_queries(queries)
    t_read = time.perf_counter()
    index_source = "reused" if bm25 is not None else "built"
    if bm25 is None:
        docs = corpus.documents
        # One list of texts serves both the index and the twin detector (at 1M documents,
        # building it twice costs seconds).
        texts = corpus.texts(settings.include_title)
        tokenizer = _core.Tokenizer(
            lowercase=settings.lowercase,
            stopwords=settings.stopwords,
            stemmer=settings.stemmer,
            pattern=settings.pattern,
        )
        bm25 = _core.BM25(
            method=settings.method, k1=settings.k1, b=settings.b, delta=settings.delta, tokenizer=tokenizer
        )
        bm25.index(texts, ids=corpus.ids)
    else:
        docs = documents_in_index_order(corpus, bm25)
        texts = [d.indexed_text(settings.include_title) for d in docs]
    retrieval = retrieval_settings(bm25)
    settings = replace(settings, **{k: retrieval[k] for k in RETRIEVAL_FIELDS})
    t_index = time.perf_counter()

    position = {d.doc_id: i for i, d in enumerate(docs)}
    domain_names: dict[str, int] = {}

    def domain_code(name: Any) -> int:
        return domain_names.setdefault("" if name is None else str(name), len(domain_names))

    doc_domains = [domain_code(d.fields.get(settings.domain_field)) for d in docs]

    skipped: Counter[str] = Counter()
    missing: list[tuple[str, str]] = []
    used: list[Query] = []
    positives: list[list[int]] = []
    relevant: list[list[int]] = []
    q_domains: list[int] = []
    for q in queries:
        known = {d: g for d, g in q.relevant.items() if d in position}
        missing.extend((q.query_id, d) for d in q.relevant if d not in position)
        pos = sorted(
            (d for d, g in known.items() if g >= settings.min_positive_grade), key=lambda d: (-known[d], d)
        )
        if not pos:
            skipped["no_positives" if not q.relevant else "no_positive_in_corpus_or_grade"] += 1
            continue
        used.append(q)
        positives.append([position[d] for d in pos])
        relevant.append(sorted(position[d] for d, g in known.items() if g > 0))
        qd = q.fields.get(settings.domain_field)
        q_domains.append(domain_code(qd) if qd is not None else doc_domains[positives[-1][0]])
    if missing and settings.strict:
        qid, doc = missing[0]
        raise BdnscaError(
            f"{len(missing)} gold judgements name documents missing from the corpus "
            f"(first: query {qid!r} -> {doc!r}); drop --strict to count and skip them"
        )
    params = settings.core_params()
    job = MiningJob(
        bm25=bm25,
        domains=doc_domains,
        queries=[q.text for q in used],
        query_ids=[q.query_id for q in used],
        positives=positives,
        relevant=relevant,
        query_domains=q_domains,
        params=params,
    )
    with _gc_paused():
        if miner is None:
            doc_texts = _core.DocTexts(texts)
            del texts
            mined = mine_local(job, doc_texts, progress)
        else:
            mined = miner(job, texts, progress)
            del texts
        t_mine = time.perf_counter()
        kept = [
            (q, pos, rel, qd, m)
            for q, pos, rel, qd, m in zip(used, positives, relevant, q_domains, mined, strict=True)
            if not m.skipped
        ]
        if len(kept) < len(used):
            skipped["positives_all_score_zero"] += len(used) - len(kept)
        domain_of = {v: k for k, v in domain_names.items()}
        rows, pairs = assemble(
            docs, kept, domain_of, settings.domain_field, settings.pair_format, settings.include_title
        )
    t_done = time.perf_counter()

    results = [m for *_, m in kept]
    n_same = sum(1 for m in results for n in m.negatives if n[3])
    n_cross = sum(1 for m in results for n in m.negatives if not n[3])
    summary = {
        "queries": {
            "total": len(queries),
            "used": len(kept),
            "skipped": dict(sorted(skipped.items())),
        },
        "missing_gold_documents": {
            "count": len(missing),
            "examples": [{"query_id": q, "doc_id": d} for q, d in missing[:10]],
        },
        "negatives": {
            "same_domain": n_same,
            "cross_domain": n_cross,
            "total": n_same + n_cross,
            "queries_short_of_same_domain": sum(
                1 for m in results if sum(n[3] for n in m.negatives) < settings.hard_negatives_per_query
            ),
            "queries_short_of_cross_domain": sum(
                1
                for m in results
                if sum(not n[3] for n in m.negatives) < settings.cross_domain_negatives_per_query
            ),
            "dropped_by_rank_range": sum(m.dropped_by_rank for m in results),
            "dropped_by_score_ratio": sum(m.dropped_by_score for m in results),
        },
        "suspected_false_negatives": {
            "count": sum(len(m.suspects) for m in results),
            "queries_with_any": sum(1 for m in results if m.suspects),
            "exact_duplicates": sum(1 for m in results for s in m.suspects if s[2] >= 1.0),
        },
        "pairs": len(pairs),
        "pair_format": settings.pair_format,
        "retrieval": {"index": index_source, **retrieval},
        "settings": {**asdict(settings), "rank_range": [params.rank_min, params.rank_max]},
        "inputs": {
            name: {"path": p, "sha256": file_sha256(p)} for name, p in inputs.items() if Path(p).is_file()
        },
        "timings_s": {
            "read": round(t_read - t0, 4),
            "index": round(t_index - t_read, 4),
            "mine": round(t_mine - t_index, 4),
            "assemble": round(t_done - t_mine, 4),
        },
    }
    return MiningResult(rows, pairs, summary)


@contextlib.contextmanager
def _gc_paused():
    """Millions of small result objects: the cyclic GC would rescan them again and again."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_mining_outputs(
    result: MiningResult,
    hard_negatives_path: str | os.PathLike[str],
    pairs_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
) -> None:
    """Writes the three outputs atomically, the summary last."""
    write_jsonl(hard_negatives_path, result.hard_negatives)
    write_jsonl(pairs_path, result.pairs)
    summary = dict(result.summary)
    summary["outputs"] = {
        "hard_negatives": str(hard_negatives_path),
        "reranker_pairs": str(pairs_path),
    }
    write_json(summary_path, summary)
