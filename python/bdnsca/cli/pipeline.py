"""``bdnsca pipeline run | status | promote``: the experiment matrix from one TOML file."""

from __future__ import annotations

import sys
import time

import click

from bdnsca.cli._common import CONTEXT, _console, cli


@cli.group("pipeline", context_settings=CONTEXT)
def pipeline_group() -> None:
    """The experiment matrix (SFT -> DPO -> reranker -> speculative serving) as one command:
    every step a content-keyed node, reused when its inputs are unchanged; a candidate becomes
    the anchor only through the gate."""


@pipeline_group.command("run", context_settings=CONTEXT)
@click.argument("experiment_file", type=click.Path(dir_okay=False))
def run_cmd(experiment_file) -> None:
    """Run (or resume) every step of EXPERIMENT_FILE; print the matrix table. Writes
    OUTPUT/pipeline.json, OUTPUT/report.md and OUTPUT/frontier.png."""
    from bdnsca.pipeline.engine import run_pipeline

    con = _console()
    t0 = time.perf_counter()
    result = run_pipeline(experiment_file, echo=lambda m: con.print(m, markup=False, highlight=False))
    nodes = result.manifest["nodes"].values()
    ran = sum(n["status"] == "computed" for n in nodes)
    click.echo(result.table)
    con.print(
        f"{ran} steps run, {len(nodes) - ran} reused, {time.perf_counter() - t0:.0f}s; "
        f"report: {result.report_path}; manifest: {result.manifest_path}",
        markup=False,
        highlight=False,
    )


@pipeline_group.command("status", context_settings=CONTEXT)
@click.argument("experiment_file", type=click.Path(dir_okay=False))
def status_cmd(experiment_file) -> None:
    """Which steps of EXPERIMENT_FILE are finished (reused by the next run) and which would run."""
    from bdnsca.pipeline.engine import pipeline_status

    for node, state in pipeline_status(experiment_file):
        click.echo(f"{state:9} {node.name}  ({node.step}, key {node.key[:12]})")


@pipeline_group.command("promote", context_settings=CONTEXT)
@click.argument("experiment_file", type=click.Path(dir_okay=False))
@click.option("--experiment", "-e", required=True, help="The [[experiment]] name whose candidate to promote.")
def promote_cmd(experiment_file, experiment) -> None:
    """Make EXPERIMENT's candidate the anchor (OUTPUT/anchors/current) if its gate passed.
    Exit status: 0 promoted, 1 refused (the anchor unchanged)."""
    from bdnsca.pipeline.promote import PromotionRefused, promote

    try:
        res = promote(experiment_file, experiment)
    except PromotionRefused as exc:
        click.echo(f"not promoted: {exc}", err=True)
        sys.exit(1)
    click.echo(f"promoted {experiment}: anchors/current -> {res.anchor}")
