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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bdnsca import _core
from bdnsca.errors import BdnscaError
from bdnsca.data.io import Corpus, Query, file_sha256, read_corpus, read_queries, write_json, write_jsonl
from bdnsca.retrieval.bm25 import make_tokenizer

PAIR_FORMATS = ("pairwise", "triplet", "pointwise")


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
    """Drop candidates scoring above this times the lowest positive's score (0.95 is sensible)."""
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
    stopwords: str | None = "en"
    stemmer: str | None = "english"
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


def mine_hard_negatives(
    corpus: Corpus | str | os.PathLike[str],
    queries: Sequence[Query] | str | os.PathLike[str],
    settings: MiningSettings | None = None,
    *,
    bm25: _core.BM25 | None = None,
    progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> MiningResult:
    """Mines hard negatives and assembles reranker pairs; returns the rows the CLI writes.

    ``corpus`` and ``queries`` are loaded objects or paths (corpus JSONL / BEIR; gold JSONL).
    ``settings`` fields may also be given as keyword arguments. ``bm25`` reuses an index built
    over ``corpus`` in the same order. ``progress(done, total)`` is called between batches.
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
    # One list of texts serves both the index and the twin detector (at 1M documents,
    # building it twice costs seconds).
    texts = corpus.texts(settings.include_title)
    if bm25 is None:
        tokenizer = make_tokenizer(settings.stopwords, settings.stemmer)
        bm25 = _core.BM25(method=settings.method, k1=settings.k1, b=settings.b, tokenizer=tokenizer)
        bm25.index(texts, ids=corpus.ids)
    elif bm25.n_docs != len(corpus):
        raise BdnscaError(f"the index holds {bm25.n_docs} documents, the corpus {len(corpus)}")
    t_index = time.perf_counter()

    docs = corpus.documents
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
    lo, hi = settings.rank_range or (1, settings.candidate_depth)
    doc_texts = _core.DocTexts(texts)
    del texts
    mined: list[tuple] = []
    with _gc_paused():
        _mine_batches(
            bm25,
            doc_texts,
            doc_domains,
            used,
            positives,
            relevant,
            q_domains,
            settings,
            lo,
            hi,
            mined,
            progress,
        )
        t_mine = time.perf_counter()
        domain_of = {v: k for k, v in domain_names.items()}
        rows, pairs = _assemble(corpus, used, positives, relevant, q_domains, mined, domain_of, settings)
    t_done = time.perf_counter()

    n_same = sum(len(m[0]) for m in mined)
    n_cross = sum(len(m[1]) for m in mined)
    summary = {
        "queries": {
            "total": len(queries),
            "used": len(used),
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
                1 for m in mined if len(m[0]) < settings.hard_negatives_per_query
            ),
            "queries_short_of_cross_domain": sum(
                1 for m in mined if len(m[1]) < settings.cross_domain_negatives_per_query
            ),
            "dropped_by_rank_range": sum(m[5] for m in mined),
            "dropped_by_score_ratio": sum(m[6] for m in mined),
        },
        "suspected_false_negatives": {
            "count": sum(len(m[2]) for m in mined),
            "queries_with_any": sum(1 for m in mined if m[2]),
            "exact_duplicates": sum(1 for m in mined for s in m[2] if s[2] >= 1.0),
        },
        "pairs": len(pairs),
        "pair_format": settings.pair_format,
        "settings": {**asdict(settings), "rank_range": [lo, hi]},
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


def _mine_batches(
    bm25, texts, doc_domains, used, positives, relevant, q_domains, settings, lo, hi, mined, progress
):
    batch = 4096
    for start in range(0, len(used), batch):
        stop = start + batch
        mined.extend(
            _core.mine(
                bm25,
                texts,
                doc_domains,
                [q.text for q in used[start:stop]],
                positives[start:stop],
                relevant[start:stop],
                q_domains[start:stop],
                [q.query_id for q in used[start:stop]],
                depth=settings.candidate_depth,
                rank_min=lo,
                rank_max=hi,
                max_score_ratio=settings.max_score_ratio,
                near_dup_threshold=settings.near_duplicate_threshold,
                same_domain=settings.hard_negatives_per_query,
                cross_domain=settings.cross_domain_negatives_per_query,
                sampling=settings.sampling,
                seed=settings.seed,
                max_pairs=settings.max_pairs_per_query,
            )
        )
        if progress:
            progress(min(stop, len(used)), len(used))


def _assemble(corpus, used, positives, relevant, q_domains, mined, domain_of, settings):
    docs = corpus.documents
    rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for q, pos, rel, qd, m in zip(used, positives, relevant, q_domains, mined, strict=True):
        same, cross, suspects, pos_scores, qpairs = m[0], m[1], m[2], m[3], m[4]
        negs = [(d, s, r, True) for d, s, r in same] + [(d, s, r, False) for d, s, r in cross]
        rows.append(
            {
                "query_id": q.query_id,
                "query": q.text,
                "domain": domain_of[qd],
                "relevant_doc_ids": [docs[i].doc_id for i in rel],
                "positive_doc_ids": [docs[i].doc_id for i in pos],
                "hard_negative_doc_ids": [docs[d].doc_id for d, *_ in negs],
                "hard_negative_same_domain_doc_ids": [docs[d].doc_id for d, *_ in same],
                "hard_negative_cross_domain_doc_ids": [docs[d].doc_id for d, *_ in cross],
                "hard_negatives": [
                    {
                        "doc_id": docs[d].doc_id,
                        "score": round(float(s), 6),
                        "rank": r,
                        "domain": docs[d].fields.get(settings.domain_field),
                        "same_domain": is_same,
                    }
                    for d, s, r, is_same in negs
                ],
                "positive_scores": {
                    docs[i].doc_id: round(float(s), 6) for i, s in zip(pos, pos_scores, strict=True)
                },
                "suspected_false_negative_doc_ids": [docs[s[0]].doc_id for s in suspects],
                "suspected_false_negatives": [
                    {
                        "doc_id": docs[d].doc_id,
                        "duplicate_of": docs[t].doc_id,
                        "similarity": round(sim, 4),
                        "score": round(float(sc), 6),
                        "rank": r,
                    }
                    for d, t, sim, sc, r in suspects
                ],
            }
        )
        for p, n in qpairs:
            pairs.append(_pair_row(settings, q, docs[p], docs[n], p, n))
    if settings.pair_format == "pointwise":
        pairs = _pointwise(pairs)
    return rows, pairs


def _pair_row(settings: MiningSettings, q: Query, pos, neg, p: int, n: int) -> dict[str, Any]:
    if settings.pair_format == "triplet":
        return {
            "anchor": q.text,
            "positive": pos.indexed_text(settings.include_title),
            "negative": neg.indexed_text(settings.include_title),
        }
    if settings.pair_format == "pointwise":
        # expanded into one row per (query, document) by _pointwise
        return {"_q": q, "_docs": ((pos, 1), (neg, 0)), "_title": settings.include_title}
    return {
        "query_id": q.query_id,
        "query": q.text,
        "positive_doc_id": pos.doc_id,
        "negative_doc_id": neg.doc_id,
        "positive_text": pos.text,
        "negative_text": neg.text,
        "positive_title": pos.title,
        "negative_title": neg.title,
        "label": 1,
    }


def _pointwise(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (query, document): each positive once with label 1, each negative once with 0."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for r in raw:
        q = r["_q"]
        for doc, label in r["_docs"]:
            if (q.query_id, doc.doc_id) in seen:
                continue
            seen.add((q.query_id, doc.doc_id))
            out.append(
                {"query": q.text, "doc_id": doc.doc_id, "text": doc.indexed_text(r["_title"]), "label": label}
            )
    return out


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
