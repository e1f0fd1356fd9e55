"""Rank fusion of runs (RRF, CombSUM, CombMNZ, ...) in Rust, with ranx's semantics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bdnsca import _core
from bdnsca.data.io import Run
from bdnsca.errors import BdnscaError

FUSION_METHODS = ("rrf", "combsum", "combmnz", "combanz", "combmax", "combmin", "combmed")
"""Method names; ranx's short names (``sum``, ``mnz``, ``anz``, ``max``, ``min``, ``med``) work too."""

NORMS = ("min-max", "zmuv", "max", "sum", "none")
"""Score normalisations applied to each run's list per query before Comb* fusion
(``z-score`` is another name for ``zmuv``; RRF ignores scores, so the norm does not change it)."""


def fuse(
    runs: Sequence[Mapping[str, Mapping[str, float]]],
    method: str = "rrf",
    k: int = 60,
    norm: str | None = "min-max",
    *,
    threads: int | None = None,
) -> Run:
    """Fuse runs ``{query_id: {doc_id: score}}`` into one run of the same form.

    Scores equal ``ranx.fuse(runs, norm=norm, method=method, params={"k": k})`` (bit for bit;
    ranx's method names ``sum``/``mnz``/... and ``min-max``/``zmuv``/``max``/``sum`` norms):

    - each run's list is ranked by score descending, ties by document id descending (UTF-8
      bytes, the project's tie rule); RRF scores the document at rank ``i`` (0-based)
      ``1 / (k + i + 1)`` and adds over runs. ranx ranks tied scores in its own sort order, so
      on ties in an input run the two agree when ranx is given the run in this order;
    - ``min-max`` maps a constant list to 0 (ranx floors every denominator at 1e-9); ``zmuv``
      uses the population standard deviation;
    - a document absent from a run adds 0 to CombSUM, does not count for CombMNZ / CombANZ /
      CombMED, and counts as -1e9 / 1e9 for CombMAX / CombMIN (as in ranx);
    - a query absent from some runs is fused over the runs that have it (ranx refuses runs whose
      query ids differ);
    - the result holds every document of any run, each query's documents in fused order (ties
      by document id descending); queries in order of first appearance.

    Raises BdnscaError for a NaN or infinite score (naming the run index, query and document),
    an unknown method or norm, ``k`` or ``threads`` out of range (``k < 0``, ``threads < 1``,
    either above 2**63 - 1) or no runs; TypeError for malformed runs (not a list of dicts of
    dicts) and for a ``k`` or ``threads`` that is not an int (``True`` is not one). The work runs
    in parallel over queries with the GIL released (``threads``: default all cores).
    """
    if isinstance(runs, str | bytes | Mapping) or not isinstance(runs, Iterable):
        raise TypeError(
            f"runs must be a list of runs {{query_id: {{doc_id: score}}}}, got {type(runs).__name__}"
        )
    plain = []
    for i, r in enumerate(runs):
        if not isinstance(r, Mapping):
            raise TypeError(
                f"runs[{i}] must be a dict {{query_id: {{doc_id: score}}}}, got {type(r).__name__}"
            )
        plain.append(
            r
            if isinstance(r, dict)
            else {q: d if not isinstance(d, Mapping) else dict(d) for q, d in r.items()}
        )
    k = _int_arg("k", k, 0)
    threads = None if threads is None else _int_arg("threads", threads, 1, "(or None for all cores)")
    return _core.fuse(plain, method=method, k=k, norm=norm, threads=threads)


_I64_MAX = 2**63 - 1


def _int_arg(name: str, value: object, low: int, note: str = "") -> int:
    """An integer argument: TypeError if not an int (a bool is not one), BdnscaError outside
    [low, 2**63 - 1] (what the core takes; it raised OverflowError)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not low <= value <= _I64_MAX:
        tail = f" {note}" if note else ""
        raise BdnscaError(f"{name} must be >= {low} and <= 2**63 - 1{tail}, got {value}")
    return value


__all__ = ["FUSION_METHODS", "NORMS", "fuse"]
