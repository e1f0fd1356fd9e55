"""The summary of a scored run (``summary.json``): per arm and metric, the mean over scenarios
(repeats averaged first, failed requests left out) with a percentile bootstrap interval from
``bdnsca._core.bootstrap_means`` (scenarios resampled, one draw per metric column); per scenario
slice (each ``scenario_tags`` key and value) the per-arm means; and its one-screen text form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bdnsca import _core

if TYPE_CHECKING:
    from bdnsca.eval.scoring import ScoringConfig

__all__ = ["summarize", "format_summary"]


def _unit(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def summarize(
    scores: Mapping[str, Sequence[Mapping[str, Any]]],
    scenarios: Mapping[str, Mapping[str, Any]],
    config: ScoringConfig,
) -> dict[str, Any]:
    """Per arm and metric: mean over scenarios with its bootstrap interval; per slice: means."""
    q = (1 - config.confidence) / 2
    arms: dict[str, Any] = {}
    slices: dict[str, dict[str, dict[str, Any]]] = {}
    for arm, rows in scores.items():
        per_scen: dict[str, dict[str, list[float]]] = {}
        for r in rows:
            if r.get("ok") is False:
                continue
            d = per_scen.setdefault(str(r["scenario_id"]), {})
            for m in config.metrics:
                if r.get(m) is not None:
                    d.setdefault(m, []).append(float(r[m]))
        means = {sid: {m: float(np.mean(v)) for m, v in d.items()} for sid, d in per_scen.items()}
        entry: dict[str, Any] = {
            "n_responses": len(rows),
            "n_failed": sum(1 for r in rows if r.get("ok") is False),
            "n_scenarios": len(means),
            "metrics": {},
        }
        for m in config.metrics:
            vals = np.array([v[m] for v in means.values() if m in v], dtype=np.float64)
            if len(vals) == 0:
                entry["metrics"][m] = {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
                continue
            boot = _core.bootstrap_means(
                np.ascontiguousarray(vals[:, None]), resamples=config.resamples, seed=config.seed
            )[:, 0]
            lo, hi = np.quantile(boot, [q, 1 - q])
            entry["metrics"][m] = {
                "mean": _unit(vals.mean()),
                "ci_low": _unit(lo),
                "ci_high": _unit(hi),
                "n": len(vals),
            }
        raw_mtld = [
            float(r["score_details"]["mtld"])
            for r in rows
            if isinstance(r.get("score_details"), Mapping) and r["score_details"].get("mtld") is not None
        ]
        raw_mtld = [x for x in raw_mtld if np.isfinite(x)]
        entry["raw_mtld"] = (
            {"mean": float(np.mean(raw_mtld)), "median": float(np.median(raw_mtld)), "n": len(raw_mtld)}
            if raw_mtld
            else None
        )
        arms[arm] = entry
        groups: dict[tuple[str, str], list[dict[str, float]]] = {}
        for sid, v in means.items():
            tags = scenarios.get(sid, {}).get("scenario_tags") or {}
            if isinstance(tags, dict):
                for key, value in tags.items():
                    if isinstance(value, str | int | bool):
                        groups.setdefault((str(key), str(value)), []).append(v)
        for (key, value), members in sorted(groups.items()):
            cell: dict[str, Any] = {"n": len(members)}
            for m in config.metrics:
                vals = [x[m] for x in members if m in x]
                cell[m] = _unit(float(np.mean(vals))) if vals else None
            slices.setdefault(key, {}).setdefault(value, {})[arm] = cell
    return {
        "metrics": list(config.metrics),
        "unit": "scenario (repeats averaged first); failed requests left out",
        "confidence": config.confidence,
        "resamples": config.resamples,
        "seed": config.seed,
        "arms": arms,
        "slices": slices,
    }


def format_summary(summary: Mapping[str, Any]) -> str:
    """One line per arm: each metric's mean and its CI half-width."""
    metrics = summary["metrics"]
    width = max([len(a) for a in summary["arms"]] + [3])
    head = f"{'arm':<{width}}  " + "  ".join(f"{m[:17]:>17}" for m in metrics)
    lines = [head]
    for arm, entry in summary["arms"].items():
        cells = []
        for m in metrics:
            s = entry["metrics"][m]
            if s["mean"] is None:
                cells.append(f"{'-':>17}")
            else:
                half = (s["ci_high"] - s["ci_low"]) / 2
                cells.append(f"{s['mean']:>10.3f} ±{half:.3f}")
        lines.append(f"{arm:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)
