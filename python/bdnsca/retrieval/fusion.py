"""Rank fusion of runs (RRF, CombSUM, CombMNZ, ...) in Rust, with ranx's semantics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bdnsca import _core
from bdnsca.data.io import Run

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
    an unknown method or norm, ``k < 0`` or no runs; TypeError for malformed runs. The work runs
    in parallel over queries with the GIL released (``threads``: default all cores).
    """
    plain = [r if isinstance(r, dict) else {q: dict(d) for q, d in r.items()} for r in runs]
    return _core.fuse(plain, method=method, k=k, norm=norm, threads=threads)


__all__ = ["FUSION_METHODS", "NORMS", "fuse"]
