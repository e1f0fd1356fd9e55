"""Writes a transformers Llama model and its byte-level BPE tokenizer as a GGUF file that
llama.cpp (and llama-cpp-python) loads, with the `gguf` package. Float32 tensors: this is for
the tiny smoke-test models, not for converting large checkpoints."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path

import numpy as np

from bdnsca.errors import BdnscaError


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """transformers' rotary layout (halves) to llama.cpp's (interleaved pairs), as
    llama.cpp's own converter does for q_proj and k_proj."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model, tokenizer, path: str | os.PathLike[str]) -> Path:
    import gguf

    cfg = model.config
    if cfg.model_type != "llama":
        raise BdnscaError(
            f"only Llama-architecture models can be written as GGUF here, not {cfg.model_type!r}"
        )
    path = Path(path)
    # unique per process, thread and call: two writers of one path never share a temp file
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex[:8]}.tmp")
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise BdnscaError("only byte-level BPE tokenizers can be written as GGUF here")
    vocab = spec["model"]["vocab"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    added = {t["id"]: t["content"] for t in spec.get("added_tokens", [])}
    n_vocab = len(tokenizer)
    tokens = [""] * n_vocab
    types = [gguf.TokenType.NORMAL] * n_vocab
    for tok, i in vocab.items():
        tokens[i] = tok
    for i, tok in added.items():
        tokens[i] = tok
        types[i] = gguf.TokenType.CONTROL
    if any(t == "" for t in tokens):
        raise BdnscaError("the tokenizer's vocabulary has gaps; cannot write GGUF")

    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("bdnsca tiny llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope_theta = getattr(cfg, "rope_theta", None) or (getattr(cfg, "rope_parameters", None) or {}).get(
        "rope_theta", 10000.0
    )
    w.add_rope_freq_base(float(rope_theta))
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    if tokenizer.pad_token_id is not None:
        w.add_pad_token_id(tokenizer.pad_token_id)
    if tokenizer.unk_token_id is not None:
        w.add_unk_token_id(tokenizer.unk_token_id)
    w.add_add_bos_token(True)
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)

    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd.get("lm_head.weight", sd["model.embed_tokens.weight"]))
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(
            f"blk.{i}.attn_q.weight", _permute(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads)
        )
        w.add_tensor(
            f"blk.{i}.attn_k.weight", _permute(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads)
        )
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
