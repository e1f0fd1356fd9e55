"""The evaluation contract as a decision: promote a candidate over the anchor only on paired
evidence with stated error rates.

Four checks, each a row (or several) of the report:

1. ``paired_quality`` (per quality metric): the target arm's per-response scores of anchor and
   candidate (``scores/ARM.jsonl``) paired by ``(scenario_id, repeat_index)``; mean delta, paired
   bootstrap 95% interval, randomization p-value (Holm across the metrics). Passes when the
   interval's lower bound is above 0.
2. ``soft_win_rate`` (per external baseline): per scenario, the target arm's mean rating against
   the baseline's (a win 1, a tie 0.5); the candidate's soft win-rate minus the anchor's with a
   bootstrap interval over scenarios (paired when both runs rate the same scenarios). Passes when
   the lower bound is above ``-margin`` (non-inferiority); ``significantly_higher`` says whether
   it is above 0.
3. ``retrieval_no_regression`` (per metric): per-query paired deltas of two runs on one qrels;
   passes when the lower bound is above ``-margin``. ``retrieval_stress``: attack success rate
   (ASR) of two stress result files with Wilson intervals; passes when the candidate's is lower.
4. ``serving_frontier``: from two serve-bench summaries, the best ``quality_per_second`` of each
   (a conservative interval from the quality and latency intervals) and the frontier ratio of
   that configuration on the union of both runs' configurations. Passes when the candidate's
   lower bound beats the anchor's estimate and its frontier ratio is not higher.

A check whose inputs are missing is ``not_evaluated``: it fails the gate unless
``allow_missing``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bdnsca import _core
from bdnsca.data.run_folders import read_run_config
from bdnsca.errors import BdnscaError, DataError
from bdnsca.eval.compare import compare
from bdnsca.eval.frontier import frontier_ratio

DEFAULT_QUALITY_METRICS = ("overall_quality", "context_relevance")
Z95 = 1.959963984540054

PathLike = str | os.PathLike[str]


@dataclass
class GateSettings:
    """Every knob of the gate; written into the report."""

    target_arm: str | None = None
    baseline_arms: list[str] | None = None
    quality_metrics: list[str] = field(default_factory=lambda: list(DEFAULT_QUALITY_METRICS))
    rating_metric: str = "overall_quality"
    rating_scale: tuple[float, float] = (1.0, 5.0)
    retrieval_metrics: list[str] = field(default_factory=lambda: ["mrr@10", "ndcg@10"])
    alpha: float = 0.05
    non_inferiority_margin: float = 0.01
    resamples: int = 10_000
    seed: int = 0
    allow_missing: bool = False

    def validate(self) -> None:
        if not 0 < self.alpha < 1:
            raise BdnscaError(f"--alpha must be in (0, 1), got {self.alpha}")
        if self.non_inferiority_margin < 0:
            raise BdnscaError(f"--non-inferiority-margin must be >= 0, got {self.non_inferiority_margin}")
        if self.resamples < 100:
            raise BdnscaError(f"--resamples must be >= 100, got {self.resamples}")
        if not self.quality_metrics:
            raise BdnscaError("--quality-metrics names no metric")


@dataclass
class Check:
    """One row of the gate report."""

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
        if self.metric is None:
            d.pop("metric")
        if self.baseline is None:
            d.pop("baseline")
        return {**d, **extra}


@dataclass
class GateReport:
    passed: bool
    checks: list[Check]
    settings: dict[str, Any]
    inputs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "settings": self.settings,
            "inputs": self.inputs,
        }


# ----------------------------------------------------------------------------- reading runs


def read_arm_scores(
    run_dir: PathLike, arm: str, metrics: Sequence[str]
) -> dict[tuple[str, int], dict[str, float]]:
    """``{(scenario_id, repeat_index): {metric: score}}`` from ``RUN/scores/ARM.jsonl``.

    Failed responses (``ok: false``) are left out; a metric that is absent or null on a row is
    left out of that row. A repeated key, or a non-numeric or non-finite score, is an error with
    file:line.
    """
    from bdnsca.data.io import iter_jsonl

    path = Path(run_dir) / "scores" / f"{arm}.jsonl"
    if not path.is_file():
        raise BdnscaError(f"{path}: no score file for arm {arm!r} (run `bdnsca score --run-dir {run_dir}`)")
    out: dict[tuple[str, int], dict[str, float]] = {}
    for lineno, row in iter_jsonl(path):
        if row.get("ok") is False:
            continue
        sid = row.get("scenario_id")
        if not isinstance(sid, str | int) or isinstance(sid, bool) or sid == "":
            raise DataError(path, lineno, "missing or invalid 'scenario_id'")
        rep = row.get("repeat_index", 0)
        if isinstance(rep, bool) or not isinstance(rep, int):
            raise DataError(path, lineno, f"'repeat_index' must be an integer, got {rep!r}")
        key = (str(sid), rep)
        if key in out:
            raise DataError(path, lineno, f"scenario {sid!r} repeat {rep} appears twice")
        values: dict[str, float] = {}
        for m in metrics:
            v = row.get(m)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise DataError(path, lineno, f"score {m!r} must be a finite number, got {v!r}")
            values[m] = float(v)
        out[key] = values
    return out


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


# ----------------------------------------------------------------------------- statistics


def _paired_stats(anchor: np.ndarray, candidate: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    """Delta = mean(candidate - anchor), paired bootstrap interval, randomization p-value."""
    values = np.ascontiguousarray(np.column_stack([candidate, anchor]), dtype=np.float64)
    (r,) = _core.compare_pairs(values, [(0, 1)], resamples=resamples, seed=seed, test="randomization")
    return {"delta": r["delta"], "ci95": [r["ci_low"], r["ci_high"]], "p_value": r["p_value"]}


def _bootstrap_diff(a: np.ndarray, b: np.ndarray, paired: bool, resamples: int, seed: int) -> list[float]:
    """95% percentile interval of mean(b) - mean(a); resampled jointly when ``paired``."""
    if paired:
        m = _core.bootstrap_means(np.column_stack([b, a]).astype(np.float64), resamples=resamples, seed=seed)
        diffs = m[:, 0] - m[:, 1]
    else:
        mb = _core.bootstrap_means(b.reshape(-1, 1).astype(np.float64), resamples=resamples, seed=seed)
        ma = _core.bootstrap_means(a.reshape(-1, 1).astype(np.float64), resamples=resamples, seed=seed + 1)
        diffs = mb[:, 0] - ma[:, 0]
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return [float(lo), float(hi)]


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    return _core.wilson_interval(successes, n, Z95)


# ----------------------------------------------------------------------------- the checks


def check_paired_quality(
    anchor: Path, candidate: Path, arm: str, s: GateSettings
) -> tuple[list[Check], dict[str, Any]]:
    a = read_arm_scores(anchor, arm, s.quality_metrics)
    c = read_arm_scores(candidate, arm, s.quality_metrics)
    only_anchor = sorted(f"{k[0]}#{k[1]}" for k in a.keys() - c.keys())
    only_candidate = sorted(f"{k[0]}#{k[1]}" for k in c.keys() - a.keys())
    rows: list[Check] = []
    stats = []
    for metric in s.quality_metrics:
        keys = sorted(k for k in a.keys() & c.keys() if metric in a[k] and metric in c[k])
        if len(keys) < 2:
            rows.append(
                Check(
                    "paired_quality",
                    "not_evaluated",
                    f"fewer than 2 paired responses score {metric!r}",
                    metric=metric,
                    n=len(keys),
                )
            )
            stats.append(None)
            continue
        av = np.array([a[k][metric] for k in keys])
        cv = np.array([c[k][metric] for k in keys])
        st = _paired_stats(av, cv, s.resamples, s.seed)
        stats.append(st)
        rows.append(
            Check(
                "paired_quality",
                "fail",
                "",
                metric=metric,
                n=len(keys),
                anchor=float(av.mean()),
                candidate=float(cv.mean()),
                delta=st["delta"],
                ci95=st["ci95"],
                p_value=st["p_value"],
            )
        )
    evaluated = [i for i, st in enumerate(stats) if st is not None]
    adjusted = _core.adjust_p_values([stats[i]["p_value"] for i in evaluated], "holm") if evaluated else []
    for i, p_adj in zip(evaluated, adjusted, strict=True):
        row = rows[i]
        row.extra["p_value_holm"] = p_adj
        lo = row.ci95[0]  # type: ignore[index]
        if lo > 0:
            row.status, row.reason = "pass", f"95% CI of the delta is above 0 (lower bound {lo:+.4f})"
        else:
            row.reason = f"no paired improvement: the 95% CI's lower bound {lo:+.4f} is not above 0"
    unpaired = {"only_in_anchor": only_anchor, "only_in_candidate": only_candidate}
    return rows, unpaired


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


def check_soft_win_rate(
    anchor_ratings: Path | None,
    candidate_ratings: Path | None,
    arm: str,
    baselines: Sequence[str],
    s: GateSettings,
) -> list[Check]:
    if anchor_ratings is None or candidate_ratings is None:
        which = "anchor" if anchor_ratings is None else "candidate"
        return [
            Check(
                "soft_win_rate",
                "not_evaluated",
                f"no ratings for the {which} run (judge_ratings.csv, human_eval*.csv or --*-ratings)",
                baseline=b,
            )
            for b in baselines or [None]
        ]
    from bdnsca.prefs.ratings import read_ratings

    ra, rc = (read_ratings(p, s.rating_scale) for p in (anchor_ratings, candidate_ratings))
    rows = []
    for base in baselines:
        wa = _scenario_win_rates(ra, arm, base, s.rating_metric)
        wc = _scenario_win_rates(rc, arm, base, s.rating_metric)
        if len(wa) < 2 or len(wc) < 2:
            rows.append(
                Check(
                    "soft_win_rate",
                    "not_evaluated",
                    f"fewer than 2 scenarios rate both {arm!r} and {base!r} on {s.rating_metric!r} "
                    f"(anchor {len(wa)}, candidate {len(wc)})",
                    baseline=base,
                    n=min(len(wa), len(wc)),
                )
            )
            continue
        paired = wa.keys() == wc.keys()
        if paired:
            keys = sorted(wa)
            av, cv = np.array([wa[k] for k in keys]), np.array([wc[k] for k in keys])
        else:
            av, cv = np.array(list(wa.values())), np.array(list(wc.values()))
        lo, hi = _bootstrap_diff(av, cv, paired, s.resamples, s.seed)
        delta = float(cv.mean() - av.mean())
        ok = lo > -s.non_inferiority_margin
        higher = lo > 0
        reason = (
            f"non-inferior: lower bound {lo:+.4f} > -{s.non_inferiority_margin}"
            if ok
            else f"inferior: lower bound {lo:+.4f} <= -{s.non_inferiority_margin}"
        ) + ("; significantly higher" if higher else "; not significantly higher")
        rows.append(
            Check(
                "soft_win_rate",
                "pass" if ok else "fail",
                reason,
                baseline=base,
                n=len(cv),
                anchor=float(av.mean()),
                candidate=float(cv.mean()),
                delta=delta,
                ci95=[lo, hi],
                extra={
                    "significantly_higher": higher,
                    "paired_scenarios": paired,
                    "rating_metric": s.rating_metric,
                },
            )
        )
    return rows


def check_retrieval(qrels: Path, anchor_run: Path, candidate_run: Path, s: GateSettings) -> list[Check]:
    from bdnsca.data.io import read_qrels, read_run

    q = read_qrels(qrels)
    res = compare(
        q,
        {"anchor": read_run(anchor_run), "candidate": read_run(candidate_run)},
        s.retrieval_metrics,
        test="randomization",
        resamples=s.resamples,
        seed=s.seed,
        alpha=s.alpha,
        correction="holm",
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
                    else f"regression: lower bound {lo:+.4f} <= -{s.non_inferiority_margin}"
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
    "attack_successes", ...}]}`` (``bdnsca stress`` writes it). Without ``configuration`` the
    file must hold exactly one, or one named ``bm25``."""
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BdnscaError(f"{path}: not valid UTF-8 JSON ({exc})") from None
    configs = data.get("configurations") if isinstance(data, dict) else None
    if not isinstance(configs, list) or not configs:
        raise BdnscaError(f"{path}: no 'configurations' list (expected bdnsca stress output)")
    by_name = {c.get("name"): c for c in configs if isinstance(c, dict)}
    if configuration is None:
        cfg = configs[0] if len(configs) == 1 else by_name.get("bm25")
        if cfg is None:
            raise BdnscaError(f"{path}: several configurations; name one ({', '.join(map(str, by_name))})")
    else:
        cfg = by_name.get(configuration)
        if cfg is None:
            raise BdnscaError(f"{path}: no configuration {configuration!r} ({', '.join(map(str, by_name))})")
    n, k = cfg.get("n"), cfg.get("attack_successes")
    if not isinstance(n, int) or not isinstance(k, int) or not 0 <= k <= n or n == 0:
        raise BdnscaError(
            f"{path}: configuration {cfg.get('name')!r} needs integers 0 <= attack_successes <= n, n > 0"
        )
    return cfg


def check_stress(anchor: Path, candidate: Path, configuration: str | None) -> Check:
    a, c = read_stress(anchor, configuration), read_stress(candidate, configuration)
    pa, pc = a["attack_successes"] / a["n"], c["attack_successes"] / c["n"]
    la, ua = wilson_interval(a["attack_successes"], a["n"])
    lc, uc = wilson_interval(c["attack_successes"], c["n"])
    # Newcombe's hybrid score interval of the difference pc - pa.
    d = pc - pa
    lo = d - math.sqrt((pc - lc) ** 2 + (ua - pa) ** 2)
    hi = d + math.sqrt((uc - pc) ** 2 + (pa - la) ** 2)
    ok = pc < pa
    return Check(
        "retrieval_stress",
        "pass" if ok else "fail",
        "attack success rate is lower" if ok else "attack success rate is not lower",
        metric="attack_success_rate",
        n=c["n"],
        anchor=pa,
        candidate=pc,
        delta=d,
        ci95=[lo, hi],
        extra={
            "anchor_wilson95": [la, ua],
            "candidate_wilson95": [lc, uc],
            "configuration": c.get("name"),
            "significantly_lower": hi < 0,
        },
    )


def _serving_configs(path: Path) -> list[dict[str, Any]]:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BdnscaError(f"{path}: not valid UTF-8 JSON ({exc})") from None
    configs = data.get("configs") if isinstance(data, dict) else None
    if not isinstance(configs, list) or not configs:
        raise BdnscaError(f"{path}: no 'configs' list (expected a serve-bench summary.json)")
    out = []
    for e in configs:
        try:
            lat = float(e["total_ms"]["mean"])
            lat_ci = e["total_ms"].get("ci95", {}).get("mean") or [lat, lat]
            q = float(e["quality"]["score"])
            q_ci = e["quality"].get("ci95") or [q, q]
        except (KeyError, TypeError, ValueError):
            raise BdnscaError(
                f"{path}: config {e.get('name')!r} lacks total_ms.mean or quality.score"
            ) from None
        if not (lat > 0 and math.isfinite(q)):
            continue
        out.append(
            {
                "name": e.get("name"),
                "latency_ms": lat,
                "quality": q,
                "qps": q / (lat / 1e3),
                "qps_low": q_ci[0] / (lat_ci[1] / 1e3) if lat_ci[1] > 0 else 0.0,
                "qps_high": q_ci[1] / (lat_ci[0] / 1e3) if lat_ci[0] > 0 else math.inf,
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
    higher = best_c["qps_low"] > best_a["qps"]
    not_worse_frontier = best_c["frontier_ratio"] <= best_a["frontier_ratio"]
    ok = higher and not_worse_frontier
    reason = (
        (
            "quality per second higher"
            if higher
            else "quality per second not higher (candidate's lower bound "
            f"{best_c['qps_low']:.4g} vs anchor {best_a['qps']:.4g})"
        )
        + "; "
        + ("frontier ratio not higher" if not_worse_frontier else "frontier ratio higher")
    )
    return Check(
        "serving_frontier",
        "pass" if ok else "fail",
        reason,
        metric="quality_per_second",
        anchor=best_a["qps"],
        candidate=best_c["qps"],
        delta=best_c["qps"] - best_a["qps"],
        ci95=[best_c["qps_low"] - best_a["qps"], best_c["qps_high"] - best_a["qps"]],
        extra={
            "anchor_config": best_a["name"],
            "candidate_config": best_c["name"],
            "anchor_frontier_ratio": best_a["frontier_ratio"],
            "candidate_frontier_ratio": best_c["frontier_ratio"],
        },
    )


# ----------------------------------------------------------------------------- the gate


def run_gate(
    anchor: PathLike,
    candidate: PathLike,
    settings: GateSettings | None = None,
    *,
    anchor_ratings: PathLike | None = None,
    candidate_ratings: PathLike | None = None,
    retrieval_qrels: PathLike | None = None,
    retrieval_anchor: PathLike | None = None,
    retrieval_candidate: PathLike | None = None,
    stress_anchor: PathLike | None = None,
    stress_candidate: PathLike | None = None,
    stress_configuration: str | None = None,
    serving_anchor: PathLike | None = None,
    serving_candidate: PathLike | None = None,
) -> GateReport:
    """Decide whether ``candidate`` (an evaluation run folder) may replace ``anchor``.

    Raises ``BdnscaError`` on bad input (not a run folder, no target arm, unreadable files)."""
    from bdnsca.data.io import file_sha256

    s = settings or GateSettings()
    s.validate()
    anchor, candidate = Path(anchor), Path(candidate)
    ca, cc = read_run_config(anchor), read_run_config(candidate)
    arm = s.target_arm or ca.get("target_arm") or cc.get("target_arm")
    if not arm:
        raise BdnscaError("no target arm: pass --target-arm (neither run_config.json names one)")
    if (
        not s.target_arm
        and ca.get("target_arm")
        and cc.get("target_arm")
        and ca["target_arm"] != cc["target_arm"]
    ):
        raise BdnscaError(
            f"the runs name different target arms ({ca['target_arm']!r}, {cc['target_arm']!r}): "
            "pass --target-arm"
        )
    baselines = s.baseline_arms
    if baselines is None:
        baselines = list(ca.get("baseline_arm_ids") or cc.get("baseline_arm_ids") or [])
    inputs: list[Path] = []

    checks, unpaired = check_paired_quality(anchor, candidate, arm, s)
    inputs += [anchor / "scores" / f"{arm}.jsonl", candidate / "scores" / f"{arm}.jsonl"]

    ra = Path(anchor_ratings) if anchor_ratings else find_ratings(anchor)
    rc = Path(candidate_ratings) if candidate_ratings else find_ratings(candidate)
    if not baselines:
        checks.append(Check("soft_win_rate", "not_evaluated", "no baseline arms (--baseline-arms)"))
    else:
        checks += check_soft_win_rate(ra, rc, arm, baselines, s)
    inputs += [p for p in (ra, rc) if p is not None]

    retrieval = (retrieval_qrels, retrieval_anchor, retrieval_candidate)
    if all(retrieval):
        checks += check_retrieval(*(Path(p) for p in retrieval), s)  # type: ignore[arg-type]
        inputs += [Path(p) for p in retrieval]  # type: ignore[arg-type]
    else:
        checks.append(
            Check(
                "retrieval_no_regression",
                "not_evaluated",
                "needs --retrieval-qrels, --retrieval-anchor and --retrieval-candidate",
            )
        )
    if stress_anchor and stress_candidate:
        checks.append(check_stress(Path(stress_anchor), Path(stress_candidate), stress_configuration))
        inputs += [Path(stress_anchor), Path(stress_candidate)]
    else:
        checks.append(
            Check("retrieval_stress", "not_evaluated", "needs --stress-anchor and --stress-candidate")
        )
    if serving_anchor and serving_candidate:
        checks.append(check_serving(Path(serving_anchor), Path(serving_candidate)))
        inputs += [Path(serving_anchor), Path(serving_candidate)]
    else:
        checks.append(
            Check("serving_frontier", "not_evaluated", "needs --serving-anchor and --serving-candidate")
        )

    passed = all(c.status == "pass" or (c.status == "not_evaluated" and s.allow_missing) for c in checks)
    settings_out = asdict(s) | {
        "target_arm": arm,
        "baseline_arms": list(baselines),
        "anchor": str(anchor),
        "candidate": str(candidate),
        **unpaired,
    }
    return GateReport(passed, checks, settings_out, {str(p): file_sha256(p) for p in inputs})


def render_markdown(report: GateReport, plot_name: str | None = "gate_forest.png") -> str:
    """The report as a table a reviewer reads in ten seconds."""

    def f(x: Any) -> str:
        return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)

    verdict = "PASSED" if report.passed else "FAILED"
    s = report.settings
    lines = [
        f"# Gate: {verdict}",
        "",
        f"Candidate `{s['candidate']}` vs anchor `{s['anchor']}`, target arm `{s['target_arm']}`; "
        f"alpha {s['alpha']}, non-inferiority margin {s['non_inferiority_margin']}, "
        f"{s['resamples']} resamples, seed {s['seed']}.",
        "",
        "| check | on | status | n | anchor | candidate | delta | 95% CI | p | why |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report.checks:
        on = c.metric or c.baseline or ""
        ci = "-" if c.ci95 is None else f"[{c.ci95[0]:+.4f}, {c.ci95[1]:+.4f}]"
        p = c.extra.get("p_value_holm", c.p_value)
        lines.append(
            f"| {c.check} | {on} | **{c.status}** | {f(c.n)} | {f(c.anchor)} | {f(c.candidate)} | "
            f"{'-' if c.delta is None else f'{c.delta:+.4f}'} | {ci} | {f(p)} | {c.reason} |"
        )
    if s.get("only_in_anchor") or s.get("only_in_candidate"):
        lines += [
            "",
            f"Excluded from pairing: {len(s['only_in_anchor'])} responses only in the anchor, "
            f"{len(s['only_in_candidate'])} only in the candidate (listed in gate_report.json).",
        ]
    missing = [c for c in report.checks if c.status == "not_evaluated"]
    if missing:
        lines += ["", "Missing evidence" + (" (allowed by --allow-missing):" if s["allow_missing"] else ":")]
        lines += [
            f"- {c.check}{' ' + (c.metric or c.baseline) if (c.metric or c.baseline) else ''}: {c.reason}"
            for c in missing
        ]
    if plot_name:
        lines += ["", f"![deltas with 95% intervals]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot_forest(report: GateReport, path: PathLike) -> bool:
    """A forest plot of each evaluated check's delta with its interval; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [c for c in report.checks if c.delta is not None and c.ci95 is not None]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(rows), 1) + 1.2))
    for i, c in enumerate(rows):
        colour = "tab:green" if c.passed else "tab:red"
        ax.errorbar(
            c.delta, i, xerr=[[c.delta - c.ci95[0]], [c.ci95[1] - c.delta]], fmt="o", color=colour, capsize=3
        )
    ax.axvline(0.0, color="grey", lw=1, ls="--")
    ax.set_yticks(range(len(rows)), [f"{c.check}: {c.metric or c.baseline or ''}" for c in rows])
    ax.invert_yaxis()
    ax.set_xlabel("candidate - anchor (95% interval)")
    ax.set_title("gate: " + ("passed" if report.passed else "failed"))
    fig.tight_layout()
    from bdnsca.data.io import atomic_write

    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return True


def write_gate_report(report: GateReport, out_dir: PathLike) -> dict[str, Path]:
    """Writes gate_report.json, gate_report.md and gate_forest.png into ``out_dir``."""
    from bdnsca.data.io import atomic_write, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "gate_report.json",
        "markdown": out / "gate_report.md",
        "plot": out / "gate_forest.png",
    }
    write_json(paths["json"], report.to_dict())
    has_plot = plot_forest(report, paths["plot"])
    with atomic_write(paths["markdown"]) as f:
        f.write(render_markdown(report, paths["plot"].name if has_plot else None))
    if not has_plot:
        del paths["plot"]
    return paths
