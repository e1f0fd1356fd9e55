"""Evaluation runs: ``bdnsca generate`` on tiny GGUF models (retrieval, determinism, resume,
failed requests, bad input) and ``bdnsca judge`` (blindness, both orders, position consistency,
verbosity, missing answers), with tiny judges and deterministic fake judges, and the CSV it
writes read by ``build-preferences``."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bdnsca.errors import BdnscaError
from bdnsca.eval.generate import TIMING_FIELDS, generate_run
from bdnsca.eval.judge import judge_run
from bdnsca.eval.judge_llm import FunctionJudge, JudgeRequest
from bdnsca.eval.judge_prompts import METRICS
from bdnsca.eval.scenarios import PromptTemplate, game_state_lines

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "retrieval_corpus_wide.jsonl"
SHARED_RUNS = [ROOT.parent / "shared" / "data" / "npc-ai" / r for r in ("proposal_run", "proposal_run_b")]

SCENARIOS = [
    {
        "scenario_id": "orchard_01",
        "persona": "You are Mara, a patient beekeeper who speaks softly.",
        "dynamic_context": "BehaviorTreeState=Tending; Location=West Orchard; RecentEvent=Frost tonight.",
        "player_input": "How do I prune the orchard at the west orchard?",
        "reference_response": "Cut the dead wood first, before the frost. Ask me again at dawn.",
        "scenario_tags": {"persona_archetype": "farmer"},
    },
    {
        "scenario_id": "envoy_02",
        "persona": "You are the Royal Envoy: formal, careful, never hurried.",
        "dynamic_context": "BehaviorTreeState=Negotiating; Location=Envoy Tent; NearbyEntity=Two guards",
        "player_input": "Where do we exchange hostages with the envoy?",
        "reference_response": "At the bridge, at noon, and not a moment sooner.",
        "scenario_tags": {"persona_archetype": "diplomat"},
    },
    {
        "scenario_id": "gate_03",
        "persona": "You are the Gatekeeper: strict, fair, brief.",
        "dynamic_context": "BehaviorTreeState=Patrolling; Location=Village Gate; RecentEvent=Theft; curfew",
        "player_input": "Let me into the royal archive right now.",
        "reference_response": "The archive is closed tonight. Show a permit.",
        "scenario_tags": {"persona_archetype": "gatekeeper"},
    },
]


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def _strip(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}


# ----------------------------------------------------------------------------- prompts (no model)


def test_default_template_renders_a_hand_written_prompt():
    s = {"persona": "P.", "dynamic_context": "A=1; B=x; y=2", "player_input": "Hi?"}
    from bdnsca.eval.scenarios import Passage

    got = PromptTemplate.load(None).render(s, True, [Passage("d1", "T", "some  text\nhere")])
    assert got == (
        "You are roleplaying one NPC in a narrative game.\nPersona: P.\nRules:\n- Stay in persona.\n"
        "- Write 2-3 natural sentences.\n"
        "- Return only spoken dialogue, no labels, no metadata, no templates.\n"
        "- Never output hidden fields such as Temporal Memories or BehaviorTreeState.\n"
        "Current dynamic game state:\n- A: 1\n- B: x\n- y: 2\n"
        "Use at least two concrete details from current dynamic game state.\n"
        "Relevant knowledge:\n- T: some text here\n"
        "Player says: Hi?\nNPC reply:"
    )
    bare = PromptTemplate.load(None).render(s, False)
    assert "Current dynamic game state is unavailable.\nPlayer says: Hi?\nNPC reply:" in bare
    assert "Relevant knowledge" not in bare and "\n\n" not in bare


def test_game_state_items_split_only_before_a_key():
    assert game_state_lines("Location=Gate; RecentEvent=alarm; curfew at dusk; NPC=Ann") == [
        "- Location: Gate",
        "- RecentEvent: alarm; curfew at dusk",
        "- NPC: Ann",
    ]


@pytest.mark.parametrize("run", SHARED_RUNS, ids=lambda p: p.name)
def test_default_template_reproduces_every_old_prompt(run):
    if not (run / "responses").is_dir():
        pytest.skip(f"shared run {run} not present (it lives in ../shared/data)")
    scenarios = {json.loads(line)["scenario_id"]: json.loads(line) for line in open(run / "scenarios.jsonl")}
    template = PromptTemplate.load(None)
    n = 0
    for f in sorted((run / "responses").glob("*.jsonl")):
        for line in open(f):
            row = json.loads(line)
            assert (
                template.render(scenarios[row["scenario_id"]], row["include_dynamic_context"])
                == row["prompt"]
            )
            n += 1
    assert n >= 500


def test_template_file_placeholders(tmp_path):
    t = tmp_path / "t.txt"
    t.write_text("{persona}\n{passages}\nJSON {like: this}\nQ: {player_input}\n", encoding="utf-8")
    got = PromptTemplate.load(t).render({"persona": "P", "player_input": "x"}, False)
    assert got == "P\nJSON {like: this}\nQ: x"  # the empty {passages} line is dropped, other braces kept
    t.write_text("{persona} {player_inptu}", encoding="utf-8")
    with pytest.raises(BdnscaError, match=r"unknown placeholder \{player_inptu\}"):
        PromptTemplate.load(t)


# ----------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two tiny GGUF models sharing a tokenizer, a BM25 index of the bundled corpus, a scenario
    file and an arms file (a retrieval arm on one model, a no-context arm on the other)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("building and serving the tiny models needs torch and llama-cpp-python")
    from bdnsca import build_index, read_corpus
    from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

    root = tmp_path_factory.mktemp("evalrun")
    make_tiny_model(root / "gen_a", TinyModelConfig(layers=2, hidden_size=64), gguf=True)
    make_tiny_model(
        root / "gen_b",
        TinyModelConfig(layers=1, hidden_size=32, seed=1),
        tokenizer_from=root / "gen_a",
        gguf=True,
    )
    build_index(read_corpus(CORPUS)).save(root / "npc.index")
    _write_jsonl(root / "scenarios.jsonl", SCENARIOS)
    (root / "arms.toml").write_text(
        'target_arm = "rag_contextual"\n'
        "[arms.rag_contextual]\n"
        'model = "gen_a/model.gguf"\n'
        f'retrieval = {{ index = "npc.index", corpus = "{CORPUS.as_posix()}", k = 2 }}\n'
        "[arms.plain_baseline]\n"
        'model = "gen_b/model.gguf"\n'
        "include_dynamic_context = false\n",
        encoding="utf-8",
    )
    return root


def _generate(world, out, **kw):
    kw = {"max_tokens": 12, "n_threads": 1, **kw}
    return generate_run(world / "scenarios.jsonl", world / "arms.toml", out, **kw)


def test_generate_writes_the_run_folder(world, tmp_path):
    from bdnsca import BM25

    r = _generate(world, tmp_path / "runs")
    run = r.run_dir
    assert run.parent == tmp_path / "runs" and not run.name.endswith(".incomplete")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [run.name]
    assert not (run / "status.json").exists()
    config = json.loads((run / "run_config.json").read_text())
    assert config["target_arm"] == "rag_contextual" and config["baseline_arm_ids"] == ["plain_baseline"]
    assert [a["arm_id"] for a in config["arms"]] == ["rag_contextual", "plain_baseline"]
    import hashlib

    for a in config["arms"]:
        assert a["model_sha256"] == hashlib.sha256(Path(a["model_path"]).read_bytes()).hexdigest()
    assert config["scenario_sha256"] == hashlib.sha256((world / "scenarios.jsonl").read_bytes()).hexdigest()
    assert [json.loads(x)["scenario_id"] for x in (run / "scenarios.jsonl").read_text().splitlines()] == [
        s["scenario_id"] for s in SCENARIOS
    ]
    bm25 = BM25.load(world / "npc.index")
    corpus = {json.loads(x)["doc_id"]: json.loads(x) for x in CORPUS.read_text().splitlines()}
    old_fields = set(
        "request_index repeat_index arm_id model scenario_id prompt response ok eval_count "
        "prompt_eval_count total_duration_ns reference_response retrieved_doc_ids".split()
    )
    for arm in ("rag_contextual", "plain_baseline"):
        rows = [json.loads(x) for x in (run / "responses" / f"{arm}.jsonl").read_text().splitlines()]
        assert [r["request_index"] for r in rows] == [1, 2, 3]
        for row, s in zip(rows, SCENARIOS, strict=True):
            assert old_fields <= set(row) and row["ok"] and row["arm_id"] == arm
            assert (
                row["scenario_id"] == s["scenario_id"]
                and row["reference_response"] == s["reference_response"]
            )
            assert 0 < row["eval_count"] <= 12 and row["prompt_eval_count"] > 0
            if arm == "rag_contextual":
                want = [d for d, _ in bm25.search(s["player_input"], 2)]
                assert row["retrieved_doc_ids"] == want and len(want) == 2
                for d in want:  # the passages' text is in the prompt
                    assert " ".join(corpus[d]["text"].split()) in row["prompt"]
                assert "Location: " in row["prompt"]
            else:
                assert row["retrieved_doc_ids"] is None
                assert "Current dynamic game state is unavailable." in row["prompt"]
                assert "Relevant knowledge" not in row["prompt"]


@pytest.fixture(scope="module")
def tiny_reranker(tmp_path_factory):
    """A cross-encoder folder: the packaged MiniLM with a seeded, untrained one-logit head (its
    ranking is arbitrary but fixed, so it differs from BM25's)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("a reranker needs sentence-transformers")
    import torch
    from sentence_transformers import CrossEncoder

    from bdnsca.retrieval.reranker import packaged_model_path

    folder = tmp_path_factory.mktemp("reranker") / "rr"
    torch.manual_seed(0)
    CrossEncoder(packaged_model_path(), num_labels=1, local_files_only=True).save(str(folder))
    return folder


def test_a_reranked_arm_keeps_the_rerankers_top_k_of_bm25s_top_n(world, tiny_reranker, tmp_path):
    from bdnsca import BM25, Reranker, read_corpus
    from bdnsca.retrieval.dense import model_sha256

    arms = tmp_path / "arms.toml"
    arms.write_text(
        "[arms.reranked]\n"
        f'model = "{(world / "gen_a" / "model.gguf").as_posix()}"\n'
        f'retrieval = {{ index = "{(world / "npc.index").as_posix()}", corpus = "{CORPUS.as_posix()}", '
        f'k = 2, reranker = "{tiny_reranker.as_posix()}", rerank_depth = 8 }}\n',
        encoding="utf-8",
    )
    r = generate_run(world / "scenarios.jsonl", arms, tmp_path / "runs", max_tokens=4, n_threads=1)
    rows = r.responses["reranked"]
    bm25 = BM25.load(world / "npc.index")
    corpus = read_corpus(CORPUS)
    direct = Reranker(str(tiny_reranker), corpus)
    docs = corpus.by_id()
    differs = 0
    for row, s in zip(rows, SCENARIOS, strict=True):
        top8 = [d for d, _ in bm25.search(s["player_input"], 8)]
        want = [d for d, _ in direct.rerank(s["player_input"], top8, top_k=2)]
        assert row["retrieved_doc_ids"] == want
        at = [row["prompt"].index(" ".join(docs[d].text.split())) for d in want]
        assert at == sorted(at)  # the passages go into the prompt in the reranker's order
        differs += want != top8[:2]
    assert differs, "the reranker never changed BM25's top 2: this test would not see it ignored"
    (arm,) = r.run_config["arms"]
    assert arm["retrieval"]["reranker"] == str(tiny_reranker) and arm["retrieval"]["rerank_depth"] == 8
    assert arm["retrieval"]["reranker_sha256"] == model_sha256(tiny_reranker)


def test_a_reranker_that_cannot_load_is_one_line_before_any_generation(world, tmp_path):
    (tmp_path / "empty").mkdir()
    for name in ("empty", "no/such/reranker"):
        arms = tmp_path / "arms.toml"
        arms.write_text(
            "[arms.x]\n"
            f'model = "{(world / "gen_a" / "model.gguf").as_posix()}"\n'
            f'retrieval = {{ index = "{(world / "npc.index").as_posix()}", corpus = "{CORPUS.as_posix()}", '
            f'reranker = "{name}" }}\n',
            encoding="utf-8",
        )
        out = tmp_path / "out"
        with pytest.raises(BdnscaError) as exc:
            generate_run(world / "scenarios.jsonl", arms, out)
        message = str(exc.value)
        assert message.startswith("retrieval reranker") and name in message and "\n" not in message
        assert not out.exists()


def test_generate_is_deterministic_and_resume_finishes_an_interrupted_run(world, tmp_path):
    full = _generate(world, tmp_path / "a", temperature=0.7)

    calls = []

    def interrupt(done, total, arm):
        calls.append(done)
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _generate(world, tmp_path / "b", temperature=0.7, progress=interrupt)
    (kept,) = (tmp_path / "b").iterdir()
    assert kept.name.endswith(".incomplete")
    status = json.loads((kept / "status.json").read_text())
    assert status["status"] == "incomplete" and status["completed_requests"] == 4
    assert status["planned_requests"] == 6 and "KeyboardInterrupt" in status["error"]
    done_lines = sum(len(p.read_text().splitlines()) for p in (kept / "responses").glob("*.jsonl"))
    assert done_lines == 4
    with open(kept / "responses" / "plain_baseline.jsonl", "a") as f:
        f.write('{"request_index": 3, "arm_id": "plain_baseline", "resp')  # a line cut by the interruption
    resumed = generate_run(resume=kept)
    assert resumed.run_dir == tmp_path / "b" / kept.name[: -len(".incomplete")]
    assert not kept.exists() and not (resumed.run_dir / "status.json").exists()
    for arm in ("rag_contextual", "plain_baseline"):
        a = (full.run_dir / "responses" / f"{arm}.jsonl").read_text().splitlines()
        b = (resumed.run_dir / "responses" / f"{arm}.jsonl").read_text().splitlines()
        assert [_strip(json.loads(x)) for x in a] == [_strip(json.loads(x)) for x in b]
    ca, cb = (json.loads((r / "run_config.json").read_text()) for r in (full.run_dir, resumed.run_dir))
    for c in (ca, cb):
        for k in ("run_id", "created_utc", "command"):
            c.pop(k)
    assert ca == cb
    with pytest.raises(BdnscaError, match="not an incomplete run"):
        generate_run(resume=resumed.run_dir)


def test_prompt_lookup_and_chat_arms(world, tmp_path):
    """Greedy decoding verified token by token: a prompt-lookup arm answers exactly as the plain arm
    of the same model; a chat arm wraps the prompt in the GGUF's template (more prompt tokens)."""
    arms = tmp_path / "arms.toml"
    model = (world / "gen_a" / "model.gguf").as_posix()
    arms.write_text(
        f'[arms.plain]\nmodel = "{model}"\n'
        f'[arms.lookup]\nmodel = "{model}"\nspeculative = "prompt-lookup:3"\n'
        f'[arms.chatted]\nmodel = "{model}"\nchat = true\n',
        encoding="utf-8",
    )
    r = generate_run(world / "scenarios.jsonl", arms, tmp_path / "runs", temperature=0.0, max_tokens=16,
                     n_threads=1)  # fmt: skip
    plain, lookup, chatted = (r.responses[a] for a in ("plain", "lookup", "chatted"))
    assert all(row["ok"] for rows in (plain, lookup, chatted) for row in rows)
    assert [x["raw_response"] for x in lookup] == [x["raw_response"] for x in plain]
    assert any(x["eval_count"] > 0 for x in plain)
    assert {x["speculative"] for x in lookup} == {"prompt-lookup:3"}
    for p, c in zip(plain, chatted, strict=True):
        assert c["prompt"] == p["prompt"] and c["prompt_eval_count"] > p["prompt_eval_count"]
    config = json.loads((r.run_dir / "run_config.json").read_text())
    by_arm = {a["arm_id"]: a for a in config["arms"]}
    assert by_arm["chatted"]["chat"] is True and by_arm["lookup"]["speculative"] == "prompt-lookup:3"


def test_a_seed_changes_the_responses(world, tmp_path):
    a = _generate(world, tmp_path / "a", temperature=1.0, seed=1)
    b = _generate(world, tmp_path / "b", temperature=1.0, seed=2)
    ra = [r["response"] for rows in a.responses.values() for r in rows]
    rb = [r["response"] for rows in b.responses.values() for r in rows]
    assert ra != rb


def test_a_prompt_that_does_not_fit_is_a_failed_row(world, tmp_path):
    r = _generate(world, tmp_path, n_ctx=64)
    for rows in r.responses.values():
        assert len(rows) == 3
        for row in rows:
            assert row["ok"] is False and "does not fit --n-ctx 64" in row["error"] and row["response"] == ""


def _bad_input_cases(world, tmp):
    no_input = _write_jsonl(tmp / "no_input.jsonl", [{**SCENARIOS[0], "player_input": ""}])
    missing = tmp / "missing.toml"
    missing.write_text('[arms.x]\nmodel = "nowhere.gguf"\n')
    notgguf = tmp / "notgguf.toml"
    (tmp / "m.bin").write_bytes(b"\x00" * 64)
    notgguf.write_text('[arms.x]\nmodel = "m.bin"\n')
    # an index of the corpus, while the arm's corpus holds only some of its documents
    part = tmp / "part.jsonl"
    part.write_text("".join(CORPUS.read_text().splitlines(keepends=True)[:10]))
    foreign = tmp / "foreign.toml"
    foreign.write_text(
        f'[arms.x]\nmodel = "{(world / "gen_a" / "model.gguf").as_posix()}"\n'
        f'retrieval = {{ index = "{(world / "npc.index").as_posix()}", corpus = "{part.as_posix()}" }}\n'
    )
    arms = world / "arms.toml"
    scen = world / "scenarios.jsonl"
    return [
        ([no_input, arms], "missing or empty field 'player_input'"),
        ([scen, missing], "does not exist"),
        ([scen, notgguf], "is not a GGUF file"),
        ([scen, foreign], "are not in the corpus"),
    ]


def test_bad_input_is_one_line_before_any_generation(world, tmp_path):
    for (scen, arms), message in _bad_input_cases(world, tmp_path):
        out = tmp_path / "out"
        r = _cli("generate", "--scenarios", scen, "--arms", arms, "--output-root", out)
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr
        assert not out.exists() or not any(out.iterdir())
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 60)
    r = _cli("judge", "--run-dir", tmp_path, "--judge", world / "gen_a" / "model.gguf")
    assert r.returncode == 1 and "has no responses" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    run = _synthetic_run(tmp_path / "run", {"x": {"s1": "a b"}, "y": {"s1": "c"}})
    r = _cli("judge", "--run-dir", run, "--judge", broken)
    assert r.returncode == 1 and "judge model" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (run / "judge_ratings.csv").exists()


@pytest.mark.slow
def test_chain_generate_score_judge_build_preferences_on_the_bundled_scenarios(world, tmp_path):
    """The issue's chain, as a user runs it, on the bundled scenarios: generate (a retrieval arm over
    the bundled corpus's index and a no-context arm) -> score -> judge (two tiny judges, on a
    seeded sample of 40 scenarios to keep CI short) -> build-preferences reads the judge's CSV."""
    bundled = ROOT / "data" / "scenarios.jsonl"
    scenarios = [json.loads(x) for x in bundled.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(scenarios) >= 100
    r = _cli("generate", "--scenarios", bundled, "--arms", world / "arms.toml",
             "--output-root", tmp_path, "--max-tokens", "12", "--n-threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (run,) = tmp_path.iterdir()
    config = json.loads((run / "run_config.json").read_text())
    assert config["n_scenarios"] == len(scenarios)
    sids = [s["scenario_id"] for s in scenarios]
    texts = {}
    for arm in ("rag_contextual", "plain_baseline"):
        rows = [json.loads(x) for x in (run / "responses" / f"{arm}.jsonl").read_text().splitlines()]
        assert [row["scenario_id"] for row in rows] == sids and all(row["ok"] for row in rows)
        assert all((row["retrieved_doc_ids"] is not None) == (arm == "rag_contextual") for row in rows)
        texts[arm] = {row["scenario_id"]: row["response"] for row in rows}

    r = _cli("score", "--run-dir", run, "--resamples", "200")
    assert r.returncode == 0, r.stderr
    for arm in ("rag_contextual", "plain_baseline"):
        scored = [json.loads(x) for x in (run / "scores" / f"{arm}.jsonl").read_text().splitlines()]
        assert [row["scenario_id"] for row in scored] == sids
        for row in scored:
            assert 0.0 <= row["overall_quality"] <= 1.0 and 0.0 <= row["lexical_richness"] <= 1.0

    judges = [world / "gen_a" / "model.gguf", world / "gen_b" / "model.gguf"]
    r = _cli("judge", "--run-dir", run, "--judge", judges[0], "--judge", judges[1], "--temperatures", "0.7",
             "--max-scenarios", "40", "--sample-seed", "3", "--n-threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads((run / "judge_summary.json").read_text())
    assert len(summary["annotators"]) == 2 and summary["scenarios"]["judged"] == 40
    assert summary["self_judging"] == [  # each judge also generated an arm
        {"judge": "gen_a_model", "arm_id": "rag_contextual"},
        {"judge": "gen_b_model", "arm_id": "plain_baseline"},
    ]
    assert summary["parse_failure_rate"]["questions"] == 0.0, "constrained decoding must parse"
    requests = [json.loads(x) for x in (run / "judge_requests.jsonl").read_text().splitlines()]
    forbidden = {"rag_contextual", "plain_baseline", "gen_a", "gen_b", "model.gguf"}
    forbidden |= {str(p) for p in judges} | {"gen_a/model.gguf", "gen_b/model.gguf"}
    for q in requests:
        low = q["prompt"].lower()
        assert not [w for w in forbidden if w.lower() in low], q["prompt"]
    _assert_both_orders(requests, n_annotators=2)

    from bdnsca.prefs.ratings import read_ratings

    ratings = read_ratings(run / "judge_ratings.csv", (1, 5))
    assert ratings.metrics == list(METRICS) and set(ratings.arms) == {"rag_contextual", "plain_baseline"}
    with open(run / "judge_ratings.csv", newline="", encoding="utf-8") as f:
        csv_rows = list(csv.DictReader(f))
    overall: dict = {}
    for row in csv_rows:
        overall.setdefault((row["scenario_id"], row["arm_id"]), []).append(float(row["overall_quality"]))
    rated = {sid for sid, _ in overall}
    assert len(rated) == 40 and rated <= set(sids)
    r = _cli("build-preferences", "--run-dir", run, "--human-eval-file", run / "judge_ratings.csv",
             "--target-arm", "rag_contextual", "--baseline-arms", "plain_baseline",
             "--min-margin", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    pref = json.loads((run / "preference_dataset_summary.json").read_text())
    assert pref["rated_scenarios"] == 40 and pref["scenarios"] == len(scenarios)
    pairs = [json.loads(x) for x in (run / "preference_dataset.jsonl").read_text().splitlines()]
    # recomputed from the CSV: a pair where the target's mean overall rating beats the baseline's
    mean = {k: sum(v) / len(v) for k, v in overall.items()}
    want = {s for s in rated if mean[(s, "rag_contextual")] > mean[(s, "plain_baseline")]}
    assert want, "the tiny judges never preferred the target: the pairs would prove nothing"
    assert {p["metadata"]["scenario_id"] for p in pairs} == want and len(pairs) == len(want)
    for p in pairs:
        sid = p["metadata"]["scenario_id"]
        assert p["chosen"] == texts["rag_contextual"][sid] and p["rejected"] == texts["plain_baseline"][sid]


def _assert_both_orders(requests, n_annotators):
    shown: dict = {}
    for q in requests:
        if q["kind"] == "pairwise" and q["ok"]:
            key = (q["scenario_id"], q["annotator_id"], frozenset(q["arms_shown"]))
            shown.setdefault(key, set()).add(tuple(q["arms_shown"]))
    assert shown and all(len(v) == 2 for v in shown.values())
    assert len({k[1] for k in shown}) == n_annotators


# ----------------------------------------------------------------------------- fake judges


def _synthetic_run(run: Path, responses: dict[str, dict[str, str]], model: str = "phi3:mini") -> Path:
    """A run folder written by hand: arm -> scenario -> response text."""
    (run / "responses").mkdir(parents=True)
    sids = sorted({s for r in responses.values() for s in r})
    scen = [{"scenario_id": s, "persona": "You are Ann, a smith.", "dynamic_context": "Location=Forge",
             "player_input": f"Tell me about {s}."} for s in sids]  # fmt: skip
    _write_jsonl(run / "scenarios.jsonl", scen)
    arms = [{"arm_id": a, "model": model, "include_dynamic_context": True} for a in responses]
    (run / "run_config.json").write_text(json.dumps({"arms": arms, "target_arm": next(iter(responses))}))
    for arm, texts in responses.items():
        rows = [
            {"request_index": i + 1, "repeat_index": 0, "arm_id": arm, "model": model, "scenario_id": s,
             "prompt": "p", "response": t, "ok": True}
            for i, (s, t) in enumerate(texts.items())
        ]  # fmt: skip
        _write_jsonl(run / "responses" / f"{arm}.jsonl", rows)
    return run


def _answer(req: JudgeRequest, pick) -> str:
    if req.kind == "pointwise":
        return json.dumps({"rationale": "ok", **{m: pick(req, m) for m in METRICS}})
    return json.dumps({"rationale": "ok", **{m: pick(req, m) for m in METRICS}})


def always_a(req: JudgeRequest) -> str:
    return _answer(req, lambda r, m: "A" if r.kind == "pairwise" else 3)


def prefers_longer(req: JudgeRequest) -> str:
    def pick(r, m):
        if r.kind == "pointwise":
            return min(5, len(r.responses[0].split()))
        a, b = (len(t.split()) for t in r.responses)
        return "A" if a > b else "B" if b > a else "tie"

    return _answer(req, pick)


# scenario -> (long arm) ; "long" has 2 longer responses of 3, "short" 1
LENGTHS = {
    "long": {"s1": "one two three four five", "s2": "one two three four", "s3": "one"},
    "short": {"s1": "one two", "s2": "one", "s3": "one two three"},
}


def test_always_a_judge_is_never_position_consistent(tmp_path):
    run = _synthetic_run(tmp_path, LENGTHS)
    res = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0], mode="pairwise")
    pw = res.summary["pairwise"]
    assert res.summary["position_consistency_rate"] == 0.0
    assert all(pw["position_consistency"][m] == 0.0 for m in METRICS)
    assert all(pw["tie_rate"][m] == 1.0 for m in METRICS) and all(
        pw["raw_tie_rate"][m] == 0.0 for m in METRICS
    )
    assert all(pw["first_position_preference"][m] == 1.0 for m in METRICS)
    for m in METRICS:
        w = pw["win_rates"][m]["long"]["short"]
        assert w["rate"] == 0.5 and w["ci95"] == [0.5, 0.5] and w["scenarios"] == 3
    assert all(pw["verbosity"][m]["decisive_with_length_difference"] == 0 for m in METRICS)
    _assert_both_orders(res.requests, n_annotators=1)
    # pairwise-only ratings: every arm's soft win share is one half -> 3 on 1-5
    rows = list(csv.DictReader(open(run / "judge_ratings.csv")))
    assert len(rows) == 6 and {r["overall_quality"] for r in rows} == {"3.0"}


def test_a_judge_preferring_longer_responses_shows_a_verbosity_preference(tmp_path):
    run = _synthetic_run(tmp_path, LENGTHS)
    res = judge_run(run, [FunctionJudge("fl", prefers_longer)], temperatures=[0.0])
    s = res.summary
    assert s["position_consistency_rate"] == 1.0
    for m in METRICS:
        v = s["verbosity"][m]
        assert v["longer_wins_rate"] == 1.0 and v["decisive_with_length_difference"] == 3
        assert 0.4 < v["ci95"][0] < 0.5 and v["ci95"][1] == 1.0  # Wilson, k = n = 3: [0.438, 1]
        assert s["pointwise"]["verbosity"][m]["longer_wins_rate"] == 1.0
        # "long" wins s1 and s2, loses s3: 2/3 by hand
        assert s["win_rates"][m]["long"]["short"]["rate"] == pytest.approx(2 / 3)
        assert s["win_rates"][m]["short"]["long"]["rate"] == pytest.approx(1 / 3)
        assert s["pairwise"]["tie_rate"][m] == 0.0
    rows = list(csv.DictReader(open(run / "judge_ratings.csv")))
    by = {(r["scenario_id"], r["arm_id"]): r for r in rows}
    assert by[("s1", "long")]["naturalness"] == "5" and by[("s3", "long")]["naturalness"] == "1"
    assert s["pointwise"]["mean"]["long"]["overall_quality"] == pytest.approx((5 + 4 + 1) / 3)


def test_judge_prompts_are_blind_even_when_a_response_names_its_model(tmp_path):
    run = _synthetic_run(
        tmp_path,
        {
            "arm_x": {"s1": "As phi3:mini I say hello, arm_y.", "s2": "hi"},
            "arm_y": {"s1": "PHI3 is fine.", "s2": "yo"},
        },
    )
    res = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0, 0.5])
    assert res.summary["redactions"] >= 3
    for q in res.requests:
        low = q["prompt"].lower()
        assert "arm_x" not in low and "arm_y" not in low and "phi3" not in low
    assert any("[redacted]" in q["prompt"] for q in res.requests)
    assert res.summary["annotators"] == ["fa__t0.00", "fa__t0.50"]


def test_pair_order_is_randomised_from_the_seed_and_every_pair_is_judged_both_ways(tmp_path):
    texts = {f"s{i:02d}": "x" for i in range(30)}
    run = _synthetic_run(tmp_path, {"p": texts, "q": dict(texts)})

    def firsts(seed):
        res = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0], mode="pairwise", seed=seed)
        _assert_both_orders(res.requests, 1)
        return [p["orders"][0]["a"] for p in res.pairs]

    f1 = firsts(1)
    assert 5 < f1.count("p") < 25  # randomised, not always the same arm first
    assert firsts(1) == f1 and firsts(2) != f1


def test_unparseable_answers_are_retried_then_missing_never_defaulted(tmp_path):
    run = _synthetic_run(tmp_path, {"x": {"s1": "a", "s2": "b"}, "y": {"s1": "c", "s2": "d"}})
    calls = {"n": 0}

    def flaky(req):
        calls["n"] += 1
        return "not json" if calls["n"] % 2 else always_a(req)

    res = judge_run(run, [FunctionJudge("flaky", flaky), FunctionJudge("bad", lambda r: '{"rationale": "x"')],
                    temperatures=[0.0], mode="pointwise", retries=2)  # fmt: skip
    s = res.summary
    assert s["requests"]["questions"] == 8 and s["requests"]["missing"] == 4
    assert s["parse_failure_rate"]["questions"] == 0.5
    bad = [q for q in res.requests if q["judge"] == "bad"]
    assert len(bad) == 4 * 3 and all(not q["ok"] and q["raw"] == '{"rationale": "x"' for q in bad)
    flaky_rows = [q for q in res.requests if q["judge"] == "flaky"]
    assert [q["ok"] for q in flaky_rows] == [False, True] * 4
    rows = list(csv.DictReader(open(run / "judge_ratings.csv")))
    for r in rows:
        if r["annotator_id"] == "bad__t0.00":
            assert all(r[m] == "" for m in METRICS) and r["notes"].startswith("missing")
        else:
            assert all(r[m] == "3" for m in METRICS)


def test_alpha_matches_the_krippendorff_package(tmp_path):
    krippendorff = pytest.importorskip("krippendorff", reason="the independent alpha needs krippendorff")
    import numpy as np

    texts = {f"s{i}": " ".join(["w"] * (1 + i % 5)) for i in range(12)}
    run = _synthetic_run(tmp_path, {"x": texts, "y": {k: v + " w w" for k, v in texts.items()}})

    def noisy(req):
        n = len(req.responses[0].split())
        return _answer(req, lambda r, m: 1 + (n * 7 + len(m)) % 5)

    res = judge_run(run, [FunctionJudge("l", prefers_longer), FunctionJudge("n", noisy)],
                    temperatures=[0.0], mode="pointwise")  # fmt: skip
    rows = list(csv.DictReader(open(run / "judge_ratings.csv")))
    units = sorted({(r["scenario_id"], r["arm_id"]) for r in rows})
    for m in METRICS:
        data = np.full((2, len(units)), np.nan)
        for r in rows:
            data[
                ["l__t0.00", "n__t0.00"].index(r["annotator_id"]),
                units.index((r["scenario_id"], r["arm_id"])),
            ] = float(r[m])
        want = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
        assert res.summary["krippendorff_alpha"][m] == pytest.approx(want, abs=1e-9)


def test_judge_csv_feeds_build_preferences(tmp_path):
    from bdnsca.prefs.build import build_preferences

    run = _synthetic_run(tmp_path, LENGTHS)
    judge_run(
        run, [FunctionJudge("a", prefers_longer), FunctionJudge("b", prefers_longer)], temperatures=[0.0]
    )
    res = build_preferences(run, run / "judge_ratings.csv", target_arm="long", baseline_arms=["short"],
                            min_raters=2, min_margin=0.25, allow_reverse_pairs=True)  # fmt: skip
    pairs = res.train
    assert len(pairs) == 3
    for p in pairs:  # the longer response is always chosen
        assert len(p["chosen"].split()) > len(p["rejected"].split())
    # without --human-eval-file, a folder judged by bdnsca is read from its judge_ratings.csv
    again = build_preferences(run, None, target_arm="long", baseline_arms=["short"],
                              min_raters=2, min_margin=0.25, allow_reverse_pairs=True)  # fmt: skip
    assert again.train == pairs


def test_arms_and_scenario_sampling(tmp_path):
    texts = {f"s{i:02d}": "a b" for i in range(20)}
    run = _synthetic_run(tmp_path, {"x": texts, "y": dict(texts), "z": dict(texts)})
    res = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0], arms=["x", "z"],
                    max_scenarios=5, sample_seed=3)  # fmt: skip
    assert res.summary["scenarios"] == {"available": 20, "judged": 5, "sampled": True}
    assert {r["arm_id"] for r in res.ratings} == {"x", "z"}
    sampled = sorted({r["scenario_id"] for r in res.ratings})
    again = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0], arms=["x", "z"],
                      max_scenarios=5, sample_seed=3)  # fmt: skip
    assert sorted({r["scenario_id"] for r in again.ratings}) == sampled
    with pytest.raises(BdnscaError, match="'w' has no responses"):
        judge_run(run, [FunctionJudge("fa", always_a)], arms=["x", "w"])
    with pytest.raises(BdnscaError, match="at least two arms"):
        judge_run(run, [FunctionJudge("fa", always_a)], arms=["x"])


def test_generate_cli_needs_inputs_and_resume_takes_none(tmp_path):
    r = _cli("generate", "--output-root", tmp_path)
    assert r.returncode == 2 and "--scenarios and --arms" in r.stderr
    (tmp_path / "x.incomplete").mkdir()
    r = _cli("generate", "--resume", tmp_path / "x.incomplete", "--seed", "3")
    assert r.returncode == 2 and "drop --seed" in r.stderr
    r = _cli("generate", "--resume", tmp_path / "x.incomplete")
    assert r.returncode == 1 and "not an incomplete run" in r.stderr


def test_an_interrupted_responses_file_is_read_back_whole(tmp_path):
    from bdnsca.errors import DataError
    from bdnsca.eval.generate import _read_partial

    f = tmp_path / "arm.jsonl"
    f.write_text('{"request_index": 1}\n{"request_index": 2}')  # the last row complete, its newline not
    assert [r["request_index"] for r in _read_partial(f)] == [1, 2]
    assert f.read_text().endswith("}\n")  # the next appended row starts a line of its own
    f.write_text('{"request_index": 1}\n{"request_ind')
    assert [r["request_index"] for r in _read_partial(f)] == [1]
    assert f.read_text() == '{"request_index": 1}\n'
    f.write_text('{"request_ind\n{"request_index": 2}\n')
    with pytest.raises(DataError, match="arm.jsonl:1: malformed row"):
        _read_partial(f)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[arms.a]\nmodel = "m.gguf"\ntemperature = 0.1\n', "unknown key 'temperature'"),
        ("[arms.a]\ninclude_dynamic_context = true\n", "missing 'model'"),
        ('target_arm = "b"\n[arms.a]\nmodel = "m.gguf"\n', "target_arm 'b' is not one of the arms"),
        (
            '[arms.a]\nmodel = "m.gguf"\nretrieval = { index = "i", corpus = "c", rerank_depth = 9 }\n',
            "rerank_depth needs a retrieval.reranker",
        ),
        (
            '[arms.a]\nmodel = "m.gguf"\nretrieval = { index = "i", corpus = "c", reranker = "r", k = 5, '
            "rerank_depth = 4 }\n",
            r"rerank_depth must be a whole number >= k \(5\)",
        ),
        (
            '[arms.a]\nmodel = "m.gguf"\nretrieval = { index = "i", corpus = "c", reranker = 3 }\n',
            "retrieval.reranker must be a model folder",
        ),
        ('[arms.a]\nmodel = "m.gguf"\nretrieval = { index = "i" }\n', "retrieval needs 'corpus'"),
        ('[arms.a]\nmodel = "m.gguf"\nretrieval = { index = "i", corpus = "c", k = 0 }\n', "retrieval.k"),
        ('[arms.a]\nmodel = "m.gguf"\nspeculative = "none,prompt-lookup:3"\n', "an arm has one"),
        ('[arms.a]\nmodel = "m.gguf"\nchat = "yes"\n', "'chat' must be true or false"),
        ('[arms."../x"]\nmodel = "m.gguf"\n', "names its responses file"),
        ("[arms.a\n", "malformed TOML"),
    ],
)
def test_arms_file_errors(tmp_path, body, message):
    from bdnsca.eval.arms import read_arms

    (tmp_path / "arms.toml").write_text(body, encoding="utf-8")
    with pytest.raises(BdnscaError, match=message):
        read_arms(tmp_path / "arms.toml")


def test_arms_file_paths_are_relative_to_it(tmp_path):
    from bdnsca.eval.arms import read_arms

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "arms.toml").write_text(
        'target_arm = "a"\n[arms.a]\nmodel = "m/t.gguf"\nspeculative = "draft:d.gguf:4"\n'
        'retrieval = { index = "../i.index", corpus = "/abs/c.jsonl" }\n[arms.b]\nmodel = "/abs/b.gguf"\n'
    )
    f = read_arms(tmp_path / "sub" / "arms.toml")
    a, b = f.arms
    assert a.model == "m/t.gguf" and a.model_path == str(tmp_path / "sub" / "m" / "t.gguf")
    assert a.speculative == f"draft:{tmp_path / 'sub' / 'd.gguf'}:4"
    assert a.retrieval.index == str(tmp_path / "i.index") and a.retrieval.corpus == "/abs/c.jsonl"
    assert a.retrieval.k == 3 and a.include_dynamic_context and not a.chat
    assert b.model_path == "/abs/b.gguf" and f.target_arm == "a" and f.baseline_arms == ["b"]
    assert a.retrieval.reranker is None and a.retrieval.rerank_depth is None
    (tmp_path / "sub" / "rr").mkdir()
    (tmp_path / "sub" / "arms.toml").write_text(
        '[arms.a]\nmodel = "m.gguf"\nretrieval = { index = "i", corpus = "c", k = 4, reranker = "rr" }\n'
        '[arms.b]\nmodel = "m.gguf"\n'
        'retrieval = { index = "i", corpus = "c", k = 300, reranker = "org/id" }\n'
    )
    a, b = read_arms(tmp_path / "sub" / "arms.toml").arms
    assert a.retrieval.reranker == str(tmp_path / "sub" / "rr") and a.retrieval.rerank_depth == 100
    assert b.retrieval.reranker == "org/id" and b.retrieval.rerank_depth == 300  # a cache id, at least k


# ----------------------------------------------------------------------------- review fixes


def test_temperatures_that_round_alike_still_give_distinct_annotators(tmp_path):
    run = _synthetic_run(tmp_path, LENGTHS)
    res = judge_run(run, [FunctionJudge("fa", prefers_longer)], temperatures=[0.001, 0.004], mode="pointwise")
    assert res.summary["annotators"] == ["fa__t0.001", "fa__t0.004"]
    rows = list(csv.DictReader(open(run / "judge_ratings.csv")))
    keys = [(r["scenario_id"], r["arm_id"], r["annotator_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 3 * 2 * 2  # scenarios x arms x annotators, none overwritten
    assert res.summary["krippendorff_alpha"]["overall_quality"] is not None
    with pytest.raises(BdnscaError, match="share the annotator id"):
        judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.1234561, 0.1234562])


def test_a_retry_gets_more_tokens_so_a_greedy_answer_cut_short_can_finish(tmp_path):
    run = _synthetic_run(tmp_path, {"x": {"s1": "a"}, "y": {"s1": "b"}})
    asked = []

    def two_tokens_per_char(req):  # a byte-level model at temperature 0: the same text every time
        asked.append(req.max_tokens)
        return always_a(req)[: req.max_tokens // 2]

    res = judge_run(run, [FunctionJudge("slow", two_tokens_per_char)], temperatures=[0.0],
                    mode="pointwise", max_tokens=120, retries=2)  # fmt: skip
    assert asked[:2] == [120, 240]
    assert res.summary["requests"]["missing"] == 0 and [q["ok"] for q in res.requests][:2] == [False, True]


def test_max_tokens_must_leave_room_for_the_shortest_schema_answer(tmp_path):
    from bdnsca.eval.judge import JudgeSettings
    from bdnsca.eval.judge_prompts import MIN_ANSWER_TOKENS, parse_answer, shortest_answer

    for kind in ("pointwise", "pairwise"):
        parse_answer(kind, shortest_answer(kind))  # a valid answer ...
        with pytest.raises(ValueError):  # ... that cannot lose a character
            parse_answer(kind, shortest_answer(kind)[:-1])
        assert len(shortest_answer(kind)) <= MIN_ANSWER_TOKENS
    assert MIN_ANSWER_TOKENS > 100  # 4 metrics with their names and a rationale key
    JudgeSettings(max_tokens=MIN_ANSWER_TOKENS).validate()
    with pytest.raises(BdnscaError, match=f"at least {MIN_ANSWER_TOKENS}"):
        JudgeSettings(max_tokens=MIN_ANSWER_TOKENS - 1).validate()


def test_llama_judge_cuts_a_retrys_room_to_its_context_but_not_below_the_first():
    from types import SimpleNamespace

    from bdnsca.eval.judge_llm import LlamaJudge

    seen = []
    llm = SimpleNamespace(
        reset=lambda: None,
        create_completion=lambda tokens, **kw: seen.append(kw["max_tokens"]) or {"choices": [{"text": "{}"}]},
    )
    j = object.__new__(LlamaJudge)
    j.model = SimpleNamespace(n_ctx=500, llm=llm, tokenize=lambda text, add_bos: [1] * 300)
    j.chat, j._grammar = False, lambda schema: None
    req = JudgeRequest("pointwise", "p", {}, 0.0, 1, 400, min_tokens=150)
    j.complete(req)
    assert seen == [200]
    with pytest.raises(BdnscaError, match="does not fit"):
        j.complete(JudgeRequest("pointwise", "p", {}, 0.0, 1, 400, min_tokens=250))
    with pytest.raises(BdnscaError, match="does not fit"):  # no min_tokens: all of max_tokens
        j.complete(JudgeRequest("pointwise", "p", {}, 0.0, 1, 400))


def test_a_missing_rating_keeps_its_last_raw_answer_in_the_csv_notes(tmp_path):
    run = _synthetic_run(tmp_path, {"x": {"s1": "a"}, "y": {"s1": "b"}})
    raw = '{"rationale": "the reply\nis' + " very" * 80
    judge_run(run, [FunctionJudge("bad", lambda r: raw)], temperatures=[0.0], mode="pointwise", retries=1)
    rows = list(csv.DictReader(open(run / "judge_ratings.csv")))
    assert len(rows) == 2
    for r in rows:
        assert all(r[m] == "" for m in METRICS) and r["notes"].startswith("missing")
        assert '{"rationale": "the reply is very very' in r["notes"]  # control characters flattened
        assert len(r["notes"]) < 400 and r["notes"].endswith("...")


def test_scenarios_an_arm_failed_or_left_empty_are_reported_per_arm(tmp_path):
    run = _synthetic_run(
        tmp_path, {"x": {"s1": "a b", "s2": "c", "s3": "d"}, "y": {"s1": "e", "s2": "  ", "s3": "f"}}
    )
    rows = [json.loads(x) for x in (run / "responses" / "x.jsonl").read_text().splitlines()]
    rows[2].update(ok=False, response="", error="boom")
    _write_jsonl(run / "responses" / "x.jsonl", rows)
    res = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0])
    assert res.summary["missing_responses"] == {
        "x": {"count": 1, "scenario_ids": ["s3"]},
        "y": {"count": 1, "scenario_ids": ["s2"]},
    }
    assert res.summary["win_rates"]["overall_quality"]["x"]["y"]["scenarios"] == 1  # only s1 has both


def test_a_response_that_is_a_json_number_is_judged_as_its_text(tmp_path):
    run = _synthetic_run(tmp_path, {"x": {"s1": "a"}, "y": {"s1": "b"}})
    rows = [json.loads(x) for x in (run / "responses" / "x.jsonl").read_text().splitlines()]
    rows[0]["response"] = 42
    _write_jsonl(run / "responses" / "x.jsonl", rows)
    res = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0], mode="pointwise")
    assert any('"""\n42\n"""' in q["prompt"] for q in res.requests)


def test_a_judge_that_fails_midway_leaves_the_answers_so_far(tmp_path):
    run = _synthetic_run(tmp_path, LENGTHS)
    calls = {"n": 0}

    def breaks(req):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("llama_decode returned -1")
        return always_a(req)

    with pytest.raises(RuntimeError, match="llama_decode") as exc:
        judge_run(run, [FunctionJudge("fa", breaks)], temperatures=[0.0])
    kept = [json.loads(x) for x in (run / "judge_requests.partial.jsonl").read_text().splitlines()]
    assert len(kept) == 3 and all(q["ok"] for q in kept)
    assert "3 answers so far" in exc.value.__notes__[0]
    assert not (run / "judge_ratings.csv").exists()


def test_an_interrupted_rejudging_keeps_the_complete_judgings_audit_log(tmp_path):
    """The ratings in a folder must keep the prompts and answers they came from: an interrupted
    second judging writes its answers beside them, not over them; a later complete one cleans up."""
    run = _synthetic_run(tmp_path, LENGTHS)
    judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0, 0.7])
    files = ("judge_requests.jsonl", "judge_ratings.csv", "judge_summary.json", "judge_pairwise.csv")
    before = {f: (run / f).read_bytes() for f in files}

    calls = {"n": 0}

    def interrupted(req):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return always_a(req)

    with pytest.raises(KeyboardInterrupt):
        judge_run(run, [FunctionJudge("other", interrupted)], temperatures=[0.0])
    assert {f: (run / f).read_bytes() for f in files} == before
    partial = (run / "judge_requests.partial.jsonl").read_text().splitlines()
    assert len(partial) == 2
    judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0], mode="pointwise")
    assert not (run / "judge_requests.partial.jsonl").exists()
    assert not (run / "judge_pairwise.csv").exists()  # not left from the earlier pairwise judging


def test_judge_output_dir_leaves_the_run_folder_alone(tmp_path):
    run = _synthetic_run(tmp_path / "run", LENGTHS)
    before = sorted(p.name for p in run.iterdir())
    out = tmp_path / "judged"
    res = judge_run(run, [FunctionJudge("fa", always_a)], temperatures=[0.0], output_dir=out)
    assert sorted(p.name for p in run.iterdir()) == before and res.run_dir == out
    assert sorted(p.name for p in out.iterdir()) == [
        "judge_pairwise.csv",
        "judge_ratings.csv",
        "judge_requests.jsonl",
        "judge_summary.json",
    ]
    assert res.summary["run_dir"] == str(run)
    r = _cli("judge", "--run-dir", run, "--judge", tmp_path / "none.gguf", "--output-dir", out)
    assert "no such option" not in r.stderr and r.returncode == 1


def test_win_rate_interval_matches_scipys_percentile_bootstrap():
    scipy_stats = pytest.importorskip("scipy.stats", reason="the reference bootstrap is scipy's")
    import numpy as np

    from bdnsca.eval.judge_stats import mean_ci, win_rates

    rng = np.random.default_rng(5)
    # 40 scenarios, two annotators each: per scenario the soft score is the annotators' mean
    scores, per_scenario = [], []
    for i in range(40):
        xs = rng.choice([0.0, 0.5, 1.0], size=2, p=[0.3, 0.2, 0.5])
        scores += [(f"s{i:02d}", "a", "b", ann, float(x)) for ann, x in zip(("j1", "j2"), xs, strict=True)]
        per_scenario.append(xs.mean())
    got = win_rates(scores, ["a", "b"], seed=1)
    ref = scipy_stats.bootstrap((np.array(per_scenario),), np.mean, n_resamples=20000, method="percentile",
                                confidence_level=0.95, random_state=0).confidence_interval  # fmt: skip
    ab = got["a"]["b"]
    assert (
        ab["rate"] == pytest.approx(np.mean(per_scenario))
        and ab["scenarios"] == 40
        and ab["comparisons"] == 80
    )
    assert ab["ci95"] == pytest.approx([ref.low, ref.high], abs=0.02)
    assert ab["ci95"][1] - ab["ci95"][0] > 0.1  # not a degenerate interval
    ba = got["b"]["a"]  # the other direction mirrors it
    assert ba["rate"] == pytest.approx(1 - ab["rate"])
    assert ba["ci95"] == pytest.approx([1 - ab["ci95"][1], 1 - ab["ci95"][0]], abs=0.02)
    assert mean_ci([0.25, 0.75], 0)[0] == 0.5 and mean_ci([], 0) == (None, None)


def test_missing_as_loss_counts_an_unanswered_scenario_against_the_arm(tmp_path):
    # "x" fails s3; the judge always ties, so only the forfeit decides anything
    run = _synthetic_run(
        tmp_path, {"x": {"s1": "a", "s2": "b", "s3": ""}, "y": {"s1": "c", "s2": "d", "s3": "e"}}
    )

    def ties(req):
        return _answer(req, lambda r, m: "tie" if r.kind == "pairwise" else 3)

    for mode in ("pairwise", "pointwise"):
        cond = judge_run(run, [FunctionJudge("t", ties)], temperatures=[0.0], mode=mode)
        lost = judge_run(run, [FunctionJudge("t", ties)], temperatures=[0.0], mode=mode, missing_as_loss=True)
        for m in METRICS:
            w = cond.summary["win_rates"][m]["x"]["y"]
            assert (w["rate"], w["scenarios"]) == (0.5, 2)  # conditional: s3 left out
            w = lost.summary["win_rates"][m]["x"]["y"]
            assert w["rate"] == pytest.approx((0.5 + 0.5 + 0.0) / 3) and w["scenarios"] == 3
            assert lost.summary["win_rates"][m]["y"]["x"]["rate"] == pytest.approx(2 / 3)
    r = _cli("judge", "--help")
    assert "--missing-as-loss" in r.stdout
