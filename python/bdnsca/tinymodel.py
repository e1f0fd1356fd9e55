"""Tiny random-initialised Llama-architecture models with a tokenizer trained on the bundled NPC
world, so that every pipeline (preference training, serving) can be smoke-tested offline.

Nothing is downloaded. A target and a smaller draft model that share one vocabulary (for
speculative decoding) come from ``--tokenizer-from``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


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
) -> dict[str, Any]:
    """Writes a random-initialised LlamaForCausalLM and its tokenizer to ``output_dir``
    (and ``model.gguf`` with ``gguf=True``). Returns a description of what was written."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from bdnsca.npcworld import bundled_texts

    config = config or TinyModelConfig()
    config.validate()
    out = Path(output_dir)
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
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    info = {
        "path": str(out),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tok),
        "config": asdict(config),
        "tokenizer_from": str(tokenizer_from) if tokenizer_from else None,
    }
    if gguf:
        from bdnsca.gguf_writer import write_llama_gguf

        info["gguf"] = str(write_llama_gguf(model, tok, out / "model.gguf"))
    (out / "bdnsca_tiny_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
