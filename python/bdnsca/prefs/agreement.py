"""Inter-rater agreement: Krippendorff's alpha (ordinal) and mean pairwise weighted kappa."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from itertools import combinations

import numpy as np


def krippendorff_alpha_ordinal(ratings: Iterable[tuple[Hashable, Hashable, float]]) -> float | None:
    """Krippendorff's alpha with the ordinal difference function.

    ``ratings`` are (unit, rater, value) triples; units rated by fewer than two raters are
    ignored. Returns None when fewer than two pairable values exist or all values agree
    trivially (no variation to explain)."""
    units: dict[Hashable, list[float]] = defaultdict(list)
    for unit, _rater, value in ratings:
        units[unit].append(value)
    values = sorted({v for vs in units.values() if len(vs) > 1 for v in vs})
    if len(values) < 2:
        return None
    index = {v: i for i, v in enumerate(values)}
    k = len(values)
    coincidence = np.zeros((k, k))
    for vs in units.values():
        m = len(vs)
        if m < 2:
            continue
        for i, a in enumerate(vs):
            for j, b in enumerate(vs):
                if i != j:
                    coincidence[index[a], index[b]] += 1.0 / (m - 1)
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return None
    # ordinal metric: delta(c, k) = (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    delta = np.zeros((k, k))
    for c in range(k):
        for e in range(k):
            lo, hi = min(c, e), max(c, e)
            delta[c, e] = (cum[hi + 1] - cum[lo] - (n_c[c] + n_c[e]) / 2.0) ** 2
    observed = (coincidence * delta).sum()
    expected = (np.outer(n_c, n_c) * delta).sum() / (n - 1)
    if expected == 0:
        return None
    return float(1.0 - observed / expected)


def weighted_kappa(
    a: list[float], b: list[float], categories: list[float], weights: str = "quadratic"
) -> float | None:
    """Cohen's weighted kappa of two raters over the same items."""
    if len(a) != len(b) or not a:
        return None
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    observed = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        observed[index[x], index[y]] += 1
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    i, j = np.indices((k, k))
    w = (i - j) ** 2 if weights == "quadratic" else np.abs(i - j)
    denom = (w * expected).sum()
    if denom == 0:
        return None
    return float(1.0 - (w * observed).sum() / denom)


def mean_pairwise_kappa(
    ratings: Iterable[tuple[Hashable, Hashable, float]], weights: str = "quadratic"
) -> float | None:
    """Mean of weighted kappa over every pair of raters, each on the units both rated."""
    by_rater: dict[Hashable, dict[Hashable, float]] = defaultdict(dict)
    for unit, rater, value in ratings:
        by_rater[rater][unit] = value
    categories = sorted({v for r in by_rater.values() for v in r.values()})
    kappas = []
    for r1, r2 in combinations(sorted(by_rater, key=str), 2):
        shared = sorted(set(by_rater[r1]) & set(by_rater[r2]), key=str)
        if len(shared) < 2:
            continue
        kappa = weighted_kappa(
            [by_rater[r1][u] for u in shared], [by_rater[r2][u] for u in shared], categories, weights
        )
        if kappa is not None:
            kappas.append(kappa)
    return float(np.mean(kappas)) if kappas else None
