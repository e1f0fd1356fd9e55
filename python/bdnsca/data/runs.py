"""Run files (TREC and JSONL): the project's one tie rule, a streaming atomic writer with
float32 scores in shortest round-trip form, and a reader that keeps file order and refuses
non-finite scores with file:line."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from bdnsca.data.atomic import atomic_write
from bdnsca.data.lines import id_field, iter_jsonl, iter_lines
from bdnsca.errors import BdnscaError, DataError

Run = dict[str, dict[str, float]]

# The tie rule, one for the whole project and the order trec_eval scores: a query's documents
# are ranked by score descending, scores compared as float32 (in IEEE total order, so -0.0
# ranks just below 0.0), then by document id descending, ids compared as UTF-8 bytes.
# BM25.search returns rankings in this order, the run writers write it, and evaluate ranks
# every run by it whatever order the run's dict or file has.

TIE_RULE = "score descending (compared as float32), then document id descending (UTF-8 bytes)"

_WHITESPACE = re.compile(r"\s")


def _total_order_key(scores32: np.ndarray) -> np.ndarray:
    """Integers that order float32 values as IEEE totalOrder does (Rust's f32::total_cmp)."""
    bits = scores32.view(np.int32).astype(np.int64)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def tie_rule_order(doc_ids: Sequence[str], scores32: np.ndarray) -> list[int] | None:
    """Positions of ``doc_ids`` in the tie rule's order (see :data:`TIE_RULE`), or None when
    they already are in it (a ranking from BM25.search is), which is checked without sorting."""
    n = len(doc_ids)
    if n < 2:
        return None
    key = _total_order_key(scores32)
    head, tail = key[:-1], key[1:]
    if not (head < tail).any():
        ties = np.flatnonzero(head == tail).tolist()
        if all(doc_ids[i] > doc_ids[i + 1] for i in ties):
            return None
    keys = key.tolist()
    return sorted(range(n), key=lambda i: (keys[i], doc_ids[i]), reverse=True)


def format_score(score: float) -> str:
    """A score as the shortest decimal that reads back as the same float32 (``0.1234567``,
    ``1e-08``, ``12345.678``): the precision rankings and trec_eval use, no new ties."""
    return str(np.float32(score))


class RunWriter:
    """Writes a run one query at a time into an open text file, as TREC or JSONL lines.

    Each query's documents are written in the tie rule's order (:data:`TIE_RULE`): a ranking
    already in it, as BM25.search returns, is written as given, line for line; other input
    (a dict in any order) is ranked by the rule, never by document id alone. Scores are written
    with full float32 precision in shortest round-trip form. A NaN or infinite score is an
    error (a BdnscaError naming the query and document). Use :func:`open_run_writer`.
    """

    def __init__(self, f: IO[str], jsonl: bool, tag: str = "bdnsca") -> None:
        if not jsonl and (not tag or _WHITESPACE.search(tag)):
            raise BdnscaError(f"run tag {tag!r} must be one word (TREC column 6)")
        self._f = f
        self._jsonl = jsonl
        self._tag = tag
        self.queries = 0
        self.empty = 0
        self.rows = 0

    def write(self, query_id: str, doc_ids: Sequence[str], scores: Sequence[float] | np.ndarray) -> None:
        """Write one query's results; ``scores[i]`` is the score of ``doc_ids[i]``."""
        arr = np.asarray(scores)
        if arr.ndim != 1 or len(arr) != len(doc_ids):
            raise ValueError(
                f"query {query_id!r}: {len(doc_ids)} document ids but scores of shape {arr.shape}"
            )
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"query {query_id!r}: scores must be numbers, got {arr.dtype}")
        wide = arr.astype(np.float64)
        with np.errstate(over="ignore"):
            s32 = arr.astype(np.float32)
        bad = ~(np.isfinite(wide) & np.isfinite(s32))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            reason = "is not finite" if not np.isfinite(wide[i]) else "is outside float32's range"
            raise BdnscaError(
                f"query {query_id!r}, document {doc_ids[i]!r}: score {wide[i]!r} {reason}; "
                "a run needs finite scores"
            )
        if len(set(doc_ids)) != len(doc_ids):
            raise BdnscaError(f"query {query_id!r} lists a document more than once")
        order = tie_rule_order(doc_ids, s32)
        if order is not None:
            doc_ids = [doc_ids[i] for i in order]
            s32 = s32[order]
        texts = [str(s) for s in s32]
        if self._jsonl:
            items = ", ".join(
                f'{{"doc_id": {json.dumps(d, ensure_ascii=False)}, "score": {t}}}'
                for d, t in zip(doc_ids, texts, strict=True)
            )
            self._f.write(
                f'{{"query_id": {json.dumps(query_id, ensure_ascii=False)}, "results": [{items}]}}\n'
            )
        else:
            for name, value in [("query id", query_id), *(("document id", d) for d in doc_ids)]:
                if not value or _WHITESPACE.search(value):
                    raise BdnscaError(
                        f"{name} {value!r} cannot be written to a TREC run (empty or has whitespace); "
                        "write JSONL (.jsonl) instead"
                    )
            tag = self._tag
            self._f.write(
                "".join(
                    f"{query_id} Q0 {d} {rank} {t} {tag}\n"
                    for rank, (d, t) in enumerate(zip(doc_ids, texts, strict=True), 1)
                )
            )
        self.queries += 1
        self.rows += len(doc_ids)
        if not doc_ids:
            self.empty += 1

    def flush(self) -> None:
        """Hand what was written so far to the operating system (the file stays temporary)."""
        self._f.flush()


@contextlib.contextmanager
def open_run_writer(
    path: str | os.PathLike[str], tag: str = "bdnsca", *, jsonl: bool | None = None
) -> Iterator[RunWriter]:
    """A :class:`RunWriter` streaming into ``path`` atomically: lines go to a temporary file,
    which is fsynced and renamed over ``path`` when the block ends; when it fails the temporary
    file is removed and ``path`` is untouched. JSONL when ``path`` ends in .jsonl (or ``jsonl``
    says so), else TREC (``qid Q0 docid rank score tag``)."""
    if jsonl is None:
        jsonl = str(path).endswith(".jsonl")
    if not jsonl and (not tag or _WHITESPACE.search(tag)):
        raise BdnscaError(f"run tag {tag!r} must be one word (TREC column 6)")
    with atomic_write(path) as f:
        yield RunWriter(f, jsonl, tag)


def _write(path: str | os.PathLike[str], run: Run, tag: str, jsonl: bool) -> None:
    with open_run_writer(path, tag, jsonl=jsonl) as w:
        for qid, docs in run.items():
            w.write(qid, list(docs), list(docs.values()))


def write_trec_run(path: str | os.PathLike[str], run: Run, tag: str = "bdnsca") -> None:
    """Writes a TREC run (``qid Q0 docid rank score tag``) in the tie rule's order with float32
    scores in shortest round-trip form; see :class:`RunWriter`."""
    _write(path, run, tag, jsonl=False)


def write_jsonl_run(path: str | os.PathLike[str], run: Run) -> None:
    """Writes a JSONL run, one ``{"query_id", "results": [{"doc_id", "score"}]}`` per query,
    in the tie rule's order with float32 scores in shortest round-trip form."""
    _write(path, run, "bdnsca", jsonl=True)


def write_run(path: str | os.PathLike[str], run: Run, tag: str = "bdnsca") -> None:
    """Writes JSONL when ``path`` ends in .jsonl, else TREC. Each query's documents are
    written in the tie rule's order (:data:`TIE_RULE`; a ranking from search as given), scores
    with full float32 precision; reading the file back and evaluating it gives what evaluating
    ``run`` gives."""
    _write(path, run, tag, jsonl=str(path).endswith(".jsonl"))


def read_run(path: str | os.PathLike[str]) -> Run:
    """Reads a run: TREC format (``qid Q0 docid rank score tag``) or JSONL, either one row
    per result (``query_id, doc_id, score``) or one row per query with ``results``
    (a list of ``{doc_id, score}``).

    Each query's documents keep the file's order (evaluation ranks them by the tie rule,
    :data:`TIE_RULE`, whatever that order is). A score that is not a finite number, or a
    document listed twice for one query, is a DataError naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    run: Run = {}

    def add(qid: str, doc: str, score: float, lineno: int, text: str) -> None:
        if not math.isfinite(score):
            raise DataError(path, lineno, f"score {text} of {doc!r} is not finite; a run needs finite scores")
        bucket = run.setdefault(qid, {})
        if doc in bucket:
            raise DataError(path, lineno, f"document {doc!r} is listed twice for query {qid!r}")
        bucket[doc] = score

    if path.suffix == ".jsonl":
        for lineno, obj in iter_jsonl(path):
            qid = id_field(obj, ("query_id", "qid"), path, lineno)
            results = obj.get("results")
            rows = results if isinstance(results, list) else [obj]
            run.setdefault(qid, {})
            for row in rows:
                if not isinstance(row, dict):
                    raise DataError(path, lineno, "each entry of 'results' must be an object")
                doc = id_field(row, ("doc_id", "_id"), path, lineno)
                score = row.get("score")
                if isinstance(score, bool) or not isinstance(score, int | float):
                    raise DataError(path, lineno, f"field 'score' of {doc!r} must be a number")
                try:
                    value = float(score)
                except OverflowError:
                    value = math.inf
                add(qid, doc, value, lineno, repr(score))
        return run
    for lineno, line in iter_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise DataError(
                path, lineno, f"expected 6 fields 'qid Q0 docid rank score tag', got {len(parts)}"
            )
        try:
            score = float(parts[4])
        except ValueError:
            raise DataError(path, lineno, f"score {parts[4]!r} is not a number") from None
        add(parts[0], parts[2], score, lineno, repr(parts[4]))
    return run
