"""The judge summary's statistics, from the parsed answers.

Pairwise: every (scenario, pair, annotator) is judged in both orders. Each order's verdict is
mapped back to an arm ("A" is whichever arm was shown first in that order); when both orders
name the same arm (or both say tie) the verdict is position-consistent and stands, otherwise it
counts as a tie. A verdict missing in either order is left out (it cannot be checked).

- ``position_consistency``: consistent / verdicts with both orders parsed;
- ``first_position_preference``: among decisive single-order verdicts, the share that chose
  "A" (0.5 = no position bias);
- ``tie_rate``: ties among the final verdicts (flips included); ``raw_tie_rate``: among single-
  order verdicts;
- ``win_rates[metric][arm][other]``: the soft win-rate (win 1, tie 0.5, loss 0), averaged over
  annotators per scenario, then over scenarios, with a 95% percentile bootstrap interval over
  scenarios;
  With ``missing_as_loss``, a scenario where one arm of a pair has no usable response and the
  other has one counts as a win of the arm that answered (one comparison, every metric);
- ``verbosity[metric]``: among decisive final verdicts between responses of different length
  (in words), how often the longer one won (0.5 = no preference), with a Wilson interval.

Pointwise: ``krippendorff_alpha`` (ordinal) across annotators per metric, the mean rating per
arm, win-rates from comparing two arms' ratings by the same annotator (equal ratings tie), and
the same verbosity statistic over those comparisons.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from bdnsca.eval.judge_prompts import METRICS
from bdnsca.prefs.agreement import krippendorff_alpha_ordinal

BOOTSTRAP = 2000


def arm_verdict(order: dict[str, Any], metric: str, arm_1: str, arm_2: str) -> str | None:
    """One order's verdict as an arm id or "tie" (None when that answer is missing)."""
    values = order.get("values")
    if values is None:
        return None
    v = values[metric]
    if v == "tie":
        return "tie"
    shown_a = order["a"]
    shown_b = arm_2 if shown_a == arm_1 else arm_1
    return shown_a if v == "A" else shown_b


def combine(pair: dict[str, Any], metric: str) -> tuple[str | None, bool | None]:
    """(final verdict, position-consistent) of one judged pair; (None, None) if an order is missing."""
    v = [arm_verdict(o, metric, pair["arm_1"], pair["arm_2"]) for o in pair["orders"]]
    if None in v:
        return None, None
    consistent = v[0] == v[1]
    return (v[0] if consistent else "tie"), consistent


def pairwise_summary(
    pairs: Sequence[dict[str, Any]],
    arms: Sequence[str],
    lengths: dict[tuple[str, str], int],
    seed: int,
    forfeits: Sequence[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "judged_pairs": len(pairs),
        "krippendorff_alpha": {},
        "position_consistency": {},
        "first_position_preference": {},
        "tie_rate": {},
        "raw_tie_rate": {},
        "win_rates": {},
        "verbosity": {},
    }
    n_cons_all = n_both_all = 0
    for m in METRICS:
        finals = []  # (scenario, winner-or-tie, arm_1, arm_2, annotator)
        n_both = n_cons = n_a = n_decisive_raw = n_tie_raw = n_raw = 0
        for p in pairs:
            for o in p["orders"]:
                if o.get("values") is None:
                    continue
                n_raw += 1
                v = o["values"][m]
                if v == "tie":
                    n_tie_raw += 1
                else:
                    n_decisive_raw += 1
                    n_a += v == "A"
            final, consistent = combine(p, m)
            if final is None:
                continue
            n_both += 1
            n_cons += bool(consistent)
            finals.append((p["scenario_id"], final, p["arm_1"], p["arm_2"], p["annotator_id"]))
        n_cons_all += n_cons
        n_both_all += n_both
        out["position_consistency"][m] = _rate(n_cons, n_both)
        out["first_position_preference"][m] = _rate(n_a, n_decisive_raw)
        out["raw_tie_rate"][m] = _rate(n_tie_raw, n_raw)
        out["tie_rate"][m] = _rate(sum(f[1] == "tie" for f in finals), len(finals))
        coded = [
            ((s, a1, a2), ann, 0.0 if w == "tie" else (1.0 if w == a1 else -1.0))
            for s, w, a1, a2, ann in finals
        ]
        out["krippendorff_alpha"][m] = krippendorff_alpha_ordinal(coded)
        scores = []
        for s, w, a1, a2, ann in finals:
            x = 0.5 if w == "tie" else (1.0 if w == a1 else 0.0)
            scores.append((s, a1, a2, ann, x))
        out["win_rates"][m] = win_rates([*scores, *_forfeit_scores(forfeits)], arms, seed)
        longer = [_longer_won(lengths, s, a1, a2, w) for s, w, a1, a2, _ in finals if w != "tie"]
        out["verbosity"][m] = verbosity([x for x in longer if x is not None])
    out["position_consistency"]["all"] = _rate(n_cons_all, n_both_all)
    return out


def pointwise_summary(
    ratings: dict[tuple[str, str, str], dict[str, int] | None],
    arms: Sequence[str],
    lengths: dict[tuple[str, str], int],
    seed: int,
    forfeits: Sequence[tuple[str, str, str]] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ratings": len(ratings),
        "missing": sum(v is None for v in ratings.values()),
        "krippendorff_alpha": {},
        "mean": {a: {} for a in arms},
        "tie_rate": {},
        "win_rates": {},
        "verbosity": {},
    }
    by_cell: dict[tuple[str, str], dict[str, dict[str, int]]] = defaultdict(
        dict
    )  # (sid, ann) -> arm -> values
    for (sid, arm, ann), values in ratings.items():
        if values is not None:
            by_cell[(sid, ann)][arm] = values
    for m in METRICS:
        triples = [((sid, arm), ann, float(v[m])) for (sid, arm, ann), v in ratings.items() if v is not None]
        out["krippendorff_alpha"][m] = krippendorff_alpha_ordinal(triples)
        for a in arms:
            xs = [float(v[m]) for (_, arm, _), v in ratings.items() if v is not None and arm == a]
            out["mean"][a][m] = statistics.fmean(xs) if xs else None
        scores, longer, ties, n = [], [], 0, 0
        for (sid, ann), per_arm in by_cell.items():
            for a1, a2 in combinations([a for a in arms if a in per_arm], 2):
                r1, r2 = per_arm[a1][m], per_arm[a2][m]
                n += 1
                ties += r1 == r2
                scores.append((sid, a1, a2, ann, 0.5 if r1 == r2 else float(r1 > r2)))
                if r1 != r2:
                    longer.append(_longer_won(lengths, sid, a1, a2, a1 if r1 > r2 else a2))
        out["tie_rate"][m] = _rate(ties, n)
        out["win_rates"][m] = win_rates([*scores, *_forfeit_scores(forfeits)], arms, seed)
        out["verbosity"][m] = verbosity([x for x in longer if x is not None])
    return out


def _forfeit_scores(forfeits: Sequence[tuple[str, str, str]]) -> list[tuple[str, str, str, str, float]]:
    """(scenario, arm that answered, arm that did not) as a win of the first: one comparison."""
    return [(sid, won, lost, "(no response)", 1.0) for sid, won, lost in forfeits]


def _longer_won(lengths: dict[tuple[str, str], int], sid: str, a1: str, a2: str, winner: str) -> bool | None:
    l1, l2 = lengths.get((sid, a1)), lengths.get((sid, a2))
    if l1 is None or l2 is None or l1 == l2:
        return None
    longer = a1 if l1 > l2 else a2
    return winner == longer


def win_rates(
    scores: Sequence[tuple[str, str, str, str, float]], arms: Sequence[str], seed: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """``scores``: (scenario, arm_1, arm_2, annotator, arm_1's soft score). Returns
    rates[arm][other] = {rate, ci95, scenarios, comparisons}, both directions."""
    per: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for sid, a1, a2, _ann, x in scores:
        per[(a1, a2)][sid].append(x)
        per[(a2, a1)][sid].append(1.0 - x)
    out: dict[str, dict[str, dict[str, Any]]] = {a: {} for a in arms}
    for a, b in ((a, b) for a in arms for b in arms if a != b):
        cells = per.get((a, b), {})
        scen = [statistics.fmean(v) for _, v in sorted(cells.items())]
        rate, ci = mean_ci(scen, seed)
        out[a][b] = {
            "rate": rate,
            "ci95": ci,
            "scenarios": len(scen),
            "comparisons": sum(len(v) for v in cells.values()),
        }
    return out


def mean_ci(
    values: Sequence[float], seed: int, resamples: int = BOOTSTRAP
) -> tuple[float | None, list[float] | None]:
    """The mean and its 95% percentile bootstrap interval (None for no values)."""
    if not values:
        return None, None
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 1:
        return float(x[0]), [float(x[0]), float(x[0])]
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(x.mean()), [float(lo), float(hi)]


def verbosity(longer_won: Sequence[bool]) -> dict[str, Any]:
    n = len(longer_won)
    k = sum(longer_won)
    return {"longer_wins_rate": _rate(k, n), "ci95": wilson(k, n), "decisive_with_length_difference": n}


def wilson(k: int, n: int, z: float = 1.959963984540054) -> list[float] | None:
    if n == 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None
