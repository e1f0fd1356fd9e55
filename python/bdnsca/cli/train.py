"""Training commands: ``train-dpo``, ``merge-adapter``, ``tiny-model``."""

from __future__ import annotations

import click

from bdnsca.cli._common import CONTEXT, _console, _progress, cli
from bdnsca.errors import BdnscaError

# ----------------------------------------------------------------------------- training


@cli.command("train-dpo", context_settings=CONTEXT)
@click.option(
    "--dataset", required=True, type=click.Path(exists=True, dir_okay=False), help="Preference JSONL."
)
@click.option(
    "--base-model", required=True, help="A local model folder or a hub id (no download happens here)."
)
@click.option("--output-dir", required=True, type=click.Path(file_okay=False))
@click.option("--loss", type=click.Choice(["dpo", "ipo", "orpo", "simpo"]), default="dpo", show_default=True)
@click.option("--beta", default=0.1, show_default=True, type=float)
@click.option("--learning-rate", default=5e-5, show_default=True, type=float)
@click.option("--epochs", default=1.0, show_default=True, type=float)
@click.option("--max-steps", default=-1, show_default=True, type=int, help="Overrides --epochs when > 0.")
@click.option("--batch-size", default=4, show_default=True, type=int)
@click.option("--grad-accum", default=1, show_default=True, type=int)
@click.option("--max-length", default=512, show_default=True, type=int)
@click.option(
    "--max-prompt-length",
    default=256,
    show_default=True,
    type=int,
    help="Keep each prompt's last N tokens (and its BOS), chat-template rendering included.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--eval-dataset", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option(
    "--eval-fraction",
    default=0.0,
    show_default=True,
    type=float,
    help="Hold out this share of scenarios (metadata.scenario_id; the prompt when absent).",
)
@click.option("--eval-steps", default=None, type=int)
@click.option("--save-steps", default=25, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUTPUT_DIR/checkpoints.")
@click.option("--lora-r", default=16, show_default=True, type=int)
@click.option("--lora-alpha", default=32, show_default=True, type=int)
@click.option("--lora-dropout", default=0.05, show_default=True, type=float)
@click.option(
    "--quantization", type=click.Choice(["auto", "4bit", "none"]), default="auto", show_default=True
)
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
