"""Training commands: ``train-dpo``, ``train-sft``, ``distill-draft``, ``merge-adapter``, ``tiny-model``."""

from __future__ import annotations

import click

from bdnsca.cli._common import CONTEXT, _console, _progress, cli
from bdnsca.errors import BdnscaError

# ----------------------------------------------------------------------------- training


def training_options(learning_rate: float):
    """The flags every trainer shares (``bdnsca.train.common.TrainingOptions``), one to one."""
    options = [
        click.option(
            "--base-model", required=True, help="A local model folder or a hub id (no download happens here)."
        ),
        click.option("--output-dir", required=True, type=click.Path(file_okay=False)),
        click.option("--learning-rate", default=learning_rate, show_default=True, type=float),
        click.option("--epochs", default=1.0, show_default=True, type=float),
        click.option(
            "--max-steps", default=-1, show_default=True, type=int, help="Overrides --epochs when > 0."
        ),
        click.option("--batch-size", default=4, show_default=True, type=int),
        click.option("--grad-accum", default=1, show_default=True, type=int),
        click.option("--max-length", default=512, show_default=True, type=int),
        click.option("--seed", default=0, show_default=True, type=int),
        click.option("--eval-dataset", type=click.Path(exists=True, dir_okay=False), default=None),
        click.option(
            "--eval-fraction",
            default=0.0,
            show_default=True,
            type=float,
            help="Hold out this share of scenarios (metadata.scenario_id; the prompt when absent).",
        ),
        click.option("--eval-steps", default=None, type=int),
        click.option("--save-steps", default=25, show_default=True, type=int),
        click.option(
            "--resume", is_flag=True, help="Continue from the last checkpoint in OUTPUT_DIR/checkpoints."
        ),
        click.option("--lora-r", default=16, show_default=True, type=int),
        click.option("--lora-alpha", default=32, show_default=True, type=int),
        click.option("--lora-dropout", default=0.05, show_default=True, type=float),
        click.option(
            "--quantization", type=click.Choice(["auto", "4bit", "none"]), default="auto", show_default=True
        ),
    ]

    def decorate(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


@cli.command("train-dpo", context_settings=CONTEXT)
@click.option(
    "--dataset", required=True, type=click.Path(exists=True, dir_okay=False), help="Preference JSONL."
)
@click.option("--loss", type=click.Choice(["dpo", "ipo", "orpo", "simpo"]), default="dpo", show_default=True)
@click.option("--beta", default=0.1, show_default=True, type=float)
@click.option(
    "--max-prompt-length",
    default=256,
    show_default=True,
    type=int,
    help="Keep each prompt's last N tokens (and its BOS), chat-template rendering included.",
)
@training_options(learning_rate=5e-5)
def train_dpo_cmd(**kwargs) -> None:
    """Train a LoRA (QLoRA on CUDA) adapter with DPO, IPO, ORPO or SimPO. A NaN or infinite loss
    or gradient norm stops training and fails the command (exit 1) after metrics.json is saved."""
    from bdnsca.train.preference import PreferenceTrainingConfig, train_preferences

    metrics = train_preferences(PreferenceTrainingConfig(**kwargs))
    con = _console()
    last = metrics["train"][-1] if metrics["train"] else {}
    con.print(
        f"trained {metrics['train_steps']} steps ({metrics['loss']}, quantization {metrics['quantization']}, "
        f"LoRA on {', '.join(metrics['lora_target_modules'])}); last train loss {last.get('loss')}"
    )
    if metrics["eval_final"]:
        m0 = (metrics["eval_initial"] or {}).get("eval_rewards/margins")
        m1 = metrics["eval_final"].get("eval_rewards/margins")
        con.print(f"eval reward margin: {m0} at step 0 -> {m1}")
    con.print(f"adapter, metrics.json and training_curves.png in {kwargs['output_dir']}")


def _print_training(metrics, output_dir: str) -> None:
    con = _console()
    last = metrics["train"][-1] if metrics["train"] else {}
    first = metrics["train"][0] if metrics["train"] else {}
    what = (
        "full fine-tune"
        if metrics.get("full_finetune")
        else f"LoRA on {', '.join(metrics['lora_target_modules'])}"
    )
    con.print(
        f"trained {metrics['train_steps']} steps ({metrics['loss']}, quantization {metrics['quantization']}, "
        f"{what}); train loss {first.get('loss')} at the first log -> {last.get('loss')}"
    )
    if metrics["eval_final"]:
        con.print(
            f"eval loss: {(metrics['eval_initial'] or {}).get('eval_loss')} at step 0 -> "
            f"{metrics['eval_final'].get('eval_loss')}"
        )
    con.print(f"model, metrics.json and training_curves.png in {output_dir}")


@cli.command("train-sft", context_settings=CONTEXT)
@click.option(
    "--dataset",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSONL of prompt + response (or completion) rows, or trl's conversational 'messages' rows.",
)
@click.option(
    "--from-run",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Build the set from an evaluation run folder: per scenario the best-rated response of --arm.",
)
@click.option("--arm", "arms", multiple=True, help="With --from-run: the arm(s) whose responses compete.")
@click.option(
    "--use-references",
    is_flag=True,
    help="With --from-run: train on each scenario's reference_response (the arm's prompt).",
)
@click.option(
    "--metric",
    default="overall_quality",
    show_default=True,
    help="Rating (judge_ratings.csv, mean over annotators) or score (scores/ARM.jsonl) that ranks responses.",
)
@click.option(
    "--completion-only-loss/--full-sequence-loss",
    default=True,
    show_default=True,
    help="Mask prompt tokens, so the loss is on the response only.",
)
@click.option(
    "--full-finetune", is_flag=True, help="Train every weight instead of a LoRA adapter (small models)."
)
@training_options(learning_rate=2e-4)
def train_sft_cmd(**kwargs) -> None:
    """Supervised fine-tuning of a LoRA (QLoRA on CUDA) adapter with trl's SFTTrainer, on
    prompt/response rows or an evaluation run's best-rated responses. Outputs and --resume as
    train-dpo, plus sft_dataset.jsonl (the rows trained on)."""
    from bdnsca.train.sft import SFTTrainingConfig, train_sft

    kwargs["arms"] = tuple(kwargs["arms"])
    metrics = train_sft(SFTTrainingConfig(**kwargs))
    _print_training(metrics, kwargs["output_dir"])


@cli.command("distill-draft", context_settings=CONTEXT)
@click.option(
    "--target", required=True, type=click.Path(exists=True, file_okay=False), help="Target model folder."
)
@click.option(
    "--draft-init",
    required=True,
    help="The draft's starting model folder, or 'tiny' for a tiny Llama on the target's tokenizer.",
)
@click.option(
    "--prompts",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="JSONL with a 'prompt' field.",
)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--max-new-tokens", default=64, show_default=True, type=int)
@click.option(
    "--sample", "do_sample", is_flag=True, help="Sample the target's responses (seeded) instead of greedy."
)
@click.option("--temperature", default=1.0, show_default=True, type=float)
@click.option("--top-p", default=1.0, show_default=True, type=float)
@click.option("--samples-per-prompt", default=1, show_default=True, type=int)
@click.option(
    "--chat", is_flag=True, help="Wrap prompts in the target's chat template (as serve-bench --chat)."
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--full-finetune/--lora",
    default=None,
    help="Train every weight of the draft, or a LoRA adapter merged after [default: full for a tiny draft].",
)
@click.option("--learning-rate", default=None, type=float, help="[default: 1e-3 full, 2e-4 LoRA]")
@click.option("--epochs", default=1.0, show_default=True, type=float)
@click.option("--max-steps", default=-1, show_default=True, type=int, help="Overrides --epochs when > 0.")
@click.option("--batch-size", default=8, show_default=True, type=int)
@click.option("--max-length", default=512, show_default=True, type=int)
@click.option("--tiny-layers", default=1, show_default=True, type=int, help="With --draft-init tiny.")
@click.option("--tiny-hidden-size", default=64, show_default=True, type=int, help="With --draft-init tiny.")
@click.option("--gguf", is_flag=True, help="Also write draft/model.gguf for serve-bench's draft:PATH:N.")
@click.option("--resume", is_flag=True, help="Continue the draft's training from OUTPUT_DIR/sft/checkpoints.")
def distill_draft_cmd(**kwargs) -> None:
    """Sequence-level distillation of a speculative-decoding draft: the target answers the prompts,
    the draft is fine-tuned on those answers (train-sft's trainer), sharing the target's tokenizer."""
    from bdnsca.train.distill import DistillConfig, distill_draft

    info = distill_draft(DistillConfig(**kwargs))
    con = _console()
    con.print(
        f"{info['responses']} target responses; draft trained {info['train_steps']} steps; greedy next-token "
        f"agreement with the target {info['agreement_before']:.1%} -> {info['agreement_after']:.1%}"
    )
    con.print(f"draft model in {info['draft_dir']}" + (f", GGUF {info['gguf']}" if info.get("gguf") else ""))


@cli.command("merge-adapter", context_settings=CONTEXT)
@click.option("--base-model", required=True)
@click.option("--adapter", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
def merge_adapter_cmd(base_model, adapter, output_dir) -> None:
    """Merge a LoRA adapter into the base model's full weights."""
    from bdnsca.train.common import merge_adapter

    _console().print(f"merged model written to {merge_adapter(base_model, adapter, output_dir)}")


@cli.command("tiny-model", context_settings=CONTEXT)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--layers", default=2, show_default=True, type=int)
@click.option("--hidden-size", default=64, show_default=True, type=int)
@click.option("--heads", default=4, show_default=True, type=int)
@click.option(
    "--vocab-size", default=1024, show_default=True, type=int, help="When training a new tokenizer."
)
@click.option("--tokenizer-from", type=click.Path(exists=True, file_okay=False), default=None)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--gguf", is_flag=True, help="Also write model.gguf (loads in llama.cpp / llama-cpp-python).")
@click.option(
    "--copy-steps",
    default=0,
    show_default=True,
    type=int,
    help="Train this many steps on a copy task (answer = the prompt's text), for speculative-decoding "
    "demos; also writes copy_prompts.jsonl / copy_references.jsonl.",
)
def tiny_model_cmd(
    output_dir, layers, hidden_size, heads, vocab_size, tokenizer_from, seed, gguf, copy_steps
) -> None:
    """Build a small random-initialised Llama model and a tokenizer trained on the bundled text."""
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    cfg = TinyModelConfig(
        layers=layers,
        hidden_size=hidden_size,
        heads=heads,
        kv_heads=min(2, heads),
        vocab_size=vocab_size,
        seed=seed,
    )
    if copy_steps < 0:
        raise BdnscaError(f"--copy-steps must be >= 0, got {copy_steps}")
    with _progress() as bar:
        task = bar.add_task("copy task", total=copy_steps or None, visible=copy_steps > 0)
        info = make_tiny_model(
            output_dir,
            cfg,
            tokenizer_from=tokenizer_from,
            gguf=gguf,
            copy_steps=copy_steps,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    con = _console()
    con.print(
        f"tiny model: {info['parameters']:,} parameters, vocabulary {info['vocab_size']} -> {output_dir}"
    )
    if "copy_task" in info:
        ct = info["copy_task"]
        con.print(
            f"copy task: {ct['steps']} steps, final loss {ct['loss_curve'][-1]['loss']:.4f}, "
            f"held-out exact copies {ct['held_out_exact_copy_rate']:.0%}; "
            f"copy_prompts.jsonl / copy_references.jsonl in {output_dir}"
        )
