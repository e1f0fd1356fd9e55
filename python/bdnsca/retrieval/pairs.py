"""Mining's output rows: per-query results cut from the Rust miner's columns, the hard-negative
rows, and reranker pairs in the pairwise, triplet or pointwise format."""

from __future__ import annotations

from typing import Any, NamedTuple

from bdnsca import _core
from bdnsca.data.io import Document, Query

PAIR_FORMATS = ("pairwise", "triplet", "pointwise")


def pair_rows(
    pair_format: str, q: Query, pairs: list[tuple[Document, Document]], include_title: bool = True
) -> list[dict[str, Any]]:
    """One query's rows. pairwise: one row per (positive, negative) with ids, texts and titles;
    triplet: (anchor, positive, negative) texts; pointwise: one row per distinct document of the
    query, each positive once with label 1 and each negative once with label 0."""
    if pair_format == "triplet":
        return [
            {
                "anchor": q.text,
                "positive": pos.indexed_text(include_title),
                "negative": neg.indexed_text(include_title),
            }
            for pos, neg in pairs
        ]
    if pair_format == "pointwise":
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for pos, neg in pairs:
            for doc, label in ((pos, 1), (neg, 0)):
                if doc.doc_id not in seen:
                    seen.add(doc.doc_id)
                    out.append(
                        {
                            "query": q.text,
                            "doc_id": doc.doc_id,
                            "text": doc.indexed_text(include_title),
                            "label": label,
                        }
                    )
        return out
    return [
        {
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
        for pos, neg in pairs
    ]


class Mined(NamedTuple):
    """One query's mining result, documents as index positions."""

    negatives: list[tuple[int, float, int, bool]]
    """(doc, score, rank, same_domain), same-domain ones first."""
    suspects: list[tuple[int, int, float, float, int]]
    """(doc, duplicate_of, similarity, score, rank)"""
    positive_scores: list[float]
    pairs: list[tuple[int, int]]
    dropped_by_rank: int
    dropped_by_score: int
    skipped: bool
    """A score ceiling was asked for and every positive scores 0."""


def mined_per_query(out: _core.MiningOutput) -> list[Mined]:
    """The columns of one `_core.mine` call cut into per-query records."""

    def rows(offsets, *cols) -> list[list[tuple]]:
        flat = list(zip(*(c.tolist() for c in cols), strict=True))
        o = offsets.tolist()
        return [flat[o[i] : o[i + 1]] for i in range(len(o) - 1)]

    negs = rows(
        out.negative_offsets,
        out.negative_doc,
        out.negative_score,
        out.negative_rank,
        out.negative_same_domain,
    )
    sus = rows(
        out.suspect_offsets,
        out.suspect_doc,
        out.suspect_duplicate_of,
        out.suspect_similarity,
        out.suspect_score,
        out.suspect_rank,
    )
    pos = [[s for (s,) in r] for r in rows(out.positive_offsets, out.positive_score)]
    pairs = rows(out.pair_offsets, out.pair_positive, out.pair_negative)
    return [
        Mined(*m)
        for m in zip(
            negs,
            sus,
            pos,
            pairs,
            out.dropped_by_rank.tolist(),
            out.dropped_by_score.tolist(),
            out.skipped_no_positive_scored.tolist(),
            strict=True,
        )
    ]


def assemble(
    docs: list[Document],
    kept: list[tuple[Query, list[int], list[int], int, Mined]],
    domain_of: dict[int, str],
    domain_field: str,
    pair_format: str,
    include_title: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The hard-negative rows and the pair rows of every kept (query, positives, relevant,
    domain code, result); documents are positions in ``docs``."""
    rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for q, pos, rel, qd, m in kept:
        same = [n for n in m.negatives if n[3]]
        cross = [n for n in m.negatives if not n[3]]
        rows.append(
            {
                "query_id": q.query_id,
                "query": q.text,
                "domain": domain_of[qd],
                "relevant_doc_ids": [docs[i].doc_id for i in rel],
                "positive_doc_ids": [docs[i].doc_id for i in pos],
                "hard_negative_doc_ids": [docs[n[0]].doc_id for n in m.negatives],
                "hard_negative_same_domain_doc_ids": [docs[n[0]].doc_id for n in same],
                "hard_negative_cross_domain_doc_ids": [docs[n[0]].doc_id for n in cross],
                "hard_negatives": [
                    {
                        "doc_id": docs[d].doc_id,
                        "score": round(float(s), 6),
                        "rank": r,
                        "domain": docs[d].fields.get(domain_field),
                        "same_domain": is_same,
                    }
                    for d, s, r, is_same in m.negatives
                ],
                "positive_scores": {
                    docs[i].doc_id: round(float(s), 6) for i, s in zip(pos, m.positive_scores, strict=True)
                },
                "suspected_false_negative_doc_ids": [docs[s[0]].doc_id for s in m.suspects],
                "suspected_false_negatives": [
                    {
                        "doc_id": docs[d].doc_id,
                        "duplicate_of": docs[t].doc_id,
                        "similarity": round(sim, 4),
                        "score": round(float(sc), 6),
                        "rank": r,
                    }
                    for d, t, sim, sc, r in m.suspects
                ],
            }
        )
        pairs.extend(pair_rows(pair_format, q, [(docs[p], docs[n]) for p, n in m.pairs], include_title))
    return rows, pairs
