"""Preference commands: ``build-preferences``."""

from __future__ import annotations

from pathlib import Path

import click

from bdnsca.cli._common import CONTEXT, _console, _csv, cli

# ----------------------------------------------------------------------------- build-preferences


@cli.command("build-preferences", context_settings=CONTEXT)
@click.option(
    "--run-dir", required=True, type=click.Path(exists=True, file_okay=False), help="Evaluation run."
)
@click.option(
    "--human-eval-file", type=click.Path(exists=True, dir_okay=False), help="Long-form ratings CSV."
)
@click.option("--target-arm", default="", help="The arm to prefer (target-vs-baselines pairing).")
@click.option("--baseline-arms", default="", help="Comma-separated arms to compare the target with.")
@click.option("--metric", default="overall_quality", show_default=True)
@click.option("--min-raters", default=2, show_default=True, type=int, help="Distinct annotators per arm.")
@click.option(
    "--min-margin", default=0.25, show_default=True, type=float, help="Lead needed, raw rating scale."
)
@click.option(
    "--aggregate", type=click.Choice(["mean", "median", "zscore"]), default="mean", show_default=True
)
@click.option(
    "--pairing",
    type=click.Choice(["target-vs-baselines", "all-arms"]),
    default="target-vs-baselines",
    show_default=True,
)
@click.option("--allow-reverse-pairs", is_flag=True, help="Also emit baseline-over-target pairs.")
@click.option("--score-scale", default="1:5", show_default=True, help="MIN:MAX of the ratings.")
@click.option(
    "--require-same-prompt", is_flag=True, help="Drop pairs whose responses answered different prompts."
)
@click.option("--chat", is_flag=True, help="Write trl's conversational form (lists of messages).")
@click.option(
    "--eval-fraction", default=0.0, show_default=True, type=float, help="Scenarios held out for eval."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--duplicate-ratings",
    type=click.Choice(["error", "collapse"]),
    default="error",
    show_default=True,
    help="A repeated scenario/arm/annotator row: an error, or averaged into one rating (counted).",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Default: RUN/preference_dataset.jsonl")
@click.option(
    "--eval-output", type=click.Path(dir_okay=False), help="Default: RUN/preference_dataset.eval.jsonl"
)
@click.option(
    "--output-summary", type=click.Path(dir_okay=False), help="Default: RUN/preference_dataset_summary.json"
)
def build_preferences_cmd(
    run_dir,
    human_eval_file,
    target_arm,
    baseline_arms,
    metric,
    min_raters,
    min_margin,
    aggregate,
    pairing,
    allow_reverse_pairs,
    score_scale,
    require_same_prompt,
    chat,
    eval_fraction,
    seed,
    duplicate_ratings,
    output,
    eval_output,
    output_summary,
) -> None:
    """Build preference pairs (prompt, chosen, rejected) from a multi-rater evaluation run."""
    from bdnsca.prefs.build import PreferenceSettings, build_preferences, parse_scale, write_preferences

    settings = PreferenceSettings(
        target_arm=target_arm,
        baseline_arms=_csv(baseline_arms),
        metric=metric,
        min_raters=min_raters,
        min_margin=min_margin,
        aggregate=aggregate,
        pairing=pairing,
        allow_reverse_pairs=allow_reverse_pairs,
        score_scale=parse_scale(score_scale),
        require_same_prompt=require_same_prompt,
        chat=chat,
        eval_fraction=eval_fraction,
        seed=seed,
        duplicate_ratings=duplicate_ratings,
    )
    result = build_preferences(run_dir, human_eval_file, settings)
    run = Path(run_dir)
    out = output or run / "preference_dataset.jsonl"
    ev = eval_output or run / "preference_dataset.eval.jsonl"
    summary_path = output_summary or run / "preference_dataset_summary.json"
    write_preferences(result, out, summary_path, ev)
    s = result.summary
    con = _console()
    con.print(
        f"{s['pairs']} pairs ({s['train_pairs']} train, {s['eval_pairs']} eval) from "
        f"{s['rated_scenarios']} rated scenarios; {s['unrated_scenarios']} scenarios unrated; "
        f"skipped: {s['skipped']}; prompt mismatches: {s['prompt_mismatch_pairs']}"
    )
    if s["ratings"]["duplicate_rows_collapsed"]:
        con.print(f"{s['ratings']['duplicate_rows_collapsed']} duplicate rating rows averaged into one")
    alpha = s["agreement"].get(metric, {}).get("krippendorff_alpha_ordinal")
    if alpha is not None:
        con.print(f"rater agreement on {metric}: Krippendorff's alpha (ordinal) {alpha:.3f}")
    con.print(f"  pairs: {out}" + (f"\n  eval: {ev}" if result.eval else "") + f"\n  summary: {summary_path}")
