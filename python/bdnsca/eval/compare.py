"""Paired comparison of retrieval runs on the same qrels (ranx's ``compare``, paired and exact).

Per metric and pair of runs: each run's mean, the paired mean difference with its percentile
bootstrap interval over queries, and a two-sided p-value (paired randomization, paired t-test or
paired bootstrap test), corrected for multiple comparisons within each metric. Queries of the
qrels that a run lacks score 0 (trec_eval's ``-c``) and are counted. The resampling runs in Rust
(``bdnsca._core.compare_pairs``): all pairs share one set of resamples.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bdnsca import _core
from bdnsca.data.atomic import finite_or_none
from bdnsca.errors import BdnscaError
from bdnsca.eval.metrics import evaluate_matrix

TESTS = ("randomization", "t-test", "bootstrap")
CORRECTIONS = ("holm", "bonferroni", "none")


@dataclass(frozen=True)
class Comparison:
    """Run ``a`` against run ``b`` on one metric; ``delta = mean_a - mean_b``."""

    metric: str
    a: str
    b: str
    mean_a: float
    mean_b: float
    delta: float
    ci95: tuple[float, float]
    p_value: float
    p_value_adjusted: float
    significant: bool


@dataclass
class CompareResult:
    """Everything ``compare`` computed; ``to_dict()`` is what ``bdnsca compare -o`` writes."""

    runs: list[str]
    metrics: list[str]
    n_queries: int
    means: dict[str, dict[str, float]]
    missing_queries: dict[str, int]
    comparisons: list[Comparison]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a p-value with no test (fewer than two queries) is None."""
        out = asdict(self)
        out["comparisons"] = [asdict(c) | {"ci95": list(c.ci95)} for c in self.comparisons]
        return finite_or_none(out)

    def table(self) -> str:
        """A ranx-style table: runs as rows, metrics as columns; a superscript letter marks a
        run significantly better (corrected p < alpha) than the run of that letter."""
        letters = {name: chr(ord("a") + i) if i < 26 else f"[{i}]" for i, name in enumerate(self.runs)}
        better: dict[tuple[str, str], list[str]] = {(r, m): [] for r in self.runs for m in self.metrics}
        for c in self.comparisons:
            if c.significant:
                winner, loser = (c.a, c.b) if c.delta > 0 else (c.b, c.a)
                better[(winner, c.metric)].append(letters[loser])
        head = ["#", "run", *self.metrics]
        rows = []
        for name in self.runs:
            cells = [letters[name], name]
            for m in self.metrics:
                marks = "".join(sorted(better[(name, m)]))
                cells.append(f"{self.means[name][m]:.4f}" + (f" ({marks})" if marks else ""))
            rows.append(cells)
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
        test, corr, alpha = (self.settings.get(k) for k in ("test", "correction", "alpha"))
        out = [line(head), line(["-" * w for w in widths]), *map(line, rows)]
        out.append(f"(x): significantly better than run x ({test} test, {corr} correction, p < {alpha})")
        return "\n".join(out)


def compare(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, Mapping[str, Mapping[str, float]]] | Sequence[Mapping[str, Mapping[str, float]]],
    metrics: Sequence[str] = ("mrr@10", "ndcg@10"),
    *,
    test: str = "randomization",
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
    correction: str = "holm",
    confidence: float = 0.95,
) -> CompareResult:
    """Compare every pair of ``runs`` (a ``{name: run}`` mapping, or a list named run_1, ...)
    on ``metrics`` over the queries of ``qrels``.

    Raises ``BdnscaError`` for fewer than two runs, an unknown metric, test or correction, or
    ``resamples < 1``.
    """
    if test not in TESTS:
        raise BdnscaError(f"unknown test {test!r}: use one of {', '.join(TESTS)}")
    if correction not in CORRECTIONS:
        raise BdnscaError(f"unknown correction {correction!r}: use one of {', '.join(CORRECTIONS)}")
    if resamples < 1:
        raise BdnscaError(f"resamples must be >= 1, got {resamples}")
    if not 0 < alpha < 1:
        raise BdnscaError(f"alpha must be in (0, 1), got {alpha}")
    named = dict(runs) if isinstance(runs, Mapping) else {f"run_{i + 1}": r for i, r in enumerate(runs)}
    if len(named) < 2:
        raise BdnscaError(f"compare needs at least two runs, got {len(named)}")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if not metrics:
        raise BdnscaError("no metrics to compare")
    names = list(named)
    blocks, missing = [], {}
    for name in names:
        run = named[name]
        qids, _, values = evaluate_matrix(dict(qrels), dict(run), metrics)
        blocks.append(values)
        missing[name] = sum(1 for q in qids if q not in run)
    matrix = np.ascontiguousarray(np.hstack(blocks), dtype=np.float64)  # (n_queries, runs x metrics)
    n_metrics = len(metrics)
    pairs = [
        (i * n_metrics + m, j * n_metrics + m)
        for m in range(n_metrics)
        for i, j in itertools.combinations(range(len(names)), 2)
    ]
    raw = _core.compare_pairs(matrix, pairs, resamples=resamples, seed=seed, confidence=confidence, test=test)
    comparisons: list[Comparison] = []
    for m, metric in enumerate(metrics):
        rows = [r for r, (ca, _) in zip(raw, pairs, strict=True) if ca % n_metrics == m]
        adjusted = _core.adjust_p_values([r["p_value"] for r in rows], correction)
        for r, p_adj in zip(rows, adjusted, strict=True):
            comparisons.append(
                Comparison(
                    metric=metric,
                    a=names[r["a"] // n_metrics],
                    b=names[r["b"] // n_metrics],
                    mean_a=r["mean_a"],
                    mean_b=r["mean_b"],
                    delta=r["delta"],
                    ci95=(r["ci_low"], r["ci_high"]),
                    p_value=r["p_value"],
                    p_value_adjusted=p_adj,
                    significant=bool(p_adj < alpha),
                )
            )
    means = {
        name: {metric: float(blocks[i][:, m].mean()) for m, metric in enumerate(metrics)}
        for i, name in enumerate(names)
    }
    settings = {
        "test": test,
        "resamples": resamples,
        "seed": seed,
        "alpha": alpha,
        "correction": correction,
        "confidence": confidence,
        "missing_queries_score": 0,
    }
    return CompareResult(names, metrics, matrix.shape[0], means, missing, comparisons, settings)
