"""What every trainer shares: the options (``TrainingOptions``: model, output, steps, LoRA,
quantisation, eval split, resume), the base model (optionally NF4-quantised), LoRA targets, the
trl arguments built from the options, the run loop (resume, NaN watch, metrics, curves, the
output folder saved whole), and merging a LoRA adapter. ``train-dpo`` and ``train-sft`` both run
through ``run_training``. The module runs past 450 lines because it is the one place all the
trainers share (the brief asks for one common module, not copies).

A saved model or adapter folder is built complete in a sibling staging folder and put in place
with one rename (an atomic exchange where Linux offers it), so a reader sees the old folder or
the new one, never a mix, and no file of an earlier save survives. torch, transformers and peft
are imported inside the functions.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import write_json
from bdnsca.errors import BdnscaError

QUANTIZATIONS = ("auto", "4bit", "none")
# Logged values that, when NaN or infinite, mean training diverged.
DIVERGENCE_KEYS = ("loss", "grad_norm", "eval_loss")

# A folder holding one of these is a model, adapter or training output that a save may replace.
MODEL_MARKERS = frozenset(
    {"config.json", "adapter_config.json", "training_config.json", "bdnsca_tiny_model.json"}
)


# ----------------------------------------------------------------------------- models


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_quantization(requested: str) -> str:
    """``auto`` is NF4 4-bit (QLoRA) with CUDA and none without; ``4bit`` without CUDA is an error."""
    if requested not in QUANTIZATIONS:
        raise BdnscaError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {requested!r}")
    cuda = cuda_available()
    if requested == "4bit" and not cuda:
        raise BdnscaError(
            "4-bit quantization (QLoRA) needs a CUDA GPU; use --quantization none (or auto) on CPU"
        )
    if requested == "auto":
        return "4bit" if cuda else "none"
    return requested


def load_base_model(base_model: str, quantization: str):
    """(model, tokenizer) ready for LoRA training; ``quantization`` is a resolved one (4bit or
    none). The tokenizer gets a pad token (its EOS) when it has none."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict[str, Any] = {}
    if quantization == "4bit":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
        kwargs["device_map"] = {"": 0}
        kwargs["dtype"] = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    if quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model, tokenizer


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


# ----------------------------------------------------------------------------- metrics


def finite_or_none(obj: Any, where: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN), and the
    paths of the values replaced (``train[3].loss``)."""
    bad: list[str] = []

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, float) and not math.isfinite(x):
            bad.append(path)
            return None
        return x

    return walk(obj, where), bad


# ----------------------------------------------------------------------------- saving


def check_replaceable(dest: str | os.PathLike[str], carry: Sequence[str] = ()) -> None:
    """Refuses a ``dest`` that a save would wrongly replace: a file, or a folder holding
    anything but a model, an adapter or a training output (or only the ``carry`` entries)."""
    dest = Path(dest)
    if not dest.exists():
        return
    if not dest.is_dir():
        raise BdnscaError(f"{dest} exists and is not a folder")
    names = {p.name for p in dest.iterdir()}
    if not names or names & MODEL_MARKERS or names <= set(carry):
        return
    shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
    raise BdnscaError(
        f"{dest} holds files that are not a saved model ({shown}); a save replaces the folder as a "
        "whole, so choose a new or empty folder"
    )


def save_folder(
    dest: str | os.PathLike[str], fill: Callable[[Path], None], carry: Sequence[str] = ()
) -> Path:
    """Builds a complete folder with ``fill(staging)`` beside ``dest`` and puts it at ``dest``
    with one rename; the previous ``dest`` is removed, except its ``carry`` entries (such as
    ``checkpoints``), which move into the new folder. A failure leaves ``dest`` as it was."""
    dest = Path(dest)
    check_replaceable(dest, carry)
    stage = _sibling(dest, "saving")
    try:
        fill(stage)
        _fsync_tree(stage)
        moved = []
        for name in carry:
            if (dest / name).exists() and not (stage / name).exists():
                os.rename(dest / name, stage / name)
                moved.append(name)
        try:
            _replace_folder(stage, dest)
        except BaseException:
            for name in moved:
                os.rename(stage / name, dest / name)
            raise
    finally:
        # after an exchange the staging path holds the previous folder
        shutil.rmtree(stage, ignore_errors=True)
    return dest


def save_pretrained_folder(
    dest: str | os.PathLike[str],
    model,
    tokenizer,
    extra: Callable[[Path], None] | None = None,
    carry: Sequence[str] = (),
) -> Path:
    """``save_folder`` of a model (or adapter) and its tokenizer, plus ``extra(staging)`` files."""

    def fill(stage: Path) -> None:
        if model is not None:
            model.save_pretrained(stage)
        if tokenizer is not None:
            tokenizer.save_pretrained(stage)
        if extra is not None:
            extra(stage)

    return save_folder(dest, fill, carry)


def _sibling(dest: Path, what: str) -> Path:
    """A new empty folder beside ``dest`` (same file system, so renames are atomic), named
    uniquely per process, thread and call; created with the umask's mode like any mkdir."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    path = dest.with_name(f".{dest.name}.{what}-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}")
    path.mkdir()
    return path


def _fsync_tree(root: Path) -> None:
    """Flushes every file and folder under ``root`` to disk, so the rename publishes data that
    survives a crash."""
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(folder)


def _fsync_dir(folder: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_folder(stage: Path, dest: Path) -> None:
    """Puts ``stage`` at ``dest``: a rename when ``dest`` is absent; otherwise an atomic exchange
    (Linux renameat2), after which ``stage`` names the old folder; where the exchange is not
    available, the old folder is moved aside first (and back if the rename fails)."""
    if not dest.exists():
        os.rename(stage, dest)
    elif not _exchange(stage, dest):
        aside = _sibling(dest, "old")
        aside.rmdir()
        os.rename(dest, aside)
        try:
            os.rename(stage, dest)
        except BaseException:
            os.rename(aside, dest)
            raise
        os.rename(aside, stage)  # the caller removes it
    _fsync_dir(dest.parent)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths (renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


# ----------------------------------------------------------------------------- curves and merging


def _margin_key(entry: dict[str, Any], prefix: str = "") -> float | None:
    for key in (f"{prefix}rewards/margins", f"{prefix}rewards_margins"):
        if key in entry:
            return entry[key]
    return None


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def plot_metrics(metrics: dict[str, Any], path: Path) -> None:
    """Loss per step, train and eval, and the reward margin where the metrics have one (null
    values leave gaps). ``metrics["loss"]`` names the loss in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    train = metrics["train"]
    ax1.plot([h["step"] for h in train], [_num(h["loss"]) for h in train], label="train loss")
    ev = metrics["eval"]
    if ev:
        ax1.plot([h["step"] for h in ev], [_num(h["eval_loss"]) for h in ev], "o-", label="eval loss")
    ax1.set_xlabel("step")
    ax1.set_title(f"{metrics['loss']} loss")
    ax1.legend()
    margins = [(h["step"], _num(_margin_key(h))) for h in train if _margin_key(h) is not None]
    if margins:
        ax2.plot(*zip(*margins, strict=True), label="train reward margin")
    emargins = [(h["step"], _num(_margin_key(h, "eval_"))) for h in ev if _margin_key(h, "eval_") is not None]
    if emargins:
        ax2.plot(*zip(*emargins, strict=True), "o-", label="eval reward margin")
    ax2.set_xlabel("step")
    ax2.set_title("reward margin (chosen - rejected)")
    if ax2.lines:
        ax2.legend()
    else:  # a loss without a reward margin (SFT)
        ax2.set_visible(False)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}.tmp.png")
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def merge_adapter(base_model: str, adapter: str, output_dir: str) -> str:
    """Merges a LoRA adapter into the base model's weights and writes the full model (the
    folder replaced whole, with one rename)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (Path(adapter) / "adapter_config.json").exists():
        raise BdnscaError(f"{adapter}: no adapter_config.json (not a LoRA adapter folder)")
    check_replaceable(output_dir)
    model = AutoModelForCausalLM.from_pretrained(base_model)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    save_pretrained_folder(output_dir, merged, AutoTokenizer.from_pretrained(adapter))
    return str(output_dir)


# ----------------------------------------------------------------------------- options and the run loop


class TrainingDiverged(BdnscaError):
    """The loss or gradient norm became NaN or infinite; ``metrics.json`` says where."""


@dataclass
class TrainingOptions:
    """The options every trainer (``train-dpo``, ``train-sft``) takes, one to one with the CLI's
    shared flags; each trainer's config extends it and is written whole next to its output."""

    dataset: str | None
    base_model: str
    output_dir: str
    learning_rate: float = 5e-5
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
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

    def validate(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise BdnscaError(f"quantization must be auto, 4bit or none, got {self.quantization!r}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise BdnscaError(f"eval fraction must lie in [0, 1), got {self.eval_fraction}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise BdnscaError("batch size and gradient accumulation must be >= 1")
        if self.max_length < 2:
            raise BdnscaError(f"max length must be at least 2, got {self.max_length}")
        if self.logging_steps < 1 or self.save_steps < 1:
            raise BdnscaError("logging and save steps must be >= 1")


def training_arguments(
    opts: TrainingOptions, workdir: str | os.PathLike[str], has_eval: bool
) -> dict[str, Any]:
    """The keyword arguments of trl's configs (DPOConfig, SFTConfig, ...) that the shared
    options set: steps, batch, seed, logging, checkpoints in ``workdir``, eval, device."""
    cuda = cuda_available()
    return dict(
        output_dir=str(workdir),
        learning_rate=opts.learning_rate,
        num_train_epochs=opts.epochs,
        max_steps=opts.max_steps,
        per_device_train_batch_size=opts.batch_size,
        per_device_eval_batch_size=opts.batch_size,
        gradient_accumulation_steps=opts.grad_accum,
        seed=opts.seed,
        data_seed=opts.seed,
        logging_steps=opts.logging_steps,
        save_strategy="steps",
        save_steps=opts.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=opts.eval_steps or opts.logging_steps,
        report_to=[],
        logging_nan_inf_filter=False,  # a NaN loss must show in the log, not be averaged away
        max_length=opts.max_length,
        use_cpu=not cuda,
        bf16=cuda,
    )


def lora_config(opts: TrainingOptions, targets: list[str]):
    """peft's LoraConfig for a causal LM from the shared options."""
    from peft import LoraConfig

    return LoraConfig(
        r=opts.lora_r,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


@dataclass
class PreparedTraining:
    """Everything a trainer trains with, before any step runs (tests inspect it)."""

    trainer: Any
    tokenizer: Any
    quantization: str
    lora_target_modules: list[str]
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]


class RunWatch:
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


def run_training(
    opts: TrainingOptions,
    prep: PreparedTraining,
    kind: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Trains ``prep.trainer`` (from the last checkpoint with ``opts.resume``) and saves
    ``opts.output_dir`` whole (one rename): the model or adapter, tokenizer,
    ``training_config.json`` (the options), per-step ``metrics.json`` (``kind`` first, e.g. the
    loss name), ``training_curves.png`` and ``extra(folder)``'s files, with ``checkpoints/``
    carried over. Returns the metrics. A run whose loss or grad norm became NaN or infinite
    saves everything but the model and raises ``TrainingDiverged``."""
    trainer = prep.trainer
    out = Path(opts.output_dir)
    checkpoints = out / "checkpoints"
    watch = RunWatch()
    trainer.add_callback(watch)
    initial_eval = trainer.evaluate() if prep.eval_rows else None
    resume = (
        opts.resume
        and checkpoints.is_dir()
        and any(p.name.startswith("checkpoint-") for p in checkpoints.iterdir())
    )
    if opts.resume and not resume:
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
            **kind,
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
        config = {**asdict(opts), "resolved_quantization": prep.quantization}
        config["lora_target_modules"] = prep.lora_target_modules
        write_json(folder / "training_config.json", config)
        write_json(folder / "metrics.json", metrics)
        plot_metrics(metrics, folder / "training_curves.png")
        if extra is not None:
            extra(folder)

    if diverged:
        save_folder(out, write_records, carry=("checkpoints",))
        raise TrainingDiverged(
            f"training diverged: non-finite {', '.join(diverged[:3])}"
            f"{' ...' if len(diverged) > 3 else ''} (stopped at step {trainer.state.global_step}); "
            f"no model was saved; {out / 'metrics.json'} records the run (NaN as null)"
        )
    save_pretrained_folder(out, trainer.model, prep.tokenizer, extra=write_records, carry=("checkpoints",))
    return metrics
