"""bdnsca.fuse against ranx's fuse (the independent reference), a hand-computed RRF case,
and the refusal of non-finite scores."""

from __future__ import annotations

import math
import random
import warnings
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bdnsca
from bdnsca.errors import BdnscaError

# (bdnsca name, ranx name)
METHODS = [
    ("rrf", "rrf"),
    ("combsum", "sum"),
    ("combmnz", "mnz"),
    ("combanz", "anz"),
    ("combmax", "max"),
    ("combmin", "min"),
    ("combmed", "med"),
]
NORMS = ["min-max", "zmuv", "max", "sum", None]


@pytest.fixture(scope="module")
def ranx():
    try:
        import ranx
    except ImportError:
        pytest.skip("ranx is not installed (pip install 'bdnsca[test]')")
    return ranx


def tie_rule(docs: dict[str, float]) -> list[tuple[str, float]]:
    """Score descending, ties by doc id descending (UTF-8 bytes): the project's rule."""
    return sorted(docs.items(), key=lambda x: (x[1], x[0].encode()), reverse=True)


def ranx_run(ranx, run: dict[str, dict[str, float]]):
    """A ranx Run holding each query's documents in the tie rule's order, unsorted by ranx (so
    RRF's ranks on tied scores are the tie rule's; ranx's own sort would order ties its way)."""
    r = ranx.Run()
    from numba import types
    from numba.typed import Dict

    for q, docs in run.items():
        d = Dict.empty(key_type=types.unicode_type, value_type=types.float64)
        for doc, s in tie_rule(docs):
            d[doc] = s
        r.run[q] = d
    return r


def ranx_fuse(ranx, runs, method, norm, k=60):
    params = {"k": k} if method == "rrf" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety chatter
        out = ranx.fuse([ranx_run(ranx, r) for r in runs], norm=norm, method=method, params=params)
    return {q: dict(d) for q, d in out.to_dict().items()}


def random_runs(rng: random.Random, n_runs: int, n_queries: int, ties: bool, min_docs: int = 1) -> list[dict]:
    """Runs over the same queries; documents drawn from an overlapping pool (so some are
    missing from some runs); with ``ties`` scores come from a handful of values. At least one
    document per query and run by default: ranx's parallel ``zmuv`` loses other queries'
    documents when a run has an empty query (its std of nothing raises inside numba's prange),
    so empty queries are tested apart."""
    runs = []
    for _ in range(n_runs):
        run = {}
        for q in range(n_queries):
            n = rng.randint(min_docs, 12)
            docs = rng.sample([f"d{i}" for i in range(20)], n)
            if ties:
                run[f"q{q}"] = {d: float(rng.choice([-1.5, 0.0, 0.25, 2.0, 2.0])) for d in docs}
            else:
                run[f"q{q}"] = {d: rng.uniform(-5, 50) for d in docs}
        runs.append(run)
    return runs


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("method,ranx_method", METHODS)
def test_equals_ranx_on_random_runs(ranx, method, ranx_method, ties):
    rng = random.Random(zlib.crc32(f"{method}{ties}".encode()))
    for trial in range(8):
        runs = random_runs(rng, rng.randint(2, 4), 6, ties)
        if not any(run[q] for run in runs for q in run):
            continue
        for norm in NORMS:
            ours = bdnsca.fuse(runs, method=method, norm=norm)
            want = ranx_fuse(ranx, runs, ranx_method, norm)
            assert set(ours) == set(want)
            for q in want:
                # exactly equal floats, not approximately
                assert ours[q] == want[q], (trial, norm, q)


@pytest.mark.parametrize("k", [0, 1, 7, 60])
def test_rrf_k_equals_ranx(ranx, k):
    rng = random.Random(k)
    runs = random_runs(rng, 3, 5, ties=True)
    ours = bdnsca.fuse(runs, method="rrf", k=k)
    assert ours == ranx_fuse(ranx, runs, "rrf", "min-max", k=k)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "é", "Z", "ab"]),
            st.sampled_from([0.0, 1.0, 1.0, -3.0, 1e-12, 7.5]) | st.floats(-1e6, 1e6),
            max_size=6,
        ),
        min_size=2,
        max_size=4,
    ),
    mi=st.integers(0, len(METHODS) - 1),
    norm=st.sampled_from(NORMS),
)
def test_equals_ranx_hypothesis(ranx, data, mi, norm):
    runs = [{"q": d} for d in data]
    if not any(data):
        return
    method, ranx_method = METHODS[mi]
    assert bdnsca.fuse(runs, method=method, norm=norm) == ranx_fuse(ranx, runs, ranx_method, norm)


def test_equals_ranx_own_sort_without_ties(ranx):
    """Runs given to ranx as plain dicts (ranx sorts them itself): equal when no list has ties."""
    rng = random.Random(5)
    runs = random_runs(rng, 3, 10, ties=False)
    for method, ranx_method in METHODS:
        for norm in NORMS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = ranx.fuse([ranx.Run(r) for r in runs], norm=norm, method=ranx_method).to_dict()
            ours = bdnsca.fuse(runs, method=method, norm=norm)
            assert {q: dict(d) for q, d in want.items()} == ours


def test_rrf_by_hand():
    # run A ranks a > b > c, run B ranks c > d; k = 1.
    a = {"q": {"b": 2.0, "a": 3.0, "c": 1.0}}
    b = {"q": {"d": 0.5, "c": 0.9}}
    out = bdnsca.fuse([a, b], method="rrf", k=1)
    # a 1/2, b 1/3, c 1/4 + 1/2, d 1/3; b and d tie: d first (greater id)
    assert list(out["q"].items()) == [("c", 0.75), ("a", 0.5), ("d", 1 / 3), ("b", 1 / 3)]


def test_rrf_tied_scores_ranked_by_id_descending():
    out = bdnsca.fuse([{"q": {"x": 1.0, "y": 1.0, "a": 5.0}}], method="rrf", k=60)
    assert out["q"] == {"a": 1 / 61, "y": 1 / 62, "x": 1 / 63}


def test_min_max_of_a_constant_run_is_zero():
    out = bdnsca.fuse([{"q": {"a": 4.0, "b": 4.0}}, {"q": {"a": 1.0, "b": 0.0}}], method="combsum")
    assert out["q"] == {"a": 1.0, "b": 0.0}


def test_query_missing_from_a_run_is_an_empty_list():
    a = {"q1": {"a": 1.0}, "q2": {"b": 2.0}}
    with_empty = bdnsca.fuse([a, {"q1": {"a": 3.0}, "q2": {}}], "combmnz", norm="none")
    without = bdnsca.fuse([a, {"q1": {"a": 3.0}}], "combmnz", norm="none")
    assert with_empty == without == {"q1": {"a": 8.0}, "q2": {"b": 2.0}}  # (1 + 3) x 2; 2 x 1
    # queries ordered by first appearance, across runs
    assert list(bdnsca.fuse([{"z": {"a": 1.0}}, {"b": {"a": 1.0}, "z": {}}])) == ["z", "b"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_score_names_run_query_and_doc(bad):
    runs = [{"q1": {"a": 1.0}}, {"q1": {"a": 1.0}}, {"q1": {"ok": 1.0}, "q9": {"d7": bad}}]
    with pytest.raises(
        BdnscaError, match=r"run 2, query .q9., document .d7.: score -?(NaN|inf) is not finite"
    ):
        bdnsca.fuse(runs, method="combsum")
    with pytest.raises(BdnscaError, match="run 2"):
        bdnsca.fuse(runs, method="rrf")  # RRF ignores scores, but a NaN run is still refused


def test_bad_arguments():
    run = {"q": {"a": 1.0}}
    with pytest.raises(BdnscaError, match="unknown fusion method"):
        bdnsca.fuse([run, run], method="wsum")
    with pytest.raises(BdnscaError, match="normalisation"):
        bdnsca.fuse([run, run], method="combsum", norm="borda")
    with pytest.raises(BdnscaError, match="k must be >= 0"):
        bdnsca.fuse([run, run], k=-1)
    with pytest.raises(BdnscaError, match="at least one run"):
        bdnsca.fuse([])
    with pytest.raises(TypeError, match=r"runs\[1\]\[.q.\]\[.a.\] must be a number"):
        bdnsca.fuse([run, {"q": {"a": "high"}}])
    with pytest.raises(TypeError, match=r"runs\[0\]\[.q.\] must be a dict"):
        bdnsca.fuse([{"q": [("a", 1.0)]}])


def test_result_order_and_non_dict_mappings():
    from types import MappingProxyType

    run = MappingProxyType({"q": MappingProxyType({"a": 1.0, "b": 3.0, "c": 3.0})})
    out = bdnsca.fuse([run], method="combsum", norm="none")
    assert list(out["q"].items()) == [("c", 3.0), ("b", 3.0), ("a", 1.0)]


def test_threads_give_the_same_result():
    rng = random.Random(1)
    runs = random_runs(rng, 3, 200, ties=True, min_docs=0)
    assert bdnsca.fuse(runs, "combmnz", threads=1) == bdnsca.fuse(runs, "combmnz", threads=2)


def test_empty_queries_equal_ranx_min_max(ranx):
    """Empty lists (a run that found nothing for a query) under min-max, which ranx handles."""
    rng = random.Random(11)
    runs = random_runs(rng, 3, 8, ties=True, min_docs=0)
    for method, ranx_method in METHODS:
        assert bdnsca.fuse(runs, method=method) == ranx_fuse(ranx, runs, ranx_method, "min-max")


def test_many_queries_across_batches_equal_ranx(ranx):
    """More queries than one batch of the pipeline (256), queries in different orders per run."""
    rng = random.Random(21)
    runs = random_runs(rng, 3, 700, ties=True)
    runs[1] = dict(reversed(list(runs[1].items())))
    for method, ranx_method in [("rrf", "rrf"), ("combmnz", "mnz")]:
        ours = bdnsca.fuse(runs, method=method, threads=1)
        assert list(ours) == list(runs[0])
        assert ours == ranx_fuse(ranx, runs, ranx_method, "min-max")


def test_error_in_a_later_batch_is_reported():
    runs = [{f"q{i}": {"a": 1.0, "b": 2.0} for i in range(900)} for _ in range(2)]
    runs[1]["q777"]["b"] = math.nan
    with pytest.raises(BdnscaError, match=r"run 1, query .q777., document .b."):
        bdnsca.fuse(runs, method="combsum")


def test_other_number_and_str_types_take_the_general_path():
    import numpy as np

    class Id(str):
        pass

    plain = [{"q": {"a": 3.0, "b": 1.0, "c": 2.0}}, {"q": {"b": 5.0, "d": 0.0}}]
    mixed = [{"q": {Id("a"): 3, "b": np.float64(1.0), "c": np.float32(2.0)}}, {"q": {"b": 5, "d": False}}]
    for method in ["rrf", "combsum", "combmnz"]:
        assert bdnsca.fuse(mixed, method=method) == bdnsca.fuse(plain, method=method)
