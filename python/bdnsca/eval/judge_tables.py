"""The judge's CSV tables: ``judge_ratings.csv`` rows (pointwise ratings, or in pairwise-only
mode each arm's soft win share on 1-5) and ``judge_pairwise.csv`` rows (each pair's verdict per
order and the final one)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from bdnsca.data.io import atomic_write
from bdnsca.eval import judge_stats
from bdnsca.eval.judge_prompts import METRICS


def ratings_rows(mode, sample, arms, annotators, pointwise, notes, pairs) -> list[dict[str, Any]]:
    rows = []
    if mode in ("pointwise", "both"):
        for sid in sample:
            for a in arms:
                for ann in annotators:
                    if (sid, a, ann) not in pointwise:
                        continue
                    values = pointwise[(sid, a, ann)] or {}
                    row = {"scenario_id": sid, "arm_id": a, "annotator_id": ann}
                    row.update({m: values.get(m, "") for m in METRICS})
                    row["notes"] = notes[(sid, a, ann)]
                    rows.append(row)
        return rows
    # pairwise only: each arm's soft win share in its scenario's pairs, on 1-5
    share: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for p in pairs:
        for m in METRICS:
            final, _ = judge_stats.combine(p, m)
            if final is None:
                continue
            x = 0.5 if final == "tie" else float(final == p["arm_1"])
            share[(p["scenario_id"], p["arm_1"], p["annotator_id"])][m].append(x)
            share[(p["scenario_id"], p["arm_2"], p["annotator_id"])][m].append(1.0 - x)
    for sid in sample:
        for a in arms:
            for ann in annotators:
                got = share.get((sid, a, ann))
                if not got:
                    continue
                vals = {
                    m: (round(1 + 4 * sum(got[m]) / len(got[m]), 6) if got.get(m) else "") for m in METRICS
                }
                rows.append({"scenario_id": sid, "arm_id": a, "annotator_id": ann, **vals,
                             "notes": "from pairwise verdicts: 1 + 4 x soft win share"})  # fmt: skip
    return rows


PAIR_COLUMNS = ["scenario_id", "arm_1", "arm_2", "annotator_id", "metric", "first_shown_as_a",
                 "winner_first_order", "winner_second_order", "winner", "position_consistent"]  # fmt: skip


def pair_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in pairs:
        for m in METRICS:
            v = [judge_stats.arm_verdict(o, m, p["arm_1"], p["arm_2"]) for o in p["orders"]]
            final, consistent = judge_stats.combine(p, m)
            rows.append({
                "scenario_id": p["scenario_id"], "arm_1": p["arm_1"], "arm_2": p["arm_2"],
                "annotator_id": p["annotator_id"], "metric": m, "first_shown_as_a": p["orders"][0]["a"],
                "winner_first_order": v[0] or "", "winner_second_order": v[1] or "", "winner": final or "",
                "position_consistent": "" if consistent is None else int(consistent),
            })  # fmt: skip
    return rows


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
