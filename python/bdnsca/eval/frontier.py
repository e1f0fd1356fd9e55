"""Quality-at-latency Pareto frontiers, computed in Rust."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bdnsca import _core
from bdnsca.errors import BdnscaError


def pareto_frontier(points: np.ndarray, maximize: bool | Sequence[bool] = False) -> np.ndarray:
    """Indices (ascending, int64) of the non-dominated rows of an (n, d) array, each column
    minimised or maximised as ``maximize`` says (one bool for all columns, or one per column).
    Rows with a NaN are never on the frontier; identical non-dominated rows are all returned."""
    arr = np.ascontiguousarray(points, dtype=np.float64)
    if arr.ndim != 2:
        raise BdnscaError(f"points must be a 2-D (n, d) array, got shape {arr.shape}")
    flags = (
        [bool(maximize)] * arr.shape[1]
        if isinstance(maximize, bool | np.bool_)
        else [bool(m) for m in maximize]
    )
    return _core.pareto_frontier(arr, flags)


def frontier_ratio(
    latency: Sequence[float] | np.ndarray, quality: Sequence[float] | np.ndarray
) -> np.ndarray:
    """latency / the lowest latency among configurations whose quality is at least as high
    (1.0 on the frontier; NaN where latency or quality is NaN)."""
    lat = np.ascontiguousarray(latency, dtype=np.float64)
    qual = np.ascontiguousarray(quality, dtype=np.float64)
    if lat.ndim != 1 or qual.ndim != 1:
        raise BdnscaError("latency and quality must be 1-D")
    return _core.frontier_ratio(lat, qual)
