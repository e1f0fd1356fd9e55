"""Preference pairs from multi-rater evaluation runs, ready for trl's DPO-family trainers.

The run folder is read by :mod:`bdnsca.data.run_folders`, the ratings CSV by :mod:`bdnsca.prefs.ratings`.
For each scenario the metric is aggregated over raters per arm; a pair (chosen, rejected) is
emitted when both arms have enough distinct raters and one leads by the margin. Each row's
metadata holds the aggregated scores that were compared (and the plain means beside them) and
the prompt each response answered, so pairs whose responses answered different prompts are
visible (and can be dropped).
"""

from __future__ import annotations

import math
import os
import random
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bdnsca.data.io import write_json, write_jsonl
from bdnsca.data.run_folders import read_responses, read_run_config, read_scenarios, run_arms
from bdnsca.errors import BdnscaError, DataError
from bdnsca.prefs.agreement import krippendorff_alpha_ordinal, mean_pairwise_kappa
from bdnsca.prefs.ratings import AGGREGATES, DUPLICATE_POLICIES, Aggregate, aggregate_ratings, read_ratings

T = TypeVar("T")
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
    duplicate_ratings: str = "error"
    """error: a repeated (scenario, arm, annotator) row is an error; collapse: averaged into one."""

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
        if self.duplicate_ratings not in DUPLICATE_POLICIES:
            raise BdnscaError(
                f"duplicate ratings must be one of {', '.join(DUPLICATE_POLICIES)}, "
                f"got {self.duplicate_ratings!r}"
            )


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


OLD_RATINGS = "human_eval_llm_multirater_consistent.csv"  # the old project's multi-rater file
JUDGE_RATINGS = "judge_ratings.csv"  # what ``bdnsca judge`` writes


def default_ratings_file(run: Path) -> Path:
    """The ratings a run folder holds: the old project's file where it exists (the shared runs),
    else the one ``bdnsca judge`` wrote; the old name when neither exists, for the error."""
    old = run / OLD_RATINGS
    if not old.exists() and (run / JUDGE_RATINGS).exists():
        return run / JUDGE_RATINGS
    return old


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
    ratings_path = Path(human_eval_file) if human_eval_file else default_ratings_file(run)
    ratings = read_ratings(ratings_path, settings.score_scale, duplicates=settings.duplicate_ratings)
    if settings.metric not in ratings.by_metric:
        raise DataError(
            ratings_path,
            1,
            f"no column {settings.metric!r} (metrics found: {', '.join(ratings.metrics) or 'none'})",
        )
    config_arms = run_arms(config)
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
    agg = aggregate_ratings(metric_ratings, settings.aggregate)
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
            if agg[(sid, a)].raters < settings.min_raters or agg[(sid, b)].raters < settings.min_raters:
                skipped["insufficient_raters"] += 1
                continue
            lead = agg[(sid, a)].score - agg[(sid, b)].score
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
            if rc["response"] == rr["response"]:  # nothing to prefer: a no-op pair for DPO
                skipped["identical_responses"] += 1
                continue
            same_prompt = rc.get("prompt") == rr.get("prompt")
            if not same_prompt:
                mismatched += 1
                if settings.require_same_prompt:
                    skipped["prompt_mismatch"] += 1
                    continue
            margins.append(abs(lead))
            rows.append(
                _row(
                    settings,
                    sid,
                    scenarios.get(sid, {}),
                    (chosen, rc, agg[(sid, chosen)]),
                    (rejected, rr, agg[(sid, rejected)]),
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
        "ratings": ratings.summary(),
        "agreement": {
            m: {
                "krippendorff_alpha_ordinal": krippendorff_alpha_ordinal(ratings.triples(m)),
                "mean_pairwise_weighted_kappa": mean_pairwise_kappa(ratings.triples(m)),
            }
            for m in ratings.metrics
        },
        "settings": {**asdict(settings), "score_scale": list(settings.score_scale)},
    }
    return PreferenceResult(train, evals, summary)


def _row(
    settings: PreferenceSettings,
    sid: str,
    scenario: dict[str, Any],
    chosen_side: tuple[str, dict[str, Any], Aggregate],
    rejected_side: tuple[str, dict[str, Any], Aggregate],
    same_prompt: bool,
) -> dict[str, Any]:
    (chosen, rc, ac), (rejected, rr, ar) = chosen_side, rejected_side
    prompt, yes, no = rc.get("prompt", ""), rc["response"], rr["response"]
    target = settings.target_arm if settings.pairing == "target-vs-baselines" else None
    direction = (
        "target_over_baseline"
        if chosen == target
        else "baseline_over_target"
        if rejected == target
        else "arm_over_arm"
    )
    span = settings.score_scale[1] - settings.score_scale[0]
    metadata = {
        "scenario_id": sid,
        "chosen_arm": chosen,
        "rejected_arm": rejected,
        "target_arm": target,
        "baseline_arm": (rejected if chosen == target else chosen) if target else None,
        "preference_direction": direction,
        "metric": settings.metric,
        # The scores compared, aggregated by `aggregate` (see bdnsca.prefs.ratings.Aggregate), and
        # their normalisation to [0, 1]: score_delta_* are exactly their differences.
        "aggregate": settings.aggregate,
        "chosen_score": ac.score,
        "rejected_score": ar.score,
        "chosen_score_norm": normalise_score(ac.score, settings.score_scale),
        "rejected_score_norm": normalise_score(ar.score, settings.score_scale),
        "score_delta_raw": ac.score - ar.score,
        "score_delta_norm": (ac.score - ar.score) / span,
        # The plain means of the ratings, whatever the aggregate (for reference only).
        "chosen_score_mean": ac.mean,
        "rejected_score_mean": ar.mean,
        "chosen_raters": ac.raters,
        "rejected_raters": ar.raters,
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


def split_by_group(
    items: Sequence[T], group: Callable[[T], str], fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """(train, eval): whole groups (scenarios) are held out, ``ceil(fraction * groups)`` of them
    chosen by ``seed``, so no group is in both. ``fraction`` 0 or a single group: all train."""
    if fraction <= 0 or not items:
        return list(items), []
    groups = sorted({group(x) for x in items})
    if len(groups) < 2:
        return list(items), []
    random.Random(seed).shuffle(groups)
    n_eval = min(len(groups) - 1, max(1, math.ceil(fraction * len(groups))))
    held = set(groups[:n_eval])
    return [x for x in items if group(x) not in held], [x for x in items if group(x) in held]


def _split(rows: list[dict[str, Any]], settings: PreferenceSettings):
    """Train/eval by scenario, so no scenario is in both."""
    return split_by_group(rows, lambda r: r["metadata"]["scenario_id"], settings.eval_fraction, settings.seed)


def write_preferences(
    result: PreferenceResult,
    output: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    eval_output: str | os.PathLike[str] | None = None,
) -> None:
    write_jsonl(output, result.train)
    if eval_output is not None and result.eval:
        write_jsonl(eval_output, result.eval)
    summary = {
        **result.summary,
        "outputs": {"train": str(output), "eval": str(eval_output) if result.eval else None},
    }
    write_json(summary_path, summary)
