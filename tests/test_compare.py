"""Paired statistics (Rust) and ``compare``: checked against scipy, exact enumeration, hand
computations, statsmodels and ranx."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

import bdnsca
from bdnsca import _core
from bdnsca.errors import BdnscaError


def _pvalue(values: np.ndarray, test: str, resamples: int = 10_000, seed: int = 0) -> float:
    (r,) = _core.compare_pairs(
        np.ascontiguousarray(values), [(0, 1)], resamples=resamples, seed=seed, test=test
    )
    return r["p_value"]


@pytest.mark.parametrize("n", [2, 3, 7, 30, 500])
def test_t_test_equals_scipy(n):
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference")
    rng = np.random.default_rng(n)
    a = rng.normal(0.5, 0.2, n)
    b = a + rng.normal(0.03, 0.1, n)
    p = _pvalue(np.column_stack([b, a]), "t-test")
    assert p == pytest.approx(scipy_stats.ttest_rel(b, a).pvalue, rel=1e-9, abs=1e-14)


@pytest.mark.parametrize("t,df", [(0.1, 1), (2.5, 3), (-4.0, 17), (30.0, 200), (1e-6, 5)])
def test_student_t_tail_equals_scipy(t, df):
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference")
    assert _core.student_t_two_sided(t, df) == pytest.approx(2 * scipy_stats.t.sf(abs(t), df), rel=1e-9)


@pytest.mark.parametrize("n", [4, 8, 12])
def test_exact_randomization_equals_scipy_permutation_test(n):
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference")
    rng = np.random.default_rng(100 + n)
    a = rng.integers(0, 5, n) / 4
    b = a + rng.integers(-1, 3, n) / 4
    if np.mean(b - a) == 0:
        b[0] += 0.25
    ref = scipy_stats.permutation_test(
        (b, a),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        n_resamples=np.inf,
        alternative="two-sided",
        vectorized=True,
    )
    # 2**n <= resamples: every sign vector is enumerated, so the p-value is exact.
    p = _pvalue(np.column_stack([b, a]), "randomization", resamples=2**n)
    assert p == pytest.approx(min(1.0, ref.pvalue), abs=1e-12)


def test_monte_carlo_sign_flips_agree_with_exact_enumeration():
    rng = np.random.default_rng(5)
    d = rng.normal(0.3, 1.0, 11)
    values = np.column_stack([d, np.zeros_like(d)])
    exact = _core.sign_flip_means(values, resamples=0, exact=True)
    assert exact.shape == (2**11, 2)
    p_exact = np.mean(np.abs(exact[:, 0]) >= abs(d.mean()) - 1e-12)
    mc = _core.sign_flip_means(values, resamples=40_000, seed=3)
    p_mc = np.mean(np.abs(mc[:, 0]) >= abs(d.mean()) - 1e-12)
    assert abs(p_mc - p_exact) < 4 * math.sqrt(p_exact * (1 - p_exact) / 40_000) + 1e-9


def test_bootstrap_interval_of_two_values_by_hand():
    # deltas 0 and 1: a resampled mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% percentiles are 0 and 1 and half the resamples sit at 0.5.
    values = np.array([[0.0, 0.0], [1.0, 0.0]])
    (r,) = _core.compare_pairs(values, [(0, 1)], resamples=20_000, seed=1, test="bootstrap")
    assert (r["ci_low"], r["ci_high"], r["delta"]) == (0.0, 1.0, 0.5)
    means = _core.bootstrap_means(values, resamples=20_000, seed=1)[:, 0]
    assert abs(np.mean(means == 0.5) - 0.5) < 0.02
    assert abs(np.mean(means == 0.0) - 0.25) < 0.02


def test_bootstrap_interval_matches_numpy_bootstrap_within_error():
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 300)
    b = a + rng.normal(0.02, 0.05, 300)
    (r,) = _core.compare_pairs(np.column_stack([b, a]), [(0, 1)], resamples=20_000, seed=2)
    d = b - a
    idx = np.random.default_rng(9).integers(0, len(d), (20_000, len(d)))
    lo, hi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    assert r["ci_low"] == pytest.approx(lo, abs=3e-4) and r["ci_high"] == pytest.approx(hi, abs=3e-4)


def test_same_seed_same_result_and_pairs_share_resamples():
    rng = np.random.default_rng(1)
    x = rng.random((50, 3))
    r1 = _core.compare_pairs(x, [(0, 1), (1, 2), (0, 2)], resamples=2000, seed=7)
    r2 = _core.compare_pairs(x, [(0, 1), (1, 2), (0, 2)], resamples=2000, seed=7)
    assert r1 == r2
    # A column that is another plus a constant has a zero-width interval at that constant.
    x[:, 2] = x[:, 0] + 0.25
    (r,) = _core.compare_pairs(x, [(2, 0)], resamples=2000, seed=7)
    assert r["ci_low"] == pytest.approx(0.25) and r["ci_high"] == pytest.approx(0.25)


def test_holm_and_bonferroni_by_hand_and_against_statsmodels():
    p = [0.01, 0.04, 0.03, 0.005]
    assert _core.adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert _core.adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    multitest = pytest.importorskip("statsmodels.stats.multitest", reason="statsmodels not installed")
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.random(rng.integers(1, 15))
        assert _core.adjust_p_values(list(q), "holm") == pytest.approx(
            multitest.multipletests(q, method="holm")[1]
        )


def test_wilson_interval_against_the_formula():
    z = 1.959963984540054
    for k, n in [(0, 10), (3, 10), (10, 10), (57, 300)]:
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        lo, hi = _core.wilson_interval(k, n)
        assert lo == pytest.approx(max(0.0, centre - half), abs=1e-12)
        assert hi == pytest.approx(min(1.0, centre + half), abs=1e-12)


def test_bad_input_is_an_error_not_a_crash():
    with pytest.raises(BdnscaError, match="non-finite"):
        _core.compare_pairs(np.array([[1.0, np.nan]]), [(0, 1)])
    with pytest.raises(BdnscaError, match="beyond"):
        _core.compare_pairs(np.ones((3, 2)), [(0, 5)])
    with pytest.raises(BdnscaError, match="unknown test"):
        _core.compare_pairs(np.ones((3, 2)), [(0, 1)], test="anova")
    with pytest.raises(BdnscaError):
        _core.adjust_p_values([0.5, 1.5])


# ----------------------------------------------------------------------------- compare


def _random_runs(rng, n_queries=60, n_docs=40, n_runs=3):
    qrels = {
        f"q{i}": {f"d{j}": int(rng.integers(1, 3)) for j in rng.choice(n_docs, 3, replace=False)}
        for i in range(n_queries)
    }
    runs = {}
    for r in range(n_runs):
        run = {}
        for i in range(n_queries):
            if rng.random() < 0.1:
                continue  # a query the run lacks: scores 0
            docs = rng.choice(n_docs, 15, replace=False)
            # coarse scores: many ties, broken by the one tie rule
            run[f"q{i}"] = {f"d{d}": float(rng.integers(0, 6) + r * 0.5 * rng.random()) for d in docs}
        runs[f"run{r}"] = run
    return qrels, runs


def test_compare_means_and_missing_queries_match_evaluate():
    rng = np.random.default_rng(11)
    qrels, runs = _random_runs(rng)
    res = bdnsca.compare(qrels, runs, ["mrr@10", "ndcg@10"], resamples=500)
    for name, run in runs.items():
        ev = bdnsca.evaluate(qrels, run, ["mrr@10", "ndcg@10"])
        assert res.means[name] == pytest.approx(ev)
        assert res.missing_queries[name] == sum(1 for q in qrels if q not in run)
    assert len(res.comparisons) == 2 * 3  # metrics x pairs
    for c in res.comparisons:
        assert c.delta == pytest.approx(res.means[c.a][c.metric] - res.means[c.b][c.metric])
        assert c.ci95[0] <= c.delta <= c.ci95[1]
        assert c.p_value <= c.p_value_adjusted <= 1


def test_compare_t_test_equals_scipy_on_per_query_values():
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference")
    rng = np.random.default_rng(12)
    qrels, runs = _random_runs(rng, n_runs=2)
    res = bdnsca.compare(qrels, runs, ["ndcg@10"], test="t-test", correction="none", resamples=200)
    _, pq0 = bdnsca.evaluate(qrels, runs["run0"], ["ndcg@10"], per_query=True)
    _, pq1 = bdnsca.evaluate(qrels, runs["run1"], ["ndcg@10"], per_query=True)
    x = np.array([pq0[q]["ndcg@10"] for q in qrels])
    y = np.array([pq1[q]["ndcg@10"] for q in qrels])
    (c,) = res.comparisons
    assert c.p_value == pytest.approx(scipy_stats.ttest_rel(x, y).pvalue, rel=1e-9)


def test_compare_equals_ranx():
    ranx = pytest.importorskip("ranx", reason="ranx is the reference (bench extra)")
    rng = np.random.default_rng(13)
    qrels, runs = _random_runs(rng, n_runs=3)
    # ranx breaks score ties its own way and drops queries a run lacks: give every run distinct
    # scores and every query, so both tools rank and average the same thing
    for run in runs.values():
        for q in qrels:
            run.setdefault(q, {"zz": 0.0})
            for d in run[q]:
                run[q][d] = float(rng.random())
    rq = ranx.Qrels(qrels)
    rr = [ranx.Run(run, name=name) for name, run in runs.items()]
    report = ranx.compare(rq, rr, metrics=["mrr@10", "ndcg@10"], stat_test="student", max_p=0.05)
    ours = bdnsca.compare(qrels, runs, ["mrr@10", "ndcg@10"], test="t-test", correction="none", resamples=200)
    for name in runs:
        for m in ("mrr@10", "ndcg@10"):
            assert ours.means[name][m] == pytest.approx(report.results[name][m], abs=1e-9)
    for c in ours.comparisons:
        assert c.p_value == pytest.approx(
            report.comparisons[c.a, c.b][c.metric]["p_value"], rel=1e-6, abs=1e-12
        )


def test_compare_errors():
    qrels = {"q": {"d": 1}}
    with pytest.raises(BdnscaError, match="two runs"):
        bdnsca.compare(qrels, {"a": {"q": {"d": 1.0}}})
    with pytest.raises(BdnscaError, match="unknown test"):
        bdnsca.compare(qrels, [{"q": {"d": 1.0}}, {"q": {"d": 2.0}}], test="z")


def test_compare_cli_prints_a_table_and_writes_json(tmp_path):
    rng = np.random.default_rng(14)
    qrels, runs = _random_runs(rng, n_runs=2)
    qp = tmp_path / "qrels.txt"
    qp.write_text("".join(f"{q} 0 {d} {g}\n" for q, docs in qrels.items() for d, g in docs.items()))
    paths = []
    for name, run in runs.items():
        p = tmp_path / f"{name}.trec"
        bdnsca.write_run(p, run)
        paths += ["--run", str(p)]
    out = tmp_path / "cmp.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bdnsca.cli",
            "compare",
            "--qrels",
            str(qp),
            *paths,
            "--resamples",
            "500",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "run0" in r.stdout and "mrr@10" in r.stdout
    data = json.loads(out.read_text())
    assert {c["metric"] for c in data["comparisons"]} == {"mrr@10", "ndcg@10"}
    assert data["means"]["run0"]["mrr@10"] == pytest.approx(
        bdnsca.evaluate(qrels, runs["run0"], ["mrr@10"])["mrr@10"]
    )


def test_pairs_cover_every_combination():
    rng = np.random.default_rng(15)
    qrels, runs = _random_runs(rng, n_runs=4)
    res = bdnsca.compare(qrels, runs, ["mrr@10"], resamples=200)
    assert {(c.a, c.b) for c in res.comparisons} == set(itertools.combinations(runs, 2))


def test_monte_carlo_randomization_p_value_equals_scipy_within_error():
    scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference")
    rng = np.random.default_rng(21)
    a = rng.normal(0.5, 0.2, 40)
    b = a + rng.normal(0.04, 0.15, 40)
    p = _pvalue(np.column_stack([b, a]), "randomization", resamples=20_000, seed=4)
    ref = scipy_stats.permutation_test(
        (b, a),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        n_resamples=20_000,
        alternative="two-sided",
        vectorized=True,
        random_state=1,
    ).pvalue
    assert abs(p - ref) < 5 * math.sqrt(ref * (1 - ref) / 20_000) * math.sqrt(2)


def test_bootstrap_test_p_value_is_the_shifted_bootstrap_tail():
    # The paired bootstrap test: the share of resampled deltas at least as far from the observed
    # delta as the observed is from 0. Large effect -> tiny p; no effect -> p near 1.
    rng = np.random.default_rng(22)
    a = rng.normal(0.5, 0.1, 200)
    assert _pvalue(np.column_stack([a + 0.05, a]), "bootstrap", resamples=2000) == pytest.approx(1 / 2001)
    d = rng.normal(0, 0.1, 200)
    d -= d.mean()
    assert _pvalue(np.column_stack([a + d, a]), "bootstrap", resamples=2000) > 0.9


def test_one_query_has_no_test_and_writes_null(tmp_path):
    qrels = {"q": {"d": 1}}
    res = bdnsca.compare(
        qrels,
        {"A": {"q": {"d": 1.0}}, "B": {"q": {"x": 1.0, "d": 0.5}}},
        ["mrr@10"],
        test="t-test",
        resamples=200,
    )
    (c,) = res.comparisons
    assert math.isnan(c.p_value) and not c.significant
    assert json.loads(json.dumps(res.to_dict(), allow_nan=False))["comparisons"][0]["p_value"] is None
