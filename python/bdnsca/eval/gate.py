"""The evaluation contract as a decision: promote a candidate over the anchor only on paired
evidence with stated error rates.

Four checks, each a row (or several) of the report:

1. ``paired_quality`` (per quality metric): the target arm's per-response scores of anchor and
   candidate (``scores/ARM.jsonl``) paired by ``(scenario_id, repeat_index)``; mean delta, paired
   bootstrap interval over scenarios (repeats of a scenario averaged first), randomization
   p-value (Holm across the metrics). Passes when the interval's lower bound is above 0, the
   Holm-adjusted p-value is below alpha, and the candidate does not fail more of the shared
   requests than the anchor.
2. ``soft_win_rate`` (per external baseline): per scenario, the target arm's mean rating against
   the baseline's (a win 1, a tie 0.5); the candidate's soft win-rate minus the anchor's with a
   bootstrap interval over scenarios (paired on the scenarios both runs rate). Passes when the
   lower bound is above ``-margin`` (non-inferiority); ``significantly_higher`` says whether it
   is above 0.
3. ``retrieval_no_regression`` (per metric): per-query paired deltas of two runs on one qrels;
   passes when the lower bound is above ``-margin``. ``retrieval_stress``: attack success rate
   (ASR) of two stress result files with Wilson intervals; passes when Newcombe's interval of the
   difference lies below 0 (or no attack succeeds in either run).
4. ``serving_frontier``: from two serve-bench summaries, the best ``quality_per_second`` of each
   (a conservative interval from the quality and latency intervals) and the frontier ratio of
   that configuration on the union of both runs' configurations. Passes when the candidate's
   interval lies above the anchor's and its frontier ratio is lower.

Intervals are two-sided at ``1 - alpha`` (95% by default).

A check whose inputs are missing is ``not_evaluated``: it fails the gate unless
``allow_missing``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.atomic import finite_or_none
from bdnsca.data.run_folders import read_run_config
from bdnsca.errors import BdnscaError
from bdnsca.eval.gate_checks import (
    Check,
    GateSettings,
    _scale,
    check_paired_quality,
    check_retrieval,
    check_serving,
    check_soft_win_rate,
    check_stress,
    find_ratings,
    read_arm_scores,
    read_stress,
)

__all__ = [
    "Check",
    "GateReport",
    "GateSettings",
    "find_ratings",
    "read_arm_scores",
    "read_stress",
    "render_markdown",
    "run_gate",
    "write_gate_report",
]

PathLike = str | os.PathLike[str]


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
            "settings": finite_or_none(self.settings),
            "inputs": self.inputs,
        }


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
        checks.append(
            Check("soft_win_rate", "not_evaluated", "no baseline arms (--baseline-arms)", baseline="")
        )
    else:
        checks += check_soft_win_rate((ra, rc), (_scale(ca, s), _scale(cc, s)), arm, baselines, s)
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
        checks.append(check_stress(Path(stress_anchor), Path(stress_candidate), stress_configuration, s))
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
        f"alpha {s['alpha']} (intervals at {1 - s['alpha']:.0%}), non-inferiority margin "
        f"{s['non_inferiority_margin']}, {s['resamples']} resamples, seed {s['seed']}.",
        "",
        "| check | on | status | n | anchor | candidate | delta | CI | p | why |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report.checks:
        on = c.metric or c.baseline or ""
        ci = "-" if c.ci95 is None else f"[{c.ci95[0]:+.4f}, {c.ci95[1]:+.4f}]"
        p = c.p_value
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
            c.delta,
            i,
            xerr=[[max(0.0, c.delta - c.ci95[0])], [max(0.0, c.ci95[1] - c.delta)]],
            fmt="o",
            color=colour,
            capsize=3,
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
