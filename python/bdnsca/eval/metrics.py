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
    ``map``, ``map@k``, ``r-precision``. Per-query values equal trec_eval's (pytrec_eval's): the run
    is sorted by score descending, ties by document id descending; relevance > 0 is relevant.
    With ``per_query=True`` returns ``(means, {query_id: {metric: value}})``.
    """
    qids, names, values = evaluate_matrix(qrels, run, metrics)
    means = {name: float(v) for name, v in zip(names, values.mean(axis=0), strict=True)}
    if not per_query:
        return means
    rows = values.tolist()
    return means, {q: dict(zip(names, row, strict=True)) for q, row in zip(qids, rows, strict=True)}


def bootstrap_ci(
    values: np.ndarray, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> np.ndarray:
    """Percentile bootstrap interval of the mean of each column; returns (n_columns, 2)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    if n == 0 or n_resamples <= 0:
        return np.full((values.shape[1], 2), np.nan)
    rng = np.random.default_rng(seed)
    means = np.empty((n_resamples, values.shape[1]))
    for start in range(0, n_resamples, 256):
        stop = min(start + 256, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return np.quantile(means, [alpha, 1.0 - alpha], axis=0).T
