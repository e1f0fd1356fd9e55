"""Evaluation-contract commands: ``compare`` (paired comparison of retrieval runs) and ``gate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bdnsca.cli._common import CONTEXT, _console, _csv, cli


@cli.command("compare", context_settings=CONTEXT)
@click.option("--qrels", required=True, type=click.Path(exists=True), help="Gold JSONL, TREC qrels or BEIR.")
@click.option(
    "--run",
    "runs",
    required=True,
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A run file (repeat: at least two). Named by file stem.",
)
@click.option("--metrics", default="mrr@10,ndcg@10", show_default=True, help="Comma-separated metrics.")
@click.option(
    "--test",
    type=click.Choice(["randomization", "t-test", "bootstrap"]),
    default="randomization",
    show_default=True,
    help="Paired test giving the p-values (the CI is always the paired bootstrap).",
)
@click.option("--resamples", default=10_000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--alpha", default=0.05, show_default=True, type=float)
@click.option(
    "--correction",
    type=click.Choice(["holm", "bonferroni", "none"]),
    default="holm",
    show_default=True,
    help="Multiple-comparison correction across the pairs of each metric.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="JSON file to write.")
def compare_cmd(qrels, runs, metrics, test, resamples, seed, alpha, correction, output) -> None:
    """Compare retrieval runs pairwise on the same qrels, with paired CIs and corrected p-values."""
    from bdnsca.data.io import read_qrels, read_run, write_json
    from bdnsca.errors import BdnscaError
    from bdnsca.eval.compare import compare

    if len(runs) < 2:
        raise BdnscaError("compare needs at least two --run files")
    names = _run_names(runs)
    con = _console()
    with con.status("reading runs"):
        q = read_qrels(qrels)
        loaded = {name: read_run(p) for name, p in zip(names, runs, strict=True)}
    with con.status(f"comparing {len(runs)} runs ({resamples:,} resamples)"):
        res = compare(
            q,
            loaded,
            _csv(metrics),
            test=test,
            resamples=resamples,
            seed=seed,
            alpha=alpha,
            correction=correction,
        )
    click.echo(res.table())
    missing = {k: v for k, v in res.missing_queries.items() if v}
    if missing:
        click.echo(f"queries missing from a run (scored 0): {missing}")
    if output:
        write_json(
            output,
            res.to_dict() | {"inputs": {"qrels": str(qrels), "runs": dict(zip(names, runs, strict=True))}},
        )
        con.print(f"-> {output}")


def _scale(text: str | None) -> tuple[float, float] | None:
    from bdnsca.errors import BdnscaError

    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise BdnscaError(f"--rating-scale must be MIN:MAX, got {text!r}") from None
    if not lo < hi:
        raise BdnscaError(f"--rating-scale needs MIN < MAX, got {text!r}")
    return lo, hi


def _run_names(paths: tuple[str, ...]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p) for p in paths]


@cli.command("gate", context_settings=CONTEXT)
@click.option(
    "--anchor", required=True, type=click.Path(exists=True, file_okay=False), help="Anchor run folder."
)
@click.option(
    "--candidate", required=True, type=click.Path(exists=True, file_okay=False), help="Candidate run folder."
)
@click.option("--target-arm", default=None, help="Default: run_config.json's target_arm.")
@click.option(
    "--baseline-arms", default=None, help="Comma-separated; default: run_config.json's baseline_arm_ids."
)
@click.option("--quality-metrics", default="overall_quality,context_relevance", show_default=True)
@click.option(
    "--rating-metric",
    default="overall_quality",
    show_default=True,
    help="Ratings column compared for the soft win-rate.",
)
@click.option("--rating-scale", default=None, help="MIN:MAX of the ratings (default: the run's, else 1:5).")
@click.option(
    "--duplicate-ratings",
    type=click.Choice(["error", "collapse"]),
    default="error",
    show_default=True,
    help="A repeated (scenario, arm, annotator) rating: an error, or averaged into one.",
)
@click.option(
    "--win-rate-margin",
    default=None,
    type=float,
    help="Non-inferiority margin of the soft win-rate (default: --non-inferiority-margin).",
)
@click.option("--anchor-ratings", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--candidate-ratings", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--retrieval-qrels", type=click.Path(exists=True), default=None)
@click.option("--retrieval-anchor", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--retrieval-candidate", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--retrieval-metrics", default="mrr@10,ndcg@10", show_default=True)
@click.option("--stress-anchor", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--stress-candidate", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--stress-configuration", default=None, help="Which configuration of the stress files.")
@click.option("--serving-anchor", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--serving-candidate", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--alpha", default=0.05, show_default=True, type=float)
@click.option("--non-inferiority-margin", default=0.01, show_default=True, type=float)
@click.option("--resamples", default=10_000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--allow-missing", is_flag=True, help="A check without inputs does not fail the gate.")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default="gate",
    show_default=True,
    help="Folder for gate_report.json, gate_report.md and gate_forest.png.",
)
def gate_cmd(**kw) -> None:
    """Promote the candidate only when paired evidence says it beats the anchor.

    Exit status: 0 passed, 1 failed, 2 bad input."""
    from bdnsca.errors import BdnscaError
    from bdnsca.eval.gate import GateSettings, render_markdown, run_gate, write_gate_report

    try:
        settings = GateSettings(
            target_arm=kw["target_arm"],
            baseline_arms=_csv(kw["baseline_arms"]) if kw["baseline_arms"] is not None else None,
            quality_metrics=_csv(kw["quality_metrics"]),
            rating_metric=kw["rating_metric"],
            rating_scale=_scale(kw["rating_scale"]),
            duplicate_ratings=kw["duplicate_ratings"],
            win_rate_margin=kw["win_rate_margin"],
            retrieval_metrics=_csv(kw["retrieval_metrics"]),
            alpha=kw["alpha"],
            non_inferiority_margin=kw["non_inferiority_margin"],
            resamples=kw["resamples"],
            seed=kw["seed"],
            allow_missing=kw["allow_missing"],
        )
        with _console().status("gate: resampling"):
            report = run_gate(
                kw["anchor"],
                kw["candidate"],
                settings,
                **{
                    k: kw[k]
                    for k in (
                        "anchor_ratings",
                        "candidate_ratings",
                        "retrieval_qrels",
                        "retrieval_anchor",
                        "retrieval_candidate",
                        "stress_anchor",
                        "stress_candidate",
                        "stress_configuration",
                        "serving_anchor",
                        "serving_candidate",
                    )
                },
            )
        paths = write_gate_report(report, kw["output"])
    except (BdnscaError, OSError) as exc:
        click.echo(
            f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}", err=True
        )
        sys.exit(2)
    click.echo(render_markdown(report, plot_name=None))
    click.echo(f"-> {', '.join(str(p) for p in paths.values())}")
    sys.exit(0 if report.passed else 1)
