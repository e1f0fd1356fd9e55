"""Per-query metric values equal pytrec_eval's (trec_eval's) to 1e-9."""

from __future__ import annotations

import numpy as np
import pytest

import bdnsca

pytrec_eval = pytest.importorskip("pytrec_eval")

# ours -> trec_eval measure (parameterised) and the key it reports
PAIRS = {
    "ndcg@5": ("ndcg_cut.5", "ndcg_cut_5"),
    "ndcg@10": ("ndcg_cut.10", "ndcg_cut_10"),
    "ndcg": ("ndcg", "ndcg"),
    "recall@10": ("recall.10", "recall_10"),
    "recall@3": ("recall.3", "recall_3"),
    "precision@5": ("P.5", "P_5"),
    "hit@3": ("success.3", "success_3"),
    "map": ("map", "map"),
    "map@10": ("map_cut.10", "map_cut_10"),
    "r-precision": ("Rprec", "Rprec"),
    "mrr": ("recip_rank", "recip_rank"),
}


def trec_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's ranking: score (as float32) descending, then doc id descending."""
    by_id = sorted(docs, reverse=True)
    return sorted(by_id, key=lambda d: -np.float32(docs[d]))


def random_case(seed: int, n_queries: int = 60):
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        pool = [f"d{d}" for d in rng.choice(200, size=40, replace=False)]
        judged = pool[: rng.integers(0, 25)]
        qrels[qid] = {d: int(rng.choice([0, 0, 1, 2, 3, -1])) for d in judged}
        if not qrels[qid]:
            qrels[qid] = {pool[0]: 0}
        if q % 17 == 5:
            continue  # a query the run lacks
        retrieved = rng.choice(pool, size=rng.integers(1, 40), replace=False)
        # coarse scores: ties everywhere
        run[qid] = {str(d): float(rng.integers(0, 6)) / 2.0 for d in retrieved}
    run["only_in_run"] = {"d1": 1.0}
    return qrels, run


def assert_parity(qrels, run):
    ev = pytrec_eval.RelevanceEvaluator(qrels, {m for m, _ in PAIRS.values()})
    ref = ev.evaluate(run)
    means, per_query = bdnsca.evaluate(qrels, run, list(PAIRS), per_query=True)
    assert set(per_query) == set(qrels)
    for qid, values in per_query.items():
        for ours, (_, key) in PAIRS.items():
            want = ref[qid][key] if qid in ref else 0.0
            assert values[ours] == pytest.approx(want, abs=1e-9), (qid, ours)
    for ours in PAIRS:
        assert means[ours] == pytest.approx(np.mean([per_query[q][ours] for q in qrels]), abs=1e-12)


def assert_cut_parity(qrels, run, k):
    """mrr@k and hit@k equal trec_eval's on the run truncated (in trec_eval's order) at k."""
    cut = {q: {d: docs[d] for d in trec_order(docs)[:k]} for q, docs in run.items()}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank", "P.1"}).evaluate(cut)
    _, per_query = bdnsca.evaluate(qrels, run, [f"mrr@{k}"], per_query=True)
    for qid in qrels:
        want = ref[qid]["recip_rank"] if qid in ref else 0.0
        assert per_query[qid][f"mrr@{k}"] == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_random_runs_with_ties_and_graded_qrels(seed):
    qrels, run = random_case(seed)
    assert_parity(qrels, run)
    for k in (1, 3, 10):
        assert_cut_parity(qrels, run, k)


def test_float32_ties_break_by_doc_id_descending():
    qrels = {"q": {"a": 1, "b": 0}}
    # equal as float32, different as float64: trec_eval sees a tie and ranks "b" first
    run = {"q": {"a": 1.0, "b": 1.0 + 1e-12}}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
    assert bdnsca.evaluate(qrels, run, ["mrr"])["mrr"] == ref["q"]["recip_rank"] == 0.5


def test_bm25_run_over_cranfield(cranfield):
    docs, queries, qrels = cranfield
    bm = bdnsca.BM25(tokenizer=bdnsca.Tokenizer(stopwords="en", stemmer="english"))
    bm.index([t for _, t in docs], ids=[d for d, _ in docs])
    ids, scores = bm.search_batch([t for _, t in queries], k=100)
    run = {
        qid: {d: float(s) for d, s in zip(row, srow, strict=False)}
        for (qid, _), row, srow in zip(queries, ids, scores, strict=True)
    }
    qrels = {q: d for q, d in qrels.items() if q in run}
    assert_parity(qrels, run)
    means = bdnsca.evaluate(qrels, run, ["ndcg@10", "mrr@10"])
    assert 0.3 < means["ndcg@10"] < 0.6  # BM25 on Cranfield is in this range


def test_ndcg_exp_uses_exponential_gain():
    qrels = {"q": {"a": 3, "b": 1}}
    run = {"q": {"b": 2.0, "a": 1.0}}
    got = bdnsca.evaluate(qrels, run, ["ndcg_exp@2"])["ndcg_exp@2"]
    dcg = 1 / np.log2(2) + 7 / np.log2(3)
    idcg = 7 / np.log2(2) + 1 / np.log2(3)
    assert got == pytest.approx(dcg / idcg, abs=1e-12)


def test_no_shared_queries_warns_and_scores_zero():
    with pytest.warns(UserWarning, match="share no query ids"):
        means = bdnsca.evaluate({"q1": {"a": 1}}, {"other": {"a": 1.0}}, ["mrr@10"])
    assert means == {"mrr@10": 0.0}


@pytest.mark.parametrize("bad", ["mrr@0", "ndcg@x", "bleu", "r-precision@5"])
def test_bad_metric_names(bad):
    with pytest.raises(bdnsca.BdnscaError, match="metric"):
        bdnsca.evaluate({"q": {"a": 1}}, {"q": {"a": 1.0}}, [bad])


def test_bad_value_types_are_type_errors():
    with pytest.raises(TypeError, match="must be an int"):
        bdnsca.evaluate({"q": {"a": "x"}}, {"q": {"a": 1.0}}, ["map"])
    with pytest.raises(TypeError, match="must be a number"):
        bdnsca.evaluate({"q": {"a": 1}}, {"q": {"a": "high"}}, ["map"])
    with pytest.raises(TypeError, match="must be a dict"):
        bdnsca.evaluate({"q": {"a": 1}}, {"q": [1, 2]}, ["map"])


def test_bootstrap_interval_brackets_mean():
    rng = np.random.default_rng(0)
    values = rng.random((200, 2))
    ci = bdnsca.bootstrap_ci(values, 500, seed=1)
    assert ci.shape == (2, 2)
    for j in range(2):
        assert ci[j, 0] < values[:, j].mean() < ci[j, 1]
    np.testing.assert_array_equal(ci, bdnsca.bootstrap_ci(values, 500, seed=1))
