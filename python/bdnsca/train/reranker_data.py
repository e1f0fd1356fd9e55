"""Reranker training data: the pairs ``bdnsca mine-negatives`` writes, resolved against the corpus
and the gold queries, and the split by query that keeps held-out queries away from the trainer.

Pairs in all three mining formats are read: ``pairwise`` rows name the query and documents by id;
``triplet`` (``anchor``, ``positive``, ``negative``) and ``pointwise`` (``query``, ``doc_id``,
``text``, ``label``) rows are resolved by text (a query by its text, a triplet's documents by their
title + text or text). Document texts always come from the corpus, so training sees the same
text the reranker scores at search time.

The split is by query *text*: queries whose text is the same (case and spacing aside) land on
the same side, since a held-out query whose twin was trained on is not held out.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.data.io import Corpus, Query, iter_jsonl
from bdnsca.errors import BdnscaError, DataError

ISSUE_KINDS = (
    "unknown_query",
    "unknown_document",
    "negative_judged_relevant",
    "negative_copy_of_positive",
    "text_differs_from_corpus",
    "unreadable_row",
)
"""What can be wrong with a pair row. An unknown query or document or an unreadable row drops
the row; a negative the gold judges relevant to the query is dropped (a relevant document is not
a negative); a negative whose text (title + text, what the trainer sees) equals a positive's of
the same query is dropped (an exact copy under another id would be labelled 1 and 0 at once); a
text that differs from the corpus's is only counted (the corpus's text is used)."""


def query_key(text: str) -> str:
    """Queries with the same key are one query for the split (case and spacing ignored)."""
    return " ".join(text.lower().split())


@dataclass
class QueryGroup:
    """The training material of one query text: documents by id with their label."""

    key: str
    text: str
    query_ids: list[str]
    positives: dict[str, int] = field(default_factory=dict)
    """doc id -> grade (the gold's, or 1 for a positive the gold does not grade)"""
    negatives: set[str] = field(default_factory=set)


@dataclass
class PairsReport:
    rows: int = 0
    rows_used: int = 0
    issues: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ISSUE_KINDS, 0))
    examples: dict[str, str] = field(default_factory=dict)
    """first occurrence of each issue kind, as 'file:line: message'"""
    pair_format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "rows_used": self.rows_used,
            "format": self.pair_format,
            "issues": dict(self.issues),
            "first_issue": dict(self.examples),
        }


def _detect_format(obj: dict[str, Any]) -> str:
    if "positive_doc_id" in obj or "negative_doc_id" in obj:
        return "pairwise"
    if "anchor" in obj:
        return "triplet"
    if "doc_id" in obj and "label" in obj:
        return "pointwise"
    return ""


class _Resolver:
    def __init__(self, path: Path, corpus: Corpus, queries: Sequence[Query], strict: bool) -> None:
        self.path, self.strict = path, strict
        self.docs = corpus.by_id()
        self.by_text: dict[str, list[str]] = {}
        for d in corpus.documents:
            for t in dict.fromkeys((d.indexed_text(True), d.text)):
                self.by_text.setdefault(t, []).append(d.doc_id)
        self.train_text = {d.doc_id: d.indexed_text(True) for d in corpus.documents}
        self.queries = {q.query_id: q for q in queries}
        self.groups: dict[str, QueryGroup] = {}
        for q in queries:
            g = self.groups.setdefault(query_key(q.text), QueryGroup(query_key(q.text), q.text, []))
            g.query_ids.append(q.query_id)
        self.report = PairsReport()

    def issue(self, kind: str, lineno: int, message: str) -> None:
        if self.strict:
            raise DataError(self.path, lineno, f"{message} (--strict)")
        self.report.issues[kind] += 1
        self.report.examples.setdefault(kind, f"{self.path}:{lineno}: {message}")

    def group_of(self, obj: dict[str, Any], lineno: int) -> QueryGroup | None:
        qid = obj.get("query_id")
        if qid is not None:
            q = self.queries.get(str(qid))
            if q is None:
                self.issue("unknown_query", lineno, f"query id {qid!r} is not in the gold file")
                return None
            return self.groups[query_key(q.text)]
        text = obj.get("query", obj.get("anchor"))
        if not isinstance(text, str):
            self.issue("unreadable_row", lineno, "row has neither 'query_id' nor a query text")
            return None
        g = self.groups.get(query_key(text))
        if g is None:
            self.issue("unknown_query", lineno, f"query text {text[:60]!r} is not in the gold file")
        return g

    def doc_by_id(self, doc_id: Any, lineno: int, row_text: Any = None) -> str | None:
        if not isinstance(doc_id, str | int):
            self.issue("unreadable_row", lineno, f"document id {doc_id!r} is not a string")
            return None
        doc = self.docs.get(str(doc_id))
        if doc is None:
            self.issue("unknown_document", lineno, f"document {doc_id!r} is not in the corpus")
            return None
        if isinstance(row_text, str) and row_text not in (doc.text, doc.indexed_text(True)):
            self.issue("text_differs_from_corpus", lineno, f"text of {doc_id!r} differs from the corpus's")
        return doc.doc_id

    def doc_by_text(self, text: Any, lineno: int, g: QueryGroup) -> str | None:
        """The document with this text; among exact twins, one the gold judges relevant to the
        query if there is one (twins are one text to the trainer either way)."""
        ids = self.by_text.get(text, []) if isinstance(text, str) else []
        if not ids:
            snippet = text[:60] if isinstance(text, str) else text
            self.issue("unknown_document", lineno, f"document text {snippet!r} is not in the corpus")
            return None
        judged = [d for d in ids if any(self.queries[q].relevant.get(d, 0) > 0 for q in g.query_ids)]
        return (judged or ids)[0]

    def add(self, g: QueryGroup, doc_id: str, positive: bool, lineno: int) -> bool:
        grade = max((self.queries[q].relevant.get(doc_id, 0) for q in g.query_ids), default=0)
        if positive:
            g.positives[doc_id] = max(g.positives.get(doc_id, 0), grade or 1)
            g.negatives.discard(doc_id)
            copies = sorted(n for n in g.negatives if self.train_text[n] == self.train_text[doc_id])
            for n in copies:  # a negative read before its positive's copy
                self.copy_issue(n, doc_id, lineno)
                g.negatives.discard(n)
            return True
        if grade > 0 or doc_id in g.positives:
            self.issue(
                "negative_judged_relevant",
                lineno,
                f"negative {doc_id!r} is judged relevant to a query of this text (grade {grade}); dropped",
            )
            return False
        same = sorted(p for p in g.positives if self.train_text[p] == self.train_text[doc_id])
        if same:
            self.copy_issue(doc_id, same[0], lineno)
            return False
        g.negatives.add(doc_id)
        return True

    def copy_issue(self, negative: str, positive: str, lineno: int) -> None:
        self.issue(
            "negative_copy_of_positive",
            lineno,
            f"negative {negative!r} has the same text as positive {positive!r}; dropped",
        )


def read_pairs(
    path: str | Path, corpus: Corpus, queries: Sequence[Query], *, strict: bool = False
) -> tuple[list[QueryGroup], PairsReport]:
    """The query groups the pairs file gives training material for (only groups with at least one
    positive and one negative), and a report of the rows that could not be used. Under
    ``strict`` the first bad row is a :class:`DataError` with file:line."""
    path = Path(path)
    r = _Resolver(path, corpus, queries, strict)
    fmt = ""
    for lineno, obj in iter_jsonl(path):
        r.report.rows += 1
        row_fmt = _detect_format(obj)
        if not row_fmt:
            r.issue("unreadable_row", lineno, "not a pairwise, triplet or pointwise pair row")
            continue
        if fmt and row_fmt != fmt:
            raise DataError(path, lineno, f"a {row_fmt} row in a file of {fmt} rows")
        fmt = row_fmt
        g = r.group_of(obj, lineno)
        if g is None:
            continue
        if fmt == "pairwise":
            pos = r.doc_by_id(obj.get("positive_doc_id"), lineno, obj.get("positive_text"))
            neg = r.doc_by_id(obj.get("negative_doc_id"), lineno, obj.get("negative_text"))
            docs = [(pos, True), (neg, False)]
        elif fmt == "triplet":
            docs = [
                (r.doc_by_text(obj.get("positive"), lineno, g), True),
                (r.doc_by_text(obj.get("negative"), lineno, g), False),
            ]
        else:
            label = obj.get("label")
            if not isinstance(label, int | float) or isinstance(label, bool):
                r.issue("unreadable_row", lineno, f"label {label!r} is not a number")
                continue
            docs = [(r.doc_by_id(obj.get("doc_id"), lineno, obj.get("text")), label > 0)]
        if any(d is None for d, _ in docs):
            continue
        added = [r.add(g, d, positive, lineno) for d, positive in docs]  # every one, then all()
        if all(added):
            r.report.rows_used += 1
    r.report.pair_format = fmt
    if r.report.rows == 0:
        raise DataError(path, None, "no pair rows in the file")
    groups = [g for g in r.groups.values() if g.positives and g.negatives]
    if not groups:
        raise BdnscaError(f"{path}: no query has both a positive and a negative after resolution")
    return groups, r.report


# ----------------------------------------------------------------------------- split


@dataclass
class QuerySplit:
    train_query_ids: list[str]
    heldout_query_ids: list[str]
    seed: int
    heldout_fraction: float | None
    heldout_domains: list[str] | None
    merged_query_texts: int
    """query texts shared by more than one query id (each kept on one side)"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_query_ids": self.train_query_ids,
            "heldout_query_ids": self.heldout_query_ids,
            "seed": self.seed,
            "heldout_fraction": self.heldout_fraction,
            "heldout_domains": self.heldout_domains,
            "grouping": "query ids whose text is the same (case and spacing aside) are on one side",
            "merged_query_texts": self.merged_query_texts,
        }


def split_queries(
    queries: Sequence[Query],
    *,
    heldout_fraction: float = 0.2,
    seed: int = 0,
    heldout_domains: Iterable[str] | None = None,
    domain_field: str = "domain",
) -> QuerySplit:
    """Split the gold queries into training and held-out ones, by query text (see the module doc).

    With ``heldout_domains`` every query of those domains is held out (the fraction is not
    used); otherwise a seeded shuffle of the query texts is cut so that about
    ``heldout_fraction`` of the query ids are held out. The same inputs and seed give the same
    split."""
    groups: dict[str, list[Query]] = {}
    for q in queries:
        groups.setdefault(query_key(q.text), []).append(q)
    ordered = sorted(groups.values(), key=lambda qs: min(q.query_id for q in qs))
    merged = sum(1 for qs in ordered if len(qs) > 1)
    held: list[list[Query]] = []
    if heldout_domains is not None:
        wanted = set(heldout_domains)
        present = {str(q.fields.get(domain_field)) for q in queries}
        unknown = sorted(wanted - present)
        if unknown:
            raise BdnscaError(
                f"--heldout-domains: no query has {domain_field} {', '.join(unknown)} "
                f"(present: {', '.join(sorted(present))})"
            )
        held = [qs for qs in ordered if any(str(q.fields.get(domain_field)) in wanted for q in qs)]
        fraction = None
    else:
        if not 0 < heldout_fraction < 1:
            raise BdnscaError(f"--heldout-fraction must be in (0, 1), got {heldout_fraction}")
        target = max(1, math.floor(heldout_fraction * len(queries) + 0.5))
        shuffled = list(ordered)
        random.Random(seed).shuffle(shuffled)
        count = 0
        for qs in shuffled:
            if count >= target:
                break
            held.append(qs)
            count += len(qs)
        fraction = heldout_fraction
    held_ids = sorted(q.query_id for qs in held for q in qs)
    held_set = set(held_ids)
    train_ids = sorted(q.query_id for q in queries if q.query_id not in held_set)
    if not held_ids or not train_ids:
        raise BdnscaError(
            f"the split leaves {len(train_ids)} training and {len(held_ids)} held-out queries; "
            "both must be non-empty"
        )
    domains = sorted(heldout_domains) if heldout_domains is not None else None
    return QuerySplit(train_ids, held_ids, seed, fraction, domains, merged)


def check_split(
    split_json: dict[str, Any],
    queries: Sequence[Query],
    train_groups: Sequence[QueryGroup],
    trainer_query_texts: Iterable[str] | None = None,
) -> None:
    """Raises when a held-out query could reach training: a split whose two sides share an id,
    a training group holding a held-out query id, or (``trainer_query_texts``, the query column
    of the dataset the trainer holds) a held-out query's text among the training texts."""
    train, held = set(split_json["train_query_ids"]), set(split_json["heldout_query_ids"])
    both = train & held
    if both:
        raise BdnscaError(f"split check failed: {len(both)} query ids on both sides, e.g. {min(both)!r}")
    for g in train_groups:
        leaked = [q for q in g.query_ids if q in held or q not in train]
        if leaked:
            raise BdnscaError(f"split check failed: held-out query {leaked[0]!r} in the training pairs")
    if trainer_query_texts is not None:
        held_keys = {query_key(q.text) for q in queries if q.query_id in held}
        for text in trainer_query_texts:
            if query_key(text) in held_keys:
                raise BdnscaError(
                    f"split check failed: the trainer's dataset holds held-out query text {text[:60]!r}"
                )


def training_rows(groups: Sequence[QueryGroup], corpus: Corpus, loss: str) -> list[dict[str, Any]]:
    """The trainer's dataset. ``bce``: one (query, doc, label 1/0) row per document of a query;
    ``lambda`` / ``listnet``: one (query, docs, labels) list per query, positives labelled with
    their gold grade, negatives 0. Documents as the corpus's title + text."""
    text = {d.doc_id: d.indexed_text(True) for d in corpus.documents}
    rows: list[dict[str, Any]] = []
    for g in groups:
        docs = sorted(g.positives) + sorted(g.negatives)
        if loss == "bce":
            rows.extend(
                {"query": g.text, "doc": text[d], "label": 1.0 if d in g.positives else 0.0} for d in docs
            )
        else:
            rows.append(
                {
                    "query": g.text,
                    "docs": [text[d] for d in docs],
                    "labels": [float(g.positives.get(d, 0)) for d in docs],
                }
            )
    return rows


__all__ = [
    "ISSUE_KINDS",
    "PairsReport",
    "QueryGroup",
    "QuerySplit",
    "check_split",
    "query_key",
    "read_pairs",
    "split_queries",
    "training_rows",
]
