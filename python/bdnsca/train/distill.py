"""Sequence-level distillation of a draft model (``bdnsca distill-draft``): the target model
answers the prompts (greedy, or seeded sampling), and the draft is fine-tuned on those answers
with the SFT trainer (:mod:`bdnsca.train.sft`), so it predicts what the target will say: the
property speculative decoding's acceptance rate rests on. Draft and target share one tokenizer
(a draft with another vocabulary is refused; ``draft_init="tiny"`` builds a tiny Llama on the
target's tokenizer). With ``gguf`` the draft is written as ``draft/model.gguf`` for serve-bench's
``draft:PATH:N``.

Output folder: ``target_responses.jsonl`` (the distillation set), ``sft/`` (train-sft's output),
``draft/`` (the draft's full weights and tokenizer, ``model.gguf``), ``distill.json`` (settings,
greedy next-token agreement with the target before and after).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class DistillConfig:
    target: str
    """The target model folder (what the draft must predict)."""
    draft_init: str
    """The draft's starting model folder, or ``tiny`` for a random tiny Llama on the target's tokenizer."""
    prompts: str
    """JSONL with a ``prompt`` field per row (serve-bench's prompts file works)."""
    output_dir: str
    max_new_tokens: int = 64
    do_sample: bool = False
    """Greedy (default) or sampling with ``temperature`` / ``top_p``, seeded by ``seed``."""
    temperature: float = 1.0
    top_p: float = 1.0
    samples_per_prompt: int = 1
    chat: bool = False
    """Apply the target's chat template to each prompt (as ``serve-bench --chat`` does)."""
    seed: int = 0
    full_finetune: bool | None = None
    """None: full fine-tune for a tiny draft, LoRA otherwise."""
    learning_rate: float | None = None
    """None: 1e-3 for a full fine-tune, 2e-4 for LoRA."""
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    max_length: int = 512
    tiny_layers: int = 1
    tiny_hidden_size: int = 64
    gguf: bool = False
    resume: bool = False


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """The ``prompt`` strings of a JSONL file, in order; a row without one, or an empty file, is
    a ``DataError`` naming the file and line."""
    raise NotImplementedError


def generate_responses(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    chat: bool = False,
) -> list[str]:
    """The model's continuation of each prompt (HF ``generate``, batch of one, stopping at EOS),
    decoded without special tokens."""
    raise NotImplementedError


def next_token_agreement(draft, target, tokenizer, prompts: list[str], completions: list[str]) -> float:
    """The share of positions, over each prompt followed by the target's completion, at which the
    draft's greedy next token equals the target's: what a speculative step gets accepted on."""
    raise NotImplementedError


def distill_draft(cfg: DistillConfig) -> dict[str, Any]:
    """Generates the target's responses, trains the draft on them with ``train_sft`` (full
    fine-tune or LoRA merged into full weights), writes the output folder (and GGUF) and returns
    the summary written to ``distill.json`` (``agreement_before``, ``agreement_after``, paths)."""
    raise NotImplementedError


__all__ = ["DistillConfig", "distill_draft", "generate_responses", "next_token_agreement", "read_prompts"]
