"""Serving commands: ``serve-bench``."""

from __future__ import annotations

import sys

import click

from bdnsca.cli._common import CONTEXT, _console, _csv, _progress, cli


@cli.command("serve-bench", context_settings=CONTEXT)
@click.option("--models", required=True, help="Comma-separated GGUF files (targets).")
@click.option(
    "--speculative",
    default="none",
    show_default=True,
    help="Comma-separated modes: none, prompt-lookup:N, draft:PATH:N (a smaller GGUF, same vocabulary).",
)
@click.option("--prompts", default="data/serving_prompts.jsonl", show_default=True, type=click.Path())
@click.option("--references", default="data/serving_references.jsonl", show_default=True, type=click.Path())
@click.option("--max-tokens", default=64, show_default=True, type=int)
@click.option("--temperature", default=0.0, show_default=True, type=float)
@click.option("--top-k", default=40, show_default=True, type=int, help="Used when temperature > 0.")
@click.option("--top-p", default=0.95, show_default=True, type=float, help="Used when temperature > 0.")
@click.option("--min-p", default=0.05, show_default=True, type=float, help="Used when temperature > 0.")
@click.option("--repeats", default=3, show_default=True, type=int, help="Measured runs of every prompt.")
@click.option("--seed", default=53, show_default=True, type=int)
@click.option("--n-threads", default=None, type=int, help="llama.cpp threads (default: its own choice).")
@click.option("--n-gpu-layers", default=0, show_default=True, type=int, help="-1 offloads every layer.")
@click.option("--n-ctx", default=2048, show_default=True, type=int)
@click.option(
    "--quality",
    "quality",
    default="chrf,rouge_l",
    show_default=True,
    help="Scorers; chrF and ROUGE-L always run, 'embedding' adds MiniLM cosine similarity.",
)
@click.option(
    "--frontier-metric",
    default="chrf",
    show_default=True,
    type=click.Choice(["chrf", "rouge_l", "embedding"]),
    help="The quality score the frontier uses.",
)
@click.option(
    "--chat",
    is_flag=True,
    help="Send each prompt as a user turn in the model's own chat template (from the GGUF); "
    "default: the prompt text as is.",
)
@click.option("--strict", is_flag=True, help="A prompt without a reference is an error, not a counted skip.")
@click.option("--limit", default=None, type=int, help="Use only the first N prompts.")
@click.option("--bootstrap", default=1000, show_default=True, type=int, help="Bootstrap resamples for CIs.")
@click.option(
    "--order",
    default="interleaved",
    show_default=True,
    type=click.Choice(["interleaved", "sequential"]),
    help="interleaved: all configurations loaded, each prompt run across them in rotating order (drift "
    "hits all alike); sequential: one configuration loaded at a time (less memory).",
)
@click.option(
    "--output-root", default="artifacts/serving", show_default=True, type=click.Path(file_okay=False)
)
def serve_bench_cmd(models, speculative, quality, **kwargs) -> None:
    """Serve GGUF models in-process with llama.cpp, with and without speculative decoding, and
    judge each configuration as a point on the quality-at-latency Pareto frontier."""
    from bdnsca.serve.bench import ServeBenchSettings, parse_speculative, run_serve_bench

    metrics = ["chrf", "rouge_l"] + [q for q in _csv(quality) if q not in ("chrf", "rouge_l")]
    settings = ServeBenchSettings(
        models=_csv(models), speculative=parse_speculative(speculative), quality=metrics, **kwargs
    )
    con = _console()
    # The bar starts with the first request: input errors come first, on a clean line.
    bar = _progress()
    task = None

    def tick(done: int, total: int, name: str) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(name, total=total)
        bar.update(task, completed=done, total=total, description=name)

    try:
        result = run_serve_bench(settings, progress=tick, argv=["bdnsca", *sys.argv[1:]])
    except BaseException as exc:
        bar.stop()
        # An interrupt or a bug is shown without its notes: say where the finished requests are.
        for note in getattr(exc, "__notes__", ()):
            con.print(note, markup=False, highlight=False)
        raise
    finally:
        bar.stop()
    from rich import box
    from rich.table import Table

    table = Table(
        title="serve-bench",
        caption="latency, TTFT: mean ms; speed-up: plain latency / this (same model, paired 95% CI); "
        "tok/s: mean decode; front: on the Pareto frontier; ident: greedy identity with plain decoding",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("config", overflow="fold", min_width=22)
    for col in ("latency", "TTFT", "speed-up", "tok/s", "accept", "quality", "front", "ratio", "ident"):
        table.add_column(col, justify="right", overflow="fold")
    for e in result.summary["configs"]:
        acc, ident, sp = e["acceptance_rate"], e["greedy_identity_rate"], e.get("speedup_vs_plain")
        speedup = "-" if not sp or sp["mean"] is None else f"{sp['mean']:.2f}x"
        if sp and sp["ci95"]:
            speedup += f" [{sp['ci95'][0]:.2f}, {sp['ci95'][1]:.2f}]"
        table.add_row(
            e["name"],
            f"{e['total_ms']['mean']:.1f}",
            f"{e['ttft_ms']['mean']:.1f}",
            speedup,
            "-" if e["decode_tokens_per_s"]["mean"] is None else f"{e['decode_tokens_per_s']['mean']:.0f}",
            "-" if acc is None else f"{acc:.2f}",
            f"{e['quality']['score']:.3f}",
            "yes" if e["pareto_optimal"] else "",
            f"{e['frontier_ratio']:.2f}",
            "-" if ident is None else f"{ident:.2f}",
        )
    con.print(table)
    con.print(f"requests.jsonl, summary.json, report.md, frontier.png, settings.json in {result.output_dir}")
