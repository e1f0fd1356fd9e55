"""The gate's checks, each a function from its evidence to report rows (see
:mod:`bdnsca.eval.gate` for the rules). Every interval is two-sided at ``1 - alpha``.

Longer than our ~450-line guide on purpose: the whole decision rule (four checks with their
readers and statistics) is kept in one file, so a reviewer audits it in one read."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from bdnsca import _core
from bdnsca.data.atomic import finite_or_none
from bdnsca.errors import BdnscaError, DataError
from bdnsca.eval.compare import compare
from bdnsca.eval.frontier import frontier_ratio

DEFAULT_QUALITY_METRICS = ("overall_quality", "context_relevance")

PathLike = str | os.PathLike[str]


@dataclass
class GateSettings:
    """Every knob of the gate; written into the report."""

    target_arm: str | None = None
    baseline_arms: list[str] | None = None
    quality_metrics: list[str] = field(default_factory=lambda: list(DEFAULT_QUALITY_METRICS))
    rating_metric: str = "overall_quality"
    rating_scale: tuple[float, float] | None = None
    """(MIN, MAX) of the ratings; None: the run's ``human_eval_scale_max`` (from 1), else 1:5."""
    duplicate_ratings: str = "error"
    retrieval_metrics: list[str] = field(default_factory=lambda: ["mrr@10", "ndcg@10"])
    alpha: float = 0.05
    non_inferiority_margin: float = 0.01
    win_rate_margin: float | None = None
    """Non-inferiority margin on the soft win-rate scale; None: ``non_inferiority_margin``."""
    resamples: int = 10_000
    seed: int = 0
    allow_missing: bool = False

    def validate(self) -> None:
        if not 0 < self.alpha < 1:
            raise BdnscaError(f"--alpha must be in (0, 1), got {self.alpha}")
        for name in ("non_inferiority_margin", "win_rate_margin"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise BdnscaError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
        if self.resamples < 100:
            raise BdnscaError(f"--resamples must be >= 100, got {self.resamples}")
        if not self.quality_metrics:
            raise BdnscaError("--quality-metrics names no metric")

    @property
    def confidence(self) -> float:
        return 1.0 - self.alpha

    @property
    def z(self) -> float:
        return NormalDist().inv_cdf(1.0 - self.alpha / 2.0)


@dataclass
class Check:
    """One row of the gate report. ``p_value`` is the one the decision used (Holm-adjusted
    where a family of metrics is tested)."""

    check: str
    status: str  # pass | fail | not_evaluated
    reason: str
    metric: str | None = None
    baseline: str | None = None
    n: int | None = None
    anchor: float | None = None
    candidate: float | None = None
    delta: float | None = None
    ci95: list[float] | None = None
    p_value: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d["passed"] = self.passed
        if self.baseline is None:
            d.pop("baseline")
        elif self.metric is None:
            d.pop("metric")
        return finite_or_none({**d, **extra})


# ----------------------------------------------------------------------------- reading


def read_arm_scores(run_dir: PathLike, arm: str, metrics: Sequence[str]) -> tuple[dict, set]:
    """``({(scenario_id, repeat_index): {metric: score}}, {keys of failed responses})`` from
    ``RUN/scores/ARM.jsonl``. A metric absent or null on a row is left out of that row; a
    repeated key, or a non-numeric or non-finite score, is an error with file:line."""
    from bdnsca.data.io import iter_jsonl

    path = Path(run_dir) / "scores" / f"{arm}.jsonl"
    if not path.is_file():
        raise BdnscaError(f"{path}: no score file for arm {arm!r} (run `bdnsca score --run-dir {run_dir}`)")
    out: dict[tuple[str, int], dict[str, float]] = {}
    failed: set[tuple[str, int]] = set()
    for lineno, row in iter_jsonl(path):
        sid = row.get("scenario_id")
        if not isinstance(sid, str | int) or isinstance(sid, bool) or sid == "":
            raise DataError(path, lineno, "missing or invalid 'scenario_id'")
        rep = row.get("repeat_index", 0)
        if isinstance(rep, bool) or not isinstance(rep, int):
            raise DataError(path, lineno, f"'repeat_index' must be an integer, got {rep!r}")
        key = (str(sid), rep)
        if key in out or key in failed:
            raise DataError(path, lineno, f"scenario {sid!r} repeat {rep} appears twice")
        if row.get("ok") is False:
            failed.add(key)
            continue
        values: dict[str, float] = {}
        for m in metrics:
            v = row.get(m)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise DataError(path, lineno, f"score {m!r} must be a finite number, got {v!r}")
            values[m] = float(v)
        out[key] = values
    return out, failed


def find_ratings(run_dir: Path) -> Path | None:
    """The run's ratings: ``judge_ratings.csv`` (what ``bdnsca judge`` writes), else its one
    ``human_eval*.csv``; more than one of those is an error naming them."""
    judge = run_dir / "judge_ratings.csv"
    if judge.is_file():
        return judge
    found = sorted(run_dir.glob("human_eval*.csv"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise BdnscaError(f"{run_dir}: several ratings files ({names}); name one with --*-ratings")
    return found[0] if found else None


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BdnscaError(f"{path}: not valid UTF-8 JSON ({exc})") from None


# ----------------------------------------------------------------------------- statistics


def _paired(anchor: np.ndarray, candidate: np.ndarray, s: GateSettings) -> dict[str, Any]:
    """Delta = mean(candidate - anchor), paired bootstrap interval, randomization p-value."""
    values = np.ascontiguousarray(np.column_stack([candidate, anchor]), dtype=np.float64)
    (r,) = _core.compare_pairs(
        values, [(0, 1)], resamples=s.resamples, seed=s.seed, confidence=s.confidence, test="randomization"
    )
    return {"delta": r["delta"], "ci95": [r["ci_low"], r["ci_high"]], "p_value": r["p_value"]}


def _bootstrap_diff(a: np.ndarray, b: np.ndarray, paired: bool, s: GateSettings) -> list[float]:
    """Percentile interval of mean(b) - mean(a); resampled jointly when ``paired``."""
    if paired:
        m = _core.bootstrap_means(
            np.column_stack([b, a]).astype(np.float64), resamples=s.resamples, seed=s.seed
        )
        diffs = m[:, 0] - m[:, 1]
    else:
        mb = _core.bootstrap_means(b.reshape(-1, 1).astype(np.float64), resamples=s.resamples, seed=s.seed)
        ma = _core.bootstrap_means(
            a.reshape(-1, 1).astype(np.float64), resamples=s.resamples, seed=s.seed + 1
        )
        diffs = mb[:, 0] - ma[:, 0]
    lo, hi = np.quantile(diffs, [s.alpha / 2, 1 - s.alpha / 2])
    return [float(lo), float(hi)]


# ----------------------------------------------------------------------------- check 1


def check_paired_quality(
    anchor: Path, candidate: Path, arm: str, s: GateSettings
) -> tuple[list[Check], dict]:
    """Scores are paired by (scenario, repeat); repeats of a scenario are averaged first, so
    the resampling unit is the scenario (repeats of one scenario are not independent)."""
    a, fail_a = read_arm_scores(anchor, arm, s.quality_metrics)
    c, fail_c = read_arm_scores(candidate, arm, s.quality_metrics)
    keys_a, keys_c = a.keys() | fail_a, c.keys() | fail_c
    common = keys_a & keys_c
    # failures on the shared requests: a candidate that fails more often must not look better
    lost = len({k for k in common if k in fail_c and k not in fail_a})
    recovered = len({k for k in common if k in fail_a and k not in fail_c})
    unpaired = {
        "only_in_anchor": sorted(f"{k[0]}#{k[1]}" for k in keys_a - keys_c),
        "only_in_candidate": sorted(f"{k[0]}#{k[1]}" for k in keys_c - keys_a),
        "failed_responses": {"anchor": len(fail_a & common), "candidate": len(fail_c & common)},
    }
    rows: list[Check] = []
    stats: list[dict[str, Any] | None] = []
    for metric in s.quality_metrics:
        by_scenario: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for k in common:
            if k in a and k in c and metric in a[k] and metric in c[k]:
                by_scenario[k[0]].append((a[k][metric], c[k][metric]))
        sids = sorted(by_scenario)
        extra = {"responses": sum(len(v) for v in by_scenario.values()), "unit": "scenario"}
        if len(sids) < 2:
            rows.append(
                Check(
                    "paired_quality",
                    "not_evaluated",
                    f"fewer than 2 paired scenarios score {metric!r}",
                    metric=metric,
                    n=len(sids),
                    extra=extra,
                )
            )
            stats.append(None)
            continue
        av = np.array([np.mean([x for x, _ in by_scenario[sid]]) for sid in sids])
        cv = np.array([np.mean([y for _, y in by_scenario[sid]]) for sid in sids])
        st = _paired(av, cv, s)
        stats.append(st)
        extra["p_value_raw"] = st["p_value"]
        rows.append(
            Check(
                "paired_quality",
                "fail",
                "",
                metric=metric,
                n=len(sids),
                anchor=float(av.mean()),
                candidate=float(cv.mean()),
                delta=st["delta"],
                ci95=st["ci95"],
                extra=extra,
            )
        )
    evaluated = [i for i, st in enumerate(stats) if st is not None]
    adjusted = _core.adjust_p_values([stats[i]["p_value"] for i in evaluated], "holm") if evaluated else []
    for i, p_adj in zip(evaluated, adjusted, strict=True):
        row = rows[i]
        row.p_value = p_adj
        lo = row.ci95[0]  # type: ignore[index]
        if lo <= 0:
            row.reason = f"no paired improvement: the CI's lower bound {lo:+.4f} is not above 0"
        elif not p_adj < s.alpha:
            row.reason = (
                f"the CI is above 0 but the randomization test is not significant (Holm p = {p_adj:.4g})"
            )
        elif lost > recovered:
            row.reason = (
                f"the candidate fails {lost} requests the anchor answered (and answers {recovered} "
                "the anchor failed): a higher mean over fewer responses is no improvement"
            )
        else:
            row.status = "pass"
            row.reason = f"the CI is above 0 (lower bound {lo:+.4f}) and Holm p = {p_adj:.4g} < {s.alpha}"
    return rows, unpaired


# ----------------------------------------------------------------------------- check 2


def _scenario_win_rates(ratings: Any, target: str, baseline: str, metric: str) -> dict[str, float]:
    """Per scenario rated for both arms: 1 when the target's mean rating is higher, 0.5 on a tie."""
    if metric not in ratings.metrics:
        raise BdnscaError(
            f"{ratings.path}: no ratings column {metric!r} (columns: {', '.join(ratings.metrics)})"
        )
    by_unit: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (sid, arm), _annotator, value in ratings.triples(metric):
        by_unit[(sid, arm)].append(value)
    out = {}
    for (sid, arm), vals in by_unit.items():
        if arm != target or (sid, baseline) not in by_unit:
            continue
        t, b = float(np.mean(vals)), float(np.mean(by_unit[(sid, baseline)]))
        out[sid] = 1.0 if t > b else 0.5 if t == b else 0.0
    return out


def _scale(run_config: dict[str, Any], s: GateSettings) -> tuple[float, float]:
    if s.rating_scale is not None:
        return s.rating_scale
    top = run_config.get("human_eval_scale_max")
    return (1.0, float(top)) if isinstance(top, int | float) and top > 1 else (1.0, 5.0)


def check_soft_win_rate(
    ratings: tuple[Path | None, Path | None],
    scales: tuple[tuple[float, float], tuple[float, float]],
    arm: str,
    baselines: Sequence[str],
    s: GateSettings,
) -> list[Check]:
    if ratings[0] is None or ratings[1] is None:
        which = "anchor" if ratings[0] is None else "candidate"
        reason = f"no ratings for the {which} run (judge_ratings.csv, human_eval*.csv or --{which}-ratings)"
        return [Check("soft_win_rate", "not_evaluated", reason, baseline=b) for b in baselines]
    from bdnsca.prefs.ratings import read_ratings

    ra, rc = (
        read_ratings(p, sc, duplicates=s.duplicate_ratings) for p, sc in zip(ratings, scales, strict=True)
    )
    margin = s.non_inferiority_margin if s.win_rate_margin is None else s.win_rate_margin
    rows = []
    for base in baselines:
        wa = _scenario_win_rates(ra, arm, base, s.rating_metric)
        wc = _scenario_win_rates(rc, arm, base, s.rating_metric)
        shared = sorted(wa.keys() & wc.keys())
        paired = len(shared) >= 2
        if paired:
            av, cv = np.array([wa[k] for k in shared]), np.array([wc[k] for k in shared])
        else:
            av, cv = np.array(list(wa.values())), np.array(list(wc.values()))
        if len(av) < 2 or len(cv) < 2:
            rows.append(
                Check(
                    "soft_win_rate",
                    "not_evaluated",
                    f"fewer than 2 scenarios rate both {arm!r} and {base!r} on {s.rating_metric!r} "
                    f"(anchor {len(wa)}, candidate {len(wc)})",
                    baseline=base,
                    n=min(len(av), len(cv)),
                )
            )
            continue
        lo, hi = _bootstrap_diff(av, cv, paired, s)
        ok, higher = lo > -margin, lo > 0
        reason = (
            f"non-inferior: lower bound {lo:+.4f} > -{margin}"
            if ok
            else f"inferiority not ruled out: lower bound {lo:+.4f} <= -{margin}"
        )
        reason += "; significantly higher" if higher else "; not significantly higher"
        rows.append(
            Check(
                "soft_win_rate",
                "pass" if ok else "fail",
                reason,
                baseline=base,
                n=len(cv),
                anchor=float(av.mean()),
                candidate=float(cv.mean()),
                delta=float(cv.mean() - av.mean()),
                ci95=[lo, hi],
                extra={
                    "significantly_higher": higher,
                    "paired_scenarios": paired,
                    "excluded_scenarios": sorted(wa.keys() ^ wc.keys()) if paired else [],
                    "rating_metric": s.rating_metric,
                    "margin": margin,
                },
            )
        )
    return rows


# ----------------------------------------------------------------------------- check 3


def check_retrieval(qrels: Path, anchor_run: Path, candidate_run: Path, s: GateSettings) -> list[Check]:
    from bdnsca.data.io import read_qrels, read_run

    res = compare(
        read_qrels(qrels),
        {"anchor": read_run(anchor_run), "candidate": read_run(candidate_run)},
        s.retrieval_metrics,
        test="randomization",
        resamples=s.resamples,
        seed=s.seed,
        alpha=s.alpha,
        correction="holm",
        confidence=s.confidence,
    )
    rows = []
    for c in res.comparisons:  # a = anchor, b = candidate: flip to candidate - anchor
        lo, hi = -c.ci95[1], -c.ci95[0]
        ok = lo > -s.non_inferiority_margin
        rows.append(
            Check(
                "retrieval_no_regression",
                "pass" if ok else "fail",
                (
                    f"no regression: lower bound {lo:+.4f} > -{s.non_inferiority_margin}"
                    if ok
                    else f"regression not ruled out: lower bound {lo:+.4f} <= -{s.non_inferiority_margin}"
                ),
                metric=c.metric,
                n=res.n_queries,
                anchor=c.mean_a,
                candidate=c.mean_b,
                delta=c.mean_b - c.mean_a,
                ci95=[lo, hi],
                p_value=c.p_value_adjusted,
                extra={"missing_queries": res.missing_queries},
            )
        )
    return rows


def read_stress(path: Path, configuration: str | None = None) -> dict[str, Any]:
    """One configuration of a stress result file: ``{"configurations": [{"name", "n",
    "attack_successes", "safe_at_1"?, ...}]}`` (what ``bdnsca stress`` writes). Without
    ``configuration`` the file must hold exactly one, or one named ``bm25``."""
    data = _read_json(path)
    configs = data.get("configurations") if isinstance(data, dict) else None
    if not isinstance(configs, list) or not configs:
        raise BdnscaError(f"{path}: no 'configurations' list (expected bdnsca stress output)")
    by_name = {c.get("name"): c for c in configs if isinstance(c, dict)}
    names = ", ".join(map(str, by_name))
    if configuration is None:
        cfg = configs[0] if len(configs) == 1 else by_name.get("bm25")
        if cfg is None:
            raise BdnscaError(
                f"{path}: several configurations; name one with --stress-configuration ({names})"
            )
    elif configuration not in by_name:
        raise BdnscaError(f"{path}: no configuration {configuration!r} ({names})")
    else:
        cfg = by_name[configuration]
    n, k = cfg.get("n"), cfg.get("attack_successes")
    valid = isinstance(n, int) and isinstance(k, int) and not isinstance(n, bool) and 0 <= k <= n and n > 0
    if not valid:
        raise BdnscaError(
            f"{path}: configuration {cfg.get('name')!r} needs integers 0 <= attack_successes <= n, n > 0"
        )
    return cfg


def check_stress(anchor: Path, candidate: Path, configuration: str | None, s: GateSettings) -> Check:
    a, c = read_stress(anchor, configuration), read_stress(candidate, configuration)
    pa, pc = a["attack_successes"] / a["n"], c["attack_successes"] / c["n"]
    la, ua = _core.wilson_interval(a["attack_successes"], a["n"], s.z)
    lc, uc = _core.wilson_interval(c["attack_successes"], c["n"], s.z)
    # Newcombe's hybrid score interval of the difference pc - pa.
    d = pc - pa
    lo = d - math.sqrt((pc - lc) ** 2 + (ua - pa) ** 2)
    hi = d + math.sqrt((uc - pc) ** 2 + (pa - la) ** 2)
    if pa == 0 and pc == 0:
        status, reason = "pass", "no attack succeeds in either run"
    elif hi < 0:
        status, reason = (
            "pass",
            f"attack success rate is lower (interval of the difference below 0: {hi:+.4f})",
        )
    else:
        status, reason = (
            "fail",
            f"attack success rate not shown lower (upper bound of the difference {hi:+.4f})",
        )
    extra: dict[str, Any] = {
        "anchor_wilson95": [la, ua],
        "candidate_wilson95": [lc, uc],
        "configuration": c.get("name"),
    }
    for key in ("safe_at_1", "safe_at_k"):
        if key in a and key in c:
            extra[f"anchor_{key}"], extra[f"candidate_{key}"] = a[key], c[key]
    return Check(
        "retrieval_stress",
        status,
        reason,
        metric="attack_success_rate",
        n=c["n"],
        anchor=pa,
        candidate=pc,
        delta=d,
        ci95=[lo, hi],
        extra=extra,
    )


# ----------------------------------------------------------------------------- check 4


def _serving_configs(path: Path) -> list[dict[str, Any]]:
    data = _read_json(path)
    configs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(configs, list) or not configs:
        raise BdnscaError(f"{path}: no 'configs' list (expected a serve-bench summary.json)")
    out = []
    for e in configs:
        try:
            lat = float(e["total_ms"]["mean"])
            q = float(e["quality"]["score"])
            lat_ci = (e["total_ms"].get("ci95") or {}).get("mean")
            q_ci = e["quality"].get("ci95")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BdnscaError(
                f"{path}: config {e.get('name')!r} lacks total_ms.mean or quality.score"
            ) from None
        if not (lat > 0 and math.isfinite(q)):
            continue
        has_ci = bool(lat_ci and q_ci and None not in (*lat_ci, *q_ci) and lat_ci[0] > 0)
        out.append(
            {
                "name": e.get("name"),
                "latency_ms": lat,
                "quality": q,
                "qps": q / (lat / 1e3),
                "has_ci": has_ci,
                # conservative interval: worst quality over worst latency, best over best
                "qps_low": q_ci[0] / (lat_ci[1] / 1e3) if has_ci else None,
                "qps_high": q_ci[1] / (lat_ci[0] / 1e3) if has_ci else None,
            }
        )
    if not out:
        raise BdnscaError(f"{path}: no configuration with a quality score and a positive latency")
    return out


def check_serving(anchor: Path, candidate: Path) -> Check:
    a, c = _serving_configs(anchor), _serving_configs(candidate)
    both = a + c
    ratios = frontier_ratio(np.array([x["latency_ms"] for x in both]), np.array([x["quality"] for x in both]))
    for x, r in zip(both, ratios, strict=True):
        x["frontier_ratio"] = float(r)
    best_a, best_c = max(a, key=lambda x: x["qps"]), max(c, key=lambda x: x["qps"])
    extra = {
        "anchor_config": best_a["name"],
        "candidate_config": best_c["name"],
        "anchor_frontier_ratio": best_a["frontier_ratio"],
        "candidate_frontier_ratio": best_c["frontier_ratio"],
    }
    common = dict(
        metric="quality_per_second",
        anchor=best_a["qps"],
        candidate=best_c["qps"],
        delta=best_c["qps"] - best_a["qps"],
        extra=extra,
    )
    if not (best_a["has_ci"] and best_c["has_ci"]):
        return Check(
            "serving_frontier",
            "not_evaluated",
            "a summary lacks confidence intervals (total_ms.ci95.mean, quality.ci95)",
            **common,
        )
    higher = best_c["qps_low"] > best_a["qps_high"]
    lower_ratio = best_c["frontier_ratio"] < best_a["frontier_ratio"]
    reason = (
        "quality per second higher (intervals do not overlap)"
        if higher
        else f"quality per second not shown higher (candidate's lower bound {best_c['qps_low']:.4g} <= "
        f"anchor's upper bound {best_a['qps_high']:.4g})"
    )
    reason += "; frontier ratio lower" if lower_ratio else "; frontier ratio not lower"
    return Check(
        "serving_frontier",
        "pass" if higher and lower_ratio else "fail",
        reason,
        ci95=[best_c["qps_low"] - best_a["qps_high"], best_c["qps_high"] - best_a["qps_low"]],
        **common,
    )
