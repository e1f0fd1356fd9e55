"""Evaluation-run commands: ``generate`` (responses per arm) and ``judge`` (blind LLM-as-judge)."""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from bdnsca.cli._common import CONTEXT, _console, _csv, _progress, cli

_SETTING_FLAGS = ("repeats", "temperature", "max_tokens", "seed", "n_ctx", "n_threads", "n_gpu_layers")


def _bar():
    """A progress bar that starts with the first tick (input errors print on a clean line)."""
    bar = _progress()
    task = None

    def tick(done: int, total: int, name: str) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(name or "requests", total=total)
        bar.update(task, completed=done, total=total, description=name or "requests")

    return bar, tick


@cli.command("generate", context_settings=CONTEXT)
@click.option("--scenarios", type=click.Path(exists=True, dir_okay=False), help="Scenario JSONL.")
@click.option("--arms", "arms_file", type=click.Path(exists=True, dir_okay=False), help="Arms TOML.")
@click.option("--output-root", default="runs/eval", show_default=True, type=click.Path(file_okay=False))
@click.option("--repeats", default=1, show_default=True, type=int, help="Responses per arm and scenario.")
@click.option("--temperature", default=0.2, show_default=True, type=float)
@click.option("--max-tokens", default=80, show_default=True, type=int)
@click.option("--seed", default=19, show_default=True, type=int)
@click.option("--n-ctx", default=2048, show_default=True, type=int)
@click.option("--n-threads", default=None, type=int, help="llama.cpp threads (default: its own choice).")
@click.option("--n-gpu-layers", default=0, show_default=True, type=int, help="-1 offloads every layer.")
@click.option(
    "--resume",
    type=click.Path(exists=True, file_okay=False),
    help="Finish an interrupted run (a RUN.incomplete folder) with its own recorded inputs and settings.",
)
def generate_cmd(scenarios, arms_file, output_root, resume, **settings) -> None:
    """Generate one response per arm, scenario and repeat on local GGUF models (llama.cpp) into
    OUTPUT_ROOT/<UTC stamp>/: run_config.json, scenarios.jsonl, responses/ARM.jsonl."""
    from bdnsca.eval.generate import GenerateSettings, generate_run

    ctx = click.get_current_context()
    if resume:
        given = [f for f in ("scenarios", "arms_file", *_SETTING_FLAGS)
                 if ctx.get_parameter_source(f) == ParameterSource.COMMANDLINE]  # fmt: skip
        if given:
            flag = "--" + given[0].replace("_file", "").replace("_", "-")
            raise click.UsageError(f"--resume uses the run's own inputs and settings: drop {flag}")
    elif not scenarios or not arms_file:
        raise click.UsageError("pass --scenarios and --arms (or --resume RUN_DIR)")
    con = _console()
    bar, tick = _bar()
    argv = ["bdnsca", *sys.argv[1:]]
    try:
        if resume:
            result = generate_run(resume=resume, progress=tick, argv=argv)
        else:
            result = generate_run(
                scenarios, arms_file, output_root, GenerateSettings(**settings), progress=tick, argv=argv
            )
    except BaseException as exc:
        bar.stop()
        for note in getattr(exc, "__notes__", ()):
            con.print(note, markup=False, highlight=False)
        raise
    finally:
        bar.stop()
    for arm, rows in result.responses.items():
        failed = sum(not r["ok"] for r in rows)
        con.print(f"{arm}: {len(rows)} responses" + (f", {failed} failed (ok: false)" if failed else ""))
    con.print(f"run folder: {result.run_dir}")


@cli.command("judge", context_settings=CONTEXT)
@click.option("--run-dir", required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "--judge",
    "judges",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="A judge GGUF; repeat for several judges.",
)
@click.option(
    "--temperatures", default="0.0,0.7", show_default=True, help="Each judge at each: one annotator."
)
@click.option(
    "--mode", type=click.Choice(["pointwise", "pairwise", "both"]), default="both", show_default=True
)
@click.option("--arms", default="", help="Comma-separated arms to judge (default: all).")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the judge files go  [default: the run folder]",
)
@click.option("--max-scenarios", default=None, type=int, help="Judge a random sample of N scenarios.")
@click.option("--sample-seed", default=0, show_default=True, type=int)
@click.option("--seed", default=19, show_default=True, type=int, help="Pair order and sampling seeds.")
@click.option("--retries", default=2, show_default=True, type=int, help="Re-asks of an unparseable answer.")
@click.option("--max-tokens", default=320, show_default=True, type=int)
@click.option("--n-ctx", default=2048, show_default=True, type=int)
@click.option("--n-threads", default=None, type=int)
@click.option("--n-gpu-layers", default=0, show_default=True, type=int)
@click.option(
    "--missing-as-loss",
    is_flag=True,
    help="Win-rates: an arm with no usable response where another has one loses that scenario "
    "(default: the scenario is left out of its comparisons).",
)
@click.option(
    "--judge-chat/--no-judge-chat",
    "chat",
    default=None,
    help="Use the judge GGUF's chat template (default: when it has one).",
)
def judge_cmd(run_dir, judges, temperatures, arms, output_dir, **kwargs) -> None:
    """Judge a run's responses blind with local GGUF models: pointwise 1-5 ratings and/or pairwise
    A/B/tie in both orders. Writes judge_ratings.csv, judge_pairwise.csv, judge_requests.jsonl and
    judge_summary.json into the run folder (or --output-dir)."""
    from bdnsca.eval.judge import JudgeSettings, judge_run

    try:
        temps = [float(t) for t in _csv(temperatures)]
    except ValueError:
        raise click.BadParameter(
            f"not a list of numbers: {temperatures!r}", param_hint="--temperatures"
        ) from None
    settings = JudgeSettings(temperatures=temps, arms=_csv(arms) or None, **kwargs)
    con = _console()
    bar, tick = _bar()
    try:
        result = judge_run(
            run_dir,
            list(judges),
            settings,
            progress=tick,
            argv=["bdnsca", *sys.argv[1:]],
            output_dir=output_dir,
        )
    except BaseException as exc:
        bar.stop()
        for note in getattr(exc, "__notes__", ()):
            con.print(note, markup=False, highlight=False)
        raise
    finally:
        bar.stop()
    s = result.summary
    con.print(
        f"{s['requests']['questions']} judgements by {len(s['annotators'])} annotators over "
        f"{s['scenarios']['judged']} scenarios; missing (unparseable): {s['requests']['missing']}"
    )
    if s["position_consistency_rate"] is not None:
        con.print(f"position consistency: {s['position_consistency_rate']:.3f}")
    alpha = s["krippendorff_alpha"].get("overall_quality")
    if alpha is not None:
        con.print(f"Krippendorff's alpha (overall_quality): {alpha:.3f}")
    con.print(f"judge_ratings.csv, judge_requests.jsonl, judge_summary.json in {result.run_dir}")
