"""Preference training on a tiny local model (CPU): every loss trains, DPO moves the eval reward
margin, resume continues, prompts are rendered and cut as the trainer sees them, a NaN fails
the run with valid metrics, the eval split keeps scenarios whole, saves replace a folder whole,
and the flags that cannot work here fail clearly."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bdnsca
from bdnsca.train import common
from bdnsca.train.common import finite_or_none, lora_target_modules, save_folder, save_pretrained_folder
from bdnsca.train.preference import (
    PreferenceTrainingConfig,
    TrainingDiverged,
    keep_prompt_end,
    load_preference_rows,
    prepare_training,
    read_preference_dataset,
    split_preference_rows,
    train_preferences,
)

TRAINING_DEPS = ("torch", "transformers", "trl", "peft", "datasets")
needs_training = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in TRAINING_DEPS),
    reason=f"preference training needs {', '.join(TRAINING_DEPS)} (pip install 'bdnsca[train]')",
)


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


# ----------------------------------------------------------------------------- training runs


@needs_training
@pytest.mark.slow
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
    assert metrics["status"] == "ok" and metrics["non_finite"] == []
    assert [h["step"] for h in metrics["eval"]] == [12, 24]  # each eval once
    step = metrics["train"][0]
    for key in ("loss", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert key in step
    # a Llama block's projections, known independently of the code that finds them
    assert json.loads((out / "training_config.json").read_text())["lora_target_modules"] == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj",
    ]  # fmt: skip


@needs_training
@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ipo", "orpo", "simpo"])
def test_every_loss_trains(tiny, prefs, tmp_path, loss):
    m = train_preferences(config(tiny, prefs, tmp_path / loss, loss=loss, max_steps=24, eval_fraction=0.0))
    assert m["train_steps"] == 24 and m["train"]
    losses = [h["loss"] for h in m["train"]]
    assert all(x is not None and math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]


@needs_training
@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(tiny, prefs, tmp_path):
    out = tmp_path / "resume"
    train_preferences(config(tiny, prefs, out, max_steps=12, eval_fraction=0.0))
    m = train_preferences(config(tiny, prefs, out, max_steps=24, eval_fraction=0.0, resume=True))
    assert m["resumed"] and m["train_steps"] == 24
    assert m["steps_this_run"] == 12  # only the steps after the checkpoint were run
    assert [h["step"] for h in m["train"]] == list(range(1, 25))  # one history, no restart


@needs_training
@pytest.mark.slow
def test_resume_without_checkpoint_is_an_error(tiny, prefs, tmp_path):
    with pytest.raises(bdnsca.BdnscaError, match="no checkpoint"):
        train_preferences(config(tiny, prefs, tmp_path / "empty", resume=True))


@needs_training
def test_4bit_without_cuda_is_a_clear_error(tiny, prefs, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only error")
    with pytest.raises(bdnsca.BdnscaError, match="needs a CUDA GPU"):
        train_preferences(config(tiny, prefs, tmp_path / "q", quantization="4bit"))


@needs_training
def test_fused_projections_are_targeted():
    from transformers import Phi3Config, Phi3ForCausalLM

    cfg = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=4, num_key_value_heads=4, pad_token_id=0)  # fmt: skip
    targets = lora_target_modules(Phi3ForCausalLM(cfg))
    assert "qkv_proj" in targets and "gate_up_proj" in targets and "lm_head" not in targets


@needs_training
@pytest.mark.slow
def test_merge_adapter(tiny, prefs, tmp_path):
    from transformers import AutoModelForCausalLM

    from bdnsca.train.common import merge_adapter

    train_preferences(config(tiny, prefs, tmp_path / "a", max_steps=4, eval_fraction=0.0))
    merge_adapter(str(tiny), str(tmp_path / "a"), str(tmp_path / "merged"))
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    base = AutoModelForCausalLM.from_pretrained(tiny)
    diff = sum(
        (a - b).abs().sum().item() for a, b in zip(merged.parameters(), base.parameters(), strict=True)
    )
    assert diff > 0  # the adapter changed the weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "merged"]  # no staging folder left


@needs_training
@pytest.mark.slow
@pytest.mark.parametrize("chat", [True, False], ids=["conversational", "plain"])
def test_prompt_tokens_are_the_chat_template_s_cut_to_their_end(tiny, prefs, tmp_path, chat):
    """The prompt tokens the DPO trainer trains on are the tokenizer's own rendering (its chat
    template for message lists), cut to the last max_prompt_length tokens with BOS kept."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    rows = [json.loads(x) for x in prefs.read_text().splitlines()]
    data = tmp_path / "data.jsonl"
    if chat:
        rows = [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            for r in rows
        ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n = 24
    prep = prepare_training(config(tiny, data, tmp_path / "out", max_prompt_length=n, eval_fraction=0.0))
    seen = list(prep.trainer.train_dataset)
    assert len(seen) == len(rows)  # nothing dropped for a long prompt

    def ids(x):
        return list(x["input_ids"]) if isinstance(x, dict) or hasattr(x, "keys") else list(x)

    cut = 0
    for row, ex in zip(rows, seen, strict=True):
        if chat:
            full = ids(tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True))
            with_answer = ids(tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=True))
            answer = row["chosen"][0]["content"]
            assert full[-2:] == tok("<|assistant|>\n", add_special_tokens=False)["input_ids"]
        else:
            full = tok(row["prompt"])["input_ids"]
            with_answer = tok(row["prompt"] + row["chosen"] + tok.eos_token)["input_ids"]
            answer = row["chosen"]
        assert full[0] == tok.bos_token_id
        if len(full) <= n:
            assert ex["prompt_ids"] == full
        else:
            cut += 1
            assert ex["prompt_ids"] == [tok.bos_token_id, *full[len(full) - (n - 1) :]]
        assert with_answer[-len(ex["chosen_ids"]) :] == ex["chosen_ids"]
        assert answer.strip() in tok.decode(ex["chosen_ids"])
    assert cut > 0


@needs_training
@pytest.mark.slow
def test_nan_loss_fails_the_run_after_writing_valid_metrics(tiny, prefs, tmp_path, monkeypatch):
    from trl import DPOTrainer

    original = DPOTrainer.compute_loss

    def nan_from_step_3(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.state.global_step < 2:
            return out
        return (out[0] * float("nan"), *out[1:]) if isinstance(out, tuple) else out * float("nan")

    monkeypatch.setattr(DPOTrainer, "compute_loss", nan_from_step_3)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match=r"diverged: non-finite .*train\[2\]"):
        train_preferences(config(tiny, prefs, out, max_steps=12, eval_fraction=0.0, save_steps=100))
    text = (out / "metrics.json").read_text()
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert metrics["status"] == "diverged"
    assert metrics["train"][1]["loss"] is not None and metrics["train"][2]["loss"] is None
    assert {"train[2].loss", "train[2].grad_norm"} <= set(metrics["non_finite"])
    assert metrics["train_steps"] == 3  # stopped at the first NaN, not after 12 steps
    assert not (out / "adapter_model.safetensors").exists()  # no NaN adapter to merge by mistake
    assert (out / "training_curves.png").exists()


@needs_training
@pytest.mark.slow
def test_failure_part_way_keeps_the_last_checkpoint_and_writes_no_adapter(tiny, prefs, tmp_path, monkeypatch):
    from bdnsca.train import preference as training

    def boom(self, *args, **kwargs):
        self.steps += 1
        if self.steps == 10:
            raise RuntimeError("simulated crash at step 10")

    monkeypatch.setattr(training._RunWatch, "on_step_end", boom)
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
    assert (out / "checkpoints" / "checkpoint-12").exists()  # carried into the new folder


# ----------------------------------------------------------------------------- data


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


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=2, max_size=25),
    fraction=st.floats(0.05, 0.9),
    seed=st.integers(0, 10_000),
    with_metadata=st.booleans(),
)
def test_eval_split_keeps_each_scenario_on_one_side(tmp_path_factory, sizes, fraction, seed, with_metadata):
    """Pairs of one scenario (by metadata, or by prompt when a row has none) never straddle the
    train/eval split, and every pair lands on exactly one side."""
    path = tmp_path_factory.mktemp("split") / "d.jsonl"
    rows = []
    for s, k in enumerate(sizes):
        for j in range(k):
            row = {"prompt": f"prompt {s}", "chosen": f"{s}/{j}", "rejected": "r"}
            if with_metadata:  # the prompt then differs per pair; the scenario is what counts
                row = {**row, "prompt": f"prompt {s}.{j}", "metadata": {"scenario_id": f"s{s}"}}
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded, groups = read_preference_dataset(path)
    train, held = split_preference_rows(loaded, groups, fraction, seed)
    scenario = lambda r: r["chosen"].split("/")[0]  # noqa: E731
    assert held and train
    assert not {scenario(r) for r in train} & {scenario(r) for r in held}
    assert sorted(r["chosen"] for r in train + held) == sorted(r["chosen"] for r in rows)
    assert len({scenario(r) for r in held}) == min(len(sizes) - 1, max(1, math.ceil(fraction * len(sizes))))


def test_eval_split_needs_two_scenarios(tmp_path):
    path = tmp_path / "d.jsonl"
    row = {"prompt": "p", "chosen": "c", "rejected": "r", "metadata": {"scenario_id": "s1"}}
    path.write_text((json.dumps(row) + "\n") * 4)
    rows, groups = read_preference_dataset(path)
    with pytest.raises(bdnsca.BdnscaError, match="at least two scenarios"):
        split_preference_rows(rows, groups, 0.25, 0)


def test_keep_prompt_end_by_hand():
    assert keep_prompt_end([1, 5, 6, 7, 8], 3, bos=1) == [1, 7, 8]
    assert keep_prompt_end([5, 6, 7, 8], 3, bos=1) == [6, 7, 8]
    assert keep_prompt_end([1, 5, 6], 3, bos=1) == [1, 5, 6]
    assert keep_prompt_end([1, 5, 6, 7], 1, bos=1) == [1]


def test_metrics_nan_and_inf_become_null_with_their_places():
    clean, bad = finite_or_none(
        {"train": [{"loss": 1.0, "grad_norm": float("nan")}, {"loss": float("inf")}], "n": 3}
    )
    assert clean == {"train": [{"loss": 1.0, "grad_norm": None}, {"loss": None}], "n": 3}
    assert bad == ["train[0].grad_norm", "train[1].loss"]
    json.dumps(clean, allow_nan=False)


# ----------------------------------------------------------------------------- saving a folder whole


class _Saver:
    """Stands in for a model or tokenizer: ``save_pretrained`` writes the given files, and can
    fail part-way, after writing the first."""

    def __init__(self, files: dict[str, str], fail: bool = False) -> None:
        self.files, self.fail = files, fail

    def save_pretrained(self, folder) -> None:
        for i, (name, text) in enumerate(self.files.items()):
            if self.fail and i == 1:
                raise OSError("disk full (simulated)")
            (Path(folder) / name).write_text(text)


def _listing(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "move-aside"])
def test_a_second_save_leaves_no_file_of_the_first(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(common, "_exchange", lambda a, b: False)
    dest = tmp_path / "adapter"
    first = _Saver({"adapter_config.json": "1", "adapter_model.bin": "old weights", "extra.txt": "x"})
    save_pretrained_folder(dest, first, _Saver({"tokenizer.json": "t1"}))
    (dest / "checkpoints").mkdir()
    (dest / "checkpoints" / "state").write_text("keep me")
    second = _Saver({"adapter_config.json": "2", "adapter_model.safetensors": "new weights"})
    save_pretrained_folder(dest, second, _Saver({"tokenizer.json": "t2"}), carry=("checkpoints",))
    assert _listing(dest) == {
        "adapter_config.json": "2",
        "adapter_model.safetensors": "new weights",
        "tokenizer.json": "t2",
        "checkpoints/state": "keep me",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # no staging or old folder left


def test_a_failed_save_leaves_the_previous_folder_as_it_was(tmp_path):
    dest = tmp_path / "merged"
    save_pretrained_folder(dest, _Saver({"config.json": "1", "model.safetensors": "w1"}), None)
    before = _listing(dest)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained_folder(dest, _Saver({"config.json": "2", "model.safetensors": "w2"}, fail=True), None)
    assert _listing(dest) == before
    assert [p.name for p in tmp_path.iterdir()] == ["merged"]


def test_a_folder_that_is_not_a_model_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(bdnsca.BdnscaError, match="not a saved model"):
        save_folder(tmp_path, lambda stage: (stage / "config.json").write_text("{}"))
    assert _listing(tmp_path) == {"notes.txt": "mine"}
