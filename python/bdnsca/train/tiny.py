"""Tiny random-initialised Llama-architecture models with a tokenizer trained on the bundled NPC
world, so that every pipeline (preference training, serving) can be smoke-tested offline.

Nothing is downloaded. A target and a smaller draft model that share one vocabulary (for
speculative decoding) come from ``--tokenizer-from``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import write_json
from bdnsca.errors import BdnscaError
from bdnsca.train.common import check_replaceable, save_folder

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


COPY_PREFIX = "Repeat exactly:"
COPY_SUFFIX = "\nAnswer:"


def copy_prompt(text: str) -> str:
    """The copy task's prompt: the model answers with ``text`` itself."""
    return f"{COPY_PREFIX} {text}{COPY_SUFFIX}"


@dataclass
class TinyModelConfig:
    layers: int = 2
    hidden_size: int = 64
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int | None = None
    vocab_size: int = 1024
    max_position_embeddings: int = 2048
    seed: int = 0

    def validate(self) -> None:
        if self.layers < 1 or self.hidden_size < 8:
            raise BdnscaError("a tiny model needs at least 1 layer and a hidden size of at least 8")
        if self.hidden_size % self.heads:
            raise BdnscaError(f"hidden size {self.hidden_size} is not divisible by {self.heads} heads")
        if self.heads % self.kv_heads:
            raise BdnscaError(f"{self.heads} heads are not divisible by {self.kv_heads} key/value heads")


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained with `tokenizers`, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    # Encodings start with <s>, as llama.cpp's do (the GGUF says add_bos_token).
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_model(
    output_dir: str | os.PathLike[str],
    config: TinyModelConfig | None = None,
    *,
    tokenizer_from: str | os.PathLike[str] | None = None,
    gguf: bool = False,
    copy_steps: int = 0,
    progress: Any = None,
) -> dict[str, Any]:
    """Writes a random-initialised LlamaForCausalLM and its tokenizer to ``output_dir``
    (and ``model.gguf`` with ``gguf=True``), the folder replaced whole with one rename.
    Returns a description of what was written."""
    config = config or TinyModelConfig()
    config.validate()
    out = Path(output_dir)
    check_replaceable(out)

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from bdnsca.data.npcworld import bundled_texts

    if tokenizer_from is not None:
        tok = AutoTokenizer.from_pretrained(str(tokenizer_from))
    else:
        tok = train_tokenizer(bundled_texts(), config.vocab_size)
    torch.manual_seed(config.seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size or 2 * config.hidden_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_position_embeddings,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
    )
    model = LlamaForCausalLM(cfg)
    copy_info = None
    if copy_steps > 0:
        copy_info = train_copy_task(model, tok, copy_steps, seed=config.seed, progress=progress)
    info = {
        "path": str(out),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tok),
        "config": asdict(config),
        "tokenizer_from": str(tokenizer_from) if tokenizer_from else None,
    }
    if copy_info is not None:
        info["copy_task"] = copy_info

    def fill(stage: Path) -> None:
        model.save_pretrained(stage)
        tok.save_pretrained(stage)
        if copy_info is not None:
            write_copy_task_files(stage)
        if gguf:
            from bdnsca.train.gguf import write_llama_gguf

            write_llama_gguf(model, tok, stage / "model.gguf")
            info["gguf"] = str(out / "model.gguf")
        write_json(stage / "bdnsca_tiny_model.json", info)

    save_folder(out, fill)  # the folder appears whole, with one rename
    return info


def _copy_example(tok, text: str | list[int]) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids + EOS) for a text or a token list. The text follows a space in
    both places, so its tokens are the same in the prompt and in the answer: an exact copy."""
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    body = list(text) if isinstance(text, list) else enc(" " + text)
    return [tok.bos_token_id, *enc(COPY_PREFIX), *body, *enc(COPY_SUFFIX)], [*body, tok.eos_token_id]


def train_copy_task(
    model, tok, steps: int, *, seed: int = 0, batch_size: int = 32, lr: float = 2e-3, progress: Any = None
) -> dict[str, Any]:
    """Trains ``model`` in place to answer ``copy_prompt(text)`` with ``text``: a model that copies
    from its prompt, the case prompt-lookup decoding is for. Texts are word sequences drawn from the
    bundled retrieval corpus and queries, random words, and random tokens (so it must copy rather
    than recall); the serving references' sentences stay held out for the demo. On CPU, at hidden
    size 128, about 0.3 s a step; 1,500 steps learn to copy (loss ~0.2). Returns the loss curve and the
    held-out exact-copy rate."""
    import random

    import torch

    from bdnsca.data.npcworld import world

    w = world()
    held = [r["reference_response"] for r in w["serving_references.jsonl"]]
    texts = [d["text"] for d in w["retrieval_corpus_wide.jsonl"]] + [
        q["query"] for q in w["retrieval_gold_wide.jsonl"]
    ]
    words = sorted({x for t in [*texts, *held] for x in t.split()})
    special = set(tok.all_special_ids)
    ordinary = [i for i in range(len(tok)) if i not in special]
    rng = random.Random(seed)
    torch.manual_seed(seed)

    def sample() -> str | list[int]:
        r = rng.random()
        if r < 0.25:  # random tokens: every embedding learns to be copied
            return [rng.choice(ordinary) for _ in range(rng.randint(4, 60))]
        if r < 0.6:  # random words, the held-out texts' words included (not their sentences)
            return " ".join(rng.choice(words) for _ in range(rng.randint(4, 40)))
        seq = rng.choice(texts).split()
        i = rng.randint(0, max(0, len(seq) - 4))
        return " ".join(seq[i : i + rng.randint(4, 50)])

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    pad = tok.pad_token_id
    curve = []
    model.train()
    for step in range(steps):
        batch = [_copy_example(tok, sample()) for _ in range(batch_size)]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((batch_size, width), pad)
        labels = torch.full((batch_size, width), -100)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for i, (p, a) in enumerate(batch):
            seq = p + a
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            labels[i, len(p) : len(seq)] = torch.tensor(a)  # loss on the answer only
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            curve.append({"step": step, "loss": round(loss.item(), 5)})
        if progress:
            progress(step + 1, steps)
    model.eval()
    exact = 0
    with torch.no_grad():
        for text in held:
            p, a = _copy_example(tok, text)
            out = model.generate(torch.tensor([p]), max_new_tokens=len(a), do_sample=False, pad_token_id=pad)
            exact += out[0, len(p) :].tolist() == a
    return {"steps": steps, "loss_curve": curve, "held_out_exact_copy_rate": exact / len(held)}


def write_copy_task_files(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """copy_prompts.jsonl / copy_references.jsonl in ``folder``: the bundled serving references as
    copy-task prompts (held out from training), for ``serve-bench --prompts/--references``."""
    from bdnsca.data.io import write_jsonl
    from bdnsca.data.npcworld import world

    refs = world()["serving_references.jsonl"]
    folder = Path(folder)
    prompts = [
        {"prompt_id": r["prompt_id"], "prompt": copy_prompt(r["reference_response"]), "domain": r["domain"]}
        for r in refs
    ]
    answers = [{"prompt_id": r["prompt_id"], "reference_response": r["reference_response"]} for r in refs]
    write_jsonl(folder / "copy_prompts.jsonl", prompts)
    write_jsonl(folder / "copy_references.jsonl", answers)
    return folder / "copy_prompts.jsonl", folder / "copy_references.jsonl"
