"""tiny-model: an offline Llama model, a tokenizer trained on the bundled text, a shared
vocabulary for draft models, and a GGUF that llama-cpp-python loads and computes the same
logits from."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow


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
    assert ct["steps"] == 4 and [p["step"] for p in ct["loss_curve"]] == [0, 3]
    assert 0.0 <= ct["held_out_exact_copy_rate"] <= 1.0
    prompts = [json.loads(x) for x in (out / "copy_prompts.jsonl").read_text().splitlines()]
    refs = [json.loads(x) for x in (out / "copy_references.jsonl").read_text().splitlines()]
    assert len(prompts) == len(refs) == 48
    assert prompts[0]["prompt"].startswith(COPY_PREFIX)
    assert refs[0]["reference_response"] in prompts[0]["prompt"]
