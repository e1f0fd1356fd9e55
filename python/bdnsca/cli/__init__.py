"""The ``bdnsca`` command line: a thin layer over the importable functions.

Heavy libraries (torch, transformers, llama_cpp) are imported only inside the commands
that need them, so ``bdnsca --help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from bdnsca.errors import BdnscaError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
        transient=True,
    )


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="bdnsca")
def cli() -> None:
    """bdnsca: BM25 retrieval, hard negatives, IR metrics, preference optimisation and serving
    benchmarks for a retrieval-augmented dialogue model."""


# ----------------------------------------------------------------------------- index


@cli.command("index", context_settings=CONTEXT)
@click.option("--corpus", required=True, type=click.Path(exists=True), help="Corpus JSONL or BEIR folder.")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False), help="Index file to write.")
@click.option(
    "--method",
    default="lucene",
    show_default=True,
    type=click.Choice(["lucene", "robertson", "atire", "bm25l", "bm25+"]),
)
@click.option("--k1", default=1.5, show_default=True, type=float)
@click.option("--b", "b", default=0.75, show_default=True, type=float)
@click.option("--delta", default=0.5, show_default=True, type=float, help="BM25L / BM25+ only.")
@click.option("--stopwords", type=click.Choice(["en"]), default=None, help="Drop English stopwords.")
@click.option("--stemmer", type=click.Choice(["english"]), default=None, help="Snowball English stemmer.")
@click.option("--no-title", is_flag=True, help="Index the text alone, not title + text.")
@click.option("--dedupe", is_flag=True, help="Drop documents whose id was seen before (else an error).")
def index_cmd(corpus, output, method, k1, b, delta, stopwords, stemmer, no_title, dedupe) -> None:
    """Build a BM25 index file from a corpus."""
    from bdnsca.data.io import read_corpus
    from bdnsca.retrieval.bm25 import build_index, make_tokenizer

    con = _console()
    t0 = time.perf_counter()
    with con.status("reading corpus"):
        docs = read_corpus(corpus, dedupe=dedupe)
    if docs.duplicates_dropped:
        con.print(f"dropped {docs.duplicates_dropped} documents with duplicate ids")
    with con.status(f"indexing {len(docs):,} documents"):
        bm25 = build_index(
            docs,
            method=method,
            k1=k1,
            b=b,
            delta=delta,
            tokenizer=make_tokenizer(stopwords, stemmer),
            include_title=not no_title,
        )
        bm25.save(output)
    con.print(
        f"indexed {bm25.n_docs:,} documents, {bm25.vocab_size:,} terms, {bm25.n_postings:,} postings "
        f"({method}) -> {output} in {time.perf_counter() - t0:.2f}s"
    )


# ----------------------------------------------------------------------------- search


@cli.command("search", context_settings=CONTEXT)
@click.option("--index", "index_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--queries", required=True, type=click.Path(exists=True), help="Gold JSONL, BEIR queries or folder."
)
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False), help="Run file (.jsonl or TREC)."
)
@click.option("--k", "-k", default=100, show_default=True, type=int, help="Documents per query.")
@click.option("--threads", type=int, default=None, help="Worker threads (default: all cores).")
@click.option("--tag", default="bdnsca", show_default=True, help="Run tag (TREC column 6).")
def search_cmd(index_path, queries, output, k, threads, tag) -> None:
    """Search an index with every query and write a run."""
    from bdnsca._core import BM25
    from bdnsca.data.io import read_queries, write_run
    from bdnsca.retrieval.bm25 import search_run

    if k <= 0:
        raise BdnscaError(f"--k must be >= 1, got {k}")
    con = _console()
    t0 = time.perf_counter()
    bm25 = BM25.load(index_path)
    qs = read_queries(queries)
    run: dict[str, dict[str, float]] = {}
    batch = 4096
    with _progress() as bar:
        task = bar.add_task("searching", total=len(qs))
        for start in range(0, len(qs), batch):
            chunk = qs[start : start + batch]
            run.update(search_run(bm25, chunk, k=k, threads=threads))
            bar.advance(task, len(chunk))
    write_run(output, run, tag=tag)
    empty = sum(1 for v in run.values() if not v)
    con.print(
        f"searched {len(qs):,} queries (k={k}) -> {output} in {time.perf_counter() - t0:.2f}s"
        + (f"; {empty} queries had no known term" if empty else "")
    )


# ----------------------------------------------------------------------------- evaluate


@cli.command("evaluate", context_settings=CONTEXT)
@click.option("--qrels", required=True, type=click.Path(exists=True), help="Gold JSONL, TREC qrels or BEIR.")
@click.option("--run", "run_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--metrics",
    default="mrr@10,ndcg@10,recall@10,recall@100,precision@10,hit@1,map",
    show_default=True,
    help="Comma-separated metric names.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="JSON file to write.")
@click.option("--bootstrap", default=1000, show_default=True, type=int, help="Bootstrap resamples (0: none).")
@click.option("--seed", default=0, show_default=True, type=int)
def evaluate_cmd(qrels, run_path, metrics, output, bootstrap, seed) -> None:
    """Score a run against judgements: a table of means with 95% bootstrap intervals, and JSON."""
    import warnings

    from rich.table import Table

    from bdnsca.data.io import read_qrels, read_run, write_json
    from bdnsca.eval.metrics import bootstrap_ci, evaluate_matrix

    names = _csv(metrics)
    if not names:
        raise BdnscaError("--metrics names no metric")
    qrels_d = read_qrels(qrels)
    run = read_run(run_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qids, names, values = evaluate_matrix(qrels_d, run, names)
    con = _console()
    for w in caught:
        con.print(f"[yellow]warning:[/yellow] {w.message}")
    means = values.mean(axis=0)
    ci = bootstrap_ci(values, bootstrap, seed) if bootstrap > 0 else None
    table = Table(title=f"{len(qids)} queries")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    if ci is not None:
        table.add_column("95% CI", justify="right")
    for i, name in enumerate(names):
        row = [name, f"{means[i]:.4f}"]
        if ci is not None:
            row.append(f"[{ci[i, 0]:.4f}, {ci[i, 1]:.4f}]")
        table.add_row(*row)
    from rich.console import Console

    Console().print(table)
    if output:
        write_json(
            output,
            {
                "qrels": str(qrels),
                "run": str(run_path),
                "n_queries": len(qids),
                "metrics": {n: float(m) for n, m in zip(names, means, strict=True)},
                "ci95": (
                    {n: [float(lo), float(hi)] for n, (lo, hi) in zip(names, ci, strict=True)}
                    if ci is not None
                    else None
                ),
                "bootstrap": {"resamples": bootstrap, "seed": seed},
                "per_query": {
                    q: dict(zip(names, row, strict=True))
                    for q, row in zip(qids, values.tolist(), strict=True)
                },
            },
        )
        con.print(f"wrote {output}")


# ----------------------------------------------------------------------------- mine-negatives


def _threshold(value: str) -> float | None:
    if value.lower() in ("off", "none", "0"):
        return None
    try:
        t = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number in (0, 1] nor 'off'") from None
    if not 0 < t <= 1:
        raise click.BadParameter(f"{t} is not in (0, 1]")
    return t


@cli.command("mine-negatives", context_settings=CONTEXT)
@click.option("--retrieval-gold", required=True, type=click.Path(exists=True), help="Gold JSONL (or BEIR).")
@click.option(
    "--retrieval-corpus", required=True, type=click.Path(exists=True), help="Corpus JSONL (or BEIR)."
)
@click.option(
    "--hard-negatives-per-query", default=10, show_default=True, type=int, help="Same-domain negatives."
)
@click.option("--cross-domain-negatives-per-query", default=4, show_default=True, type=int)
@click.option(
    "--output-hard-negatives", type=click.Path(dir_okay=False), help="Default: beside the gold file."
)
@click.option(
    "--output-reranker-pairs", type=click.Path(dir_okay=False), help="Default: beside the gold file."
)
@click.option("--output-summary", type=click.Path(dir_okay=False), help="Default: beside the gold file.")
@click.option("--candidate-depth", default=100, show_default=True, type=int, help="BM25 ranking depth.")
@click.option("--rank-range", default=None, help="MIN:MAX: only negatives ranked in this window (1 = top).")
@click.option(
    "--max-score-ratio",
    type=float,
    default=None,
    help="Drop candidates scoring above R x the lowest positive's score (0.95 is sensible). Off by default.",
)
@click.option(
    "--near-duplicate-threshold",
    default="0.8",
    show_default=True,
    help="Shingle Jaccard at which a candidate is a twin of a positive; 'off': exact duplicates only.",
)
@click.option("--sampling", type=click.Choice(["top", "random"]), default="top", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--domain-field", default="domain", show_default=True)
@click.option("--min-positive-grade", default=1, show_default=True, type=int)
@click.option(
    "--pair-format",
    type=click.Choice(["pairwise", "triplet", "pointwise"]),
    default="pairwise",
    show_default=True,
)
@click.option("--max-pairs-per-query", type=int, default=None)
@click.option(
    "--strict", is_flag=True, help="Gold documents missing from the corpus are an error, not a count."
)
@click.option(
    "--method",
    default="lucene",
    show_default=True,
    type=click.Choice(["lucene", "robertson", "atire", "bm25l", "bm25+"]),
)
@click.option("--stopwords", type=click.Choice(["en", "none"]), default="en", show_default=True)
@click.option("--stemmer", type=click.Choice(["english", "none"]), default="english", show_default=True)
def mine_negatives_cmd(
    retrieval_gold,
    retrieval_corpus,
    hard_negatives_per_query,
    cross_domain_negatives_per_query,
    output_hard_negatives,
    output_reranker_pairs,
    output_summary,
    candidate_depth,
    rank_range,
    max_score_ratio,
    near_duplicate_threshold,
    sampling,
    seed,
    domain_field,
    min_positive_grade,
    pair_format,
    max_pairs_per_query,
    strict,
    method,
    stopwords,
    stemmer,
) -> None:
    """Mine hard negatives with BM25 (twins of positives kept out) and assemble reranker pairs."""
    from bdnsca.retrieval.mining import (
        MiningSettings,
        default_output_paths,
        mine_hard_negatives,
        parse_rank_range,
        write_mining_outputs,
    )

    settings = MiningSettings(
        hard_negatives_per_query=hard_negatives_per_query,
        cross_domain_negatives_per_query=cross_domain_negatives_per_query,
        candidate_depth=candidate_depth,
        rank_range=parse_rank_range(rank_range) if rank_range else None,
        max_score_ratio=max_score_ratio,
        near_duplicate_threshold=_threshold(near_duplicate_threshold),
        sampling=sampling,
        seed=seed,
        domain_field=domain_field,
        min_positive_grade=min_positive_grade,
        pair_format=pair_format,
        max_pairs_per_query=max_pairs_per_query,
        strict=strict,
        method=method,
        stopwords=None if stopwords == "none" else stopwords,
        stemmer=None if stemmer == "none" else stemmer,
    )
    settings.validate()
    hn_default, pairs_default, summary_default = default_output_paths(retrieval_gold)
    con = _console()
    with _progress() as bar:
        task = bar.add_task("mining", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = mine_hard_negatives(retrieval_corpus, retrieval_gold, settings, progress=tick)
    paths = (
        output_hard_negatives or hn_default,
        output_reranker_pairs or pairs_default,
        output_summary or summary_default,
    )
    write_mining_outputs(result, *paths)
    s = result.summary
    con.print(
        f"{s['queries']['used']}/{s['queries']['total']} queries, {s['negatives']['total']} negatives "
        f"({s['negatives']['same_domain']} same-domain, {s['negatives']['cross_domain']} cross-domain), "
        f"{s['pairs']} {pair_format} pairs; kept out {s['suspected_false_negatives']['count']} suspected "
        f"false negatives (twins of positives); gold docs missing: {s['missing_gold_documents']['count']}"
    )
    for label, p in zip(("hard negatives", "reranker pairs", "summary"), paths, strict=True):
        con.print(f"  {label}: {p}")


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
@click.option("--min-raters", default=2, show_default=True, type=int)
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
    alpha = s["agreement"].get(metric, {}).get("krippendorff_alpha_ordinal")
    if alpha is not None:
        con.print(f"rater agreement on {metric}: Krippendorff's alpha (ordinal) {alpha:.3f}")
    con.print(f"  pairs: {out}" + (f"\n  eval: {ev}" if result.eval else "") + f"\n  summary: {summary_path}")


# ----------------------------------------------------------------------------- training


@cli.command("train-dpo", context_settings=CONTEXT)
@click.option(
    "--dataset", required=True, type=click.Path(exists=True, dir_okay=False), help="Preference JSONL."
)
@click.option(
    "--base-model", required=True, help="A local model folder or a hub id (no download happens here)."
)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--loss", type=click.Choice(["dpo", "ipo", "orpo", "simpo"]), default="dpo", show_default=True)
@click.option("--beta", default=0.1, show_default=True, type=float)
@click.option("--learning-rate", default=5e-5, show_default=True, type=float)
@click.option("--epochs", default=1.0, show_default=True, type=float)
@click.option("--max-steps", default=-1, show_default=True, type=int, help="Overrides --epochs when > 0.")
@click.option("--batch-size", default=4, show_default=True, type=int)
@click.option("--grad-accum", default=1, show_default=True, type=int)
@click.option("--max-length", default=512, show_default=True, type=int)
@click.option("--max-prompt-length", default=256, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--eval-dataset", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--eval-fraction", default=0.0, show_default=True, type=float)
@click.option("--eval-steps", default=None, type=int)
@click.option("--save-steps", default=25, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUTPUT_DIR/checkpoints.")
@click.option("--lora-r", default=16, show_default=True, type=int)
@click.option("--lora-alpha", default=32, show_default=True, type=int)
@click.option("--lora-dropout", default=0.05, show_default=True, type=float)
@click.option(
    "--quantization", type=click.Choice(["auto", "4bit", "none"]), default="auto", show_default=True
)
def train_dpo_cmd(**kwargs) -> None:
    """Train a LoRA (QLoRA on CUDA) adapter with DPO, IPO, ORPO or SimPO."""
    from bdnsca.train.preference import PreferenceTrainingConfig, train_preferences

    metrics = train_preferences(PreferenceTrainingConfig(**kwargs))
    con = _console()
    last = metrics["train"][-1] if metrics["train"] else {}
    con.print(
        f"trained {metrics['train_steps']} steps ({metrics['loss']}, quantization {metrics['quantization']}, "
        f"LoRA on {', '.join(metrics['lora_target_modules'])}); last train loss {last.get('loss')}"
    )
    if metrics["eval_final"]:
        m0 = (metrics["eval_initial"] or {}).get("eval_rewards/margins")
        m1 = metrics["eval_final"].get("eval_rewards/margins")
        con.print(f"eval reward margin: {m0} at step 0 -> {m1}")
    con.print(f"adapter, metrics.json and training_curves.png in {kwargs['output_dir']}")


@cli.command("merge-adapter", context_settings=CONTEXT)
@click.option("--base-model", required=True)
@click.option("--adapter", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
def merge_adapter_cmd(base_model, adapter, output_dir) -> None:
    """Merge a LoRA adapter into the base model's full weights."""
    from bdnsca.train.preference import merge_adapter

    _console().print(f"merged model written to {merge_adapter(base_model, adapter, output_dir)}")


@cli.command("tiny-model", context_settings=CONTEXT)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--layers", default=2, show_default=True, type=int)
@click.option("--hidden-size", default=64, show_default=True, type=int)
@click.option("--heads", default=4, show_default=True, type=int)
@click.option(
    "--vocab-size", default=1024, show_default=True, type=int, help="When training a new tokenizer."
)
@click.option("--tokenizer-from", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--gguf", is_flag=True, help="Also write model.gguf (loads in llama.cpp / llama-cpp-python).")
@click.option(
    "--copy-steps",
    default=0,
    show_default=True,
    type=int,
    help="Train this many steps on a copy task (answer = the prompt's text), for speculative-decoding "
    "demos; also writes copy_prompts.jsonl / copy_references.jsonl.",
)
def tiny_model_cmd(
    output_dir, layers, hidden_size, heads, vocab_size, tokenizer_from, seed, gguf, copy_steps
) -> None:
    """Build a small random-initialised Llama model and a tokenizer trained on the bundled text."""
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    cfg = TinyModelConfig(
        layers=layers,
        hidden_size=hidden_size,
        heads=heads,
        kv_heads=min(2, heads),
        vocab_size=vocab_size,
        seed=seed,
    )
    if copy_steps < 0:
        raise BdnscaError(f"--copy-steps must be >= 0, got {copy_steps}")
    with _progress() as bar:
        task = bar.add_task("copy task", total=copy_steps or None, visible=copy_steps > 0)
        info = make_tiny_model(
            output_dir,
            cfg,
            tokenizer_from=tokenizer_from,
            gguf=gguf,
            copy_steps=copy_steps,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    con = _console()
    con.print(
        f"tiny model: {info['parameters']:,} parameters, vocabulary {info['vocab_size']} -> {output_dir}"
    )
    if "copy_task" in info:
        ct = info["copy_task"]
        con.print(
            f"copy task: {ct['steps']} steps, final loss {ct['loss_curve'][-1]['loss']:.4f}, "
            f"held-out exact copies {ct['held_out_exact_copy_rate']:.0%}; "
            f"copy_prompts.jsonl / copy_references.jsonl in {output_dir}"
        )


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
    finally:
        bar.stop()
    from rich import box
    from rich.table import Table

    table = Table(
        title="serve-bench",
        caption="latency, TTFT: mean ms; tok/s: mean decode; front: on the Pareto frontier; "
        "ident: greedy identity with plain decoding",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("config", overflow="fold", min_width=22)
    for col in ("latency", "TTFT", "tok/s", "accept", "quality", "front", "ratio", "ident"):
        table.add_column(col, justify="right", overflow="fold")
    for e in result.summary["configs"]:
        acc, ident = e["acceptance_rate"], e["greedy_identity_rate"]
        table.add_row(
            e["name"],
            f"{e['total_ms']['mean']:.1f}",
            f"{e['ttft_ms']['mean']:.1f}",
            "-" if e["decode_tokens_per_s"]["mean"] is None else f"{e['decode_tokens_per_s']['mean']:.0f}",
            "-" if acc is None else f"{acc:.2f}",
            f"{e['quality']['score']:.3f}",
            "yes" if e["pareto_optimal"] else "",
            f"{e['frontier_ratio']:.2f}",
            "-" if ident is None else f"{ident:.2f}",
        )
    con.print(table)
    con.print(f"requests.jsonl, summary.json, report.md, frontier.png, settings.json in {result.output_dir}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI; a failure prints one line and exits non-zero."""
    try:
        rc = cli.main(args=argv, prog_name="bdnsca", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (BdnscaError, OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        if os.environ.get("BDNSCA_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"error: {msg}", err=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
