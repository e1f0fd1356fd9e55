"""tiny-model: an offline Llama model, a tokenizer trained on the bundled text, a shared
vocabulary for draft models, and a GGUF that llama-cpp-python loads and computes the same
logits from."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

needs_torch = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("torch", "transformers", "tokenizers", "gguf")),
    reason="tiny models need torch, transformers, tokenizers and gguf (pip install 'bdnsca[train]')",
)
pytestmark = [pytest.mark.slow, needs_torch]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    out = tmp_path_factory.mktemp("target")
    r = subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", "tiny-model", "--output-dir", out, "--layers", "2",
         "--hidden-size", "64", "--gguf"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_tiny_model_files_and_tokenizer(target):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "model.gguf",
        "bdnsca_tiny_model.json",
    ):
        assert (target / name).exists(), name
    tok = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 2
    ids = tok("The harbor master charts a safe channel.")["input_ids"]
    assert len(ids) < 20  # trained on the bundled world: its words are whole tokens
    assert tok.decode(ids, skip_special_tokens=True) == "The harbor master charts a safe channel."
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|assistant|>\n")


def test_draft_shares_the_vocabulary(target, tmp_path):
    from transformers import AutoTokenizer

    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    info = make_tiny_model(tmp_path, TinyModelConfig(layers=1, hidden_size=32), tokenizer_from=target)
    assert (
        json.loads((target / "tokenizer.json").read_text())["model"]["vocab"]
        == json.loads((tmp_path / "tokenizer.json").read_text())["model"]["vocab"]
    )
    assert info["vocab_size"] == len(AutoTokenizer.from_pretrained(target))


def test_same_seed_same_weights(tmp_path):
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    make_tiny_model(tmp_path / "a", TinyModelConfig(seed=3))
    make_tiny_model(tmp_path / "b", TinyModelConfig(seed=3))
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (
        tmp_path / "b" / "model.safetensors"
    ).read_bytes()


def test_bad_shapes_are_errors(tmp_path):
    import bdnsca
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    with pytest.raises(bdnsca.BdnscaError, match="not divisible"):
        make_tiny_model(tmp_path, TinyModelConfig(hidden_size=30, heads=4))


def test_gguf_loads_in_llama_cpp_with_the_same_logits(target):
    llama_cpp = pytest.importorskip("llama_cpp")
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(target)
    hf = AutoModelForCausalLM.from_pretrained(target).eval()
    llm = llama_cpp.Llama(str(target / "model.gguf"), n_ctx=128, logits_all=True, verbose=False, seed=0)
    text = "You are the harbor master. A player asks how to chart a safe channel."
    ids = llm.tokenize(text.encode(), add_bos=True)
    assert ids == tok(text)["input_ids"]  # same tokenizer, bos included
    llm.eval(ids)
    ours = np.array(llm.scores[: len(ids)])
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-3)


def test_copy_task_training_runs_and_writes_demo_files(tmp_path):
    from bdnsca.train.tiny import COPY_PREFIX, TinyModelConfig, make_tiny_model

    out = tmp_path / "copy"
    info = make_tiny_model(out, TinyModelConfig(layers=1, hidden_size=32), copy_steps=4)
    ct = info["copy_task"]
    assert ct["steps"] == 4 and all(0 < p["loss"] < 100 for p in ct["loss_curve"])
    prompts = [json.loads(x) for x in (out / "copy_prompts.jsonl").read_text().splitlines()]
    refs = [json.loads(x) for x in (out / "copy_references.jsonl").read_text().splitlines()]
    # every bundled serving reference becomes a prompt whose answer is the reference itself
    from bdnsca.data.npcworld import world

    bundled = [r["reference_response"] for r in world()["serving_references.jsonl"]]
    assert [r["reference_response"] for r in refs] == bundled
    for p, r in zip(prompts, refs, strict=True):
        assert p["prompt_id"] == r["prompt_id"] and p["prompt"].startswith(COPY_PREFIX)
        assert r["reference_response"] in p["prompt"]


def test_a_rebuilt_model_folder_keeps_no_file_of_the_previous_build(tmp_path):
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    out = tmp_path / "m"
    make_tiny_model(out, TinyModelConfig(layers=1, hidden_size=32), gguf=True, copy_steps=1)
    assert (out / "model.gguf").exists() and (out / "copy_prompts.jsonl").exists()
    make_tiny_model(out, TinyModelConfig(layers=1, hidden_size=32))
    names = {p.name for p in out.iterdir()}
    assert "model.gguf" not in names and "copy_prompts.jsonl" not in names
    assert json.loads((out / "bdnsca_tiny_model.json").read_text()).get("gguf") is None
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no staging folder left
