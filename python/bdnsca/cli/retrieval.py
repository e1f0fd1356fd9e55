"""Retrieval commands: ``index``, ``search``, ``encode``, ``evaluate``, ``mine-negatives``.

Longer than our ~450-line guide: it is mostly click option declarations of commands that share
readers; the logic each command runs lives in the retrieval and eval packages."""

from __future__ import annotations

import time

import click

from bdnsca.cli._common import CONTEXT, _console, _csv, _progress, cli
from bdnsca.errors import BdnscaError

# ----------------------------------------------------------------------------- ray options


def _ray_options(f):
    """--ray ADDRESS, --ray-tasks N, --ray-object-store (bdnsca.retrieval.distributed)."""
    f = click.option(
        "--ray-object-store",
        is_flag=True,
        help="With --ray: ship the index to the workers through Ray's object store instead of "
        "having each node read --index (use when the path is not on storage every node reads).",
    )(f)
    f = click.option(
        "--ray-tasks",
        type=int,
        default=None,
        help="With --ray: split the queries into this many contiguous chunks, one task each "
        "(default: 4 per cluster CPU, at most 4096 queries a chunk).",
    )(f)
    return click.option(
        "--ray",
        "ray_address",
        default=None,
        metavar="ADDRESS",
        help="Run the queries as Ray tasks: 'local' starts a local cluster, 'auto' joins the one "
        "running here (ray start), else a cluster address (ray://host:10001, host:6379). Needs "
        "pip install 'bdnsca[ray]'. Output is byte-identical to a local run; --threads then sets "
        "the CPUs and threads of each task (default 1).",
    )(f)


def _check_ray_flags(ray_address, ray_tasks, ray_object_store, threads=None) -> None:
    """Checked before any cluster starts (a local one takes seconds)."""
    if ray_address is None and (ray_tasks is not None or ray_object_store):
        raise click.UsageError("--ray-tasks and --ray-object-store need --ray ADDRESS")
    if ray_tasks is not None and ray_tasks <= 0:
        raise click.UsageError(f"--ray-tasks must be >= 1, got {ray_tasks}")
    if threads is not None and threads <= 0:
        raise click.UsageError(f"--threads must be >= 1, got {threads} (leave it out for the default)")


# ----------------------------------------------------------------------------- index


@cli.command("index", context_settings=CONTEXT)
@click.option("--corpus", type=click.Path(exists=True), help="Corpus JSONL or BEIR folder to index.")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(),
    help="Index folder to write (or, with --append/--delete/--merge, to change).",
)
@click.option(
    "--append",
    "append_corpus",
    type=click.Path(exists=True),
    default=None,
    help="Add this corpus's documents to the existing index --output (ids already there are an "
    "error unless --upsert).",
)
@click.option("--upsert", is_flag=True, help="With --append: replace documents whose id is already there.")
@click.option(
    "--delete",
    "delete_ids",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Delete these ids from the existing index --output: one id per line (or a .jsonl with a "
    "doc_id/_id/id field per line).",
)
@click.option("--merge", is_flag=True, help="Merge the index's segments (after --append/--delete, if given).")
@click.option("--max-segments", default=1, show_default=True, type=int, help="Segments left by --merge.")
@click.option(
    "--shards",
    default=1,
    show_default=True,
    type=int,
    help="Build N segments from N contiguous corpus slices.",
)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="ADDRESS",
    help="With --corpus: build each shard (--shards) in a Ray task: local (a local cluster), auto "
    "(the cluster running here) or a cluster address. Needs pip install 'bdnsca[ray]'. The index "
    "is the one a local run writes.",
)
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
@click.option(
    "--pattern",
    type=click.Choice(["alnum", "bm25s"]),
    default=None,
    help="Token pattern: alnum (every run of letters and digits; default) or bm25s (bm25s.tokenize's "
    "(?u)\\b\\w\\w+\\b: tokens of two or more characters; with --stopwords en, bm25s's tokens exactly).",
)
@click.option("--no-title", is_flag=True, help="Index the text alone, not title + text.")
@click.option("--dedupe", is_flag=True, help="Drop documents whose id was seen before (else an error).")
def index_cmd(
    corpus, output, append_corpus, upsert, delete_ids, merge, max_segments, shards, ray_address, method, k1,
    b, delta, stopwords, stemmer, pattern, no_title, dedupe,
) -> None:  # fmt: skip
    """Build a BM25 index folder from a corpus, or change one: --append, --delete, --merge."""
    from bdnsca.data.io import read_corpus
    from bdnsca.retrieval import segments

    con = _console()
    t0 = time.perf_counter()
    changes = [append_corpus is not None, delete_ids is not None]
    if corpus is not None and (any(changes) or merge):
        raise click.UsageError("--corpus builds a new index: use it without --append, --delete or --merge")
    if corpus is None and not (any(changes) or merge):
        raise click.UsageError("give --corpus (build), or --append, --delete or --merge (change --output)")
    if all(changes):
        raise click.UsageError("--append and --delete are separate runs: give one of them")
    if upsert and append_corpus is None:
        raise click.UsageError("--upsert goes with --append")
    if ray_address is not None and corpus is None:
        raise click.UsageError("--ray builds shards of a new index: it goes with --corpus (and --shards)")
    if corpus is None:
        _refuse_build_settings(append_corpus is not None, merge)
        summary = None
        if append_corpus is not None:
            with con.status("reading corpus"):
                docs = read_corpus(append_corpus, dedupe=dedupe)
            with con.status(f"appending {len(docs):,} documents"):
                summary = segments.append_to_index(output, docs, upsert=upsert, include_title=not no_title)
        elif delete_ids is not None:
            ids = segments.read_id_list(delete_ids)
            with con.status(f"deleting {len(ids):,} documents"):
                summary = segments.delete_from_index(output, ids)
        if merge:
            with con.status("merging segments"):
                merged = segments.merge_index(output, max_segments)
            if summary is None:
                summary = merged
            summary.segments, summary.live_docs = merged.segments, merged.live_docs
        assert summary is not None
        summary.seconds = time.perf_counter() - t0
        con.print(summary.line(output))
        return
    _build(
        con, t0, corpus, output, shards, method, k1, b, delta, stopwords, stemmer, pattern, no_title, dedupe,
        ray_address,
    )  # fmt: skip


def _refuse_build_settings(appending: bool, merging: bool) -> None:
    """A change to an existing index keeps the settings it was built with (its manifest): a build
    setting given on the command line with --append/--delete/--merge would be ignored, so it is a
    usage error naming it. --no-title and --dedupe choose how --append reads its corpus."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    fixed = ["method", "k1", "b", "delta", "stopwords", "stemmer", "pattern", "shards"]
    if not appending:
        fixed += ["no_title", "dedupe"]
    if not merging:
        fixed.append("max_segments")
    on_line = [n for n in fixed if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE]
    given = [f"--{n.replace('_', '-')}" for n in on_line]
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: not used when changing an existing index with --append/--delete/--merge "
            "(the index keeps the method, parameters and tokenizer it was built with; --max-segments goes "
            "with --merge): drop them, or rebuild the index with --corpus"
        )


def _build(
    con, t0, corpus, output, shards, method, k1, b, delta, stopwords, stemmer, pattern, no_title, dedupe,
    ray_address=None,
):  # fmt: skip
    """bdnsca index --corpus: a new index folder (one segment, or --shards N)."""
    from bdnsca.data.io import read_corpus
    from bdnsca.retrieval.bm25 import build_index, make_tokenizer
    from bdnsca.retrieval.segments import build_sharded, save_new_index

    with con.status("reading corpus"):
        docs = read_corpus(corpus, dedupe=dedupe)
    if docs.duplicates_dropped:
        con.print(f"dropped {docs.duplicates_dropped} documents with duplicate ids")
    settings = dict(method=method, k1=k1, b=b, delta=delta, include_title=not no_title)
    tokenizer = make_tokenizer(stopwords, stemmer, pattern=pattern or "alnum")
    if shards != 1 or ray_address is not None:
        with _progress() as bar:
            where = " on Ray" if ray_address is not None else ""
            task = bar.add_task(f"indexing {shards} shards{where}", total=len(docs))
            bm25 = build_sharded(
                docs, shards, tokenizer=tokenizer, progress=lambda n: bar.advance(task, n),
                ray_address=ray_address, **settings,
            )  # fmt: skip
    else:
        with con.status(f"indexing {len(docs):,} documents"):
            bm25 = build_index(docs, tokenizer=tokenizer, **settings)
    with con.status("saving"):
        if save_new_index(bm25, output):
            con.print(f"replaced the single-file index at {output} with an index folder")
    con.print(
        f"indexed {bm25.n_docs:,} documents, {bm25.vocab_size:,} terms, {bm25.n_postings:,} postings "
        f"({method}, {bm25.n_segments} segment{'s' if bm25.n_segments != 1 else ''}) -> {output} "
        f"in {time.perf_counter() - t0:.2f}s"
    )


# ----------------------------------------------------------------------------- search


@cli.command("search", context_settings=CONTEXT)
@click.option(
    "--index",
    "index_path",
    type=click.Path(exists=True),
    help="BM25 index (bdnsca index's folder, or an older single file; required unless --dense alone).",
)
@click.option(
    "--queries", required=True, type=click.Path(exists=True), help="Gold JSONL, BEIR queries or folder."
)
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False), help="Run file (.jsonl or TREC)."
)
@click.option("--k", "-k", default=100, show_default=True, type=int, help="Documents per query.")
@click.option("--threads", type=int, default=None, help="Worker threads (default: all cores).")
@click.option("--tag", default="bdnsca", show_default=True, help="Run tag (TREC column 6).")
@click.option(
    "--rerank",
    "rerank_model",
    default=None,
    help="Re-score the first stage's (BM25, --dense or --hybrid) top --rerank-depth with this "
    "cross-encoder (train-reranker's folder; offline).",
)
@click.option(
    "--rerank-depth", default=100, show_default=True, type=int, help="First-stage documents re-scored."
)
@click.option("--rerank-batch-size", default=64, show_default=True, type=int)
@click.option(
    "--rerank-first-stage-weight",
    "rerank_alpha",
    default=None,
    type=float,
    help="alpha of alpha*minmax(first stage) + (1-alpha)*minmax(reranker); default: the weight "
    "train-reranker stored with the model (0 = raw reranker scores).",
)
@click.option(
    "--corpus",
    "rerank_corpus",
    type=click.Path(exists=True),
    default=None,
    help="The corpus the index was built from (document texts for --rerank).",
)
@click.option(
    "--dense",
    "dense_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Embeddings file (bdnsca encode): exact dense top-k by cosine, alone or with --hybrid.",
)
@click.option(
    "--dense-model",
    default=None,
    help="Query encoder: the model --dense was encoded with (default: the packaged MiniLM).",
)
@click.option(
    "--hybrid",
    type=click.Choice(["rrf", "combsum", "combmnz"]),
    default=None,
    help="Fuse the BM25 (--index) and dense (--dense) top-k with this method.",
)
@click.option("--rrf-k", default=60, show_default=True, type=int, help="RRF's constant (--hybrid rrf).")
@click.option(
    "--fusion-norm",
    type=click.Choice(["min-max", "zmuv", "none"]),
    default="min-max",
    show_default=True,
    help="Score normalisation before --hybrid combsum/combmnz.",
)
@_ray_options
def search_cmd(
    index_path,
    queries,
    output,
    k,
    threads,
    tag,
    rerank_model,
    rerank_depth,
    rerank_batch_size,
    rerank_corpus,
    rerank_alpha=None,
    dense_path=None,
    dense_model=None,
    hybrid=None,
    rrf_k=60,
    fusion_norm="min-max",
    ray_address=None,
    ray_tasks=None,
    ray_object_store=False,
) -> None:
    """Search an index with every query and write a run.

    The run is streamed to the file batch by batch (written to a temporary file, renamed at the
    end). Each query's documents are in the order search ranks them: score descending, ties by
    document id descending (trec_eval's order, the one `evaluate` scores); scores are written
    with full float32 precision. With --rerank, each query's BM25 top --rerank-depth is
    re-scored by the cross-encoder (its raw scores, or interpolated with the first stage's by the
    weight train-reranker stored) and the best min(k, depth) are written; with --dense/--hybrid
    the dense or fused top --rerank-depth is re-scored the same way."""
    from bdnsca._core import BM25
    from bdnsca.data.io import read_queries
    from bdnsca.retrieval.bm25 import search_to_file

    if k <= 0:
        raise BdnscaError(f"--k must be >= 1, got {k}")
    _check_ray_flags(ray_address, ray_tasks, ray_object_store, threads)
    if ray_address is not None and (rerank_model or dense_path or hybrid):
        raise click.UsageError("--ray covers BM25 search only: drop --rerank/--dense/--hybrid")
    rerank = None
    if rerank_model is not None:
        rerank = _load_reranker(rerank_model, rerank_depth, rerank_batch_size, rerank_corpus, rerank_alpha)
    if dense_path is not None or hybrid is not None:
        _search_dense(
            index_path, queries, output, k, threads, tag, dense_path, dense_model, hybrid, rrf_k, fusion_norm,
            rerank, rerank_depth, rerank_corpus,
        )  # fmt: skip
        return
    if index_path is None:
        raise click.UsageError("--index is required (or --dense EMB for dense search alone)")
    if rerank is not None:
        _search_reranked(index_path, queries, output, k, threads, tag, rerank, rerank_depth)
        return
    con = _console()
    t0 = time.perf_counter()
    if ray_address is not None:
        summary = _search_ray(index_path, queries, output, k, threads, tag, ray_address, ray_tasks,
                              ray_object_store)  # fmt: skip
    else:
        bm25 = BM25.load(index_path)
        qs = read_queries(queries)
        with _progress() as bar:
            task = bar.add_task("searching", total=len(qs))
            summary = search_to_file(
                bm25, qs, output, k=k, threads=threads, tag=tag, progress=lambda n: bar.advance(task, n)
            )
    con.print(
        f"searched {summary.queries:,} queries (k={k}) -> {output} in {time.perf_counter() - t0:.2f}s"
        + (f"; {summary.empty} queries had no known term" if summary.empty else "")
    )


def _search_ray(index_path, queries, output, k, threads, tag, address, tasks, object_store):
    """search --ray: the queries fanned out as Ray tasks (bdnsca.retrieval.distributed)."""
    from bdnsca.data.io import read_queries
    from bdnsca.retrieval import distributed

    qs = read_queries(queries)
    with distributed.session(address), _progress() as bar:
        task = bar.add_task(f"searching on Ray ({distributed.cluster_cpus()} CPUs)", total=len(qs))
        return distributed.search_to_file_ray(
            index_path, qs, output, k=k, tag=tag, chunks=tasks, cpus_per_task=threads or 1,
            object_store=object_store, progress=lambda n: bar.advance(task, n),
        )  # fmt: skip


def _load_reranker(model, depth, batch_size, corpus, alpha):
    """--rerank's cross-encoder with the corpus texts (checked before any search)."""
    import os

    if corpus is None:
        raise click.UsageError("--rerank needs --corpus (the corpus the index was built from)")
    if depth <= 0 or batch_size <= 0:
        raise BdnscaError("--rerank-depth and --rerank-batch-size must be >= 1")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from bdnsca.retrieval.reranker import Reranker

    with _console().status("loading the reranker"):
        return Reranker(model, corpus, batch_size=batch_size, first_stage_weight=alpha)


def _search_reranked(index_path, queries, output, k, threads, tag, reranker, depth) -> None:
    """search --rerank: BM25 top-depth re-scored by a cross-encoder (bdnsca.retrieval.reranker)."""
    from bdnsca._core import BM25
    from bdnsca.data.io import read_queries
    from bdnsca.retrieval.reranker import rerank_search_to_file

    con = _console()
    t0 = time.perf_counter()
    bm25 = BM25.load(index_path)
    qs = read_queries(queries)
    with _progress() as bar:
        task = bar.add_task("searching + reranking", total=len(qs))
        n, empty = rerank_search_to_file(
            bm25,
            qs,
            output,
            reranker,
            k=k,
            depth=depth,
            threads=threads,
            tag=tag,
            progress=lambda m: bar.advance(task, m),
        )
    con.print(
        f"searched and reranked {n:,} queries (depth {depth}, k={min(k, depth)}) -> {output} "
        f"in {time.perf_counter() - t0:.2f}s" + (f"; {empty} queries had no known term" if empty else "")
    )


def _search_dense(
    index_path,
    queries,
    output,
    k,
    threads,
    tag,
    dense_path,
    model,
    hybrid,
    rrf_k,
    norm,
    reranker=None,
    depth=100,
    corpus=None,
) -> None:
    """search --dense [--hybrid]: exact dense top-k, or fused with BM25 (bdnsca.retrieval.dense)."""
    from bdnsca._core import BM25
    from bdnsca.data.io import read_queries
    from bdnsca.retrieval import dense

    if dense_path is None:
        raise click.UsageError("--hybrid needs --dense EMB (and --index)")
    if hybrid is None and index_path is not None:
        raise click.UsageError("--index with --dense needs --hybrid rrf|combsum|combmnz")
    if hybrid is not None and index_path is None:
        raise click.UsageError("--hybrid needs --index (the BM25 side)")
    con = _console()
    t0 = time.perf_counter()
    emb = dense.read_embeddings(dense_path)
    bm25 = BM25.load(index_path) if index_path is not None else None
    if bm25 is not None:
        dense.check_same_ids(emb.ids, bm25.ids, dense_path)
    if corpus is not None:
        dense.check_corpus(emb, corpus, dense_path)
    sha = dense.check_model(emb, model, dense_path)
    with con.status("loading the encoder"):
        encoder = dense.Encoder(model, sha256=sha)
    qs = read_queries(queries)
    index = dense.dense_index(emb)
    del emb
    with _progress() as bar:
        task = bar.add_task("searching", total=len(qs))
        summary = dense.search_to_file(
            index,
            encoder,
            qs,
            output,
            k=k,
            bm25=bm25,
            hybrid=hybrid,
            rrf_k=rrf_k,
            norm=norm,
            threads=threads,
            tag=tag,
            progress=lambda n: bar.advance(task, n),
            reranker=reranker,
            rerank_depth=depth,
        )
    what = (f"hybrid ({hybrid})" if hybrid else "dense") + (
        f" + reranker (depth {depth})" if reranker else ""
    )
    con.print(
        f"{what}: searched {summary.queries:,} queries (k={k}) -> {output} in {time.perf_counter() - t0:.2f}s"
    )


@cli.command("encode", context_settings=CONTEXT)
@click.option("--corpus", required=True, type=click.Path(exists=True), help="Corpus JSONL or BEIR folder.")
@click.option("--model", default=None, help="Bi-encoder folder or cached id (default: packaged MiniLM).")
@click.option(
    "--output", "-o", required=True, type=click.Path(dir_okay=False), help="Embeddings file (.npz)."
)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--no-title", is_flag=True, help="Encode the text alone, not title + text.")
@click.option("--dedupe", is_flag=True, help="Drop documents whose id was seen before (else an error).")
@click.option("--device", default=None, help="torch device (default: CUDA when available, else CPU).")
def encode_cmd(corpus, model, output, batch_size, no_title, dedupe, device) -> None:
    """Encode a corpus with a bi-encoder for `search --dense` (ids, model and corpus SHA-256 kept)."""
    from bdnsca.retrieval.dense import encode_corpus

    con = _console()
    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("encoding", total=None)
        emb = encode_corpus(
            corpus,
            output,
            model=model,
            batch_size=batch_size,
            include_title=not no_title,
            dedupe=dedupe,
            device=device,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    con.print(
        f"encoded {len(emb.ids):,} documents ({emb.matrix.shape[1]} dimensions, {emb.meta['model']}) "
        f"-> {output} in {time.perf_counter() - t0:.2f}s"
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
    """Score a run against judgements: a table of means with 95% bootstrap intervals, and JSON.

    Each query's documents are ranked by score descending (scores compared as float32), ties
    by document id descending (UTF-8 bytes): trec_eval's order, the one `search` writes; the
    order of lines in the run file does not matter. A NaN or infinite score is an error."""
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
    "--index",
    "index_path",
    type=click.Path(exists=True),
    help="Reuse an index (bdnsca index) of this corpus; its method and tokenizer are used.",
)
@click.option(
    "--method",
    default=None,
    type=click.Choice(["lucene", "robertson", "atire", "bm25l", "bm25+"]),
    help="Default: lucene.",
)
@click.option(
    "--stopwords", type=click.Choice(["en", "none"]), default=None, help="Default: none (as bdnsca index)."
)
@click.option(
    "--stemmer", type=click.Choice(["english", "none"]), default=None, help="Default: none (as bdnsca index)."
)
@click.option(
    "--pattern",
    type=click.Choice(["alnum", "bm25s"]),
    default=None,
    help="Token pattern: alnum (every run of letters and digits; default) or bm25s (bm25s.tokenize's "
    "(?u)\\b\\w\\w+\\b: tokens of two or more characters; with --stopwords en, bm25s's tokens exactly).",
)
@_ray_options
@click.option("--threads", type=int, default=None, help="With --ray: CPUs and threads per task (default 1).")
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
    index_path,
    method,
    stopwords,
    stemmer,
    pattern,
    ray_address=None,
    ray_tasks=None,
    ray_object_store=False,
    threads=None,
) -> None:
    """Mine hard negatives with BM25 (twins of positives kept out) and assemble reranker pairs.

    The tokenizer defaults to bdnsca index's (lower-casing, no stopwords, no stemmer); with
    --index the index's own method and tokenizer are used. The summary records them."""
    from bdnsca._core import BM25
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
        method=method or "lucene",
        stopwords=None if stopwords in (None, "none") else stopwords,
        stemmer=None if stemmer in (None, "none") else stemmer,
        pattern=pattern or "alnum",
    )
    settings.validate()
    if threads is not None and ray_address is None:
        raise click.UsageError("mine-negatives --threads applies to --ray tasks (locally it uses every core)")
    _check_ray_flags(ray_address, ray_tasks, ray_object_store, threads)
    if index_path and (method or stopwords or stemmer or pattern):
        raise click.UsageError(
            "--index brings its own method and tokenizer: drop --method/--stopwords/--stemmer/--pattern"
        )
    version = None
    if index_path and ray_address is not None:
        from bdnsca.retrieval import distributed

        # The workers load this very version (the run is pinned on its manifest's hash).
        bm25, version = distributed.load_pinned(index_path)
    else:
        bm25 = BM25.load(index_path) if index_path else None
    hn_default, pairs_default, summary_default = default_output_paths(retrieval_gold)
    con = _console()
    with _progress() as bar:
        task = bar.add_task("mining", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if ray_address is None:
            result = mine_hard_negatives(retrieval_corpus, retrieval_gold, settings, bm25=bm25, progress=tick)
        else:
            from bdnsca.retrieval import distributed

            miner = distributed.ray_miner(
                index_path, chunks=ray_tasks, cpus_per_task=threads or 1, object_store=ray_object_store,
                version=version,
            )  # fmt: skip
            with distributed.session(ray_address):
                result = mine_hard_negatives(
                    retrieval_corpus, retrieval_gold, settings, bm25=bm25, progress=tick, miner=miner
                )
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
