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
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import iter_jsonl, write_json
from bdnsca.errors import BdnscaError, DataError
from bdnsca.prefs.build import split_by_group
from bdnsca.train.common import (
    QUANTIZATIONS,
    check_replaceable,
    cuda_available,
    finite_or_none,
    load_base_model,
    lora_target_modules,
    merge_adapter,
    plot_metrics,
    resolve_quantization,
    save_folder,
    save_pretrained_folder,
)

LOSSES = ("dpo", "ipo", "orpo", "simpo")
# Logged values that, when NaN or infinite, mean training diverged.
DIVERGENCE_KEYS = ("loss", "grad_norm", "eval_loss")


class TrainingDiverged(BdnscaError):
    """The loss or gradient norm became NaN or infinite; ``metrics.json`` says where."""


@dataclass
class PreferenceTrainingConfig:
    dataset: str
    base_model: str
    output_dir: str
    loss: str = "dpo"
    """dpo (trl's sigmoid DPO), ipo, orpo (trl's ORPO), simpo (trl's CPO with the SimPO loss)."""
    beta: float = 0.1
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
    max_prompt_length: int = 256
    seed: int = 0
    eval_dataset: str | None = None
    eval_fraction: float = 0.0
    """Scenarios held out (``metadata.scenario_id``; the prompt text where a row has none)."""
    resume: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    quantization: str = "auto"
    """auto: NF4 4-bit (QLoRA) when CUDA is present, else none; 4bit without CUDA is an error."""
    logging_steps: int = 1
    eval_steps: int | None = None
    save_steps: int = 25
    simpo_gamma: float = 0.5

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise BdnscaError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.quantization not in QUANTIZATIONS:
            raise BdnscaError(f"quantization must be auto, 4bit or none, got {self.quantization!r}")
        if not 1 <= self.max_prompt_length < self.max_length:
            raise BdnscaError("max prompt length must be at least 1 and below max length")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise BdnscaError(f"eval fraction must lie in [0, 1), got {self.eval_fraction}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise BdnscaError("batch size and gradient accumulation must be >= 1")


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

    cuda = cuda_available()
    common = dict(
        output_dir=workdir,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if eval_rows else "no",
        eval_steps=cfg.eval_steps or cfg.logging_steps,
        report_to=[],
        logging_nan_inf_filter=False,  # a NaN loss must show in the log, not be averaged away
        beta=cfg.beta,
        max_length=cfg.max_length,
        use_cpu=not cuda,
        bf16=cuda,
        remove_unused_columns=False,
    )
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


class _RunWatch:
    """A trainer callback: counts the optimizer steps this process ran (a resumed run starts
    past step 0) and stops training at the first logged NaN or infinite loss or grad norm."""

    def __init__(self) -> None:
        self.steps = 0
        self.diverged_at: int | None = None

    def __getattr__(self, name: str):
        # transformers calls on_* hooks it knows; answer every one with a no-op
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_step_end(self, *args, **kwargs) -> None:
        self.steps += 1

    def on_log(self, args, state, control, logs=None, **kwargs) -> None:
        values = [(logs or {}).get(k) for k in DIVERGENCE_KEYS]
        if any(isinstance(v, (int, float)) and not math.isfinite(v) for v in values):
            if self.diverged_at is None:
                self.diverged_at = state.global_step
            control.should_training_stop = True


@dataclass
class PreparedTraining:
    """Everything ``train_preferences`` trains with, before any step runs (tests inspect it)."""

    trainer: Any
    tokenizer: Any
    quantization: str
    lora_target_modules: list[str]
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]


def prepare_training(cfg: PreferenceTrainingConfig) -> PreparedTraining:
    """Validates, reads and splits the data, loads the model and builds the trl trainer."""
    cfg.validate()
    check_replaceable(cfg.output_dir, carry=("checkpoints",))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    rows, groups = read_preference_dataset(cfg.dataset)
    quant = resolve_quantization(cfg.quantization)

    import torch
    from peft import LoraConfig

    torch.manual_seed(cfg.seed)
    model, tokenizer = load_base_model(cfg.base_model, quant)
    targets = lora_target_modules(model)
    peft_config = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
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
    prep = prepare_training(cfg)
    trainer = prep.trainer
    out = Path(cfg.output_dir)
    checkpoints = out / "checkpoints"
    watch = _RunWatch()
    trainer.add_callback(watch)
    initial_eval = trainer.evaluate() if prep.eval_rows else None
    resume = (
        cfg.resume
        and checkpoints.is_dir()
        and any(p.name.startswith("checkpoint-") for p in checkpoints.iterdir())
    )
    if cfg.resume and not resume:
        raise BdnscaError(f"--resume: no checkpoint in {checkpoints}")
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    final_eval = None
    if prep.eval_rows and watch.diverged_at is None:
        # Reuse the trainer's own eval when it ran at the last step, so the history holds it once.
        evals = [h for h in trainer.state.log_history if "eval_loss" in h]
        last = evals[-1] if evals else None
        final_eval = last if last and last.get("step") == trainer.state.global_step else trainer.evaluate()

    history = trainer.state.log_history
    metrics, non_finite = finite_or_none(
        {
            "loss": cfg.loss,
            "quantization": prep.quantization,
            "lora_target_modules": prep.lora_target_modules,
            "train_steps": trainer.state.global_step,
            "resumed": resume,
            "steps_this_run": watch.steps,
            "train_runtime_s": result.metrics.get("train_runtime"),
            "train_steps_per_s": result.metrics.get("train_steps_per_second"),
            "train": [h for h in history if "loss" in h and "eval_loss" not in h],
            "eval": [h for h in history if "eval_loss" in h],
            "eval_initial": initial_eval,
            "eval_final": final_eval,
        }
    )
    diverged = [p for p in non_finite if p.rsplit(".", 1)[-1] in DIVERGENCE_KEYS]
    metrics["non_finite"] = non_finite
    metrics["status"] = "diverged" if diverged else "ok"

    def write_records(folder: Path) -> None:
        config = {**asdict(cfg), "resolved_quantization": prep.quantization}
        config["lora_target_modules"] = prep.lora_target_modules
        write_json(folder / "training_config.json", config)
        write_json(folder / "metrics.json", metrics)
        plot_metrics(metrics, folder / "training_curves.png")

    if diverged:
        save_folder(out, write_records, carry=("checkpoints",))
        raise TrainingDiverged(
            f"training diverged: non-finite {', '.join(diverged[:3])}"
            f"{' ...' if len(diverged) > 3 else ''} (stopped at step {trainer.state.global_step}); "
            f"no adapter was saved; {out / 'metrics.json'} records the run (NaN as null)"
        )
    save_pretrained_folder(out, trainer.model, prep.tokenizer, extra=write_records, carry=("checkpoints",))
    return metrics


__all__ = [
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
