"""Sequence-level distillation of a draft model (``bdnsca distill-draft``): the target model
answers the prompts (greedy, or seeded sampling), and the draft is fine-tuned on those answers
with the SFT trainer (:mod:`bdnsca.train.sft`), so it predicts what the target will say: the
property speculative decoding's acceptance rate rests on. Draft and target share one tokenizer
(a draft with another vocabulary is refused; ``draft_init="tiny"`` builds a tiny Llama on the
target's tokenizer). With ``gguf`` the draft is written as ``draft/model.gguf`` for serve-bench's
``draft:PATH:N`` (and a tiny initial draft as ``draft_init/model.gguf``, the "before" to compare).

Output folder: ``target_responses.jsonl`` (the target's answers, as text and token ids),
``distill_dataset.jsonl`` (what the draft trains on: the exact token ids, prompt masked),
``draft_init/`` (a tiny initial draft), ``sft/`` (train-sft's output), ``draft/`` (the draft's
full weights and tokenizer, ``model.gguf``), ``distill.json`` (settings, greedy next-token
agreement with the target before and after). Prompts are encoded as serve-bench encodes them:
BOS + the prompt text, or the chat template with ``chat``.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import iter_jsonl, write_json, write_jsonl
from bdnsca.errors import BdnscaError, DataError

SUMMARY_FILE = "distill.json"
RESPONSES_FILE = "target_responses.jsonl"


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

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise BdnscaError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if self.samples_per_prompt < 1:
            raise BdnscaError(f"--samples-per-prompt must be >= 1, got {self.samples_per_prompt}")
        if self.samples_per_prompt > 1 and not self.do_sample:
            raise BdnscaError("--samples-per-prompt above 1 needs --sample (greedy answers are all the same)")
        if not self.temperature > 0 or not 0 < self.top_p <= 1:
            raise BdnscaError("temperature must be > 0 and top-p in (0, 1]")
        if self.tiny_layers < 1 or self.tiny_hidden_size < 16 or self.tiny_hidden_size % 16:
            raise BdnscaError("a tiny draft needs >= 1 layer and a hidden size that is a multiple of 16")


# ----------------------------------------------------------------------------- pieces


def read_prompts(path: str | os.PathLike[str]) -> list[str]:
    """The ``prompt`` strings of a JSONL file, in order; a row without one, or an empty file, is
    a ``DataError`` naming the file and line."""
    out = []
    for lineno, row in iter_jsonl(path):
        prompt = row.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(path, lineno, "missing or empty field 'prompt'")
        out.append(prompt)
    if not out:
        raise DataError(path, None, "no prompts (the file is empty)")
    return out


def encode_prompt(tokenizer, prompt: str, chat: bool = False) -> list[int]:
    """The prompt's token ids as the model sees them: the tokenizer's special tokens (BOS) and the
    text, or the chat template with the generation prompt."""
    if chat:
        if not tokenizer.chat_template:
            raise BdnscaError("--chat: the target's tokenizer has no chat template")
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(prompt)["input_ids"]


def generate_ids(
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
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, generated ids) per prompt: HF ``generate``, batch of one, the generated ids
    ending with EOS where the model stopped. Sampling is seeded once, so a run is reproducible."""
    import torch

    torch.manual_seed(seed)
    model.eval()
    out = []
    kwargs: dict[str, Any] = {"do_sample": do_sample}
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.no_grad():
        for prompt in prompts:
            p = encode_prompt(tokenizer, prompt, chat)
            ids = torch.tensor([p])
            gen = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **kwargs,
            )
            out.append((p, gen[0, len(p) :].tolist()))
    return out


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
    """The model's continuation of each prompt (``generate_ids``), decoded without special tokens."""
    pairs = generate_ids(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, do_sample=do_sample,
        temperature=temperature, top_p=top_p, seed=seed, chat=chat,
    )  # fmt: skip
    return [tokenizer.decode(c, skip_special_tokens=True) for _, c in pairs]


def agreement_on_ids(draft, target, sequences: list[tuple[list[int], list[int]]]) -> float:
    """The share of completion positions (over (prompt ids, completion ids) pairs) at which the
    draft's greedy next token equals the target's: a greedy speculative step accepts a drafted
    token exactly when it does."""
    import torch

    agree = total = 0
    draft.eval()
    target.eval()
    with torch.no_grad():
        for p, c in sequences:
            if not c:
                continue
            ids = torch.tensor([list(p) + list(c)])
            span = slice(len(p) - 1, len(p) + len(c) - 1)
            d = draft(input_ids=ids).logits[0, span].argmax(-1)
            t = target(input_ids=ids).logits[0, span].argmax(-1)
            agree += int((d == t).sum())
            total += len(c)
    if total == 0:
        raise BdnscaError("no completion tokens to measure agreement on (the target answered nothing)")
    return agree / total


def next_token_agreement(
    draft, target, tokenizer, prompts: list[str], completions: list[str], chat: bool = False
) -> float:
    """``agreement_on_ids`` over each prompt (encoded as served) followed by a completion text."""
    seqs = [
        (encode_prompt(tokenizer, p, chat), tokenizer(c, add_special_tokens=False)["input_ids"])
        for p, c in zip(prompts, completions, strict=True)
    ]
    return agreement_on_ids(draft, target, seqs)


def check_same_tokenizer(target_tok, draft_tok, target: str, draft: str) -> None:
    """Raises unless the draft's tokenizer maps every token as the target's, with the same
    special tokens: a draft's guesses are target token ids."""
    tv, dv = target_tok.get_vocab(), draft_tok.get_vocab()
    if len(tv) != len(dv):
        raise BdnscaError(
            f"draft {draft} has a vocabulary of {len(dv)} tokens, the target {target} has {len(tv)}: "
            "a draft must share the target's tokenizer (--draft-init tiny, or tiny-model --tokenizer-from)"
        )
    diff = next((t for t, i in tv.items() if dv.get(t) != i), None)
    if diff is not None:
        raise BdnscaError(
            f"draft {draft} has another vocabulary than the target {target}: token {diff!r} is "
            f"{dv.get(diff)} in the draft and {tv[diff]} in the target"
        )
    for name in ("bos_token_id", "eos_token_id"):
        if getattr(target_tok, name) != getattr(draft_tok, name):
            raise BdnscaError(f"draft {draft} and target {target} differ in {name}")


def _tiny_draft(cfg: DistillConfig, dest: Path) -> None:
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    heads = cfg.tiny_hidden_size // 16
    kv = 2 if heads % 2 == 0 else 1
    tiny = TinyModelConfig(
        layers=cfg.tiny_layers, hidden_size=cfg.tiny_hidden_size, heads=heads, kv_heads=kv, seed=cfg.seed
    )
    make_tiny_model(dest, tiny, tokenizer_from=cfg.target, gguf=cfg.gguf)


OUTPUT_NAMES = frozenset(
    {SUMMARY_FILE, RESPONSES_FILE, "distill_dataset.jsonl", "sft", "draft", "draft_init"}
)


def _check_output_dir(out: Path) -> None:
    """Refuses an output folder that holds anything but an earlier distill-draft's output."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BdnscaError(f"{out} exists and is not a folder")
    names = sorted(p.name for p in out.iterdir())
    if names and not set(names) <= OUTPUT_NAMES:
        raise BdnscaError(
            f"{out} holds files that are not a distill-draft output ({', '.join(names[:3])}); "
            "choose a new or empty folder"
        )


# ----------------------------------------------------------------------------- the whole job


def distill_draft(cfg: DistillConfig) -> dict[str, Any]:
    """Generates the target's responses, trains the draft on them with ``train_sft`` (full
    fine-tune or LoRA merged into full weights), writes the output folder (and GGUF) and returns
    the summary written to ``distill.json`` (``agreement_before``, ``agreement_after``, paths)."""
    cfg.validate()
    out = Path(cfg.output_dir)
    _check_output_dir(out)
    prompts = read_prompts(cfg.prompts)
    started = time.perf_counter()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bdnsca.train.common import save_pretrained_folder
    from bdnsca.train.sft import SFTTrainingConfig, train_sft

    if not (Path(cfg.target) / "config.json").exists():
        raise BdnscaError(f"--target {cfg.target}: no config.json (not a model folder)")
    tok = AutoTokenizer.from_pretrained(cfg.target)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out.mkdir(parents=True, exist_ok=True)
    tiny = cfg.draft_init == "tiny"
    if tiny:
        init_dir = out / "draft_init"
        if not (cfg.resume and (init_dir / "config.json").exists()):
            _tiny_draft(cfg, init_dir)
    else:
        init_dir = Path(cfg.draft_init)
        if not (init_dir / "config.json").exists():
            raise BdnscaError(f"--draft-init {cfg.draft_init}: no config.json (a model folder, or 'tiny')")
        check_same_tokenizer(tok, AutoTokenizer.from_pretrained(init_dir), cfg.target, str(init_dir))
    full = tiny if cfg.full_finetune is None else cfg.full_finetune
    lr = cfg.learning_rate if cfg.learning_rate is not None else (1e-3 if full else 2e-4)

    target = AutoModelForCausalLM.from_pretrained(cfg.target)
    responses_path = out / RESPONSES_FILE
    generate_s = None
    if cfg.resume and responses_path.exists():
        rows = [r for _, r in iter_jsonl(responses_path)]
    else:
        t0 = time.perf_counter()
        rows = []
        for k in range(cfg.samples_per_prompt):
            pairs = generate_ids(
                target, tok, prompts, max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample,
                temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed + k, chat=cfg.chat,
            )  # fmt: skip
            rows += [
                {
                    "prompt_index": i,
                    "sample_index": k,
                    "prompt": prompt,
                    "response": tok.decode(c, skip_special_tokens=True),
                    "prompt_ids": p,
                    "response_ids": c,
                }
                for i, (prompt, (p, c)) in enumerate(zip(prompts, pairs, strict=True))
            ]
        generate_s = time.perf_counter() - t0
        write_jsonl(responses_path, rows)
    # what the draft must predict: the completion's tokens, up to and including EOS
    sequences = [(r["prompt_ids"], r["response_ids"]) for r in rows if r["response_ids"]]
    if not sequences:
        raise BdnscaError("the target answered every prompt with nothing (EOS first); nothing to distill")
    dataset = out / "distill_dataset.jsonl"
    # token ids, not text: the draft learns the target's exact token sequences (decoding and
    # re-encoding can split words differently, and bytes of a partial UTF-8 character are lost)
    write_jsonl(
        dataset,
        [{"input_ids": p + c, "completion_mask": [0] * len(p) + [1] * len(c)} for p, c in sequences],
    )

    draft0 = AutoModelForCausalLM.from_pretrained(init_dir)
    before = agreement_on_ids(draft0, target, sequences)
    del draft0

    sft_cfg = SFTTrainingConfig(
        dataset=str(dataset),
        base_model=str(init_dir),
        output_dir=str(out / "sft"),
        learning_rate=lr,
        epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        batch_size=cfg.batch_size,
        max_length=cfg.max_length,
        seed=cfg.seed,
        resume=cfg.resume,
        quantization="none" if full else "auto",
        full_finetune=full,
        save_steps=25,
        logging_steps=1,
    )
    metrics = train_sft(sft_cfg)

    if full:
        draft = AutoModelForCausalLM.from_pretrained(out / "sft")
    else:
        from peft import PeftModel

        draft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(init_dir), out / "sft")
        draft = draft.merge_and_unload()
    draft = draft.to(torch.float32)

    def extra(stage: Path) -> None:
        if cfg.gguf:
            from bdnsca.train.gguf import write_llama_gguf

            write_llama_gguf(draft, tok, stage / "model.gguf")

    save_pretrained_folder(out / "draft", draft, tok, extra=extra)
    after = agreement_on_ids(draft, target, sequences)
    train = metrics["train"]
    summary = {
        "settings": asdict(cfg),
        "full_finetune": full,
        "learning_rate": lr,
        "prompts": len(prompts),
        "responses": len(rows),
        "empty_responses_skipped": len(rows) - len(sequences),
        "train_steps": metrics["train_steps"],
        "train_loss_first": train[0]["loss"] if train else None,
        "train_loss_last": train[-1]["loss"] if train else None,
        "agreement_before": before,
        "agreement_after": after,
        "agreement_measured_on": "the target's generated tokens on the training prompts (greedy next token)",
        "target": cfg.target,
        "draft_init_dir": str(init_dir),
        "draft_dir": str(out / "draft"),
        "gguf": str(out / "draft" / "model.gguf") if cfg.gguf else None,
        "gguf_before": str(init_dir / "model.gguf")
        if cfg.gguf and (init_dir / "model.gguf").exists()
        else None,
        "responses_file": str(responses_path),
        "generate_s": generate_s,
        "total_s": time.perf_counter() - started,
    }
    write_json(out / SUMMARY_FILE, summary)
    return summary


__all__ = [
    "DistillConfig",
    "check_same_tokenizer",
    "distill_draft",
    "encode_prompt",
    "agreement_on_ids",
    "generate_ids",
    "generate_responses",
    "next_token_agreement",
    "read_prompts",
]
