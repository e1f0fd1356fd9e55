"""Preference optimisation (DPO, IPO, ORPO, SimPO) of LoRA / QLoRA adapters with trl and peft.

One config object (like trl's), mapped one to one from the CLI flags and written next to every
output. torch, transformers, trl and peft are imported only when training starts.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError, DataError
from bdnsca.data.io import iter_jsonl, write_json

LOSSES = ("dpo", "ipo", "orpo", "simpo")


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
        if self.quantization not in ("auto", "4bit", "none"):
            raise BdnscaError(f"quantization must be auto, 4bit or none, got {self.quantization!r}")
        if self.max_prompt_length >= self.max_length:
            raise BdnscaError("max prompt length must be below max length")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise BdnscaError(f"eval fraction must lie in [0, 1), got {self.eval_fraction}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise BdnscaError("batch size and gradient accumulation must be >= 1")


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    )


def load_preference_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows with ``prompt``, ``chosen``, ``rejected`` (all strings, or all conversational
    message lists, as trl expects). Extra fields such as ``metadata`` are dropped."""
    rows = []
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
    if not rows:
        raise DataError(path, None, "the preference dataset is empty")
    return rows


def lora_target_modules(model) -> list[str]:
    """Every linear projection in the model by its leaf name, fused ones included (Phi-3's
    ``qkv_proj`` and ``gate_up_proj``), the output head excluded."""
    import torch

    linear_types: tuple[type, ...] = (torch.nn.Linear,)
    try:
        import bitsandbytes as bnb  # noqa: PLC0415

        linear_types += (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    except Exception:  # bitsandbytes is optional (CUDA only)
        pass
    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, linear_types)}
    names -= {"lm_head", "embed_out", "output"}
    if not names:
        raise BdnscaError("found no linear layers to put LoRA adapters on")
    return sorted(names)


def resolve_quantization(requested: str) -> str:
    import torch

    cuda = torch.cuda.is_available()
    if requested == "4bit" and not cuda:
        raise BdnscaError(
            "4-bit quantization (QLoRA) needs a CUDA GPU; use --quantization none (or auto) on CPU"
        )
    if requested == "auto":
        return "4bit" if cuda else "none"
    return requested


def _split_rows(rows, fraction: float, seed: int):
    import random

    if fraction <= 0:
        return rows, []
    idx = list(range(len(rows)))
    random.Random(seed).shuffle(idx)
    n_eval = max(1, math.ceil(fraction * len(rows)))
    held = set(idx[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def _truncate_prompts(rows, tokenizer, max_prompt_length: int):
    """Keep the last ``max_prompt_length`` tokens of each plain-text prompt (the end of a
    prompt is what the response answers)."""
    out = []
    for r in rows:
        p = r["prompt"]
        if isinstance(p, str):
            ids = tokenizer(p, add_special_tokens=False)["input_ids"]
            if len(ids) > max_prompt_length:
                p = tokenizer.decode(ids[-max_prompt_length:])
        out.append({**r, "prompt": p})
    return out


def _trainer(cfg: PreferenceTrainingConfig, model, tokenizer, train_ds, eval_ds, peft_config, workdir: str):
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
        eval_strategy="steps" if eval_ds is not None else "no",
        eval_steps=cfg.eval_steps or cfg.logging_steps,
        report_to=[],
        beta=cfg.beta,
        max_length=cfg.max_length,
        use_cpu=not _cuda(),
        bf16=_cuda(),
        remove_unused_columns=False,
    )
    if cfg.loss in ("dpo", "ipo"):
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**common, loss_type=["sigmoid" if cfg.loss == "dpo" else "ipo"])
        cls = DPOTrainer
    elif cfg.loss == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        args = ORPOConfig(**common, max_completion_length=cfg.max_length - cfg.max_prompt_length)
        cls = ORPOTrainer
    else:
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(
            **common,
            max_completion_length=cfg.max_length - cfg.max_prompt_length,
            loss_type="simpo",
            cpo_alpha=0.0,
            simpo_gamma=cfg.simpo_gamma,
        )
        cls = CPOTrainer
    return cls(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


class _StepCounter:
    """Counts the optimizer steps this process ran (a resumed run starts past step 0)."""

    def __init__(self) -> None:
        self.steps = 0

    def __getattr__(self, name: str):
        # transformers calls on_* hooks it knows; answer every one with a no-op
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_step_end(self, *args, **kwargs) -> None:
        self.steps += 1


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def train_preferences(cfg: PreferenceTrainingConfig) -> dict[str, Any]:
    """Trains a LoRA adapter on preference pairs; writes the adapter, tokenizer, config,
    per-step metrics (JSON) and a loss/margin plot into ``cfg.output_dir``. Returns the metrics."""
    cfg.validate()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    rows = load_preference_rows(cfg.dataset)
    quant = resolve_quantization(cfg.quantization)

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {}
    if quant == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        kwargs["device_map"] = {"": 0}
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(cfg.base_model, **kwargs)
    if quant == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
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
        train_rows, eval_rows = _split_rows(rows, cfg.eval_fraction, cfg.seed)
    train_rows = _truncate_prompts(train_rows, tokenizer, cfg.max_prompt_length)
    eval_rows = _truncate_prompts(eval_rows, tokenizer, cfg.max_prompt_length)
    train_ds = Dataset.from_list(train_rows)
    eval_ds = Dataset.from_list(eval_rows) if eval_rows else None

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = out / "checkpoints"
    trainer = _trainer(cfg, model, tokenizer, train_ds, eval_ds, peft_config, str(checkpoints))
    counter = _StepCounter()
    trainer.add_callback(counter)
    initial_eval = trainer.evaluate() if eval_ds is not None else None
    resume = (
        cfg.resume
        and checkpoints.is_dir()
        and any(p.name.startswith("checkpoint-") for p in checkpoints.iterdir())
    )
    if cfg.resume and not resume:
        raise BdnscaError(f"--resume: no checkpoint in {checkpoints}")
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    final_eval = None
    if eval_ds is not None:
        # Reuse the trainer's own eval when it ran at the last step, so the history holds it once.
        evals = [h for h in trainer.state.log_history if "eval_loss" in h]
        last = evals[-1] if evals else None
        final_eval = last if last and last.get("step") == trainer.state.global_step else trainer.evaluate()

    _save_into(out, trainer.model, tokenizer)

    history = trainer.state.log_history
    metrics = {
        "loss": cfg.loss,
        "quantization": quant,
        "lora_target_modules": targets,
        "train_steps": trainer.state.global_step,
        "resumed": resume,
        "steps_this_run": counter.steps,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_steps_per_s": result.metrics.get("train_steps_per_second"),
        "train": [h for h in history if "loss" in h and "eval_loss" not in h],
        "eval": [h for h in history if "eval_loss" in h],
        "eval_initial": initial_eval,
        "eval_final": final_eval,
    }
    write_json(
        out / "training_config.json",
        {**asdict(cfg), "resolved_quantization": quant, "lora_target_modules": targets},
    )
    write_json(out / "metrics.json", metrics)
    plot_metrics(metrics, out / "training_curves.png")
    return metrics


def _margin_key(entry: dict[str, Any], prefix: str = "") -> float | None:
    for key in (f"{prefix}rewards/margins", f"{prefix}rewards_margins"):
        if key in entry:
            return entry[key]
    return None


def plot_metrics(metrics: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    train = metrics["train"]
    ax1.plot([h["step"] for h in train], [h["loss"] for h in train], label="train loss")
    ev = metrics["eval"]
    if ev:
        ax1.plot([h["step"] for h in ev], [h["eval_loss"] for h in ev], "o-", label="eval loss")
    ax1.set_xlabel("step")
    ax1.set_title(f"{metrics['loss']} loss")
    ax1.legend()
    margins = [(h["step"], _margin_key(h)) for h in train if _margin_key(h) is not None]
    if margins:
        ax2.plot(*zip(*margins, strict=True), label="train reward margin")
    emargins = [(h["step"], _margin_key(h, "eval_")) for h in ev if _margin_key(h, "eval_") is not None]
    if emargins:
        ax2.plot(*zip(*emargins, strict=True), "o-", label="eval reward margin")
    ax2.set_xlabel("step")
    ax2.set_title("reward margin (chosen - rejected)")
    ax2.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def merge_adapter(base_model: str, adapter: str, output_dir: str) -> str:
    """Merges a LoRA adapter into the base model's weights and writes the full model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_model)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    _save_into(Path(output_dir), merged, AutoTokenizer.from_pretrained(adapter))
    return str(output_dir)


def _save_into(out: Path, model, tokenizer) -> None:
    """Saves into a temporary folder inside ``out``, then moves the files in one by one, so a
    failure while saving never leaves a half-written model where a good one was."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".saving.", dir=out))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
