"""Multi-rater ratings: reading the long-form ratings CSV and aggregating it over raters.

The CSV has one row per (scenario, arm, annotator): the id columns ``scenario_id``, ``arm_id``,
``annotator_id``, one numeric column per metric (a blank cell: not rated on that metric), and
optionally free-text columns (``notes``, ``note``, ``comment``, ``comments``, ``rationale``).
Any other column must be a metric: a non-numeric value in it is an error naming the column
and the line, so a misnamed text column or a misaligned row never passes as ratings.

An annotator rates a (scenario, arm) once. A repeated (scenario, arm, annotator) row is an error
with both lines, or, with ``duplicates="collapse"``, averaged into one rating per metric and
counted (``Ratings.duplicate_rows_collapsed``). So every consumer (aggregation, ``min_raters``,
Krippendorff's alpha, pairwise kappa) sees one value per distinct annotator.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError, DataError

ID_COLUMNS = ("scenario_id", "arm_id", "annotator_id")
TEXT_COLUMNS = ("notes", "note", "comment", "comments", "rationale")
DUPLICATE_POLICIES = ("error", "collapse")
AGGREGATES = ("mean", "median", "zscore")

Unit = tuple[str, str]
"""(scenario id, arm id): the thing a rater rates."""


@dataclass
class Ratings:
    """Ratings read from one CSV, one value per (metric, scenario, arm, distinct annotator)."""

    by_metric: dict[str, dict[Unit, list[tuple[str, float]]]]
    """metric -> (scenario, arm) -> [(annotator, value)], each annotator at most once."""
    metrics: list[str]
    arms: list[str]
    """Arm ids in the order they first appear."""
    path: Path | None = None
    rows: int = 0
    """Data rows read (before duplicates were collapsed)."""
    duplicate_rows_collapsed: int = 0
    text_columns: list[str] = field(default_factory=list)

    def triples(self, metric: str) -> Iterator[tuple[Unit, str, float]]:
        """(unit, annotator, value) triples of one metric, the form the agreement statistics take."""
        for unit, vals in self.by_metric[metric].items():
            for rater, value in vals:
                yield unit, rater, value

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path) if self.path else None,
            "rows": self.rows,
            "duplicate_rows_collapsed": self.duplicate_rows_collapsed,
            "metrics": list(self.metrics),
            "text_columns": list(self.text_columns),
            "annotators": len({r for m in self.by_metric.values() for v in m.values() for r, _ in v}),
        }


def read_ratings(
    path: str | os.PathLike[str],
    scale: tuple[float, float] | None = None,
    *,
    duplicates: str = "error",
) -> Ratings:
    """Reads a long-form ratings CSV (see the module docstring).

    ``scale`` (MIN, MAX), when given, bounds every rating. ``duplicates`` is ``"error"`` (a
    repeated scenario/arm/annotator row raises DataError with both lines) or ``"collapse"``
    (the repeats' values are averaged per metric and counted)."""
    if duplicates not in DUPLICATE_POLICIES:
        raise BdnscaError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, got {duplicates!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    lo, hi = scale if scale is not None else (-math.inf, math.inf)
    # (metric, unit) -> annotator -> values (several only for collapsed duplicates)
    values: dict[str, dict[Unit, dict[str, list[float]]]] = {}
    first_line: dict[tuple[str, str, str], int] = {}
    arms: list[str] = []
    n_rows = 0
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(path, 1, "empty file (expected a header row)")
            header = [h.strip() for h in header]
            for col in ID_COLUMNS:
                if col not in header:
                    raise DataError(
                        path,
                        1,
                        f"missing column {col!r} (the ratings CSV is long form: "
                        "scenario_id, arm_id, annotator_id, one column per metric)",
                    )
            seen: set[str] = set()
            for col in header:
                if col and col in seen:
                    raise DataError(path, 1, f"column {col!r} appears twice in the header")
                seen.add(col)
            index = {c: i for i, c in enumerate(header)}
            text_cols = [c for c in header if c in TEXT_COLUMNS]
            unnamed = [i for i, c in enumerate(header) if not c]
            metrics = [c for c in header if c and c not in ID_COLUMNS and c not in TEXT_COLUMNS]
            for m in metrics:
                values[m] = defaultdict(lambda: defaultdict(list))
            rated: dict[str, bool] = dict.fromkeys(metrics, False)
            for row in reader:
                lineno = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue
                n_rows += 1
                if len(row) != len(header):
                    raise DataError(
                        path,
                        lineno,
                        f"{len(row)} fields, but the header has {len(header)} "
                        "(an unquoted comma in a text field?)",
                    )
                for i in unnamed:
                    if row[i].strip():
                        raise DataError(path, lineno, f"a value ({row[i]!r}) under a column with no name")
                sid, arm, rater = (row[index[c]].strip() for c in ID_COLUMNS)
                if not sid or not arm or not rater:
                    raise DataError(path, lineno, "empty scenario_id, arm_id or annotator_id")
                key = (sid, arm, rater)
                if key in first_line:
                    if duplicates == "error":
                        raise DataError(
                            path,
                            lineno,
                            f"scenario {sid!r}, arm {arm!r}, annotator {rater!r} already rated on line "
                            f"{first_line[key]} (an annotator rates a response once; to average "
                            "repeats, use --duplicate-ratings collapse)",
                        )
                else:
                    first_line[key] = lineno
                if arm not in arms:
                    arms.append(arm)
                for m in metrics:
                    raw = row[index[m]].strip()
                    if not raw:
                        continue
                    value = _number(raw)
                    if value is None:
                        raise DataError(
                            path,
                            lineno,
                            f"column {m!r}: {raw!r} is not a number. Every column other than "
                            f"{', '.join(ID_COLUMNS)} is a metric, except the free-text columns "
                            f"{', '.join(TEXT_COLUMNS)}",
                        )
                    if not lo <= value <= hi:
                        raise DataError(
                            path, lineno, f"column {m!r}: rating {value:g} is outside the scale {lo:g}:{hi:g}"
                        )
                    rated[m] = True
                    values[m][(sid, arm)][rater].append(value)
    except UnicodeDecodeError as exc:
        raise DataError(path, None, f"not UTF-8 (byte {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataError(path, None, f"malformed CSV ({exc})") from None
    empty = [m for m in metrics if not rated[m]]
    if empty and n_rows:
        raise DataError(
            path,
            1,
            f"column {empty[0]!r} holds no ratings: it is not an id column, not a metric and not one of "
            f"the free-text columns {', '.join(TEXT_COLUMNS)} (remove it or rename it)",
        )
    by_metric = {
        m: {unit: [(r, statistics.fmean(vs)) for r, vs in per.items()] for unit, per in values[m].items()}
        for m in metrics
    }
    return Ratings(
        by_metric=by_metric,
        metrics=metrics,
        arms=arms,
        path=path,
        rows=n_rows,
        duplicate_rows_collapsed=n_rows - len(first_line),
        text_columns=text_cols,
    )


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Aggregate:
    """One (scenario, arm)'s ratings on one metric, aggregated over its annotators."""

    score: float
    """The value compared, on the rating scale: the mean or median of the ratings; for
    ``zscore``, the pooled mean of all ratings plus the mean per-rater z-score times the mean
    rater standard deviation (so differences of scores are z-differences in rating units)."""
    raters: int
    """Distinct annotators."""
    mean: float
    """The plain mean of the ratings, whatever the aggregate."""


def aggregate_ratings(
    ratings: dict[Unit, list[tuple[str, float]]], how: str = "mean"
) -> dict[Unit, Aggregate]:
    """Aggregates one metric's ratings per (scenario, arm): ``mean``, ``median``, or ``zscore``
    (each rater's ratings standardised by that rater's mean and population SD over the whole
    file, then averaged; a rater with no spread contributes 0)."""
    if how not in AGGREGATES:
        raise BdnscaError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
    out: dict[Unit, Aggregate] = {}
    if how == "zscore":
        per_rater: dict[str, list[float]] = defaultdict(list)
        for vals in ratings.values():
            for rater, v in vals:
                per_rater[rater].append(v)
        stats = {r: (statistics.fmean(v), statistics.pstdev(v)) for r, v in per_rater.items()}
        sds = [sd for _, sd in stats.values() if sd > 0]
        unit = statistics.fmean(sds) if sds else 1.0
        pooled = statistics.fmean(v for vs in per_rater.values() for v in vs) if per_rater else 0.0
        for key, vals in ratings.items():
            z = statistics.fmean(
                [(v - stats[r][0]) / stats[r][1] if stats[r][1] > 0 else 0.0 for r, v in vals]
            )
            out[key] = Aggregate(pooled + z * unit, _distinct(vals), statistics.fmean(v for _, v in vals))
        return out
    fn = statistics.fmean if how == "mean" else statistics.median
    for key, vals in ratings.items():
        xs = [v for _, v in vals]
        out[key] = Aggregate(fn(xs), _distinct(vals), statistics.fmean(xs))
    return out


def _distinct(vals: list[tuple[str, float]]) -> int:
    return len({r for r, _ in vals})
