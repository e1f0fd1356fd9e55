"""Preference training on a tiny local model (CPU): every loss trains, DPO moves the eval reward
margin, resume continues, and the flags that cannot work here fail clearly."""

from __future__ import annotations

import json
import random

import pytest

import bdnsca
from bdnsca.train.preference import (
    PreferenceTrainingConfig,
    load_preference_rows,
    lora_target_modules,
    train_preferences,
)

pytest.importorskip("trl")
pytest.importorskip("peft")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    out = tmp_path_factory.mktemp("tiny")
    make_tiny_model(out, TinyModelConfig(layers=2, hidden_size=32, heads=4, kv_heads=2, vocab_size=512))
    return out


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    """Pairs drawn from the bundled world: the reference answer over a scrambled copy of it."""
    from bdnsca.data.npcworld import world

    w = world()
    rng = random.Random(0)
    rows = []
    for p, r in zip(w["serving_prompts.jsonl"], w["serving_references.jsonl"], strict=True):
        words = r["reference_response"].split()
        rows.append(
            {
                "prompt": p["prompt"],
                "chosen": r["reference_response"],
                "rejected": " ".join(rng.sample(words, len(words))),
            }
        )
    path = tmp_path_factory.mktemp("prefs") / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tiny, prefs, out, **kw):
    base = dict(
        dataset=str(prefs), base_model=str(tiny), output_dir=str(out), max_steps=24, batch_size=4,
        learning_rate=5e-3, lora_r=8, lora_alpha=16, max_length=192, max_prompt_length=96,
        eval_fraction=0.25, eval_steps=12, save_steps=12,
    )  # fmt: skip
    return PreferenceTrainingConfig(**{**base, **kw})


def test_dpo_moves_the_eval_margin_and_writes_everything(tiny, prefs, tmp_path):
    m = train_preferences(config(tiny, prefs, tmp_path / "dpo"))
    before = m["eval_initial"]["eval_rewards/margins"]
    after = m["eval_final"]["eval_rewards/margins"]
    assert before == pytest.approx(0.0, abs=1e-6) and after > before + 0.5
    assert m["eval_final"]["eval_loss"] < m["eval_initial"]["eval_loss"]
    out = tmp_path / "dpo"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "training_config.json",
                 "metrics.json", "training_curves.png"):  # fmt: skip
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [h["step"] for h in metrics["eval"]] == [12, 24]  # each eval once
    step = metrics["train"][0]
    for key in ("loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert key in step
    assert json.loads((out / "training_config.json").read_text())["lora_target_modules"] == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj",
    ]  # fmt: skip


@pytest.mark.parametrize("loss", ["ipo", "orpo", "simpo"])
def test_every_loss_trains(tiny, prefs, tmp_path, loss):
    m = train_preferences(config(tiny, prefs, tmp_path / loss, loss=loss, max_steps=24, eval_fraction=0.0))
    assert m["train_steps"] == 24 and m["train"]
    losses = [h["loss"] for h in m["train"]]
    assert all(x == x for x in losses)  # no NaN
    assert losses[-1] < losses[0]


def test_resume_continues_from_the_checkpoint(tiny, prefs, tmp_path):
    out = tmp_path / "resume"
    train_preferences(config(tiny, prefs, out, max_steps=12, eval_fraction=0.0))
    m = train_preferences(config(tiny, prefs, out, max_steps=24, eval_fraction=0.0, resume=True))
    assert m["resumed"] and m["train_steps"] == 24
    assert m["steps_this_run"] == 12  # only the steps after the checkpoint were run
    assert [h["step"] for h in m["train"]] == list(range(1, 25))  # one history, no restart


def test_resume_without_checkpoint_is_an_error(tiny, prefs, tmp_path):
    with pytest.raises(bdnsca.BdnscaError, match="no checkpoint"):
        train_preferences(config(tiny, prefs, tmp_path / "empty", resume=True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_4bit_without_cuda_is_a_clear_error(tiny, prefs, tmp_path):
    with pytest.raises(bdnsca.BdnscaError, match="needs a CUDA GPU"):
        train_preferences(config(tiny, prefs, tmp_path / "q", quantization="4bit"))


def test_fused_projections_are_targeted():
    from transformers import Phi3Config, Phi3ForCausalLM

    cfg = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=4, num_key_value_heads=4, pad_token_id=0)  # fmt: skip
    targets = lora_target_modules(Phi3ForCausalLM(cfg))
    assert "qkv_proj" in targets and "gate_up_proj" in targets and "lm_head" not in targets


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "p", "chosen": "c"}', "missing field 'rejected'"),
        ('{"prompt": "p", "chosen": "c", "rejected": 3}', "field 'rejected' must be a string"),
        (
            '{"prompt": "p", "chosen": "c", "rejected": [{"role": "assistant", "content": "x"}]}',
            "'chosen' and 'rejected' must both be strings",
        ),
    ],
)
def test_bad_dataset_rows(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n' + line + "\n")
    with pytest.raises(bdnsca.DataError, match="d.jsonl:2: " + message):
        load_preference_rows(path)
    path.write_text("")
    with pytest.raises(bdnsca.DataError, match="empty"):
        load_preference_rows(path)


def test_merge_adapter(tiny, prefs, tmp_path):
    from transformers import AutoModelForCausalLM

    from bdnsca.train.preference import merge_adapter

    train_preferences(config(tiny, prefs, tmp_path / "a", max_steps=4, eval_fraction=0.0))
    merge_adapter(str(tiny), str(tmp_path / "a"), str(tmp_path / "merged"))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    base = AutoModelForCausalLM.from_pretrained(tiny)
    diff = sum(
        (a - b).abs().sum().item() for a, b in zip(merged.parameters(), base.parameters(), strict=True)
    )
    assert diff > 0  # the adapter changed the weights


def test_conversational_rows_train_with_the_chat_template(tiny, prefs, tmp_path):
    rows = [json.loads(x) for x in prefs.read_text().splitlines()]
    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": [{"role": "user", "content": r["prompt"]}],
                    "chosen": [{"role": "assistant", "content": r["chosen"]}],
                    "rejected": [{"role": "assistant", "content": r["rejected"]}],
                }
            )
            + "\n"
            for r in rows
        )
    )
    m = train_preferences(config(tiny, chat, tmp_path / "chat", max_steps=6, eval_fraction=0.0))
    assert m["train_steps"] == 6 and m["train"][-1]["loss"] == m["train"][-1]["loss"]


def test_failure_part_way_keeps_the_last_checkpoint_and_writes_no_adapter(tiny, prefs, tmp_path, monkeypatch):
    from bdnsca.train import preference as training

    def boom(self, *args, **kwargs):
        self.steps += 1
        if self.steps == 10:
            raise RuntimeError("simulated crash at step 10")

    monkeypatch.setattr(training._StepCounter, "on_step_end", boom)
    out = tmp_path / "crash"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_preferences(config(tiny, prefs, out, max_steps=24, save_steps=4, eval_fraction=0.0))
    assert (out / "checkpoints" / "checkpoint-8" / "adapter_model.safetensors").exists()
    assert not (out / "adapter_model.safetensors").exists() and not (out / "metrics.json").exists()
    monkeypatch.undo()
    m = train_preferences(
        config(tiny, prefs, out, max_steps=12, save_steps=4, eval_fraction=0.0, resume=True)
    )
    assert m["steps_this_run"] == 4 and (out / "adapter_model.safetensors").exists()
