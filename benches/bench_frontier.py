"""pareto_frontier against paretoset on the same arrays: 1M points (d = 2) and 100k points
(d = 3). Prints times and ratios, and checks both found the same frontier.

    python benches/bench_frontier.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import best_of, table  # noqa: E402

import bdnsca  # noqa: E402


def main() -> None:
    import paretoset

    rng = np.random.default_rng(0)
    for n, d in ((1_000_000, 2), (100_000, 3)):
        pts = rng.random((n, d))
        sense = ["min"] + ["max"] * (d - 1)
        paretoset.paretoset(pts[:1000], sense=sense)  # numba compiles on the first call: not timed
        t_ref, mask = best_of(lambda: paretoset.paretoset(pts, sense=sense), 5)  # noqa: B023
        t_ours, idx = best_of(lambda: bdnsca.pareto_frontier(pts, [s == "max" for s in sense]), 20)  # noqa: B023
        assert np.flatnonzero(mask).tolist() == idx.tolist(), "frontiers differ"
        t_sum, _ = best_of(lambda: pts.sum(), 20)  # noqa: B023
        rows = [
            ("paretoset", t_ref, f"{mask.sum()} on the frontier"),
            ("bdnsca", t_ours, "same rows"),
            ("numpy sum (one read of the array)", t_sum, "a floor for any exact method"),
        ]
        print(table(f"pareto frontier, {n:,} points, d = {d}", rows, "paretoset"))


if __name__ == "__main__":
    main()
