"""One plain function per step: ``step(ctx) -> outputs``. A step reads only its context (settings,
input files, its upstream nodes' folders), writes only into ``ctx.out`` and returns a small JSON
object for the manifest; no global state, so a scheduler could run each one elsewhere.

Every step calls bdnsca's importable functions (no subprocesses); heavy libraries load inside.
A node that yields a model writes ``model.json``: ``{"hf": transformers folder, "gguf": file}``.

(Over ~450 lines on purpose: every step function in one module, so the step table reads as one.)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bdnsca.data.io import write_json, write_jsonl
from bdnsca.errors import BdnscaError
from bdnsca.pipeline.engine import StepContext

# ----------------------------------------------------------------------------- helpers


def read_model(folder: Path) -> dict[str, str]:
    """The ``model.json`` of an upstream model node."""
    return json.loads((folder / "model.json").read_text(encoding="utf-8"))


def _write_model(ctx: StepContext, hf: Path | None, gguf: Path) -> dict[str, Any]:
    info = {"hf": str(hf) if hf else None, "gguf": str(gguf)}
    write_json(ctx.out / "model.json", info)
    return info


def eval_subset(rows: list[dict[str, Any]], n: int | None) -> list[dict[str, Any]]:
    """``n`` scenarios spread evenly over the file (all when ``n`` is None): every persona's
    block is represented rather than the first persona only."""
    if n is None or n >= len(rows):
        return list(rows)
    if n < 1:
        raise BdnscaError(f"max_scenarios must be at least 1, got {n}")
    return [rows[(i * len(rows)) // n] for i in range(n)]


def outside(rows: list[dict[str, Any]], held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scenarios of ``rows`` that are not in ``held`` (the evaluated ones), in file order."""
    ids = {r["scenario_id"] for r in held}
    return [r for r in rows if r["scenario_id"] not in ids]


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def _judges(ctx: StepContext) -> list[str]:
    keys = sorted(k for k in {*ctx.inputs, *ctx.deps} if k.startswith("judge"))
    return [str(ctx.inputs[k]) if k in ctx.inputs else read_model(ctx.deps[k])["gguf"] for k in keys]


# ----------------------------------------------------------------------------- models


def tiny_model(ctx: StepContext) -> dict[str, Any]:
    """``bdnsca tiny-model --gguf`` into ``OUT/model`` (sharing the tokenizer of ``deps.tokenizer``)."""
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    s = dict(ctx.settings)
    copy_steps = int(s.pop("copy_steps", 0))
    heads = int(s.get("heads", 4))
    s.setdefault("kv_heads", min(2, heads))
    tok = read_model(ctx.deps["tokenizer"])["hf"] if "tokenizer" in ctx.deps else None
    info = make_tiny_model(
        ctx.out / "model", TinyModelConfig(**s), tokenizer_from=tok, gguf=True, copy_steps=copy_steps
    )
    out = _write_model(ctx, ctx.out / "model", ctx.out / "model" / "model.gguf")
    return {**out, "parameters": info["parameters"]}


def declared_model(ctx: StepContext) -> dict[str, Any]:
    """A base model given by the file (a transformers folder and its GGUF): recorded, not copied."""
    return _write_model(ctx, ctx.inputs["hf"], ctx.inputs["gguf"])


def export(ctx: StepContext) -> dict[str, Any]:
    """Merge the adapter into its base model and write the merged model as GGUF."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bdnsca.train.common import merge_adapter
    from bdnsca.train.gguf import write_llama_gguf

    adapter = ctx.deps["adapter"] / "adapter"
    base = read_model(ctx.deps["model"])["hf"]
    merged = ctx.out / "model"
    if (adapter / "adapter_config.json").exists():
        merge_adapter(base, str(adapter), str(merged))
    else:  # a full fine-tune: the folder is the model
        shutil.copytree(adapter, merged, ignore=shutil.ignore_patterns("checkpoints"))
    model = AutoModelForCausalLM.from_pretrained(merged)
    write_llama_gguf(model, AutoTokenizer.from_pretrained(merged), ctx.out / "model.gguf")
    return _write_model(ctx, merged, ctx.out / "model.gguf")


# ----------------------------------------------------------------------------- training


def sft_data(ctx: StepContext) -> dict[str, Any]:
    """SFT rows from the scenarios that are not evaluated: the generation prompt (game state,
    no passages) and the scenario's reference response."""
    from bdnsca.eval.scenarios import PromptTemplate, read_scenario_file

    rows = read_scenario_file(ctx.inputs["scenarios"])
    template = PromptTemplate.load(None)
    out = [
        {
            "prompt": template.render(r, True),
            "completion": r["reference_response"],
            "metadata": {"scenario_id": r["scenario_id"]},
        }
        for r in outside(rows, eval_subset(rows, ctx.settings.get("skip")))
        if r.get("reference_response")
    ][: int(ctx.settings.get("rows", 64))]
    if not out:
        raise BdnscaError(
            f"{ctx.inputs['scenarios']}: no scenario with a reference response is left for SFT once the "
            "evaluated ones are set aside (set steps.eval.max_scenarios below the number of scenarios)"
        )
    write_jsonl(ctx.out / "sft.jsonl", out)
    return {"rows": len(out)}


def _training_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    train = metrics.get("train") or []
    losses = [h.get("loss") for h in train if h.get("loss") is not None]
    return {
        "train_steps": metrics.get("train_steps"),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }


def sft(ctx: StepContext) -> dict[str, Any]:
    from bdnsca.train.sft import SFTTrainingConfig, train_sft

    cfg = SFTTrainingConfig(
        dataset=str(ctx.deps["data"] / "sft.jsonl"),
        base_model=read_model(ctx.deps["model"])["hf"],
        output_dir=str(ctx.out / "adapter"),
        **ctx.settings,
    )
    return _training_summary(train_sft(cfg))


def write_ratings(run: Path, metric: str, path: Path) -> dict[str, int]:
    """One long-form ratings CSV for ``build-preferences``: the judge's ratings of ``metric``
    (each judge and temperature an annotator) and, as annotator ``auto_score``, the automatic
    score of every response (``scores/ARM.jsonl``, 0-1 mapped onto 1-5). The scorer breaks the
    ties a small judge leaves (tiny judges rate almost everything alike)."""
    import csv
    import io

    from bdnsca.data.io import atomic_write, iter_jsonl

    rows: list[tuple[str, str, str, str]] = []
    judged = run / "judge_ratings.csv"
    if judged.exists():
        with open(judged, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                if r.get(metric) not in (None, ""):
                    rows.append((r["scenario_id"], r["arm_id"], r["annotator_id"], r[metric]))
    n_judge = len(rows)
    for f in sorted((run / "scores").glob("*.jsonl")):
        for _lineno, r in iter_jsonl(f):
            v = r.get(metric)
            if r.get("ok") is not False and isinstance(v, int | float) and int(r.get("repeat_index", 0)) == 0:
                rows.append(
                    (str(r["scenario_id"]), str(r["arm_id"]), "auto_score", f"{1 + 4 * float(v):.6f}")
                )
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["scenario_id", "arm_id", "annotator_id", metric])
    w.writerows(rows)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())
    return {"judge": n_judge, "auto_score": len(rows) - n_judge}


def preferences(ctx: StepContext) -> dict[str, Any]:
    """``build-preferences`` on the judged and scored run of the DPO start model's own samples
    (:func:`write_ratings`, :mod:`bdnsca.pipeline.samples`): every pair of samples per scenario,
    the better-rated one chosen; both answered the same prompt (pairs that did not are dropped)."""
    from bdnsca.prefs.build import PreferenceSettings, build_preferences, write_preferences

    run = ctx.deps["run"] / "run"
    s = {"pairing": "all-arms", "min_raters": 1, "min_margin": 0.0, **ctx.settings}
    s["require_same_prompt"] = True
    ratings = ctx.out / "ratings.csv"
    n_ratings = write_ratings(run, s.get("metric", "overall_quality"), ratings)
    result = build_preferences(run, ratings, PreferenceSettings(**s))
    if not result.train:
        raise BdnscaError(
            f"no preference pair from {run} ({result.summary.get('skipped')}): judge more scenarios "
            "or lower steps.preferences.min_margin"
        )
    write_preferences(
        result, ctx.out / "preferences.jsonl", ctx.out / "summary.json", ctx.out / "preferences.eval.jsonl"
    )
    return {"pairs": len(result.train), "eval_pairs": len(result.eval), "ratings": n_ratings}


def dpo(ctx: StepContext) -> dict[str, Any]:
    from bdnsca.train.preference import PreferenceTrainingConfig, train_preferences

    cfg = PreferenceTrainingConfig(
        dataset=str(ctx.deps["data"] / "preferences.jsonl"),
        base_model=read_model(ctx.deps["model"])["hf"],
        output_dir=str(ctx.out / "adapter"),
        **ctx.settings,
    )
    return _training_summary(train_preferences(cfg))


def distill(ctx: StepContext) -> dict[str, Any]:
    """``distill-draft``: a tiny draft trained on the target's own answers to the SFT prompts
    (not the serving prompts it is then measured on), written with its GGUF."""
    from bdnsca.train.distill import DistillConfig, distill_draft

    s = {"tiny_hidden_size": 64, **ctx.settings}
    res = distill_draft(DistillConfig(
        target=read_model(ctx.deps["target"])["hf"], draft_init="tiny",
        prompts=str(ctx.deps["prompts"] / "sft.jsonl"), output_dir=str(ctx.out / "distill"), gguf=True, **s,
    ))  # fmt: skip
    info = _write_model(ctx, Path(res["draft_dir"]), Path(res["gguf"]))
    return {**info, "agreement_before": res["agreement_before"], "agreement_after": res["agreement_after"]}


# ----------------------------------------------------------------------------- retrieval


def index(ctx: StepContext) -> dict[str, Any]:
    from bdnsca.data.io import read_corpus
    from bdnsca.retrieval.bm25 import build_index

    corpus = read_corpus(ctx.inputs["corpus"])
    build_index(corpus).save(ctx.out / "index.bm25")
    return {"documents": len(corpus.ids)}


def mine(ctx: StepContext) -> dict[str, Any]:
    from bdnsca.retrieval.mining import MiningSettings, mine_hard_negatives, write_mining_outputs

    res = mine_hard_negatives(ctx.inputs["corpus"], ctx.inputs["gold"], MiningSettings(**ctx.settings))
    write_mining_outputs(
        res, ctx.out / "hard_negatives.jsonl", ctx.out / "pairs.jsonl", ctx.out / "summary.json"
    )
    return {"pairs": len(res.pairs)}


def reranker(ctx: StepContext) -> dict[str, Any]:
    from bdnsca.train.reranker import RerankerTrainingConfig, train_reranker

    s = {"progress": False, **ctx.settings}
    metrics = train_reranker(
        RerankerTrainingConfig(
            pairs=str(ctx.deps["pairs"] / "pairs.jsonl"),
            corpus=str(ctx.inputs["corpus"]),
            gold=str(ctx.inputs["gold"]),
            output_dir=str(ctx.out / "model"),
            **s,
        )
    )
    shutil.rmtree(ctx.out / "model" / "checkpoints", ignore_errors=True)
    return {k: metrics[k] for k in ("train_steps",) if k in metrics}


def retrieval(ctx: StepContext) -> dict[str, Any]:
    """A retrieval run over the reranker's held-out gold queries (BM25, re-scored by the
    reranker when the node has one) and those queries' qrels, for the gate."""
    from bdnsca._core import BM25
    from bdnsca.data.io import read_queries, write_run
    from bdnsca.retrieval.bm25 import search_run
    from bdnsca.train.reranker_data import split_queries

    s = ctx.settings
    queries = read_queries(ctx.inputs["gold"])
    split = split_queries(
        queries,
        heldout_fraction=s["heldout_fraction"],
        seed=s["split_seed"],
        heldout_domains=s.get("heldout_domains"),
        domain_field=s["domain_field"],
    )
    held = set(split.heldout_query_ids)
    queries = [q for q in queries if q.query_id in held]
    run = search_run(BM25.load(ctx.deps["index"] / "index.bm25"), queries, k=int(s["depth"]))
    if "reranker" in ctx.deps:
        from bdnsca.retrieval.reranker import Reranker

        rr = Reranker(str(ctx.deps["reranker"] / "model"), corpus=ctx.inputs["corpus"])
        run = rr.rerank_run(run, queries, depth=int(s["depth"]))
    write_run(ctx.out / "run.jsonl", run)
    gold_rows = [
        json.loads(line)
        for line in Path(ctx.inputs["gold"]).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    write_jsonl(ctx.out / "qrels.jsonl", [r for r in gold_rows if str(r.get("query_id")) in held])
    return {"queries": len(queries)}


# ----------------------------------------------------------------------------- evaluation


def evaluate(ctx: StepContext) -> dict[str, Any]:
    """generate -> score -> judge into ``OUT/run``: arm ``target`` (the model, game state and
    retrieved passages) against arm ``baseline`` (the base model without context), on the
    evaluation scenarios, or with ``train_pool`` on as many scenarios outside them."""
    import bdnsca
    from bdnsca.eval.scenarios import read_scenario_file

    ev = dict(ctx.settings.get("eval") or {})
    n, k = ev.pop("max_scenarios", None), int(ev.pop("k", 3))
    everything = read_scenario_file(ctx.inputs["scenarios"])
    rows = eval_subset(everything, n)
    if "train_pool" in ctx.settings:  # scenarios outside the evaluated ones (for preferences)
        rows = eval_subset(outside(everything, rows), ctx.settings["train_pool"])
        if not rows:
            raise BdnscaError(
                f"{ctx.inputs['scenarios']}: no scenario is left outside the evaluated ones for the "
                "preference run (set steps.eval.max_scenarios below the number of scenarios)"
            )
    write_jsonl(ctx.out / "scenarios.jsonl", rows)
    samples = "samples" in ctx.settings  # the model's own answers, several per prompt
    target = read_model(ctx.deps["model"])["gguf"]
    rerank = ""
    if "reranker" in ctx.deps:  # BM25's top rerank_depth re-scored by the trained reranker
        depth = max(k, int(ctx.settings.get("rerank_depth", k)))
        rerank = f", reranker = {_toml_str(str(ctx.deps['reranker'] / 'model'))}, rerank_depth = {depth}"
    lines = [
        'target_arm = "target"',
        "[arms.target]",
        f"model = {_toml_str(target)}",
        f"retrieval = {{ index = {_toml_str(str(ctx.deps['index'] / 'index.bm25'))}, "
        f"corpus = {_toml_str(str(ctx.inputs['corpus']))}, k = {k}{rerank} }}",
    ]
    if not samples:
        base = read_model(ctx.deps["baseline"])["gguf"]
        lines[1:1] = ['baseline_arms = ["baseline"]']
        lines += ["[arms.baseline]", f"model = {_toml_str(base)}", "include_dynamic_context = false"]
    arms = "\n".join([*lines, ""])
    (ctx.out / "arms.toml").write_text(arms, encoding="utf-8")
    t0 = time.perf_counter()
    gen = bdnsca.generate_run(
        ctx.out / "scenarios.jsonl",
        ctx.out / "arms.toml",
        ctx.out / "generate",
        bdnsca.GenerateSettings(**ev),
    )
    run = ctx.out / "run"
    os.rename(gen.run_dir, run)
    shutil.rmtree(ctx.out / "generate", ignore_errors=True)
    if samples:
        from bdnsca.pipeline.samples import split_samples

        split_samples(run)
    t1 = time.perf_counter()
    sc = dict(ctx.settings.get("score") or {})
    metrics = sc.pop("metrics", None)
    bdnsca.score_run(run, metrics=metrics, config=bdnsca.ScoringConfig(**sc))
    t2 = time.perf_counter()
    js = bdnsca.JudgeSettings(**(ctx.settings.get("judge") or {}))
    judged = bdnsca.judge_run(run, _judges(ctx), js)
    return {
        "scenarios": len(rows),
        "judge_missing": judged.summary["requests"]["missing"],
        "seconds": {
            "generate": round(t1 - t0, 2),
            "score": round(t2 - t1, 2),
            "judge": round(time.perf_counter() - t2, 2),
        },
    }


def resolve_modes(modes: list[str], ctx: StepContext) -> list[str]:
    """The serve node's modes with ``draft:N`` made concrete: ``draft:GGUF:N``, the draft being the
    file's GGUF path (an input of the node) or the GGUF of the draft node it depends on."""
    out = []
    for m in modes:
        if m.startswith("draft:") and m[len("draft:") :].isdigit():
            if "draft" in ctx.inputs:
                gguf = str(ctx.inputs["draft"])
            else:
                gguf = read_model(ctx.deps["draft"])["gguf"]
            m = f"draft:{gguf}:{m[len('draft:') :]}"
        out.append(m)
    return out


def serve(ctx: StepContext) -> dict[str, Any]:
    """``serve-bench`` of the model with the listed speculative modes into ``OUT/bench``."""
    from bdnsca.serve.bench import ServeBenchSettings, parse_speculative, run_serve_bench

    s = dict(ctx.settings)
    modes = resolve_modes(s.pop("speculative"), ctx)
    settings = ServeBenchSettings(
        models=[read_model(ctx.deps["model"])["gguf"]],
        speculative=parse_speculative(",".join(modes)),
        prompts=str(ctx.inputs["prompts"]),
        references=str(ctx.inputs["references"]),
        output_root=str(ctx.out / "runs"),
        **s,
    )
    res = run_serve_bench(settings)
    os.rename(res.output_dir, ctx.out / "bench")
    shutil.rmtree(ctx.out / "runs", ignore_errors=True)
    return {"configs": [c["name"] for c in res.summary["configs"]]}


def gate(ctx: StepContext) -> dict[str, Any]:
    """The gate of the candidate (this experiment's run, serving summary, retrieval run) against
    the anchor: a promoted anchor folder (``run_config.json``, ``serving/summary.json``,
    ``retrieval/run.jsonl``) or the bootstrap anchor's nodes. A failed gate is a result, not an error."""
    from bdnsca.eval.gate import run_gate, write_gate_report
    from bdnsca.eval.gate_checks import GateSettings

    if "anchor" in ctx.inputs:
        a = ctx.inputs["anchor"]
        anchor_run, serving_a, retrieval_a = a, a / "serving" / "summary.json", a / "retrieval" / "run.jsonl"
    else:
        anchor_run = ctx.deps["anchor_run"] / "run"
        serving_a = ctx.deps["anchor_serving"] / "bench" / "summary.json"
        retrieval_a = ctx.deps["anchor_retrieval"] / "run.jsonl"
    cr = ctx.deps["candidate_retrieval"]
    serving_c = ctx.deps["candidate_serving"] / "bench" / "summary.json"

    def present(p: Path) -> Path | None:  # missing evidence is the gate's "not evaluated"
        return p if p.exists() else None

    report = run_gate(
        anchor_run,
        ctx.deps["candidate_run"] / "run",
        GateSettings(**ctx.settings),
        retrieval_qrels=present(cr / "qrels.jsonl"),
        retrieval_anchor=present(retrieval_a),
        retrieval_candidate=present(cr / "run.jsonl"),
        serving_anchor=present(serving_a),
        serving_candidate=present(serving_c),
    )
    write_gate_report(report, ctx.out)
    return {"passed": report.passed, "failed_checks": [c.check for c in report.checks if c.status == "fail"]}


STEP_FUNCTIONS: dict[str, Callable[[StepContext], dict[str, Any] | None]] = {
    "tiny_model": tiny_model,
    "declared_model": declared_model,
    "export": export,
    "sft_data": sft_data,
    "sft": sft,
    "preferences": preferences,
    "dpo": dpo,
    "distill": distill,
    "index": index,
    "mine": mine,
    "reranker": reranker,
    "retrieval": retrieval,
    "evaluate": evaluate,
    "serve": serve,
    "gate": gate,
}
