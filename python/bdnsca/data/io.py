"""Readers and writers for the data formats bdnsca works with, one implementation each.

Corpora: JSONL (``doc_id`` or ``_id``, ``text``, optional ``title``, extra fields kept) or a BEIR
folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``). Queries and judgements: the playbook's
gold JSONL (``query_id``, ``query``, ``relevant_doc_ids``, optional ``relevant_doc_grades``), BEIR
queries and qrels TSV, TREC qrels. Runs: TREC run files and JSONL.

Every reader raises :class:`~bdnsca.errors.DataError` naming the file and line of bad input.
Every writer is atomic: a temporary file in the same folder, then a rename.

This module is the one import for all of it: the atomic writer lives in
:mod:`bdnsca.data.atomic`, the line readers in :mod:`bdnsca.data.lines` and run files (with the
project's tie rule) in :mod:`bdnsca.data.runs`; their names are re-exported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.data.atomic import (
    atomic_write,
    current_umask,
    file_sha256,
    fsync_dir,
    index_sha256,
    umask_mode,
    write_json,
    write_jsonl,
)
from bdnsca.data.lines import id_field, iter_jsonl, iter_lines
from bdnsca.data.runs import (
    TIE_RULE,
    Run,
    RunWriter,
    format_score,
    open_run_writer,
    read_run,
    tie_rule_order,
    write_jsonl_run,
    write_run,
    write_trec_run,
)
from bdnsca.errors import DataError

Qrels = dict[str, dict[str, int]]


@dataclass
class Document:
    doc_id: str
    text: str
    title: str = ""
    fields: dict[str, Any] = field(default_factory=dict)

    def indexed_text(self, include_title: bool = True) -> str:
        """The text BM25 indexes: title and text, or the text alone."""
        if include_title and self.title:
            return f"{self.title}\n{self.text}"
        return self.text


@dataclass
class Query:
    query_id: str
    text: str
    relevant: dict[str, int] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Corpus:
    documents: list[Document]
    path: str = ""
    duplicates_dropped: int = 0

    def __len__(self) -> int:
        return len(self.documents)

    @property
    def ids(self) -> list[str]:
        return [d.doc_id for d in self.documents]

    def texts(self, include_title: bool = True) -> list[str]:
        return [d.indexed_text(include_title) for d in self.documents]

    def by_id(self) -> dict[str, Document]:
        return {d.doc_id: d for d in self.documents}


def _text_field(obj: dict[str, Any], name: str, path: Path, lineno: int, required: bool = True) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise DataError(path, lineno, f"missing field {name!r}")
        return ""
    if not isinstance(value, str):
        raise DataError(path, lineno, f"field {name!r} must be a string, got {type(value).__name__}")
    return value


# ----------------------------------------------------------------------------- corpus


def read_corpus(path: str | os.PathLike[str], *, dedupe: bool = False) -> Corpus:
    """Reads a corpus JSONL file or a BEIR folder.

    Duplicate document ids are an error; with ``dedupe=True`` later copies are dropped
    and counted in ``Corpus.duplicates_dropped``. An empty corpus is an error.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "corpus.jsonl"
    docs: list[Document] = []
    seen: dict[str, int] = {}
    dropped = 0
    for lineno, obj in iter_jsonl(path):
        doc_id = id_field(obj, ("doc_id", "_id", "id"), path, lineno)
        text = _text_field(obj, "text", path, lineno)
        title = _text_field(obj, "title", path, lineno, required=False)
        if doc_id in seen:
            if not dedupe:
                raise DataError(
                    path,
                    lineno,
                    f"duplicate document id {doc_id!r} (first on line {seen[doc_id]}); "
                    "pass --dedupe to keep the first and drop the rest",
                )
            dropped += 1
            continue
        seen[doc_id] = lineno
        extra = {k: v for k, v in obj.items() if k not in ("doc_id", "_id", "id", "text", "title")}
        docs.append(Document(doc_id, text, title, extra))
    if not docs:
        raise DataError(path, None, "the corpus is empty")
    return Corpus(docs, str(path), dropped)


# ----------------------------------------------------------------------------- queries


def _grades(obj: dict[str, Any], path: Path, lineno: int) -> dict[str, int]:
    ids = obj.get("relevant_doc_ids")
    grades = obj.get("relevant_doc_grades")
    out: dict[str, int] = {}
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(d, str | int) for d in ids):
            raise DataError(path, lineno, "field 'relevant_doc_ids' must be a list of document ids")
        out = {str(d): 1 for d in ids}
    if grades is None:
        return out
    if isinstance(grades, dict):
        items = list(grades.items())
    elif isinstance(grades, list) and ids is not None and len(grades) == len(ids):
        items = list(zip(ids, grades, strict=True))
    else:
        raise DataError(
            path,
            lineno,
            "field 'relevant_doc_grades' must be an object {doc_id: grade} "
            "or a list as long as 'relevant_doc_ids'",
        )
    for doc_id, grade in items:
        if isinstance(grade, bool) or not isinstance(grade, int | float) or grade != int(grade):
            raise DataError(path, lineno, f"grade of {doc_id!r} in 'relevant_doc_grades' must be an integer")
        out[str(doc_id)] = int(grade)
    return out


def read_queries(path: str | os.PathLike[str]) -> list[Query]:
    """Reads queries: the playbook's gold JSONL (with judgements) or BEIR ``queries.jsonl``
    (``_id``, ``text``; judgements then come from qrels). A BEIR folder reads
    ``queries.jsonl`` and attaches ``qrels/test.tsv`` (or the only TSV there)."""
    path = Path(path)
    qrels: Qrels | None = None
    if path.is_dir():
        qrels_dir = path / "qrels"
        tsvs = sorted(qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
        pick = [p for p in tsvs if p.stem == "test"] or tsvs[:1]
        if pick:
            qrels = read_qrels(pick[0])
        path = path / "queries.jsonl"
    queries: list[Query] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        qid = id_field(obj, ("query_id", "_id", "qid", "id"), path, lineno)
        text = obj.get("query", obj.get("text"))
        if not isinstance(text, str):
            raise DataError(path, lineno, "missing field 'query' (or 'text')")
        if qid in seen:
            raise DataError(path, lineno, f"duplicate query id {qid!r} (first on line {seen[qid]})")
        seen[qid] = lineno
        relevant = _grades(obj, path, lineno)
        extra = {
            k: v
            for k, v in obj.items()
            if k
            not in (
                "query_id",
                "_id",
                "qid",
                "id",
                "query",
                "text",
                "relevant_doc_ids",
                "relevant_doc_grades",
            )
        }
        queries.append(Query(qid, text, relevant, extra))
    if qrels is not None:
        for q in queries:
            q.relevant = dict(qrels.get(q.query_id, {}))
    if not queries:
        raise DataError(path, None, "no queries in the file")
    return queries


def queries_to_qrels(queries: list[Query]) -> Qrels:
    return {q.query_id: dict(q.relevant) for q in queries if q.relevant}


# ----------------------------------------------------------------------------- qrels


def read_qrels(path: str | os.PathLike[str]) -> Qrels:
    """Reads judgements from TREC qrels (``qid iter docid rel``), BEIR TSV
    (``query-id corpus-id score`` with a header) or gold JSONL."""
    path = Path(path)
    if path.is_dir():
        tsvs = sorted((path / "qrels").glob("*.tsv"))
        pick = [p for p in tsvs if p.stem == "test"] or tsvs[:1]
        if not pick:
            raise DataError(path, None, "no qrels/*.tsv in this BEIR folder")
        path = pick[0]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return queries_to_qrels(read_queries(path))
    qrels: Qrels = {}
    for lineno, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if lineno == 1 and parts[0].lower() in ("query-id", "query_id", "qid"):
            continue  # BEIR header
        if len(parts) == 4:
            qid, _, doc, rel = parts
        elif len(parts) == 3:
            qid, doc, rel = parts
        else:
            raise DataError(
                path,
                lineno,
                f"expected 'query iteration doc relevance' (TREC) or 'query doc relevance' (BEIR), "
                f"got {len(parts)} fields",
            )
        try:
            grade = int(rel) if "." not in rel else int(float(rel))
        except (ValueError, OverflowError):
            raise DataError(path, lineno, f"relevance {rel!r} is not an integer") from None
        qrels.setdefault(qid, {})[doc] = grade
    if not qrels:
        raise DataError(path, None, "no judgements in the file")
    return qrels


__all__ = [
    "TIE_RULE",
    "Corpus",
    "Document",
    "Qrels",
    "Query",
    "Run",
    "RunWriter",
    "atomic_write",
    "current_umask",
    "file_sha256",
    "index_sha256",
    "format_score",
    "fsync_dir",
    "id_field",
    "iter_jsonl",
    "iter_lines",
    "open_run_writer",
    "queries_to_qrels",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "read_run",
    "tie_rule_order",
    "umask_mode",
    "write_json",
    "write_jsonl",
    "write_jsonl_run",
    "write_run",
    "write_trec_run",
]
