"""What every trainer shares: the base model (optionally NF4-quantised), LoRA targets, metrics
made JSON-safe, training curves, model folders saved whole, and merging a LoRA adapter.

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
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError

QUANTIZATIONS = ("auto", "4bit", "none")

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
    ax2.legend()
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
