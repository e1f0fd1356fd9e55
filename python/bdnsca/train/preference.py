"""Preference optimisation (DPO, IPO, ORPO, SimPO) of LoRA / QLoRA adapters with trl and peft.

One config object (like trl's), mapped one to one from the CLI flags and written next to every
output. The eval split holds out whole scenarios. ``max_prompt_length`` keeps each prompt's
last tokens (and its BOS) for plain and conversational rows alike: trl 1.x has no such setting,
so for DPO / IPO it is applied to the token ids trl produced (chat template included), and for
ORPO / SimPO to the prompt text rendered as trl renders it. A NaN or infinite loss or gradient
norm stops training and fails the run, after ``metrics.json`` (NaN written as null, with the
places listed) is saved. torch, transformers, trl and peft are imported only when training starts.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import iter_jsonl
from bdnsca.errors import BdnscaError, DataError
from bdnsca.prefs.build import split_by_group
from bdnsca.train.common import (
    DIVERGENCE_KEYS,
    PreparedTraining,
    RunWatch,
    TrainingDiverged,
    TrainingOptions,
    check_replaceable,
    load_base_model,
    lora_config,
    lora_target_modules,
    merge_adapter,
    plot_metrics,
    resolve_quantization,
    run_training,
    training_arguments,
)

LOSSES = ("dpo", "ipo", "orpo", "simpo")
_RunWatch = RunWatch  # the name this module used before the run loop moved to common


@dataclass
class PreferenceTrainingConfig(TrainingOptions):
    """``train-dpo``'s settings: the shared ones (:class:`TrainingOptions`) and the loss's."""

    loss: str = "dpo"
    """dpo (trl's sigmoid DPO), ipo, orpo (trl's ORPO), simpo (trl's CPO with the SimPO loss)."""
    beta: float = 0.1
    max_prompt_length: int = 256
    simpo_gamma: float = 0.5

    def validate(self) -> None:
        super().validate()
        if not self.dataset:
            raise BdnscaError("train-dpo needs a preference dataset")
        if self.loss not in LOSSES:
            raise BdnscaError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not 1 <= self.max_prompt_length < self.max_length:
            raise BdnscaError("max prompt length must be at least 1 and below max length")


# ----------------------------------------------------------------------------- data


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    )


def read_preference_dataset(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, groups): rows with ``prompt``, ``chosen``, ``rejected`` (all strings, or all
    conversational message lists, as trl expects; other fields dropped), and per row the group
    an eval split must keep together: ``metadata.scenario_id``, else the prompt itself."""
    rows: list[dict[str, Any]] = []
    groups: list[str] = []
    for lineno, obj in iter_jsonl(path):
        for key in ("prompt", "chosen", "rejected"):
            if key not in obj:
                raise DataError(
                    path, lineno, f"missing field {key!r} (a preference row needs prompt, chosen, rejected)"
                )
            value = obj[key]
            if not (isinstance(value, str) or _is_messages(value)):
                raise DataError(path, lineno, f"field {key!r} must be a string or a list of chat messages")
        if isinstance(obj["chosen"], str) != isinstance(obj["rejected"], str):
            raise DataError(
                path, lineno, "'chosen' and 'rejected' must both be strings or both message lists"
            )
        rows.append({k: obj[k] for k in ("prompt", "chosen", "rejected")})
        meta = obj.get("metadata")
        sid = meta.get("scenario_id") if isinstance(meta, dict) else None
        if sid not in (None, ""):
            groups.append(f"scenario:{sid}")
        else:
            prompt = obj["prompt"]
            text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)
            groups.append("prompt:" + text)
    if not rows:
        raise DataError(path, None, "the preference dataset is empty")
    return rows, groups


def load_preference_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of ``read_preference_dataset``."""
    return read_preference_dataset(path)[0]


def split_preference_rows(
    rows: list[dict[str, Any]], groups: list[str], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval) holding out whole groups (scenarios), so no scenario is in both."""
    if fraction <= 0:
        return rows, []
    if len(set(groups)) < 2:
        raise BdnscaError(
            "--eval-fraction needs pairs from at least two scenarios (or prompts); "
            "give --eval-dataset or no eval split"
        )
    pairs = list(zip(rows, groups, strict=True))
    train, held = split_by_group(pairs, lambda p: p[1], fraction, seed)
    return [r for r, _ in train], [r for r, _ in held]


def keep_prompt_end(ids: list[int], n: int, bos: int | None) -> list[int]:
    """The last ``n`` tokens of a prompt; a leading BOS stays first (and counts)."""
    if len(ids) <= n:
        return list(ids)
    if bos is not None and ids and ids[0] == bos:
        return [bos, *ids[len(ids) - (n - 1) :]] if n > 1 else [bos]
    return list(ids[-n:])


def _truncate_text_prompts(rows, tokenizer, max_prompt_length: int):
    """For ORPO / SimPO (which render conversational rows to text with the chat template before
    tokenising): render as trl does, then keep the end of each prompt text."""
    from trl.data_utils import maybe_apply_chat_template

    out = []
    for r in rows:
        r = maybe_apply_chat_template(r, tokenizer)
        ids = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        if len(ids) > max_prompt_length:
            ids = keep_prompt_end(ids, max_prompt_length, tokenizer.bos_token_id)
            r = {**r, "prompt": tokenizer.decode(ids)}
        out.append(r)
    return out


# ----------------------------------------------------------------------------- trainer


def _dpo_trainer_class():
    from trl import DPOTrainer

    class PromptTruncatingDPOTrainer(DPOTrainer):
        """trl's DPOTrainer with each tokenised prompt cut to its end (``keep_prompt_end``) before
        trl drops the examples whose prompt fills ``max_length``."""

        def __init__(self, *args: Any, max_prompt_length: int, **kwargs: Any) -> None:
            self._bdnsca_max_prompt_length = max_prompt_length  # used by __init__ below
            super().__init__(*args, **kwargs)

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            tok = getattr(processing_class, "tokenizer", processing_class)
            n, bos = self._bdnsca_max_prompt_length, tok.bos_token_id
            untruncated = copy.copy(args)
            untruncated.max_length = None  # truncate first; then nothing needs dropping
            ds = super()._prepare_dataset(dataset, processing_class, untruncated, dataset_name)
            if "prompt_ids" not in ds.column_names:
                raise BdnscaError(
                    "this trl version's DPO dataset has no 'prompt_ids' column, so --max-prompt-length "
                    "cannot be applied; use trl 1.x"
                )
            return ds.map(lambda ex: {"prompt_ids": keep_prompt_end(ex["prompt_ids"], n, bos)})

    return PromptTruncatingDPOTrainer


def _trainer(cfg: PreferenceTrainingConfig, model, tokenizer, train_rows, eval_rows, peft_config, workdir):
    from datasets import Dataset

    common = training_arguments(cfg, workdir, bool(eval_rows))
    common.update(beta=cfg.beta, remove_unused_columns=False)
    extra: dict[str, Any] = {}
    if cfg.loss in ("dpo", "ipo"):
        from trl import DPOConfig

        args = DPOConfig(**common, loss_type=["sigmoid" if cfg.loss == "dpo" else "ipo"])
        cls = _dpo_trainer_class()
        extra["max_prompt_length"] = cfg.max_prompt_length
    else:
        train_rows = _truncate_text_prompts(train_rows, tokenizer, cfg.max_prompt_length)
        eval_rows = _truncate_text_prompts(eval_rows, tokenizer, cfg.max_prompt_length)
        completion = cfg.max_length - cfg.max_prompt_length
        if cfg.loss == "orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            args = ORPOConfig(**common, max_completion_length=completion)
            cls = ORPOTrainer
        else:
            from trl.experimental.cpo import CPOConfig, CPOTrainer

            args = CPOConfig(
                **common,
                max_completion_length=completion,
                loss_type="simpo",
                cpo_alpha=0.0,
                simpo_gamma=cfg.simpo_gamma,
            )
            cls = CPOTrainer
    return cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        **extra,
    )


def prepare_training(cfg: PreferenceTrainingConfig) -> PreparedTraining:
    """Validates, reads and splits the data, loads the model and builds the trl trainer."""
    cfg.validate()
    check_replaceable(cfg.output_dir, carry=("checkpoints",))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    rows, groups = read_preference_dataset(cfg.dataset)
    quant = resolve_quantization(cfg.quantization)

    import torch

    torch.manual_seed(cfg.seed)
    model, tokenizer = load_base_model(cfg.base_model, quant)
    targets = lora_target_modules(model)
    peft_config = lora_config(cfg, targets)
    if cfg.eval_dataset:
        train_rows, eval_rows = rows, load_preference_rows(cfg.eval_dataset)
    else:
        train_rows, eval_rows = split_preference_rows(rows, groups, cfg.eval_fraction, cfg.seed)
    workdir = str(Path(cfg.output_dir) / "checkpoints")
    trainer = _trainer(cfg, model, tokenizer, train_rows, eval_rows, peft_config, workdir)
    return PreparedTraining(trainer, tokenizer, quant, targets, train_rows, eval_rows)


def train_preferences(cfg: PreferenceTrainingConfig) -> dict[str, Any]:
    """Trains a LoRA adapter on preference pairs and saves ``cfg.output_dir`` whole (one rename):
    the adapter, tokenizer, ``training_config.json``, per-step ``metrics.json`` and a loss/margin
    plot, with ``checkpoints/`` carried over. Returns the metrics. A run whose loss or grad norm
    became NaN or infinite saves everything but the adapter and raises ``TrainingDiverged``."""
    return run_training(cfg, prepare_training(cfg), {"loss": cfg.loss})


__all__ = [
    "DIVERGENCE_KEYS",
    "LOSSES",
    "PreferenceTrainingConfig",
    "PreparedTraining",
    "TrainingDiverged",
    "keep_prompt_end",
    "load_preference_rows",
    "lora_target_modules",
    "merge_adapter",
    "plot_metrics",
    "prepare_training",
    "read_preference_dataset",
    "split_preference_rows",
    "train_preferences",
]
