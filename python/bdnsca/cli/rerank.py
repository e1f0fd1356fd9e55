"""Reranker and robustness commands: ``train-reranker`` and ``stress``."""

from __future__ import annotations

import os

import click

from bdnsca.cli._common import CONTEXT, _console, _csv, cli


def _offline() -> None:
    """Models load from local files only: nothing is downloaded while a command runs."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@cli.command("train-reranker", context_settings=CONTEXT)
@click.option(
    "--pairs", required=True, type=click.Path(exists=True, dir_okay=False), help="mine-negatives pairs JSONL."
)
@click.option("--corpus", required=True, type=click.Path(exists=True), help="Corpus JSONL or BEIR folder.")
@click.option(
    "--gold", required=True, type=click.Path(exists=True), help="Gold JSONL (queries + judgements)."
)
@click.option(
    "--base-model",
    default=None,
    help="Local folder or cached Hugging Face id (offline). Default: the packaged all-MiniLM-L6-v2.",
)
@click.option("--output-dir", default="outputs/reranker", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--heldout-fraction", default=0.2, show_default=True, type=float, help="Share of queries held out."
)
@click.option("--split-seed", default=0, show_default=True, type=int)
@click.option(
    "--heldout-domains", default=None, help="D1,D2: hold out every query of these domains (not a fraction)."
)
@click.option("--domain-field", default="domain", show_default=True)
@click.option("--epochs", default=1.0, show_default=True, type=float)
@click.option("--max-steps", default=-1, show_default=True, type=int, help="Overrides --epochs when > 0.")
@click.option("--batch-size", default=16, show_default=True, type=int)
@click.option("--learning-rate", default=2e-5, show_default=True, type=float)
@click.option("--max-length", default=256, show_default=True, type=int, help="Tokens per (query, document).")
@click.option("--loss", type=click.Choice(["bce", "lambda", "listnet"]), default="bce", show_default=True)
@click.option("--seed", default=0, show_default=True, type=int, help="Training seed (shuffling, head init).")
@click.option("--save-steps", default=50, show_default=True, type=int, help="Checkpoint every N steps.")
@click.option(
    "--eval-depth", default=100, show_default=True, type=int, help="BM25 depth re-scored on held-out."
)
@click.option("--bootstrap", default=10_000, show_default=True, type=int, help="Resamples of the delta's CI.")
@click.option(
    "--validation-fraction",
    default=0.2,
    show_default=True,
    type=float,
    help="Share of the training queries kept out of training to choose the BM25 interpolation "
    "weight (0: none).",
)
@click.option(
    "--first-stage-weight",
    default=None,
    type=float,
    help="Fix the interpolation weight alpha (score = alpha*minmax(bm25) + (1-alpha)*minmax(reranker)).",
)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUTPUT_DIR/checkpoints.")
@click.option("--strict", is_flag=True, help="A pair naming an unknown query or document is an error.")
def train_reranker_cmd(**kw) -> None:
    """Train a cross-encoder reranker on mined pairs, split by query, and evaluate it on the held-out
    queries: BM25 alone vs BM25 + reranker (MRR@10, nDCG@10, paired bootstrap CI of the delta).

    Writes OUTPUT_DIR: the model (loadable by bdnsca.Reranker and search --rerank), split.json,
    training_config.json, metrics.json, training_curves.png."""
    _offline()
    from bdnsca.train.reranker import RerankerTrainingConfig, train_reranker

    domains = _csv(kw.pop("heldout_domains")) if kw.get("heldout_domains") else None
    kw.pop("heldout_domains", None)
    cfg = RerankerTrainingConfig(heldout_domains=domains, bootstrap_resamples=kw.pop("bootstrap"), **kw)
    m = train_reranker(cfg)
    con = _console()
    rep = m["pairs"]
    bad = {k: v for k, v in rep["issues"].items() if v}
    if bad:
        con.print(
            "[yellow]pairs not used:[/yellow] "
            + ", ".join(f"{k}={v}" for k, v in bad.items())
            + "; first: "
            + "; ".join(rep["first_issue"].values())
        )
    h = m["heldout"]
    inter = m["interpolation"]
    con.print(
        f"trained {m['train_steps']} steps on {m['train_queries']} queries in {m['train_runtime_s']:.1f}s "
        f"({m['device']}); first-stage weight {inter['first_stage_weight']:.2f} "
        f"(chosen on: {inter['chosen_on']}, {inter['n_queries']} queries); held-out queries: {h['n_queries']}"
    )
    for metric, d in h["delta"].items():
        con.print(
            f"  {metric}: bm25 {h['means']['bm25'][metric]:.4f} -> bm25+reranker "
            f"{h['means']['bm25+reranker'][metric]:.4f} (delta {d['delta']:+.4f}, "
            f"95% CI [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]); raw reranker "
            f"{h['raw_reranker']['means'][metric]:.4f}"
        )
    con.print(f"wrote {cfg.output_dir}")


@cli.command("stress", context_settings=CONTEXT)
@click.option(
    "--cases",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Stress set JSONL (query, safe_doc, poison_doc, safe_metadata, poison_metadata).",
)
@click.option(
    "--generate",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a stress set from the bundled NPC world to this file, then run it.",
)
@click.option("--n-cases", default=320, show_default=True, type=int, help="Cases --generate writes.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of --generate.")
@click.option(
    "--corpus",
    type=click.Path(exists=True),
    default=None,
    help="Background corpus mixed in (documents may carry source / trust_score).",
)
@click.option(
    "--reranker", default=None, help="Also run BM25 + this cross-encoder (train-reranker's folder)."
)
@click.option(
    "--hybrid",
    is_flag=True,
    help="Also run BM25 + dense (packaged MiniLM) fused by RRF (bdnsca.fuse), with --reranker on top too.",
)
@click.option("--k", "-k", default=5, show_default=True, type=int, help="Top k read per case.")
@click.option("--depth", default=100, show_default=True, type=int, help="Candidates the guard/reranker see.")
@click.option("--trust-threshold", default=0.5, show_default=True, type=float)
@click.option("--no-spoofed", is_flag=True, help="Skip the spoofed-trust variant.")
@click.option(
    "--output-dir", "-o", default="outputs/stress", show_default=True, type=click.Path(file_okay=False)
)
def stress_cmd(
    cases,
    generate,
    n_cases,
    seed,
    corpus,
    reranker,
    hybrid,
    k,
    depth,
    trust_threshold,
    no_spoofed,
    output_dir,
) -> None:
    """Poison / prompt-injection robustness of retrieval: attack success rate, Safe@1 and Safe@k
    (Wilson 95% intervals) per configuration (BM25, BM25 + reranker; each without and with the
    trust guard; the guard also on a spoofed-trust variant). Writes OUTPUT_DIR/stress.json (what
    bdnsca gate reads) and OUTPUT_DIR/stress.md."""
    from pathlib import Path

    from bdnsca.data.io import atomic_write, write_json, write_jsonl
    from bdnsca.errors import BdnscaError
    from bdnsca.retrieval.stress import (
        TrustGuard,
        bm25_retriever,
        hybrid_retriever,
        markdown_table,
        read_stress_set,
        reranked,
        run_stress,
    )

    if (cases is None) == (generate is None):
        raise click.UsageError("give one of --cases FILE or --generate FILE")
    if k < 1 or depth < k:
        raise BdnscaError(f"need 1 <= --k <= --depth, got k={k}, depth={depth}")
    con = _console()
    if generate is not None:
        from bdnsca.retrieval.stress_generate import generate_stress_set

        n = write_jsonl(generate, generate_stress_set(n_cases, seed))
        con.print(f"wrote {n} stress cases -> {generate}")
        cases = generate
    stress = read_stress_set(cases, corpus)
    retrievers = {"bm25": bm25_retriever(depth)}
    if hybrid or reranker is not None:
        _offline()
    if hybrid:
        retrievers["hybrid"] = hybrid_retriever(depth)
    if reranker is not None:
        from bdnsca.retrieval.reranker import load_cross_encoder

        model = load_cross_encoder(reranker)
        for name in list(retrievers):
            retrievers[f"{name}+reranker"] = reranked(retrievers[name], model, depth)
    with con.status(f"running {len(stress.cases)} cases"):
        result = run_stress(
            stress, retrievers, k=k, guard=TrustGuard(threshold=trust_threshold), spoofed=not no_spoofed
        )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "stress.json", result)
    table = markdown_table(result)
    with atomic_write(out / "stress.md") as f:
        f.write(table)
    click.echo(table, nl=False)
    if not result["informative"]:
        con.print(f"[yellow]warning:[/yellow] {result['warning']}")
    con.print(f"wrote {out / 'stress.json'} and {out / 'stress.md'}")
