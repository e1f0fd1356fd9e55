"""pareto_frontier and frontier_ratio equal brute-force computations (fixed and hypothesis-drawn
inputs with ties, duplicates and NaN) and hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bdnsca


def brute_frontier(points: np.ndarray, maximize: list[bool]) -> list[int]:
    signs = np.where(maximize, -1.0, 1.0)
    p = points * signs
    out = []
    for i in range(len(p)):
        if np.isnan(p[i]).any():
            continue
        dominated = False
        for j in range(len(p)):
            if i != j and not np.isnan(p[j]).any() and (p[j] <= p[i]).all() and (p[j] < p[i]).any():
                dominated = True
                break
        if not dominated:
            out.append(i)
    return out


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_with_ties_duplicates_and_nan(d, seed):
    rng = np.random.default_rng(seed * 10 + d)
    n = 300
    points = rng.integers(0, 6, size=(n, d)).astype(float)  # small grid: many ties
    points[rng.choice(n, 20)] = points[rng.choice(n, 20)]  # exact duplicates
    points[rng.choice(n, 10), rng.integers(0, d)] = np.nan
    maximize = [bool(x) for x in rng.integers(0, 2, d)]
    got = bdnsca.pareto_frontier(points, maximize)
    assert got.dtype == np.int64
    assert got.tolist() == brute_frontier(points, maximize)


def test_continuous_two_d():
    rng = np.random.default_rng(0)
    pts = rng.random((2000, 2))
    assert bdnsca.pareto_frontier(pts, [False, True]).tolist() == brute_frontier(pts, [False, True])
    assert bdnsca.pareto_frontier(pts, True).tolist() == brute_frontier(pts, [True, True])


def test_identical_frontier_rows_all_returned():
    pts = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [3.0, 3.0]])
    assert bdnsca.pareto_frontier(pts).tolist() == [0, 1, 2]


def test_frontier_ratio_hand_checked():
    latency = [100.0, 50.0, 200.0, 80.0, 120.0]
    quality = [0.9, 0.5, 0.9, float("nan"), 0.95]
    r = bdnsca.frontier_ratio(latency, quality)
    # 0: q>=0.9 -> {100, 200, 120} -> 100/100; 1: everyone -> 50/50; 2: 200/100;
    # 4: only itself at 0.95 -> 1.0
    np.testing.assert_array_equal(r[[0, 1, 2, 4]], [1.0, 1.0, 2.0, 1.0])
    assert np.isnan(r[3])


def test_bad_shapes():
    with pytest.raises(bdnsca.BdnscaError, match="2-D"):
        bdnsca.pareto_frontier(np.zeros(3))
    with pytest.raises(bdnsca.BdnscaError, match="maximize has 1 entries for 2 columns"):
        bdnsca.pareto_frontier(np.zeros((3, 2)), [True])
    with pytest.raises(bdnsca.BdnscaError, match="latency has 2 values, quality 3"):
        bdnsca.frontier_ratio([1.0, 2.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("d", [2, 3, 4])
def test_large_inputs_take_the_parallel_path_and_stay_exact(d):
    # 300k rows: above the threshold where the scan splits across threads. Checked without a
    # brute force: no row dominates a frontier row, and every other non-NaN row is dominated
    # by a frontier row (the frontier of a finite set dominates everything off it).
    rng = np.random.default_rng(d)
    n = 300_000
    points = rng.integers(0, 40, size=(n, d)).astype(float)
    points[rng.choice(n, 100), 0] = np.nan
    maximize = [True] + [False] * (d - 1)
    got = bdnsca.pareto_frontier(points, maximize)
    p = points * np.where(maximize, -1.0, 1.0)
    valid = ~np.isnan(p).any(axis=1)
    front = p[got]
    assert valid[got].all()
    covered = np.zeros(n, dtype=bool)
    covered[got] = True
    for f in front:
        le = (f <= p).all(axis=1) & valid
        lt = (f < p).any(axis=1)
        dominated_by_f = le & lt
        covered |= dominated_by_f
        assert not ((p <= f).all(axis=1) & (p < f).any(axis=1) & valid).any()
    assert covered[valid].all()


# ----------------------------------------------------------------------------- properties

GRID = st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.5, float("nan")])  # ties, duplicates, NaN


@st.composite
def point_sets(draw):
    d = draw(st.integers(1, 4))
    n = draw(st.integers(0, 40))
    rows = draw(st.lists(st.lists(GRID, min_size=d, max_size=d), min_size=n, max_size=n))
    points = np.array(rows, dtype=float).reshape(n, d)
    maximize = draw(st.lists(st.booleans(), min_size=d, max_size=d))
    return points, maximize


@settings(max_examples=300, deadline=None)
@given(case=point_sets())
def test_frontier_equals_brute_force_on_any_point_set(case):
    points, maximize = case
    assert bdnsca.pareto_frontier(points, maximize).tolist() == brute_frontier(points, maximize)


@settings(max_examples=200, deadline=None)
@given(case=point_sets(), flip=st.integers(0, 3))
def test_frontier_rows_dominate_every_other_valid_row(case, flip):
    # independent of the brute force: no frontier row is dominated, every valid row off the
    # frontier is dominated by some frontier row, and maximising a column equals minimising
    # its negation
    points, maximize = case
    got = bdnsca.pareto_frontier(points, maximize)
    d = points.shape[1]
    j = flip % d
    negated = points.copy()
    negated[:, j] = -negated[:, j]
    flipped = list(maximize)
    flipped[j] = not flipped[j]
    assert bdnsca.pareto_frontier(negated, flipped).tolist() == got.tolist()
    p = points * np.where(maximize, -1.0, 1.0)
    valid = ~np.isnan(p).any(axis=1)
    on = np.zeros(len(p), dtype=bool)
    on[got] = True
    for i in range(len(p)):
        if not valid[i]:
            assert not on[i]
            continue
        dominators = valid & (p <= p[i]).all(axis=1) & (p < p[i]).any(axis=1)
        assert on[i] == (not dominators.any())


def brute_ratio(latency: list[float], quality: list[float]) -> list[float]:
    out = []
    for lat, q in zip(latency, quality, strict=True):
        if np.isnan(lat) or np.isnan(q):
            out.append(float("nan"))
            continue
        best = min(
            lj
            for lj, qj in zip(latency, quality, strict=True)
            if not np.isnan(lj) and not np.isnan(qj) and qj >= q
        )
        out.append(lat / best)
    return out


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from([1.0, 2.0, 5.0, 10.0, 0.5, float("nan")]),
            st.sampled_from([0.0, 0.5, 0.9, 1.0, float("nan")]),
        ),
        max_size=30,
    )
)
def test_frontier_ratio_equals_brute_force(pairs):
    latency = [p[0] for p in pairs]
    quality = [p[1] for p in pairs]
    got = bdnsca.frontier_ratio(latency, quality)
    np.testing.assert_array_equal(got, brute_ratio(latency, quality))
    finite = ~np.isnan(got)
    assert (got[finite] >= 1.0).all()
