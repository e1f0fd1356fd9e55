"""train-sft on a tiny local model (CPU): the collated batch masks exactly the prompt tokens, the
loss falls, --from-run picks the best-rated response, and bad input is one line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from bdnsca.errors import BdnscaError, DataError
from bdnsca.train.sft import SFTTrainingConfig, build_sft_from_run, prepare_sft, read_sft_dataset, train_sft


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    out = tmp_path_factory.mktemp("tiny")
    make_tiny_model(out, TinyModelConfig(layers=2, hidden_size=32, heads=4, kv_heads=2, vocab_size=512))
    return out


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# Completions start with a space, and prompts end in a non-space: byte-level BPE never merges
# across a space, so the prompt's tokens are a prefix of the prompt+completion's.
ROWS = [
    {"prompt": "Greet the traveller:", "response": " Well met, traveller of the north road."},
    {"prompt": "Name the keeper of the Drowned Library. Answer:", "response": " Maelis."},
    {"prompt": "Q:", "response": " The citadel walls hold the bones of giants, or so the songs say."},
    {"prompt": "What does the smith sell?", "response": " Blades and nails."},
]


def config(tiny, data, out, **kw):
    base = dict(
        dataset=str(data),
        base_model=str(tiny),
        output_dir=str(out),
        max_steps=2,
        batch_size=4,
        logging_steps=1,
        save_steps=100,
        quantization="none",
        seed=0,
    )
    base.update(kw)
    return SFTTrainingConfig(**base)


def collate(prep, n):
    ds = prep.trainer.train_dataset
    return prep.trainer.data_collator([ds[i] for i in range(n)])


def test_collated_batch_masks_exactly_the_prompt_tokens(tiny, tmp_path):
    from transformers import AutoTokenizer

    data = write_jsonl(tmp_path / "sft.jsonl", ROWS)
    prep = prepare_sft(config(tiny, data, tmp_path / "out"))
    batch = collate(prep, len(ROWS))
    tok = AutoTokenizer.from_pretrained(tiny)
    for i, row in enumerate(ROWS):
        # independently: <s> + prompt tokens, then completion tokens + </s>, then padding
        prompt = tok(row["prompt"])["input_ids"]
        assert prompt[0] == tok.bos_token_id
        full = tok(row["prompt"] + row["response"])["input_ids"] + [tok.eos_token_id]
        assert full[: len(prompt)] == prompt
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        assert ids[: len(full)] == full
        assert labels[: len(prompt)] == [-100] * len(prompt)
        assert labels[len(prompt) : len(full)] == full[len(prompt) :]
        assert labels[len(full) :] == [-100] * (len(labels) - len(full))  # padding
        assert batch["attention_mask"][i].tolist() == [1] * len(full) + [0] * (len(labels) - len(full))


def test_full_sequence_loss_leaves_the_prompt_unmasked(tiny, tmp_path):
    """The control for the test above: with masking off, the prompt tokens are labels too."""
    data = write_jsonl(tmp_path / "sft.jsonl", ROWS)
    prep = prepare_sft(config(tiny, data, tmp_path / "out", completion_only_loss=False))
    batch = collate(prep, len(ROWS))
    mask = batch["attention_mask"].bool()
    assert (batch["labels"][mask] == batch["input_ids"][mask]).all()


def test_conversational_rows_mask_up_to_the_assistant_turn(tiny, tmp_path):
    from transformers import AutoTokenizer

    msgs = [
        {"role": "system", "content": "You are the smith."},
        {"role": "user", "content": "What do you sell?"},
        {"role": "assistant", "content": "Blades and nails."},
    ]
    data = write_jsonl(tmp_path / "chat.jsonl", [{"messages": msgs}])
    prep = prepare_sft(config(tiny, data, tmp_path / "out", batch_size=1))
    batch = collate(prep, 1)
    tok = AutoTokenizer.from_pretrained(tiny)
    prompt = tok.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(msgs, tokenize=False)
    assert full.startswith(prompt) and prompt.endswith("<|assistant|>\n")
    n = len(tok(prompt, add_special_tokens=False)["input_ids"])
    ids = tok(full, add_special_tokens=False)["input_ids"]
    labels = batch["labels"][0].tolist()
    assert batch["input_ids"][0].tolist()[: len(ids)] == ids
    assert labels[:n] == [-100] * n
    assert labels[n : len(ids)] == ids[n:]
    assert tok.decode(ids[n:]).startswith("Blades and nails.")


def test_tokenized_rows_mask_where_the_completion_mask_is_zero(tiny, tmp_path):
    rows = [
        {"input_ids": [1, 40, 41, 42, 50, 51, 2], "completion_mask": [0, 0, 0, 0, 1, 1, 1]},
        {"input_ids": [1, 60, 70, 2], "completion_mask": [0, 1, 1, 1]},
    ]
    prep = prepare_sft(
        config(tiny, write_jsonl(tmp_path / "ids.jsonl", rows), tmp_path / "out", batch_size=2)
    )
    batch = collate(prep, 2)
    assert batch["input_ids"][0].tolist() == rows[0]["input_ids"]
    assert batch["labels"][0].tolist() == [-100, -100, -100, -100, 50, 51, 2]
    assert batch["labels"][1].tolist()[:4] == [-100, 60, 70, 2]
    assert batch["labels"][1].tolist()[4:] == [-100] * 3


def test_loss_falls_and_outputs_are_written(tiny, tmp_path):
    """LoRA on the tiny random model: the frozen random head bounds how far the loss can fall
    (from ln 512 = 6.24 to ~5.7 in 30 steps), so the check is a clear fall, not a small loss."""
    data = write_jsonl(tmp_path / "sft.jsonl", ROWS)
    out = tmp_path / "out"
    m = train_sft(config(tiny, data, out, max_steps=16, learning_rate=1e-2, lora_dropout=0.0))
    losses = [h["loss"] for h in m["train"]]
    assert len(losses) == 16 and m["train_steps"] == 16
    assert m["train_rows"] == 4 and m["train_rows_dropped_by_max_length"] == 0
    assert losses[-1] < losses[0] - 0.3, losses
    for name in ("adapter_config.json", "training_config.json", "metrics.json", "training_curves.png"):
        assert (out / name).exists(), name
    assert json.loads((out / "training_config.json").read_text())["completion_only_loss"] is True
    trained = [json.loads(x) for x in (out / "sft_dataset.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in trained] == [r["response"] for r in ROWS]


def test_full_finetune_loss_falls_and_saves_full_weights(tiny, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", ROWS)
    out = tmp_path / "out"
    m = train_sft(config(tiny, data, out, max_steps=10, learning_rate=1e-2, full_finetune=True))
    losses = [h["loss"] for h in m["train"]]
    assert losses[-1] < losses[0] - 1.0, losses
    assert m["lora_target_modules"] == [] and m["full_finetune"] is True
    assert (out / "config.json").exists() and not (out / "adapter_config.json").exists()


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint(tiny, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", ROWS)
    out = tmp_path / "out"
    train_sft(config(tiny, data, out, max_steps=4, save_steps=2))
    m = train_sft(config(tiny, data, out, max_steps=8, save_steps=2, resume=True))
    assert m["resumed"] is True and m["train_steps"] == 8 and m["steps_this_run"] == 4


# ----------------------------------------------------------------------------- --from-run


def make_run(root, ratings=True, scores=True):
    run = root / "run"
    (run / "responses").mkdir(parents=True)
    write_jsonl(
        run / "scenarios.jsonl",
        [
            {"scenario_id": "s1", "reference_response": "Ref one."},
            {"scenario_id": "s2", "reference_response": "Ref two."},
            {"scenario_id": "s3"},
        ],
    )

    def resp(sid, arm, rep, text, idx, ok=True):
        return {
            "scenario_id": sid,
            "arm_id": arm,
            "repeat_index": rep,
            "request_index": idx,
            "prompt": f"[{arm}] prompt {sid}",
            "response": text,
            "ok": ok,
        }

    a = [
        resp("s1", "A", 0, "A s1 r0", 0),
        resp("s1", "A", 1, "A s1 r1", 1),
        resp("s2", "A", 0, "A s2 r0", 2),
        resp("s3", "A", 0, "A s3 failed", 3, ok=False),
    ]
    b = [resp("s1", "B", 0, "B s1", 0), resp("s2", "B", 0, "B s2", 1), resp("s3", "B", 0, "B s3", 2)]
    write_jsonl(run / "responses" / "A.jsonl", a)
    write_jsonl(run / "responses" / "B.jsonl", b)
    if scores:
        (run / "scores").mkdir()
        # A's repeat 1 scores higher than repeat 0; A's failed s3 row would win if it counted
        sa = [0.2, 0.6, 0.9, 0.99]
        sb = [0.1, 0.95, 0.3]
        write_jsonl(
            run / "scores" / "A.jsonl", [{**r, "overall_quality": s} for r, s in zip(a, sa, strict=True)]
        )
        write_jsonl(
            run / "scores" / "B.jsonl", [{**r, "overall_quality": s} for r, s in zip(b, sb, strict=True)]
        )
    if ratings:
        with open(run / "judge_ratings.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["scenario_id", "arm_id", "annotator_id", "overall_quality"])
            # s1: A mean 4.5 beats B 3.0 (the scores alone would pick A too); s2: B mean 4 beats
            # A mean 3.5 although A scores higher; s3 unrated: the scores decide
            w.writerows(
                [
                    ["s1", "A", "j1", 5],
                    ["s1", "A", "j2", 4],
                    ["s1", "B", "j1", 3],
                    ["s1", "B", "j2", 3],
                    ["s2", "A", "j1", 3],
                    ["s2", "A", "j2", 4],
                    ["s2", "B", "j1", 4],
                    ["s2", "B", "j2", 4],
                ]
            )
    return run


def picked(rows):
    return {r["metadata"]["scenario_id"]: r["completion"] for r in rows}


def test_from_run_picks_the_best_rated_response(tmp_path):
    run = make_run(tmp_path)
    rows = build_sft_from_run(run, ["A", "B"])
    # s1: A by rating, its higher-scored repeat; s2: B by rating; s3: B (A's row failed)
    assert picked(rows) == {"s1": "A s1 r1", "s2": "B s2", "s3": "B s3"}
    assert rows[0]["prompt"] == "[A] prompt s1"
    assert [r["metadata"]["source"] for r in rows] == ["judge_ratings", "judge_ratings", "scores"]
    assert rows[0]["metadata"]["score"] == pytest.approx(4.5)


def test_from_run_without_ratings_ranks_by_scores(tmp_path):
    run = make_run(tmp_path, ratings=False)
    assert picked(build_sft_from_run(run, ["A", "B"])) == {"s1": "A s1 r1", "s2": "B s2", "s3": "B s3"}
    assert picked(build_sft_from_run(run, ["A"])) == {"s1": "A s1 r1", "s2": "A s2 r0"}


def test_from_run_with_references(tmp_path):
    rows = build_sft_from_run(make_run(tmp_path), ["A"], use_references=True)
    assert [(r["prompt"], r["completion"]) for r in rows] == [
        ("[A] prompt s1", "Ref one."),
        ("[A] prompt s2", "Ref two."),
    ]


def test_from_run_trains_and_writes_the_built_set(tiny, tmp_path):
    run = make_run(tmp_path)
    out = tmp_path / "out"
    cfg = config(tiny, None, out, dataset=None, from_run=str(run), arms=("A", "B"), max_steps=1)
    train_sft(cfg)
    written = [json.loads(x) for x in (out / "sft_dataset.jsonl").read_text().splitlines()]
    assert picked(written) == {"s1": "A s1 r1", "s2": "B s2", "s3": "B s3"}


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"response": "x"}', "missing field 'prompt'"),
        ('{"prompt": "x"}', "missing field 'response'"),
        ('{"prompt": "x", "response": ""}', "field 'response' is empty"),
        ('{"prompt": "x", "response": ["y"]}', "must both be strings"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "must end with an assistant message"),
        ('{"input_ids": [1, 2], "completion_mask": [0]}', "one per input id"),
        ('{"input_ids": [1, 2], "completion_mask": [0, 0]}', "marks no completion token"),
        ('{"input_ids": [1, 2]}', "missing field 'completion_mask'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "response": " fine"}\n' + line + "\n")
    with pytest.raises(DataError, match=message) as exc:
        read_sft_dataset(path)
    assert f"{path}:2" in str(exc.value) and "\n" not in str(exc.value)


def test_empty_dataset(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        read_sft_dataset(path)


def test_prompts_filling_max_length_are_a_clear_error(tiny, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", ROWS)
    with pytest.raises(BdnscaError, match="fills --max-length 3 tokens"):
        prepare_sft(config(tiny, data, tmp_path / "out", max_length=3))


def test_unknown_arm_names_the_known_ones(tmp_path):
    with pytest.raises(BdnscaError, match=r"unknown arm 'C'.*\(the run has A, B\)"):
        build_sft_from_run(make_run(tmp_path), ["A", "C"])


def test_run_without_ratings_or_scores(tmp_path):
    with pytest.raises(BdnscaError, match="bdnsca score or judge first"):
        build_sft_from_run(make_run(tmp_path, ratings=False, scores=False), ["A"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--from-run", "{run}", "--arm", "Z"], "error: unknown arm 'Z'"),
        (["--dataset", "{empty}"], "error: {empty}: the SFT dataset is empty"),
        (["--from-run", "{run}"], "error: --from-run needs --arm"),
        ([], "error: train-sft needs exactly one of --dataset or --from-run"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    run = make_run(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    fill = lambda s: s.format(run=run, empty=empty)  # noqa: E731
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bdnsca.cli",
            "train-sft",
            "--base-model",
            str(tmp_path / "nomodel"),
            "--output-dir",
            str(tmp_path / "o"),
            *map(fill, args),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.strip().startswith(fill(message)), r.stderr
