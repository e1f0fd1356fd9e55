"""``bdnsca train-reranker``: a cross-encoder reranker trained with sentence-transformers'
``CrossEncoderTrainer`` on the pairs ``mine-negatives`` writes, evaluated on held-out queries.

Order of work: read and resolve the pairs (bad rows counted, or an error under ``strict``), split
the gold queries by query (:func:`~bdnsca.train.reranker_data.split_queries`), write
``split.json`` and check it, load the base model offline, build the trainer's dataset from the
training queries only and check it again, train (checkpoints in ``OUTPUT_DIR/checkpoints``;
``resume`` continues from the last one), save the model into ``OUTPUT_DIR``, then score the
held-out queries: BM25's top ``eval_depth`` alone vs re-scored by the reranker, compared with
:func:`bdnsca.compare` (paired bootstrap interval of the delta). ``metrics.json`` holds the loss
per step and that comparison; ``training_curves.png`` plots both.

Interpolation: a ``validation_fraction`` of the *training* query texts (split the same way,
seeded) is kept out of the trainer's dataset; after training, the first-stage weight ``alpha`` of
``alpha * minmax(bm25) + (1 - alpha) * minmax(reranker)`` is the grid value (0, 0.05, ..., 1)
with the best validation MRR@10 (then nDCG@10, then the larger alpha: ties trust BM25). It is
stored in ``training_config.json`` (``interpolation``), which :class:`bdnsca.Reranker` and
``search --rerank`` read. Held-out queries never choose anything; their table reports the
interpolated reranker (what ships) and the raw reranker (``alpha = 0``) against BM25.

(A little over 450 lines: training, choosing the weight and the held-out comparison share the
same runs and settings; splitting them would pass half the config around.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bdnsca.data.io import file_sha256, queries_to_qrels, read_corpus, read_queries, write_json
from bdnsca.errors import BdnscaError
from bdnsca.train.reranker_data import check_split, query_key, read_pairs, split_queries, training_rows

LOSSES = ("bce", "lambda", "listnet")
EVAL_METRICS = ("mrr@10", "ndcg@10")


@dataclass
class RerankerTrainingConfig:
    pairs: str
    corpus: str
    gold: str
    base_model: str | None = None
    """None: the packaged all-MiniLM-L6-v2 (its classification head starts untrained)."""
    output_dir: str = "outputs/reranker"
    heldout_fraction: float = 0.2
    split_seed: int = 0
    heldout_domains: list[str] | None = None
    domain_field: str = "domain"
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 16
    learning_rate: float = 2e-5
    max_length: int = 256
    loss: str = "bce"
    warmup_ratio: float = 0.1
    seed: int = 0
    save_steps: int = 50
    eval_depth: int = 100
    eval_batch_size: int = 64
    bootstrap_resamples: int = 10_000
    validation_fraction: float = 0.2
    """share of the training query texts kept out of training to choose the interpolation weight
    (0: no validation slice, no interpolation unless ``first_stage_weight`` is given)"""
    first_stage_weight: float | None = None
    """a fixed interpolation weight in [0, 1] instead of choosing it on the validation slice"""
    resume: bool = False
    strict: bool = False
    progress: bool = True

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise BdnscaError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        for name in ("batch_size", "max_length", "save_steps", "eval_depth", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise BdnscaError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise BdnscaError("--epochs must be > 0 (or give --max-steps)")
        if not self.learning_rate > 0:
            raise BdnscaError(f"--learning-rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise BdnscaError(f"warmup ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.bootstrap_resamples < 1:
            raise BdnscaError("bootstrap resamples must be >= 1")
        if not 0 <= self.validation_fraction < 1:
            raise BdnscaError(f"--validation-fraction must be in [0, 1), got {self.validation_fraction}")
        if self.first_stage_weight is not None and not 0 <= self.first_stage_weight <= 1:
            raise BdnscaError(f"--first-stage-weight must be in [0, 1], got {self.first_stage_weight}")


def _inputs(cfg: RerankerTrainingConfig) -> dict[str, dict[str, str]]:
    def one(p: str) -> dict[str, str]:
        path = Path(p)
        target = path / "corpus.jsonl" if path.is_dir() else path
        return {"path": str(p), "sha256": file_sha256(target) if target.is_file() else ""}

    return {"pairs": one(cfg.pairs), "corpus": one(cfg.corpus), "gold": one(cfg.gold)}


def _has_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.startswith("checkpoint-") for p in folder.iterdir())


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _loss(name: str, model: Any, n_pos: int, n_neg: int) -> Any:
    from sentence_transformers.cross_encoder import losses

    if name == "bce":
        import torch

        # sentence-transformers' recipe for mined negatives: weight positives by the imbalance
        pos_weight = torch.tensor(max(1.0, n_neg / max(n_pos, 1)))
        return losses.BinaryCrossEntropyLoss(model, pos_weight=pos_weight)
    if name == "lambda":
        return losses.LambdaLoss(model)
    return losses.ListNetLoss(model)


class _StepCounter:
    """Counts the optimizer steps this process ran (a resumed run starts past step 0)."""

    def __init__(self) -> None:
        self.steps = 0

    def __getattr__(self, name: str):
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_step_end(self, *args, **kwargs) -> None:
        self.steps += 1


def _save_model(out: Path, model: Any) -> None:
    """Saves into a temporary folder inside ``out``, then moves the files in one by one, so a
    failure while saving never leaves a half-written model where a good one was."""
    tmp = Path(tempfile.mkdtemp(prefix=".saving.", dir=out))
    try:
        model.save_pretrained(str(tmp))
        for item in sorted(tmp.rglob("*")):
            if item.is_file():
                dest = out / item.relative_to(tmp)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _prepare_split(cfg: RerankerTrainingConfig, out: Path, queries, inputs) -> dict[str, Any]:
    split = split_queries(
        queries,
        heldout_fraction=cfg.heldout_fraction,
        seed=cfg.split_seed,
        heldout_domains=cfg.heldout_domains,
        domain_field=cfg.domain_field,
    )
    doc = {**split.to_dict(), "inputs": inputs}
    doc["validation_query_ids"] = []
    if cfg.validation_fraction > 0 and cfg.first_stage_weight is None:
        train_set = set(split.train_query_ids)
        train_qs = [q for q in queries if q.query_id in train_set]
        if len({query_key(q.text) for q in train_qs}) >= 2:
            # the same split by query text, inside the training side: a validation slice that
            # chooses the interpolation weight and is kept out of the trainer's dataset
            val = split_queries(train_qs, heldout_fraction=cfg.validation_fraction, seed=cfg.split_seed)
            doc["validation_query_ids"] = val.heldout_query_ids
    doc["validation_fraction"] = cfg.validation_fraction
    doc["first_stage_weight"] = cfg.first_stage_weight
    path = out / "split.json"
    if cfg.resume and path.is_file():
        import json

        old = json.loads(path.read_text(encoding="utf-8"))
        # the whole document: a different validation slice or fixed weight on resume would let
        # queries trained on before the interruption choose the interpolation weight after it
        new = json.loads(json.dumps(doc))
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if differ:
            raise BdnscaError(
                f"--resume: {path} was written for other inputs or another split "
                f"({', '.join(differ)} differ); resume with the same files and split options"
            )
    write_json(path, doc)
    import json

    return json.loads(path.read_text(encoding="utf-8"))  # the split as written is what is checked


def train_reranker(cfg: RerankerTrainingConfig) -> dict[str, Any]:
    """Trains and evaluates a reranker (see the module doc); returns the metrics it writes."""
    cfg.validate()
    out = Path(cfg.output_dir)
    checkpoints = out / "checkpoints"
    if cfg.resume and not _has_checkpoint(checkpoints):
        raise BdnscaError(f"--resume: no checkpoint in {checkpoints}")
    if not cfg.resume and _has_checkpoint(checkpoints):
        raise BdnscaError(
            f"{checkpoints} holds an unfinished run's checkpoints: pass --resume to continue it, "
            "or remove that folder"
        )
    corpus = read_corpus(cfg.corpus)
    queries = read_queries(cfg.gold)
    groups, report = read_pairs(cfg.pairs, corpus, queries, strict=cfg.strict)
    inputs = _inputs(cfg)
    out.mkdir(parents=True, exist_ok=True)
    split = _prepare_split(cfg, out, queries, inputs)
    val_ids = set(split["validation_query_ids"])
    train_ids = set(split["train_query_ids"]) - val_ids
    train_groups = [g for g in groups if all(q in train_ids for q in g.query_ids)]
    check_split(split, queries, train_groups)
    _check_validation_out(split, queries, train_groups)
    if not train_groups:
        raise BdnscaError("no training query has pairs: nothing to train on")
    rows = training_rows(train_groups, corpus, cfg.loss)

    from bdnsca.retrieval.reranker import load_cross_encoder, resolve_model

    base = resolve_model(cfg.base_model)
    model = load_cross_encoder(base, num_labels=1, max_length=cfg.max_length)

    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    train_ds = Dataset.from_list(rows)
    n_pos = sum(len(g.positives) for g in train_groups)
    n_neg = sum(len(g.negatives) for g in train_groups)
    args = CrossEncoderTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=[],
        use_cpu=not _cuda(),
        disable_tqdm=not cfg.progress,
    )
    trainer = CrossEncoderTrainer(
        model=model, args=args, train_dataset=train_ds, loss=_loss(cfg.loss, model, n_pos, n_neg)
    )
    check_split(split, queries, train_groups, trainer.train_dataset["query"])
    _check_validation_out(split, queries, train_groups, trainer.train_dataset["query"])
    counter = _StepCounter()
    trainer.add_callback(counter)
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=True if cfg.resume else None)
    train_s = time.perf_counter() - t0
    _save_model(out, model)

    t1 = time.perf_counter()
    interpolation = choose_first_stage_weight(model, corpus, queries, split["validation_query_ids"], cfg)
    heldout = evaluate_heldout(
        model, corpus, queries, split["heldout_query_ids"], cfg, interpolation["first_stage_weight"]
    )
    history = trainer.state.log_history
    metrics = {
        "loss_name": cfg.loss,
        "train_steps": trainer.state.global_step,
        "resumed": cfg.resume,
        "steps_this_run": counter.steps,
        "train_runtime_s": round(train_s, 3),
        "train_runtime_trainer_s": result.metrics.get("train_runtime"),
        "eval_runtime_s": round(time.perf_counter() - t1, 3),
        "device": "cuda" if _cuda() else "cpu",
        "train_queries": len(train_groups),
        "train_examples": len(rows),
        "loss_per_step": [
            {"step": h["step"], "loss": h["loss"], "learning_rate": h.get("learning_rate")}
            for h in history
            if "loss" in h
        ],
        "heldout": heldout,
        "interpolation": interpolation,
        "pairs": report.to_dict(),
    }
    write_json(
        out / "training_config.json",
        {
            **asdict(cfg),
            "base_model_resolved": base,
            "document_text": "title + newline + text (as bdnsca index and Reranker)",
            "train_positive_docs": n_pos,
            "train_negative_docs": n_neg,
            "interpolation": {
                k: interpolation[k] for k in ("first_stage_weight", "formula", "chosen_on", "n_queries")
            },
        },
    )
    write_json(out / "metrics.json", metrics)
    plot_training(metrics, out / "training_curves.png")
    shutil.rmtree(checkpoints, ignore_errors=True)  # finished: the model and its metrics are saved
    return metrics


def _check_validation_out(split, queries, train_groups, trainer_query_texts=None) -> None:
    """The validation slice chooses the interpolation weight: none of it may be trained on."""
    val = split.get("validation_query_ids") or []
    if not val:
        return
    as_heldout = {
        "train_query_ids": sorted(set(split["train_query_ids"]) - set(val)),
        "heldout_query_ids": val,
    }
    check_split(as_heldout, queries, train_groups, trainer_query_texts)


FORMULA = "alpha * minmax(bm25) + (1 - alpha) * minmax(reranker), per query over the re-scored top-N"
ALPHA_GRID = tuple(i / 20 for i in range(21))


def _bm25_and_reranker(model: Any, corpus, queries, ids, cfg: RerankerTrainingConfig):
    from bdnsca.retrieval.bm25 import build_index, make_tokenizer, search_run
    from bdnsca.retrieval.reranker import Reranker

    wanted = set(ids)
    qs = [q for q in queries if q.query_id in wanted]
    qrels = queries_to_qrels(qs)
    bm25 = build_index(corpus, tokenizer=make_tokenizer())
    run_bm25 = search_run(bm25, qs, k=cfg.eval_depth)
    rr = Reranker(model, corpus, batch_size=cfg.eval_batch_size, first_stage_weight=0.0)
    return qs, qrels, run_bm25, rr


def choose_first_stage_weight(model: Any, corpus, queries, validation_ids, cfg) -> dict[str, Any]:
    """The interpolation weight with the best validation MRR@10 (see the module doc); a fixed
    ``cfg.first_stage_weight``, or 0 without a validation slice."""
    from bdnsca.eval.metrics import evaluate

    base = {"formula": FORMULA, "grid": list(ALPHA_GRID)}
    if cfg.first_stage_weight is not None:
        return {**base, "first_stage_weight": cfg.first_stage_weight, "chosen_on": "given", "n_queries": 0}
    if not validation_ids:
        return {**base, "first_stage_weight": 0.0, "chosen_on": "none (no validation slice)", "n_queries": 0}
    qs, qrels, run_bm25, rr = _bm25_and_reranker(model, corpus, queries, validation_ids, cfg)
    if not qrels:
        return {
            **base,
            "first_stage_weight": 0.0,
            "chosen_on": "none (no judged validation query)",
            "n_queries": 0,
        }
    raw = rr.rerank_run(run_bm25, qs, depth=cfg.eval_depth)
    from bdnsca.retrieval.reranker import interpolate

    scores: dict[float, dict[str, float]] = {}
    for a in ALPHA_GRID:
        run = {}
        for qid, ranking in raw.items():
            ids = list(ranking)
            first = np.asarray([run_bm25[qid][d] for d in ids], dtype=np.float32)
            mixed = interpolate(first, np.asarray(list(ranking.values()), dtype=np.float32), a)
            run[qid] = dict(zip(ids, mixed.tolist(), strict=True))
        scores[a] = evaluate(qrels, run, list(EVAL_METRICS))
    best = max(ALPHA_GRID, key=lambda a: (scores[a]["mrr@10"], scores[a]["ndcg@10"], a))
    return {
        **base,
        "first_stage_weight": best,
        "chosen_on": "validation slice of the training queries (kept out of training)",
        "n_queries": len(qrels),
        "validation_scores": {str(a): scores[a] for a in ALPHA_GRID},
    }


def _delta(res) -> dict[str, Any]:
    return {
        c.metric: {
            "delta": c.delta,
            "ci95": list(c.ci95),
            "p_value": c.p_value,
            "ci_above_zero": c.ci95[0] > 0,
        }
        for c in res.comparisons
    }


def evaluate_heldout(
    model: Any, corpus, queries, heldout_ids, cfg: RerankerTrainingConfig, first_stage_weight: float = 0.0
) -> dict[str, Any]:
    """BM25 (lucene, bdnsca index's tokenizer) top ``eval_depth`` on the held-out queries, alone and
    re-scored by ``model`` (interpolated with ``first_stage_weight``, what ships, and raw);
    compared on MRR@10 and nDCG@10 with a paired bootstrap interval."""
    from bdnsca.eval.compare import compare
    from bdnsca.retrieval.reranker import interpolate

    qs, qrels, run_bm25, rr = _bm25_and_reranker(model, corpus, queries, heldout_ids, cfg)
    if not qrels:
        raise BdnscaError("no held-out query has a relevant document: nothing to evaluate")
    run_raw = rr.rerank_run(run_bm25, qs, depth=cfg.eval_depth)
    run_rr = {}
    for qid, ranking in run_raw.items():
        ids = list(ranking)
        first = np.asarray([run_bm25[qid][d] for d in ids], dtype=np.float32)
        mixed = interpolate(first, np.asarray(list(ranking.values()), dtype=np.float32), first_stage_weight)
        run_rr[qid] = dict(zip(ids, mixed.tolist(), strict=True))
    kw = {"test": "bootstrap", "resamples": cfg.bootstrap_resamples, "seed": cfg.seed}
    res = compare(qrels, {"bm25+reranker": run_rr, "bm25": run_bm25}, EVAL_METRICS, **kw)
    raw = compare(qrels, {"bm25+reranker_raw": run_raw, "bm25": run_bm25}, EVAL_METRICS, **kw)
    return {
        "n_queries": res.n_queries,
        "depth": cfg.eval_depth,
        "first_stage_weight": first_stage_weight,
        "means": res.means,
        "delta": _delta(res),
        "delta_is": "bm25+reranker (interpolated with the stored weight) minus bm25",
        "raw_reranker": {"means": raw.means["bm25+reranker_raw"], "delta": _delta(raw)},
        "test": res.settings,
    }


def plot_training(metrics: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    steps = metrics["loss_per_step"]
    ax1.plot([h["step"] for h in steps], [h["loss"] for h in steps], lw=0.8, label="train loss")
    ax1.set_xlabel("step")
    ax1.set_title(f"{metrics['loss_name']} loss per step")
    ax1.legend()
    h = metrics["heldout"]
    names = list(h["means"])
    xs = range(len(EVAL_METRICS))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        ax2.bar([x + i * width for x in xs], [h["means"][name][m] for m in EVAL_METRICS], width, label=name)
    ax2.set_xticks([x + width * (len(names) - 1) / 2 for x in xs], list(EVAL_METRICS))
    ax2.set_title(f"held-out queries (n={h['n_queries']})")
    ax2.set_ylim(0, 1)
    ax2.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


__all__ = [
    "LOSSES",
    "RerankerTrainingConfig",
    "choose_first_stage_weight",
    "evaluate_heldout",
    "plot_training",
    "train_reranker",
]
