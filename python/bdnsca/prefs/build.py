"""Preference pairs from multi-rater evaluation runs, ready for trl's DPO-family trainers.

A run directory holds ``run_config.json`` (the arms), ``scenarios.jsonl`` and
``responses/<arm>.jsonl``; ratings come as a long-form CSV (``scenario_id, arm_id, annotator_id``
and one column per metric). For each scenario the metric is aggregated over raters per arm; a
pair (chosen, rejected) is emitted when both arms have enough raters and one leads by the margin.
Each row records the prompt each response answered, so pairs whose responses answered
different prompts are visible (and can be dropped).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.prefs.agreement import krippendorff_alpha_ordinal, mean_pairwise_kappa
from bdnsca.errors import BdnscaError, DataError
from bdnsca.data.io import iter_jsonl, write_json, write_jsonl

AGGREGATES = ("mean", "median", "zscore")
PAIRINGS = ("target-vs-baselines", "all-arms")


@dataclass
class PreferenceSettings:
    """The builder's knobs; ``bdnsca build-preferences`` maps its flags onto them one to one."""

    target_arm: str = ""
    baseline_arms: list[str] = field(default_factory=list)
    metric: str = "overall_quality"
    min_raters: int = 2
    min_margin: float = 0.25
    """The leader's lead on the raw rating scale (for zscore, z-units times the mean rater SD)."""
    aggregate: str = "mean"
    pairing: str = "target-vs-baselines"
    allow_reverse_pairs: bool = False
    score_scale: tuple[float, float] = (1.0, 5.0)
    require_same_prompt: bool = False
    chat: bool = False
    eval_fraction: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise BdnscaError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")
        if self.pairing not in PAIRINGS:
            raise BdnscaError(f"pairing must be one of {', '.join(PAIRINGS)}, got {self.pairing!r}")
        if self.pairing == "target-vs-baselines" and (not self.target_arm or not self.baseline_arms):
            raise BdnscaError("target-vs-baselines pairing needs a target arm and at least one baseline arm")
        if self.min_raters < 1:
            raise BdnscaError("min raters must be >= 1")
        if self.min_margin < 0:
            raise BdnscaError("min margin must be >= 0")
        lo, hi = self.score_scale
        if not hi > lo:
            raise BdnscaError(f"score scale {lo}:{hi} is empty: use MIN:MAX with MIN < MAX")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise BdnscaError(f"eval fraction must lie in [0, 1), got {self.eval_fraction}")


@dataclass
class PreferenceResult:
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    summary: dict[str, Any]


def parse_scale(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise BdnscaError(f"score scale must look like MIN:MAX (e.g. 1:5), got {text!r}") from None
    return lo, hi


def normalise_score(score: float, scale: tuple[float, float]) -> float:
    """(s - min) / (max - min): the worst rating maps to 0, the best to 1."""
    lo, hi = scale
    return (score - lo) / (hi - lo)


# ----------------------------------------------------------------------------- reading


def read_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run_config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (is {run_dir} an evaluation run directory?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"malformed JSON ({exc.msg})") from None


def read_scenarios(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / "scenarios.jsonl"
    if not path.exists():
        return {}
    out = {}
    for lineno, row in iter_jsonl(path):
        sid = row.get("scenario_id")
        if not sid:
            raise DataError(path, lineno, "missing field 'scenario_id'")
        out[str(sid)] = row
    return out


def read_responses(run_dir: Path, arm: str) -> dict[str, dict[str, Any]]:
    """One response per scenario: the lowest repeat, then the lowest request index, among
    rows that succeeded (``ok`` not false) with a non-empty response."""
    path = run_dir / "responses" / f"{arm}.jsonl"
    if not path.exists():
        raise BdnscaError(f"arm {arm!r}: no responses file {path}")
    best: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
    for lineno, row in iter_jsonl(path):
        sid = row.get("scenario_id")
        if not sid:
            raise DataError(path, lineno, "response without 'scenario_id'")
        if row.get("ok") is False or not str(row.get("response") or "").strip():
            continue
        try:
            key = (int(row.get("repeat_index", 0)), int(row.get("request_index", 0)))
        except (TypeError, ValueError):
            raise DataError(path, lineno, "'repeat_index' and 'request_index' must be integers") from None
        if str(sid) not in best or key < best[str(sid)][0]:
            best[str(sid)] = (key, row)
    return {sid: row for sid, (_, row) in best.items()}


@dataclass
class Ratings:
    """metric -> (scenario, arm) -> [(annotator, value)]"""

    by_metric: dict[str, dict[tuple[str, str], list[tuple[str, float]]]]
    metrics: list[str]
    arms: list[str]


def read_ratings(path: str | os.PathLike[str], scale: tuple[float, float]) -> Ratings:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    lo, hi = scale
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        for col in ("scenario_id", "arm_id", "annotator_id"):
            if col not in header:
                raise DataError(
                    path,
                    1,
                    f"missing column {col!r} (the ratings CSV is long form: "
                    "scenario_id, arm_id, annotator_id, one column per metric)",
                )
        metrics = [c for c in header if c not in ("scenario_id", "arm_id", "annotator_id", "notes")]
        by_metric: dict[str, dict[tuple[str, str], list[tuple[str, float]]]] = {
            m: defaultdict(list) for m in metrics
        }
        arms: list[str] = []
        for lineno, row in enumerate(reader, 2):
            sid, arm, rater = row["scenario_id"], row["arm_id"], row["annotator_id"]
            if not sid or not arm or not rater:
                raise DataError(path, lineno, "empty scenario_id, arm_id or annotator_id")
            if arm not in arms:
                arms.append(arm)
            for m in metrics:
                raw = (row.get(m) or "").strip()
                if not raw:
                    continue
                try:
                    value = float(raw)
                except ValueError:
                    raise DataError(path, lineno, f"column {m!r}: {raw!r} is not a number") from None
                if not lo <= value <= hi:
                    raise DataError(
                        path, lineno, f"column {m!r}: rating {value:g} is outside the scale {lo:g}:{hi:g}"
                    )
                by_metric[m][(sid, arm)].append((rater, value))
    return Ratings(by_metric, metrics, arms)


# ----------------------------------------------------------------------------- building


def _aggregate(ratings: dict[tuple[str, str], list[tuple[str, float]]], how: str):
    """(scenario, arm) -> (aggregate, n raters), and the factor that turns an aggregate
    difference into raw-scale units."""
    if how == "zscore":
        per_rater: dict[str, list[float]] = defaultdict(list)
        for vals in ratings.values():
            for rater, v in vals:
                per_rater[rater].append(v)
        stats = {r: (statistics.fmean(v), statistics.pstdev(v)) for r, v in per_rater.items()}
        sds = [sd for _, sd in stats.values() if sd > 0]
        scale = statistics.fmean(sds) if sds else 1.0
        out = {
            key: (
                statistics.fmean(
                    [(v - stats[r][0]) / stats[r][1] if stats[r][1] > 0 else 0.0 for r, v in vals]
                ),
                len(vals),
            )
            for key, vals in ratings.items()
        }
        return out, scale
    fn = statistics.fmean if how == "mean" else statistics.median
    return {key: (fn([v for _, v in vals]), len(vals)) for key, vals in ratings.items()}, 1.0


def build_preferences(
    run_dir: str | os.PathLike[str],
    human_eval_file: str | os.PathLike[str] | None = None,
    settings: PreferenceSettings | None = None,
    **overrides: Any,
) -> PreferenceResult:
    """Builds preference pairs (train and, with ``eval_fraction``, eval) and a summary."""
    settings = settings or PreferenceSettings()
    if overrides:
        settings = PreferenceSettings(**{**asdict(settings), **overrides})
    settings.validate()
    run = Path(run_dir)
    config = read_run_config(run)
    scenarios = read_scenarios(run)
    ratings_path = (
        Path(human_eval_file) if human_eval_file else run / "human_eval_llm_multirater_consistent.csv"
    )
    ratings = read_ratings(ratings_path, settings.score_scale)
    if settings.metric not in ratings.by_metric:
        raise DataError(
            ratings_path,
            1,
            f"no column {settings.metric!r} (metrics found: {', '.join(ratings.metrics) or 'none'})",
        )
    config_arms = [a["arm_id"] for a in config.get("arms", []) if "arm_id" in a]
    if settings.pairing == "target-vs-baselines":
        arms = [settings.target_arm, *settings.baseline_arms]
        comparisons = [(settings.target_arm, b) for b in settings.baseline_arms]
    else:
        arms = [a for a in (config_arms or ratings.arms) if a in ratings.arms]
        comparisons = [(a, b) for i, a in enumerate(arms) for b in arms[i + 1 :]]
    for arm in arms:
        if config_arms and arm not in config_arms:
            raise BdnscaError(
                f"arm {arm!r} is not in {run / 'run_config.json'} (arms: {', '.join(config_arms)})"
            )
    responses = {arm: read_responses(run, arm) for arm in arms}

    metric_ratings = ratings.by_metric[settings.metric]
    agg, raw_per_unit = _aggregate(metric_ratings, settings.aggregate)
    rated_scenarios = {sid for sid, _ in metric_ratings}
    scenario_order = list(scenarios) or sorted({sid for r in responses.values() for sid in r})
    for sid in sorted(rated_scenarios - set(scenario_order)):
        scenario_order.append(sid)

    skipped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    margins: list[float] = []
    mismatched = 0
    for sid in scenario_order:
        if sid not in rated_scenarios:
            skipped["unrated_scenario"] += len(comparisons)
            continue
        for a, b in comparisons:
            if (sid, a) not in agg or (sid, b) not in agg:
                skipped["arm_unrated"] += 1
                continue
            (sa, na), (sb, nb) = agg[(sid, a)], agg[(sid, b)]
            if na < settings.min_raters or nb < settings.min_raters:
                skipped["insufficient_raters"] += 1
                continue
            lead = (sa - sb) * raw_per_unit
            if abs(lead) < settings.min_margin or lead == 0:
                skipped["below_margin"] += 1
                continue
            forward = lead > 0
            if not forward and settings.pairing == "target-vs-baselines" and not settings.allow_reverse_pairs:
                skipped["baseline_preferred"] += 1
                continue
            chosen, rejected = (a, b) if forward else (b, a)
            rc, rr = responses[chosen].get(sid), responses[rejected].get(sid)
            if rc is None or rr is None:
                skipped["missing_response"] += 1
                continue
            same_prompt = rc.get("prompt") == rr.get("prompt")
            if not same_prompt:
                mismatched += 1
                if settings.require_same_prompt:
                    skipped["prompt_mismatch"] += 1
                    continue
            raw_c = statistics.fmean(v for _, v in metric_ratings[(sid, chosen)])
            raw_r = statistics.fmean(v for _, v in metric_ratings[(sid, rejected)])
            margins.append(abs(lead))
            rows.append(
                _row(
                    settings,
                    sid,
                    scenarios.get(sid, {}),
                    chosen,
                    rejected,
                    rc,
                    rr,
                    raw_c,
                    raw_r,
                    abs(lead),
                    agg[(sid, chosen)][1],
                    agg[(sid, rejected)][1],
                    same_prompt,
                )
            )
    train, evals = _split(rows, settings)
    summary = {
        "run_dir": str(run),
        "human_eval_file": str(ratings_path),
        "pairs": len(rows),
        "train_pairs": len(train),
        "eval_pairs": len(evals),
        "train_scenarios": len({r["metadata"]["scenario_id"] for r in train}),
        "eval_scenarios": len({r["metadata"]["scenario_id"] for r in evals}),
        "scenarios": len(scenario_order),
        "rated_scenarios": len(rated_scenarios),
        "unrated_scenarios": len([s for s in scenario_order if s not in rated_scenarios]),
        "comparisons": len(scenario_order) * len(comparisons),
        "skipped": dict(sorted(skipped.items())),
        "prompt_mismatch_pairs": mismatched,
        "directions": dict(Counter(r["metadata"]["preference_direction"] for r in rows)),
        "margin_raw": (
            {"mean": statistics.fmean(margins), "min": min(margins), "max": max(margins)} if margins else None
        ),
        "agreement": {
            m: {
                "krippendorff_alpha_ordinal": krippendorff_alpha_ordinal(
                    (unit, rater, v) for unit, vals in ratings.by_metric[m].items() for rater, v in vals
                ),
                "mean_pairwise_weighted_kappa": mean_pairwise_kappa(
                    (unit, rater, v) for unit, vals in ratings.by_metric[m].items() for rater, v in vals
                ),
            }
            for m in ratings.metrics
        },
        "settings": {**asdict(settings), "score_scale": list(settings.score_scale)},
    }
    return PreferenceResult(train, evals, summary)


def _row(settings, sid, scenario, chosen, rejected, rc, rr, raw_c, raw_r, margin, n_c, n_r, same_prompt):
    prompt, yes, no = rc.get("prompt", ""), rc["response"], rr["response"]
    target = settings.target_arm if settings.pairing == "target-vs-baselines" else None
    direction = (
        "target_over_baseline"
        if chosen == target
        else "baseline_over_target"
        if rejected == target
        else "arm_over_arm"
    )
    metadata = {
        "scenario_id": sid,
        "chosen_arm": chosen,
        "rejected_arm": rejected,
        "target_arm": target,
        "baseline_arm": (rejected if chosen == target else chosen) if target else None,
        "preference_direction": direction,
        "metric": settings.metric,
        "aggregate": settings.aggregate,
        "chosen_score_mean": raw_c,
        "rejected_score_mean": raw_r,
        "chosen_score_norm": normalise_score(raw_c, settings.score_scale),
        "rejected_score_norm": normalise_score(raw_r, settings.score_scale),
        "score_delta_raw": margin,
        "score_delta_norm": margin / (settings.score_scale[1] - settings.score_scale[0]),
        "chosen_raters": n_c,
        "rejected_raters": n_r,
        "chosen_prompt": prompt,
        "rejected_prompt": rr.get("prompt", ""),
        "same_prompt": same_prompt,
        "persona": scenario.get("persona"),
        "player_input": scenario.get("player_input"),
    }
    if settings.chat:
        return {
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": yes}],
            "rejected": [{"role": "assistant", "content": no}],
            "metadata": metadata,
        }
    return {"prompt": prompt, "chosen": yes, "rejected": no, "metadata": metadata}


def _split(rows: list[dict[str, Any]], settings: PreferenceSettings):
    """Train/eval by scenario, so no scenario is in both."""
    if settings.eval_fraction <= 0 or not rows:
        return rows, []
    scenarios = sorted({r["metadata"]["scenario_id"] for r in rows})
    random.Random(settings.seed).shuffle(scenarios)
    n_eval = max(1, math.ceil(settings.eval_fraction * len(scenarios))) if len(scenarios) > 1 else 0
    held = set(scenarios[:n_eval])
    return (
        [r for r in rows if r["metadata"]["scenario_id"] not in held],
        [r for r in rows if r["metadata"]["scenario_id"] in held],
    )


def write_preferences(
    result: PreferenceResult, output: str | os.PathLike[str], summary_path, eval_output=None
) -> None:
    write_jsonl(output, result.train)
    if eval_output is not None and result.eval:
        write_jsonl(eval_output, result.eval)
    summary = {
        **result.summary,
        "outputs": {"train": str(output), "eval": str(eval_output) if result.eval else None},
    }
    write_json(summary_path, summary)
