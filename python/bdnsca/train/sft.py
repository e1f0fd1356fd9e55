"""Supervised fine-tuning (``bdnsca train-sft``): trl's SFTTrainer with a LoRA adapter (QLoRA on
CUDA) or a full fine-tune, sharing options, outputs and ``--resume`` with ``train-dpo`` through
:mod:`bdnsca.train.common`.

Rows are ``prompt, response`` (or ``prompt, completion``) strings, or trl's conversational form
``messages`` (the last assistant message is the completion, everything before it the prompt).
The loss covers the completion only (prompt tokens are labelled -100) unless
``completion_only_loss`` is off. ``build_sft_from_run`` makes the rows from an evaluation run
folder: per scenario the best-rated successful response of the chosen arms, or the scenario's
reference response. torch, transformers, trl and peft are imported only when training starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bdnsca.train.common import PreparedTraining, TrainingOptions


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


def read_sft_dataset(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, groups): rows in trl's prompt-completion form (``prompt``, ``completion``: both
    strings, or both message lists), and per row the group an eval split keeps together
    (``metadata.scenario_id``, else the prompt). A missing field or an empty file is a
    ``DataError`` naming the file and line."""
    raise NotImplementedError


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
    without scenarios or no row at all is a ``BdnscaError``."""
    raise NotImplementedError


def prepare_sft(cfg: SFTTrainingConfig) -> PreparedTraining:
    """Validates, reads (or builds) the data, loads the model and builds the trl SFTTrainer,
    before any step runs (tests inspect ``trainer.data_collator`` on real batches)."""
    raise NotImplementedError


def train_sft(cfg: SFTTrainingConfig) -> dict[str, Any]:
    """Trains and saves ``cfg.output_dir`` whole, like ``train-dpo``: the adapter (or the full
    model), tokenizer, ``training_config.json``, ``metrics.json``, ``training_curves.png`` and
    ``sft_dataset.jsonl`` (the rows trained on), with ``checkpoints/`` carried over. Returns the
    metrics (``train``: the logged loss per step). Raises ``TrainingDiverged`` on a NaN loss."""
    raise NotImplementedError


__all__ = ["SFTTrainingConfig", "build_sft_from_run", "prepare_sft", "read_sft_dataset", "train_sft"]
