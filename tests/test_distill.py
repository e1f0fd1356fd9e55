"""distill-draft on tiny models (CPU): training the draft on the target's own answers raises how
often the draft's greedy next token is the target's (what speculative decoding accepts), the
GGUF it writes has the target's vocabulary, and a draft with another tokenizer is refused."""

from __future__ import annotations

import json

import pytest

from bdnsca.errors import BdnscaError, DataError
from bdnsca.train.distill import (
    DistillConfig,
    agreement_on_ids,
    distill_draft,
    next_token_agreement,
    read_prompts,
)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    out = tmp_path_factory.mktemp("target")
    make_tiny_model(
        out, TinyModelConfig(layers=2, hidden_size=64, heads=4, kv_heads=2, vocab_size=512), gguf=True
    )
    return out


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    from bdnsca.data.npcworld import world

    qs = [q["query"] for q in world()["retrieval_gold_wide.jsonl"]][:12]
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt_id": f"p{i}", "prompt": q}) + "\n" for i, q in enumerate(qs)))
    return path


def test_distillation_raises_greedy_agreement_with_the_target(target, prompts, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "d"
    cfg = DistillConfig(
        target=str(target), draft_init="tiny", prompts=str(prompts), output_dir=str(out),
        max_new_tokens=16, max_steps=30, learning_rate=1e-2, tiny_hidden_size=32, gguf=True,
    )  # fmt: skip
    s = distill_draft(cfg)
    assert s["full_finetune"] is True and s["train_steps"] == 30
    # a random draft agrees with a random target by chance (~1/500 per token); distilled, far more
    assert s["agreement_before"] < 0.05
    assert s["agreement_after"] > s["agreement_before"] + 0.2, s

    # recomputed from the saved folders, by the text path (prompt and decoded answer re-encoded)
    tok = AutoTokenizer.from_pretrained(target)
    rows = [json.loads(x) for x in (out / "target_responses.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    t = AutoModelForCausalLM.from_pretrained(target)
    seqs = [(r["prompt_ids"], r["response_ids"]) for r in rows if r["response_ids"]]
    after = agreement_on_ids(AutoModelForCausalLM.from_pretrained(out / "draft"), t, seqs)
    assert after == pytest.approx(s["agreement_after"])
    p, c = [r["prompt"] for r in rows], [r["response"] for r in rows]
    text_before = next_token_agreement(AutoModelForCausalLM.from_pretrained(out / "draft_init"), t, tok, p, c)
    text_after = next_token_agreement(AutoModelForCausalLM.from_pretrained(out / "draft"), t, tok, p, c)
    assert text_after > text_before + 0.1

    # the stored answers are what generate() gives, BOS-prefixed prompt as serve-bench encodes it
    ids = tok(rows[0]["prompt"], return_tensors="pt")["input_ids"]
    assert ids[0, 0] == tok.bos_token_id and ids[0].tolist() == rows[0]["prompt_ids"]
    gen = t.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
    assert gen[0, ids.shape[1] :].tolist() == rows[0]["response_ids"]

    summary = json.loads((out / "distill.json").read_text())
    assert summary["agreement_after"] == pytest.approx(after)


@pytest.mark.slow
def test_the_draft_gguf_plugs_into_serve_bench(target, prompts, tmp_path):
    pytest.importorskip("llama_cpp", reason="serve-bench needs llama-cpp-python")
    from bdnsca.serve.llama import check_same_vocabulary

    out = tmp_path / "d"
    cfg = DistillConfig(
        target=str(target), draft_init="tiny", prompts=str(prompts), output_dir=str(out),
        max_new_tokens=8, max_steps=2, tiny_hidden_size=32, gguf=True,
    )  # fmt: skip
    distill_draft(cfg)
    check_same_vocabulary(target / "model.gguf", out / "draft" / "model.gguf")
    check_same_vocabulary(target / "model.gguf", out / "draft_init" / "model.gguf")


def test_a_draft_with_another_tokenizer_is_refused(target, prompts, tmp_path):
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    other = tmp_path / "other"
    make_tiny_model(other, TinyModelConfig(layers=1, hidden_size=16, heads=2, kv_heads=1, vocab_size=300))
    cfg = DistillConfig(
        target=str(target), draft_init=str(other), prompts=str(prompts), output_dir=str(tmp_path / "d")
    )
    with pytest.raises(BdnscaError, match="must share the target's tokenizer"):
        distill_draft(cfg)


def test_bad_prompts_file(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(DataError, match=r"p\.jsonl:2: missing or empty field 'prompt'"):
        read_prompts(path)
    path.write_text("")
    with pytest.raises(DataError, match="no prompts"):
        read_prompts(path)


def test_an_unrelated_output_folder_is_refused(target, prompts, tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cfg = DistillConfig(target=str(target), draft_init="tiny", prompts=str(prompts), output_dir=str(out))
    with pytest.raises(BdnscaError, match="not a distill-draft output"):
        distill_draft(cfg)


def test_cli_refuses_another_tokenizer_in_one_line(target, prompts, tmp_path):
    import subprocess
    import sys

    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    other = tmp_path / "other"
    make_tiny_model(other, TinyModelConfig(layers=1, hidden_size=16, heads=2, kv_heads=1, vocab_size=300))
    args = ["--target", target, "--draft-init", other, "--prompts", prompts, "--output-dir", tmp_path / "d"]
    r = subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", "distill-draft", *map(str, args)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"error: draft {other} has a vocabulary of"), r.stderr


def test_a_given_draft_gets_lora_merged_into_full_weights(target, prompts, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    init = tmp_path / "init"
    make_tiny_model(
        init, TinyModelConfig(layers=1, hidden_size=32, heads=2, kv_heads=1), tokenizer_from=target
    )
    cfg = DistillConfig(
        target=str(target), draft_init=str(init), prompts=str(prompts), output_dir=str(tmp_path / "d"),
        max_new_tokens=4, max_steps=3, learning_rate=1e-2,
    )  # fmt: skip
    s = distill_draft(cfg)
    assert s["full_finetune"] is False
    assert (tmp_path / "d" / "sft" / "adapter_config.json").exists()
    before = AutoModelForCausalLM.from_pretrained(init).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "d" / "draft").state_dict()
    assert before.keys() == after.keys()  # plain weights, no LoRA modules left
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)  # LoRA targets only; embeddings untouched
