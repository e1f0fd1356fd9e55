"""``bdnsca gate``: planted runs whose verdict is known, hand-computed soft win-rates, and the
shared pair of old-project runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bdnsca.errors import BdnscaError
from bdnsca.eval.gate import GateSettings, run_gate, write_gate_report
from bdnsca.eval.gate_checks import check_paired_quality

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "npc-ai"
ARM, BASE = "target", "baseline"


def make_run(folder: Path, quality: dict[str, np.ndarray], ratings: list[tuple] | None = None) -> Path:
    """A run folder: run_config.json, scores/target.jsonl with the given per-scenario scores."""
    (folder / "scores").mkdir(parents=True)
    (folder / "run_config.json").write_text(json.dumps({"target_arm": ARM, "baseline_arm_ids": [BASE]}))
    n = len(next(iter(quality.values())))
    with open(folder / "scores" / f"{ARM}.jsonl", "w") as f:
        for i in range(n):
            row = {"scenario_id": f"s{i:03d}", "repeat_index": 0, "ok": True, "arm_id": ARM}
            row |= {m: float(v[i]) for m, v in quality.items()}
            f.write(json.dumps(row) + "\n")
    if ratings is not None:
        with open(folder / "judge_ratings.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["scenario_id", "arm_id", "annotator_id", "overall_quality", "notes"])
            w.writerows(ratings)
    return folder


def base_scores(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {"overall_quality": rng.uniform(0.3, 0.7, n), "context_relevance": rng.uniform(0.2, 0.6, n)}


def checks(report, name):
    return [c for c in report.checks if c.check == name]


S = GateSettings(resamples=2000)


def test_candidate_better_everywhere_passes_quality(tmp_path):
    q = base_scores()
    a = make_run(tmp_path / "a", q)
    c = make_run(tmp_path / "c", {m: v + 0.05 for m, v in q.items()})
    rep = run_gate(a, c, S)
    rows = checks(rep, "paired_quality")
    assert [r.status for r in rows] == ["pass", "pass"]
    for r in rows:
        assert r.delta == pytest.approx(0.05) and r.ci95 == pytest.approx([0.05, 0.05]) and r.n == 40
    # the other evidence is missing: not evaluated, which fails the gate unless allowed
    assert not rep.passed
    assert {r.status for r in rep.checks if r.check != "paired_quality"} == {"not_evaluated"}
    assert run_gate(a, c, GateSettings(resamples=2000, allow_missing=True)).passed


def test_equal_runs_fail_for_want_of_improvement(tmp_path):
    q = base_scores()
    rep = run_gate(make_run(tmp_path / "a", q), make_run(tmp_path / "c", q), S)
    rows = checks(rep, "paired_quality")
    assert [r.status for r in rows] == ["fail", "fail"]
    assert all("no paired improvement" in r.reason for r in rows)
    assert not rep.passed


def test_improvement_on_one_metric_and_regression_on_the_other_fails_on_that_metric(tmp_path):
    q = base_scores()
    cand = {
        "overall_quality": q["overall_quality"] + 0.05,
        "context_relevance": q["context_relevance"] - 0.05,
    }
    rep = run_gate(
        make_run(tmp_path / "a", q),
        make_run(tmp_path / "c", cand),
        GateSettings(resamples=2000, allow_missing=True),
    )
    by_metric = {r.metric: r for r in checks(rep, "paired_quality")}
    assert by_metric["overall_quality"].status == "pass"
    assert by_metric["context_relevance"].status == "fail"
    assert by_metric["context_relevance"].delta == pytest.approx(-0.05)
    assert "-0.05" in by_metric["context_relevance"].reason
    assert not rep.passed


def test_under_no_effect_the_gate_rarely_passes(tmp_path):
    # 40 null experiments (candidate = anchor + noise with mean 0): a one-sided 2.5% error rate
    # lets through ~1; a broken interval or test (e.g. an unpaired or too-narrow CI) lets through many.
    passes = 0
    for i in range(40):
        q = base_scores(n=30, seed=100 + i)
        rng = np.random.default_rng(1000 + i)
        cand = {m: v + rng.normal(0, 0.05, len(v)) for m, v in q.items()}
        rows, _ = check_paired_quality(
            make_run(tmp_path / f"a{i}", q),
            make_run(tmp_path / f"c{i}", cand),
            ARM,
            GateSettings(resamples=500),
        )
        passes += rows[0].status == "pass"
    assert passes <= 5


def test_two_scenarios_cannot_pass_however_large_the_gain(tmp_path):
    # With n = 2 the exact randomization test cannot reach p < 0.05 (its smallest p is 2/4).
    q = {"overall_quality": np.array([0.5, 0.4]), "context_relevance": np.array([0.3, 0.2])}
    cand = {"overall_quality": np.array([0.51, 0.43]), "context_relevance": np.array([0.31, 0.25])}
    rows, _ = check_paired_quality(make_run(tmp_path / "a", q), make_run(tmp_path / "c", cand), ARM, S)
    assert [r.status for r in rows] == ["fail", "fail"]
    assert all(r.ci95[0] > 0 and r.p_value >= 0.5 for r in rows)


def test_repeats_are_averaged_per_scenario_before_resampling(tmp_path):
    rng = np.random.default_rng(8)
    n_s, reps = 12, 5
    effect = rng.normal(0, 0.1, n_s)  # scenario-level differences shared by every repeat
    for name, shift in (("a", 0.0), ("c", 1.0)):
        folder = tmp_path / name
        (folder / "scores").mkdir(parents=True)
        (folder / "run_config.json").write_text(json.dumps({"target_arm": ARM}))
        with open(folder / "scores" / f"{ARM}.jsonl", "w") as f:
            for i in range(n_s):
                for r in range(reps):
                    v = 0.5 + shift * effect[i] + rng.normal(0, 0.01)
                    f.write(
                        json.dumps({"scenario_id": f"s{i}", "repeat_index": r, "overall_quality": v}) + "\n"
                    )
    s = GateSettings(resamples=4000, quality_metrics=["overall_quality"])
    (row,) = check_paired_quality(tmp_path / "a", tmp_path / "c", ARM, s)[0]
    assert row.n == n_s and row.extra["responses"] == n_s * reps
    a_rows = [json.loads(x) for x in (tmp_path / "a" / "scores" / f"{ARM}.jsonl").read_text().splitlines()]
    c_rows = [json.loads(x) for x in (tmp_path / "c" / "scores" / f"{ARM}.jsonl").read_text().splitlines()]
    per_s = [
        np.mean([c["overall_quality"] for c in c_rows if c["scenario_id"] == f"s{i}"])
        - np.mean([a["overall_quality"] for a in a_rows if a["scenario_id"] == f"s{i}"])
        for i in range(n_s)
    ]
    assert row.delta == pytest.approx(np.mean(per_s), abs=1e-12)
    # the interval reflects the spread of 12 scenario deltas (sd ~0.1), not of 60 responses
    assert row.ci95[1] - row.ci95[0] > 2 * 1.96 * np.std(per_s, ddof=1) / np.sqrt(n_s) * 0.7


def test_alpha_sets_the_interval_level(tmp_path):
    q = base_scores()
    rng = np.random.default_rng(2)
    cand = {m: v + 0.02 + rng.normal(0, 0.05, len(v)) for m, v in q.items()}
    a, c = make_run(tmp_path / "a", q), make_run(tmp_path / "c", cand)
    wide = check_paired_quality(a, c, ARM, GateSettings(resamples=4000, alpha=0.01))[0][0]
    narrow = check_paired_quality(a, c, ARM, GateSettings(resamples=4000, alpha=0.5))[0][0]
    assert wide.ci95[0] < narrow.ci95[0] < narrow.ci95[1] < wide.ci95[1]


def test_a_candidate_that_fails_more_requests_does_not_pass(tmp_path):
    q = base_scores()
    a = make_run(tmp_path / "a", q)
    c = make_run(tmp_path / "c", {m: v + 0.05 for m, v in q.items()})
    lines = (c / "scores" / f"{ARM}.jsonl").read_text().splitlines()
    for i in range(5):  # the candidate fails five requests the anchor answered
        row = json.loads(lines[i]) | {"ok": False}
        lines[i] = json.dumps(row)
    (c / "scores" / f"{ARM}.jsonl").write_text("\n".join(lines) + "\n")
    rows, unpaired = check_paired_quality(a, c, ARM, S)
    assert unpaired["failed_responses"] == {"anchor": 0, "candidate": 5}
    assert all(r.status == "fail" and "fails 5 requests" in r.reason for r in rows)


def test_scenarios_in_one_run_only_are_listed_and_excluded(tmp_path):
    q = base_scores(n=30)
    a = make_run(tmp_path / "a", q)
    c = make_run(tmp_path / "c", {m: v[:25] + 0.1 for m, v in q.items()})
    rep = run_gate(a, c, S)
    assert {r.n for r in checks(rep, "paired_quality")} == {25}
    assert rep.settings["only_in_anchor"] == [f"s{i:03d}#0" for i in range(25, 30)]
    assert rep.settings["only_in_candidate"] == []


def test_soft_win_rate_by_hand_with_ties(tmp_path):
    q = base_scores(n=4)
    # Anchor: scenario 0 win, 1 tie, 2 loss, 3 win (mean of raters) -> (1 + .5 + 0 + 1) / 4 = 0.625
    anchor_ratings = [
        ("s000", ARM, "r1", 5, ""),
        ("s000", BASE, "r1", 3, ""),
        ("s001", ARM, "r1", 4, ""),
        ("s001", ARM, "r2", 2, ""),
        ("s001", BASE, "r1", 3, ""),
        ("s002", ARM, "r1", 2, ""),
        ("s002", BASE, "r1", 4, ""),
        ("s003", ARM, "r1", 4, ""),
        ("s003", BASE, "r1", 1, ""),
    ]
    # Candidate: every scenario a win -> 1.0; delta = 0.375
    cand_ratings = [(s, ARM, "r1", 5, "") for s in ("s000", "s001", "s002", "s003")]
    cand_ratings += [(s, BASE, "r1", 2, "") for s in ("s000", "s001", "s002", "s003")]
    a = make_run(tmp_path / "a", q, anchor_ratings)
    c = make_run(tmp_path / "c", q, cand_ratings)
    (row,) = checks(run_gate(a, c, S), "soft_win_rate")
    assert row.anchor == pytest.approx(0.625) and row.candidate == pytest.approx(1.0)
    assert row.delta == pytest.approx(0.375) and row.status == "pass"
    assert row.extra["paired_scenarios"] is True
    # the paired differences are 0, .5, 1, 0: the bootstrap interval lies within [0, 1]
    assert 0.0 <= row.ci95[0] <= row.delta <= row.ci95[1] <= 1.0
    # swapped: the candidate is clearly worse -> inferior beyond the margin
    (worse,) = checks(run_gate(c, a, S), "soft_win_rate")
    assert worse.status == "fail" and worse.delta == pytest.approx(-0.375)


def test_two_ratings_files_are_an_error_naming_them(tmp_path):
    q = base_scores(n=4)
    a = make_run(tmp_path / "a", q)
    c = make_run(tmp_path / "c", q)
    for name in ("human_eval_a.csv", "human_eval_b.csv"):
        (c / name).write_text("scenario_id,arm_id,annotator_id,overall_quality\n")
    with pytest.raises(BdnscaError, match="human_eval_a.csv, human_eval_b.csv"):
        run_gate(a, c, S)


def _serving_summary(path: Path, configs):
    entries = [
        {
            "name": n,
            "total_ms": {"mean": lat, "ci95": {"mean": [lat * 0.95, lat * 1.05]}},
            "quality": {"score": q, "ci95": [q - 0.01, q + 0.01]},
        }
        for n, lat, q in configs
    ]
    path.write_text(json.dumps({"configs": entries}))
    return path


def test_serving_check_and_missing_summary(tmp_path):
    q = base_scores()
    a = make_run(tmp_path / "a", q)
    c = make_run(tmp_path / "c", {m: v + 0.05 for m, v in q.items()})
    sa = _serving_summary(tmp_path / "sa.json", [("plain", 200.0, 0.5)])
    sc = _serving_summary(tmp_path / "sc.json", [("plain", 200.0, 0.5), ("spec", 100.0, 0.5)])
    rep = run_gate(a, c, S, serving_anchor=sa, serving_candidate=sc)
    (row,) = checks(rep, "serving_frontier")
    # quality/second: 0.5/0.2 = 2.5 vs 0.5/0.1 = 5; candidate's lower bound 0.49/0.105 = 4.667 is above
    # the anchor's upper bound 0.51/0.19 = 2.684
    assert row.anchor == pytest.approx(2.5) and row.candidate == pytest.approx(5.0) and row.status == "pass"
    assert row.extra["candidate_frontier_ratio"] == 1.0 and row.extra["anchor_frontier_ratio"] == 2.0
    # overlapping intervals: not shown higher
    sc2 = _serving_summary(tmp_path / "sc2.json", [("plain", 190.0, 0.5)])
    (row,) = checks(run_gate(a, c, S, serving_anchor=sa, serving_candidate=sc2), "serving_frontier")
    assert row.status == "fail" and row.ci95[0] < 0 < row.ci95[1]
    # a summary without intervals cannot decide
    raw = json.loads(sc.read_text())
    for e in raw["configs"]:
        del e["quality"]["ci95"]
    (tmp_path / "noci.json").write_text(json.dumps(raw))
    (row,) = checks(
        run_gate(a, c, S, serving_anchor=sa, serving_candidate=tmp_path / "noci.json"), "serving_frontier"
    )
    assert row.status == "not_evaluated" and "intervals" in row.reason
    # only one summary: not evaluated, and the report says which evidence was missing
    rep = run_gate(a, c, S, serving_anchor=sa)
    (row,) = checks(rep, "serving_frontier")
    assert row.status == "not_evaluated" and "--serving-candidate" in row.reason


def _stress(path: Path, k: int, n: int = 100) -> Path:
    path.write_text(
        json.dumps({"configurations": [{"name": "bm25", "n": n, "attack_successes": k, "safe_at_1": n - k}]})
    )
    return path


@pytest.mark.parametrize(
    "ka,kc,status",
    [(40, 10, "pass"), (40, 39, "fail"), (10, 40, "fail"), (0, 0, "pass"), (0, 1, "fail")],
)
def test_stress_check_needs_a_significantly_lower_attack_success_rate(tmp_path, ka, kc, status):
    q = base_scores()
    a, c = make_run(tmp_path / "a", q), make_run(tmp_path / "c", q)
    rep = run_gate(
        a,
        c,
        S,
        stress_anchor=_stress(tmp_path / "sa.json", ka),
        stress_candidate=_stress(tmp_path / "sc.json", kc),
    )
    (row,) = checks(rep, "retrieval_stress")
    assert row.status == status and row.delta == pytest.approx((kc - ka) / 100)
    assert row.extra["candidate_safe_at_1"] == 100 - kc
    proportion = pytest.importorskip(
        "statsmodels.stats.proportion", reason="statsmodels is the Wilson reference"
    )
    lo, hi = proportion.proportion_confint(kc, 100, alpha=0.05, method="wilson")
    assert row.extra["candidate_wilson95"] == pytest.approx([lo, hi], abs=1e-9)


@pytest.mark.parametrize("worse", [False, True])
def test_retrieval_check_from_runs(tmp_path, worse):
    import bdnsca

    q = base_scores()
    a, c = make_run(tmp_path / "a", q), make_run(tmp_path / "c", q)
    rng = np.random.default_rng(6)
    n = 80
    (tmp_path / "qrels.txt").write_text("".join(f"q{i} 0 d{i} 1\n" for i in range(n)))
    # the anchor ranks the relevant document at a random position 1..5; the candidate the same
    # (a tie) or one position lower on half the queries (a real regression)
    pos_a = rng.integers(1, 6, n)
    pos_c = pos_a + (rng.random(n) < 0.5) * worse

    def run(pos):
        return {
            f"q{i}": {**{f"x{j}": 10.0 - j for j in range(1, 8)}, f"d{i}": 10.0 - p + 0.5}
            for i, p in enumerate(pos)
        }

    bdnsca.write_run(tmp_path / "a.trec", run(pos_a))
    bdnsca.write_run(tmp_path / "c.trec", run(pos_c))
    rep = run_gate(
        a,
        c,
        S,
        retrieval_qrels=tmp_path / "qrels.txt",
        retrieval_anchor=tmp_path / "a.trec",
        retrieval_candidate=tmp_path / "c.trec",
    )
    rows = {r.metric: r for r in checks(rep, "retrieval_no_regression")}
    assert set(rows) == {"mrr@10", "ndcg@10"}
    mrr = rows["mrr@10"]
    direct = np.mean(1 / pos_c - 1 / pos_a)
    assert mrr.delta == pytest.approx(direct, abs=1e-12) and mrr.n == n
    assert mrr.ci95[0] <= mrr.delta <= mrr.ci95[1]
    assert mrr.status == ("fail" if worse else "pass")


def test_report_files_and_cli_exit_codes(tmp_path):
    q = base_scores()
    a = make_run(tmp_path / "a", q)
    c = make_run(tmp_path / "c", {m: v + 0.05 for m, v in q.items()})
    paths = write_gate_report(run_gate(a, c, S), tmp_path / "g")
    data = json.loads(paths["json"].read_text())
    assert data["passed"] is False and {x["status"] for x in data["checks"]} >= {"pass", "not_evaluated"}
    assert set(data["inputs"]) == {str(a / "scores" / "target.jsonl"), str(c / "scores" / "target.jsonl")}
    assert "| paired_quality | overall_quality | **pass**" in paths["markdown"].read_text()

    def gate(*args):
        return subprocess.run(
            [sys.executable, "-m", "bdnsca.cli", "gate", *map(str, args), "--resamples", "500"],
            capture_output=True,
            text=True,
            check=False,
        )

    r = gate("--anchor", a, "--candidate", c, "--allow-missing", "-o", tmp_path / "g1")
    assert r.returncode == 0, r.stderr
    assert gate("--anchor", a, "--candidate", c, "-o", tmp_path / "g2").returncode == 1
    assert gate("--anchor", c, "--candidate", a, "--allow-missing", "-o", tmp_path / "g3").returncode == 1
    bad = gate("--anchor", tmp_path, "--candidate", c, "-o", tmp_path / "g4")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "run_config.json" in bad.stderr


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is absent (a fresh clone)")
def test_shared_runs_deltas_equal_a_direct_computation(tmp_path):
    anchor, candidate = SHARED / "proposal_run", SHARED / "proposal_run_b"
    rep = run_gate(anchor, candidate, GateSettings(resamples=1000, allow_missing=True))
    arm = json.loads((anchor / "run_config.json").read_text())["target_arm"]

    def load(run):
        out = {}
        for line in open(run / "scores" / f"{arm}.jsonl", encoding="utf-8"):
            row = json.loads(line)
            if row.get("ok", True):
                out[(row["scenario_id"], row.get("repeat_index", 0))] = row
        return out

    a, c = load(anchor), load(candidate)
    for row in checks(rep, "paired_quality"):
        keys = [
            k
            for k in a.keys() & c.keys()
            if a[k].get(row.metric) is not None and c[k].get(row.metric) is not None
        ]
        direct = np.mean([c[k][row.metric] - a[k][row.metric] for k in keys])
        assert row.n == len(keys) and row.delta == pytest.approx(direct, abs=1e-12)
    write_gate_report(rep, tmp_path / "g")
