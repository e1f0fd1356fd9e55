"""Ranking metrics (trec_eval semantics, computed in Rust) and bootstrap confidence intervals."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np

from bdnsca import _core
from bdnsca.errors import BdnscaError

DEFAULT_METRICS = ("mrr@10", "ndcg@10", "recall@10", "recall@100", "precision@10", "hit@1", "map")


class NoOverlapWarning(UserWarning):
    """qrels and run share no query ids."""


def evaluate_matrix(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], metrics: Sequence[str]
) -> tuple[list[str], list[str], np.ndarray]:
    """Per-query values as a matrix: (query ids of qrels, metric names, array (n_queries, n_metrics)).

    A query missing from the run scores 0. Warns (NoOverlapWarning) when qrels and run share no ids.
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(qrels, dict) or not isinstance(run, dict):
        raise TypeError("qrels and run must be dicts: {query_id: {doc_id: value}}")
    if not qrels:
        raise BdnscaError("qrels hold no queries")
    qids, names, values, missing, run_only = _core.evaluate_matrix(qrels, run, list(metrics))
    if missing == len(qids):
        warnings.warn(
            f"qrels and run share no query ids ({len(qids)} qrels queries, {len(run)} run queries, "
            f"{run_only} only in the run): every metric is 0",
            NoOverlapWarning,
            stacklevel=3,
        )
    return qids, names, values


@overload
def evaluate(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: Sequence[str] = ...,
    per_query: Literal[False] = ...,
) -> dict[str, float]: ...


@overload
def evaluate(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: Sequence[str] = ...,
    *,
    per_query: Literal[True],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]: ...


def evaluate(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    per_query: bool = False,
) -> Any:
    """Mean of each metric over the queries in ``qrels`` (a query the run lacks scores 0).

    Metric names: ``mrr@k``, ``ndcg@k``, ``ndcg_exp@k``, ``recall@k``, ``precision@k``, ``hit@k``,
    ``map``, ``map@k``, ``r-precision``. Per-query values equal trec_eval's (pytrec_eval's);
    relevance > 0 is relevant. Each query's documents are ranked by the project's one tie rule
    (:data:`bdnsca.data.io.TIE_RULE`): score descending, compared as float32, then document id
    descending (UTF-8 bytes), whatever order the dict holds; the order ``BM25.search`` returns
    and the run writers write. A NaN or infinite score is a BdnscaError naming query and document.
    With ``per_query=True`` returns ``(means, {query_id: {metric: value}})``.
    """
    qids, names, values = evaluate_matrix(qrels, run, metrics)
    means = {name: float(v) for name, v in zip(names, values.mean(axis=0), strict=True)}
    if not per_query:
        return means
    rows = values.tolist()
    return means, {q: dict(zip(names, row, strict=True)) for q, row in zip(qids, rows, strict=True)}


BOOTSTRAP_CHUNK_BYTES = 64 << 20
"""Working memory of one chunk of bootstrap resamples (indices plus gathered values)."""


def bootstrap_ci(
    values: np.ndarray, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> np.ndarray:
    """Percentile bootstrap interval of the mean of each column; returns (n_columns, 2).

    Resample ``r`` draws ``n`` row indices with ``np.random.default_rng(seed).integers(0, n)``,
    resamples in order, and takes the column means of those rows; the interval is the
    ``(1 - confidence) / 2`` and ``1 - (1 - confidence) / 2`` quantiles of the ``n_resamples``
    means. The resamples are drawn and reduced in chunks of at most
    :data:`BOOTSTRAP_CHUNK_BYTES` of working memory, so 100k rows x 7 metrics needs tens of MB,
    not the (n_resamples, n, n_columns) array; the result does not depend on the chunking.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise BdnscaError(f"values must be 1-D or 2-D, got shape {values.shape}")
    n, m = values.shape
    if n == 0 or n_resamples <= 0:
        return np.full((m, 2), np.nan)
    if not 0 < confidence < 1:
        raise BdnscaError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    # per resample: n int64 indices and the (n, m) gathered rows
    per_resample = n * 8 * (1 + m)
    chunk = int(max(1, min(n_resamples, BOOTSTRAP_CHUNK_BYTES // per_resample)))
    means = np.empty((n_resamples, m))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
        del idx
    alpha = (1.0 - confidence) / 2.0
    return np.quantile(means, [alpha, 1.0 - alpha], axis=0).T
