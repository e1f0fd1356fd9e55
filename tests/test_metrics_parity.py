"""Per-query metric values equal pytrec_eval's (trec_eval's) to 1e-9; metric invariants hold on
random runs (bounds, monotonicity in k, the tie rule); bootstrap intervals equal a reference
computation and stay within memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bdnsca
from bdnsca.eval import metrics


def trec():
    """pytrec_eval (trec_eval's own code), the reference; skips the calling test without it."""
    return pytest.importorskip("pytrec_eval", reason="pytrec_eval is the reference implementation")


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
    pytrec_eval = trec()
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
    pytrec_eval = trec()
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
    ref = trec().RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(run)
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


# ----------------------------------------------------------------------------- properties

DOC_IDS = [f"d{i}" for i in range(10)] + ["Z", "a", "é", "€x"]  # byte order != letter order
SCORES = [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0]  # a coarse grid: ties everywhere


@st.composite
def qrels_and_run(draw):
    qrels, run = {}, {}
    for q in range(draw(st.integers(1, 4))):
        qid = f"q{q}"
        qrels[qid] = draw(
            st.dictionaries(st.sampled_from(DOC_IDS), st.integers(-1, 3), min_size=1, max_size=8)
        )
        if q == 0 or draw(st.integers(0, 5)) > 0:  # sometimes a query the run lacks
            run[qid] = draw(
                st.dictionaries(st.sampled_from(DOC_IDS), st.sampled_from(SCORES), min_size=1, max_size=14)
            )
    return qrels, run


CUTS = [1, 2, 3, 5, 10, 20]
MONOTONE = ["recall", "hit", "mrr", "map"]  # ndcg@k and precision@k can fall as k grows
BOUNDED = [f"{m}@{k}" for m in ("ndcg", "ndcg_exp", "recall", "precision", "hit", "mrr", "map") for k in CUTS]
BOUNDED += ["map", "mrr", "ndcg", "r-precision"]


# Few, fixed examples: pytrec_eval itself can hang after ~100-170 evaluator calls in one process
# (reproduced with pytrec_eval alone), and each example makes four.
@settings(max_examples=20, deadline=None, derandomize=True)
@given(case=qrels_and_run())
def test_random_runs_equal_pytrec_eval(case):
    qrels, run = case
    assert_parity(qrels, run)
    for k in (1, 2, 5):
        assert_cut_parity(qrels, run, k)


@settings(max_examples=150, deadline=None)
@given(case=qrels_and_run())
def test_values_lie_in_unit_interval_and_grow_with_k_where_they_must(case):
    qrels, run = case
    _, per_query = bdnsca.evaluate(qrels, run, BOUNDED, per_query=True)
    for qid, values in per_query.items():
        for name, v in values.items():
            assert 0.0 <= v <= 1.0 + 1e-12, (qid, name, v)
        for m in MONOTONE:
            series = [values[f"{m}@{k}"] for k in CUTS]
            assert all(a <= b + 1e-12 for a, b in zip(series, series[1:], strict=False)), (qid, m, series)


@settings(max_examples=150, deadline=None)
@given(case=qrels_and_run(), seed=st.integers(0, 2**32 - 1))
def test_order_of_tied_documents_in_the_input_does_not_matter(case, seed):
    # the tie rule (score, then doc id descending) decides the ranking, not the dict's order;
    # an order-preserving change of scores that keeps ties changes nothing either
    qrels, run = case
    rng = np.random.default_rng(seed)
    shuffled = {}
    for q, docs in run.items():
        items = list(docs.items())
        order = rng.permutation(len(items))
        shuffled[q] = {items[i][0]: 3.0 * items[i][1] + 7.0 for i in order}
    names = BOUNDED
    assert bdnsca.evaluate(qrels, run, names, per_query=True) == bdnsca.evaluate(
        qrels, shuffled, names, per_query=True
    )


def test_tie_rule_hand_checked():
    # "b" and "a" tie at 1.0: "b" ranks first (doc id descending), then "a"; "é" (0xC3 0xA9)
    # sorts after "z" by bytes, so among ties at 0.5 it comes before "z".
    qrels = {"q": {"a": 1, "z": 1}}
    run = {"q": {"a": 1.0, "b": 1.0, "z": 0.5, "é": 0.5}}
    _, pq = bdnsca.evaluate(qrels, run, ["mrr", "precision@2", "recall@3", "map"], per_query=True)
    # ranking: b, a, é, z -> first relevant at 2; P@2 = 1/2; R@3 = 1/2; AP = (1/2 + 2/4) / 2
    assert pq["q"] == {"mrr": 0.5, "precision@2": 0.5, "recall@3": 0.5, "map": 0.5}


# ----------------------------------------------------------------------------- bootstrap


def bootstrap_reference(values: np.ndarray, n_resamples: int, seed: int, confidence: float) -> np.ndarray:
    """The textbook method in one piece: all resample indices at once, their row means, the
    percentile interval."""
    values = values if values.ndim == 2 else values[:, None]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    means = values[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return np.quantile(means, [alpha, 1 - alpha], axis=0).T


@pytest.mark.parametrize("chunk_bytes", [1, 5_000, 64 << 20])
@pytest.mark.parametrize("shape", [(37,), (101, 3), (250, 7)])
def test_bootstrap_equals_the_unchunked_reference(monkeypatch, chunk_bytes, shape):
    monkeypatch.setattr(metrics, "BOOTSTRAP_CHUNK_BYTES", chunk_bytes)
    values = np.random.default_rng(5).random(shape)
    got = bdnsca.bootstrap_ci(values, 333, seed=11, confidence=0.9)
    np.testing.assert_array_equal(got, bootstrap_reference(values, 333, 11, 0.9))


def test_bootstrap_hand_checked_cases():
    # a constant column has a zero-width interval at the constant
    np.testing.assert_array_equal(bdnsca.bootstrap_ci(np.full(50, 0.25), 200), [[0.25, 0.25]])
    # one row: every resample is that row
    np.testing.assert_array_equal(bdnsca.bootstrap_ci(np.array([[0.1, 0.9]]), 10), [[0.1, 0.1], [0.9, 0.9]])
    assert np.isnan(bdnsca.bootstrap_ci(np.zeros((0, 2)), 10)).all()


def _peak_bytes(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bootstrap_memory_does_not_grow_with_resamples_times_rows():
    # 20k rows x 7 metrics x 200 resamples: all at once is 20k*200*8*8 = 256 MB of indices and
    # gathered rows; in chunks it is bounded by BOOTSTRAP_CHUNK_BYTES (64 MB)
    values = np.random.default_rng(0).random((20_000, 7))
    peak = _peak_bytes(lambda: bdnsca.bootstrap_ci(values, 200, seed=1))
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.slow
def test_bootstrap_at_100k_queries_and_7_metrics_stays_under_200_mb():
    values = np.random.default_rng(0).random((100_000, 7))
    peak = _peak_bytes(lambda: bdnsca.bootstrap_ci(values, 1000, seed=1))
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"
