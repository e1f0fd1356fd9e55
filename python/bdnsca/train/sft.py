"""Supervised fine-tuning (``bdnsca train-sft``): trl's SFTTrainer with a LoRA adapter (QLoRA on
CUDA) or a full fine-tune, sharing options, outputs and ``--resume`` with ``train-dpo`` through
:mod:`bdnsca.train.common`.

Rows are ``prompt, response`` (or ``prompt, completion``) strings, trl's conversational form
``messages`` (the last message, an assistant's, is the completion; everything before it the
prompt), or token ids (``input_ids`` with a ``completion_mask``; trl's tokenized form). The
loss covers the completion only (prompt tokens are labelled -100) unless
``completion_only_loss`` is off. ``build_sft_from_run`` makes the rows from an evaluation run
folder: per scenario the best-rated successful response of the chosen arms, or the scenario's
reference response. torch, transformers, trl and peft are imported only when training starts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import iter_jsonl, write_jsonl
from bdnsca.data.run_folders import read_scenarios
from bdnsca.errors import BdnscaError, DataError
from bdnsca.train.common import (
    PreparedTraining,
    TrainingOptions,
    check_replaceable,
    load_base_model,
    lora_config,
    lora_target_modules,
    resolve_quantization,
    run_training,
    training_arguments,
)

DATASET_FILE = "sft_dataset.jsonl"


@dataclass
class SFTTrainingConfig(TrainingOptions):
    """``train-sft``'s settings; the shared ones (model, output, steps, LoRA, quantisation,
    resume, eval split) are :class:`bdnsca.train.common.TrainingOptions`'. ``dataset`` or
    ``from_run`` (with ``arms``) names the data."""

    learning_rate: float = 2e-4
    from_run: str | None = None
    """An evaluation run folder to build the SFT set from (written to OUTPUT_DIR/sft_dataset.jsonl)."""
    arms: tuple[str, ...] = ()
    """The arms whose responses are candidates (``--arm``, repeatable)."""
    use_references: bool = False
    """Train on each scenario's ``reference_response`` instead of the arms' responses."""
    metric: str = "overall_quality"
    """The rating / score column that ranks responses."""
    completion_only_loss: bool = True
    """Mask prompt tokens (labels -100): the loss is on the response only."""
    full_finetune: bool = False
    """Train every weight instead of a LoRA adapter (small models, e.g. a distilled draft)."""

    def validate(self) -> None:
        super().validate()
        if bool(self.dataset) == bool(self.from_run):
            raise BdnscaError("train-sft needs exactly one of --dataset or --from-run")
        if self.from_run and not self.arms:
            raise BdnscaError("--from-run needs --arm (the arm whose responses or prompts to train on)")
        if self.dataset and (self.arms or self.use_references):
            raise BdnscaError("--arm and --use-references go with --from-run, not --dataset")
        if self.full_finetune and self.quantization == "4bit":
            raise BdnscaError("a full fine-tune cannot train 4-bit weights; use --quantization none or LoRA")


# ----------------------------------------------------------------------------- data


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in value)
    )


def _token_row(obj: dict[str, Any], path: Path, lineno: int) -> dict[str, Any]:
    """trl's tokenized form: ``input_ids`` and ``completion_mask`` (1 on the completion's tokens)."""
    ids, mask = obj["input_ids"], obj.get("completion_mask")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and i >= 0 for i in ids):
        raise DataError(path, lineno, "field 'input_ids' must be a non-empty list of token ids")
    if mask is None:
        raise DataError(path, lineno, "missing field 'completion_mask' (tokenized rows need it)")
    if not isinstance(mask, list) or len(mask) != len(ids) or any(m not in (0, 1) for m in mask):
        raise DataError(path, lineno, "'completion_mask' must be 0s and 1s, one per input id")
    if 1 not in mask:
        raise DataError(path, lineno, "'completion_mask' marks no completion token")
    return {"input_ids": ids, "completion_mask": mask}


def _sft_row(obj: dict[str, Any], path: Path, lineno: int) -> dict[str, Any]:
    """One row in trl's prompt-completion form (or its tokenized form)."""
    if "input_ids" in obj:
        return _token_row(obj, path, lineno)
    if "messages" in obj and "prompt" not in obj:
        msgs = obj["messages"]
        if not _is_messages(msgs):
            raise DataError(
                path, lineno, "field 'messages' must be a non-empty list of {role, content} objects"
            )
        if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
            raise DataError(
                path, lineno, "'messages' must end with an assistant message that follows at least one other"
            )
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}
    if "prompt" not in obj:
        raise DataError(
            path, lineno, "missing field 'prompt' (an SFT row needs prompt and response, or messages)"
        )
    key = "response" if "response" in obj else "completion" if "completion" in obj else None
    if key is None:
        raise DataError(path, lineno, "missing field 'response' (or 'completion')")
    prompt, completion = obj["prompt"], obj[key]
    if isinstance(prompt, str) and isinstance(completion, str):
        if not completion.strip():
            raise DataError(path, lineno, f"field {key!r} is empty")
        return {"prompt": prompt, "completion": completion}
    if _is_messages(prompt) and _is_messages(completion):
        return {"prompt": prompt, "completion": completion}
    raise DataError(path, lineno, f"'prompt' and {key!r} must both be strings or both lists of chat messages")


def read_sft_dataset(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, groups): rows in trl's prompt-completion form (``prompt``, ``completion``: both
    strings, or both message lists) or its tokenized form (``input_ids``, ``completion_mask``:
    exact token sequences, as distill-draft writes them), and per row the group an eval split keeps together
    (``metadata.scenario_id``, else the prompt). A missing field or an empty file is a
    ``DataError`` naming the file and line."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    groups: list[str] = []
    kinds: set[bool] = set()
    for lineno, obj in iter_jsonl(path):
        row = _sft_row(obj, path, lineno)
        kinds.add("tokens" if "input_ids" in row else "text" if isinstance(row["prompt"], str) else "chat")
        if len(kinds) > 1:
            raise DataError(
                path, lineno, "rows mix plain text, chat messages and token ids; use one form throughout"
            )
        rows.append(row)
        meta = obj.get("metadata")
        sid = meta.get("scenario_id") if isinstance(meta, dict) else None
        if sid not in (None, ""):
            groups.append(f"scenario:{sid}")
        else:
            p = row.get("prompt", row.get("input_ids"))
            groups.append("prompt:" + (p if isinstance(p, str) else json.dumps(p, sort_keys=True)))
    if not rows:
        raise DataError(path, None, "the SFT dataset is empty")
    return rows, groups


def _arm_is_chat(run: Path, arm: str) -> bool:
    """Whether the run's config says the arm wrapped its prompts in the chat template."""
    path = run / "run_config.json"
    if not path.exists():
        return False
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DataError(path, None, "not valid JSON") from None
    for a in config.get("arms", []) if isinstance(config, dict) else []:
        if isinstance(a, dict) and str(a.get("arm_id")) == arm:
            return bool(a.get("chat", False))
    return False


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _scores(run: Path, arm: str, metric: str) -> dict[Any, float]:
    """``scores/ARM.jsonl``'s metric per response: keyed by request index, and by
    (scenario, repeat index) for rows without one."""
    path = run / "scores" / f"{arm}.jsonl"
    out: dict[Any, float] = {}
    if not path.exists():
        return out
    for _lineno, row in iter_jsonl(path):
        value = _number(row.get(metric))
        if value is None:
            continue
        if row.get("request_index") is not None:
            out[("req", row["request_index"])] = value
        out[("rep", str(row.get("scenario_id")), row.get("repeat_index", 0))] = value
    return out


def _ratings(run: Path, metric: str) -> dict[tuple[str, str], float]:
    """(scenario, arm) -> the mean of its annotators' ``metric`` in ``judge_ratings.csv``."""
    path = run / "judge_ratings.csv"
    if not path.exists():
        return {}
    from bdnsca.prefs.ratings import aggregate_ratings, read_ratings

    ratings = read_ratings(path)
    if metric not in ratings.by_metric:
        return {}
    return {unit: agg.score for unit, agg in aggregate_ratings(ratings.by_metric[metric], "mean").items()}


def _arm_rows(run: Path, arm: str) -> list[tuple[int, dict[str, Any]]]:
    path = run / "responses" / f"{arm}.jsonl"
    if not path.exists():
        folder = run / "responses"
        known = sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []
        raise BdnscaError(
            f"unknown arm {arm!r}: no {path}"
            + (f" (the run has {', '.join(known)})" if known else f" ({run} has no responses/ folder)")
        )
    rows = []
    for lineno, row in iter_jsonl(path):
        if not row.get("scenario_id"):
            raise DataError(path, lineno, "response without 'scenario_id'")
        if not isinstance(row.get("prompt"), str) or not row["prompt"]:
            raise DataError(path, lineno, "response without 'prompt'")
        rows.append((lineno, row))
    return rows


def _as_row(prompt: str, completion: str, chat: bool, meta: dict[str, Any]) -> dict[str, Any]:
    if chat:
        return {
            "prompt": [{"role": "user", "content": prompt}],
            "completion": [{"role": "assistant", "content": completion}],
            "metadata": meta,
        }
    return {"prompt": prompt, "completion": completion, "metadata": meta}


def build_sft_from_run(
    run_dir: str | os.PathLike[str],
    arms: Sequence[str],
    *,
    use_references: bool = False,
    metric: str = "overall_quality",
) -> list[dict[str, Any]]:
    """SFT rows (``prompt``, ``completion``, ``metadata``: scenario_id, arm_id, score, source)
    from an evaluation run folder: for each scenario, among the successful (``ok`` not false,
    non-empty) responses of ``arms``, the one with the highest mean ``metric`` over the
    annotators of ``RUN/judge_ratings.csv``, else its ``RUN/scores/ARM.jsonl`` ``metric``; ties
    go to the earlier arm, then the lower repeat index. With ``use_references``, the
    scenario's ``reference_response`` (scenarios without one are skipped). An unknown arm, a run
    without scenarios or no row at all is a ``BdnscaError``.

    The prompt is the one the arm rendered (``prompt`` of its response rows; with references,
    of the arm's first row for the scenario, failed or not); an arm that ran with ``chat`` gives
    conversational rows, so training sees the chat template the arm was served with."""
    run = Path(run_dir)
    if not run.is_dir():
        raise BdnscaError(f"{run}: no such run folder")
    if not arms:
        raise BdnscaError("name at least one arm (--arm)")
    scenarios = read_scenarios(run)
    if not scenarios:
        raise BdnscaError(f"{run}: no scenarios.jsonl (is it an evaluation run folder?)")
    per_arm = {arm: _arm_rows(run, arm) for arm in arms}
    chat = {arm: _arm_is_chat(run, arm) for arm in arms}
    out: list[dict[str, Any]] = []
    if use_references:
        for sid, scen in scenarios.items():
            ref = scen.get("reference_response")
            if not isinstance(ref, str) or not ref.strip():
                continue
            for arm in arms:
                match = [r for _, r in per_arm[arm] if str(r["scenario_id"]) == sid]
                if match:
                    meta = {"scenario_id": sid, "arm_id": arm, "score": None, "source": "reference"}
                    out.append(_as_row(match[0]["prompt"], ref, chat[arm], meta))
                    break
        if not out:
            raise BdnscaError(
                f"{run}: no scenario has both a reference_response and a prompt from {', '.join(arms)}"
            )
        return out

    ratings = _ratings(run, metric)
    scores = {arm: _scores(run, arm, metric) for arm in arms}
    if not ratings and not any(scores.values()):
        raise BdnscaError(
            f"{run}: no {metric!r} in judge_ratings.csv or scores/<arm>.jsonl to rank responses by; "
            "run bdnsca score or judge first, or use --use-references"
        )
    best: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for order, arm in enumerate(arms):
        for _lineno, row in per_arm[arm]:
            if row.get("ok") is False or not str(row.get("response") or "").strip():
                continue
            sid = str(row["scenario_id"])
            if sid not in scenarios:
                continue
            rating = ratings.get((sid, arm))
            score = scores[arm].get(("req", row.get("request_index")))
            if score is None:
                score = scores[arm].get(("rep", sid, row.get("repeat_index", 0)))
            if rating is None and score is None:
                continue  # neither rated nor scored: nothing says it is good
            rep = row.get("repeat_index", 0)
            # higher is better; rated responses rank above unrated ones (their scales differ)
            key = (
                rating is not None,
                rating if rating is not None else 0.0,
                score if score is not None else -math.inf,
                -order,
                -(rep if isinstance(rep, int) else 0),
            )
            if sid not in best or key > best[sid][0]:
                meta = {
                    "scenario_id": sid,
                    "arm_id": arm,
                    "score": rating if rating is not None else score,
                    "source": "judge_ratings" if rating is not None else "scores",
                    "metric": metric,
                }
                best[sid] = (key, _as_row(row["prompt"], str(row["response"]), chat[arm], meta))
    out = [best[sid][1] for sid in scenarios if sid in best]
    if not out:
        raise BdnscaError(f"{run}: no successful, rated or scored response of {', '.join(arms)}")
    return out


# ----------------------------------------------------------------------------- trainer


def _load_rows(cfg: SFTTrainingConfig) -> tuple[list[dict[str, Any]], list[str]]:
    if cfg.from_run:
        built = build_sft_from_run(
            cfg.from_run, cfg.arms, use_references=cfg.use_references, metric=cfg.metric
        )
        groups = [f"scenario:{r['metadata']['scenario_id']}" for r in built]
        return built, groups
    return read_sft_dataset(str(cfg.dataset))


def prepare_sft(cfg: SFTTrainingConfig) -> PreparedTraining:
    """Validates, reads (or builds) the data, loads the model and builds the trl SFTTrainer,
    before any step runs (tests inspect ``trainer.data_collator`` on real batches).
    ``train_rows`` keep their ``metadata`` (the trainer gets prompt and completion only)."""
    cfg.validate()
    check_replaceable(cfg.output_dir, carry=("checkpoints",))
    rows, groups = _load_rows(cfg)
    quant = (
        "none" if cfg.full_finetune and cfg.quantization == "auto" else resolve_quantization(cfg.quantization)
    )
    if cfg.eval_dataset:
        train_rows, eval_rows = rows, read_sft_dataset(cfg.eval_dataset)[0]
    else:
        from bdnsca.train.preference import split_preference_rows

        train_rows, eval_rows = split_preference_rows(rows, groups, cfg.eval_fraction, cfg.seed)

    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(cfg.seed)
    model, tokenizer = load_base_model(cfg.base_model, quant)
    targets = [] if cfg.full_finetune else lora_target_modules(model)
    workdir = Path(cfg.output_dir) / "checkpoints"
    args = SFTConfig(
        **training_arguments(cfg, workdir, bool(eval_rows)),
        completion_only_loss=cfg.completion_only_loss,
    )
    strip = lambda rs: [{k: v for k, v in r.items() if k != "metadata"} for r in rs]  # noqa: E731
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(strip(train_rows)),
        eval_dataset=Dataset.from_list(strip(eval_rows)) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=None if cfg.full_finetune else lora_config(cfg, targets),
    )
    if len(trainer.train_dataset) == 0:
        raise BdnscaError(
            f"every training row's prompt fills --max-length {cfg.max_length} tokens, so no completion "
            "token is left to learn (trl keeps a row's start); raise --max-length"
        )
    return PreparedTraining(trainer, tokenizer, quant, targets, train_rows, eval_rows)


def train_sft(cfg: SFTTrainingConfig) -> dict[str, Any]:
    """Trains and saves ``cfg.output_dir`` whole, like ``train-dpo``: the adapter (or the full
    model), tokenizer, ``training_config.json``, ``metrics.json``, ``training_curves.png`` and
    ``sft_dataset.jsonl`` (the rows trained on), with ``checkpoints/`` carried over. Returns the
    metrics (``train``: the logged loss per step). Raises ``TrainingDiverged`` on a NaN loss."""
    prep = prepare_sft(cfg)
    rows = prep.train_rows + prep.eval_rows
    kind = {
        "loss": "sft",
        "completion_only_loss": cfg.completion_only_loss,
        "full_finetune": cfg.full_finetune,
        "train_rows": len(prep.train_rows),
        # rows whose prompt fills max_length: trl drops them (no completion token left)
        "train_rows_dropped_by_max_length": len(prep.train_rows) - len(prep.trainer.train_dataset),
        "eval_rows": len(prep.eval_rows),
    }
    return run_training(cfg, prep, kind, extra=lambda folder: write_jsonl(folder / DATASET_FILE, rows))


__all__ = [
    "DATASET_FILE",
    "SFTTrainingConfig",
    "build_sft_from_run",
    "prepare_sft",
    "read_sft_dataset",
    "train_sft",
]
