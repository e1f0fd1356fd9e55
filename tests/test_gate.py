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


def test_noise_without_a_shift_does_not_pass(tmp_path):
    q = base_scores()
    rng = np.random.default_rng(4)
    cand = {m: v + rng.normal(0, 0.05, len(v)) for m, v in q.items()}
    rep = run_gate(make_run(tmp_path / "a", q), make_run(tmp_path / "c", cand), S)
    for r in checks(rep, "paired_quality"):
        assert r.ci95[0] < r.delta < r.ci95[1]
        assert r.status == "fail" or r.ci95[0] > 0


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
    # quality/second: 0.5/0.2 = 2.5 vs 0.5/0.1 = 5; conservative lower bound 0.49/0.105 = 4.667 > 2.5
    assert row.anchor == pytest.approx(2.5) and row.candidate == pytest.approx(5.0) and row.status == "pass"
    assert row.extra["candidate_frontier_ratio"] == 1.0 and row.extra["anchor_frontier_ratio"] == 2.0
    # only one summary: not evaluated, and the report says which evidence was missing
    rep = run_gate(a, c, S, serving_anchor=sa)
    (row,) = checks(rep, "serving_frontier")
    assert row.status == "not_evaluated" and "--serving-candidate" in row.reason


def test_stress_check_uses_attack_success_rates(tmp_path):
    q = base_scores()
    a, c = make_run(tmp_path / "a", q), make_run(tmp_path / "c", q)
    (tmp_path / "sa.json").write_text(
        json.dumps({"configurations": [{"name": "bm25", "n": 100, "attack_successes": 40}]})
    )
    (tmp_path / "sc.json").write_text(
        json.dumps({"configurations": [{"name": "bm25", "n": 100, "attack_successes": 10}]})
    )
    (row,) = checks(
        run_gate(a, c, S, stress_anchor=tmp_path / "sa.json", stress_candidate=tmp_path / "sc.json"),
        "retrieval_stress",
    )
    assert row.status == "pass" and row.delta == pytest.approx(-0.3)
    assert row.ci95[1] < 0 and row.extra["significantly_lower"]


def test_retrieval_check_from_runs(tmp_path):
    import bdnsca

    q = base_scores()
    a, c = make_run(tmp_path / "a", q), make_run(tmp_path / "c", q)
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(30)}
    good = {f"q{i}": {f"d{i}": 2.0, "x": 1.0} for i in range(30)}
    bad = {f"q{i}": {"x": 2.0, f"d{i}": 1.0} for i in range(30)}
    (tmp_path / "qrels.txt").write_text("".join(f"q{i} 0 d{i} 1\n" for i in range(30)))
    bdnsca.write_run(tmp_path / "good.trec", good)
    bdnsca.write_run(tmp_path / "bad.trec", bad)
    rep = run_gate(
        a,
        c,
        S,
        retrieval_qrels=tmp_path / "qrels.txt",
        retrieval_anchor=tmp_path / "good.trec",
        retrieval_candidate=tmp_path / "bad.trec",
    )
    rows = checks(rep, "retrieval_no_regression")
    assert {r.metric for r in rows} == {"mrr@10", "ndcg@10"}
    mrr = next(r for r in rows if r.metric == "mrr@10")
    assert mrr.delta == pytest.approx(-0.5) and mrr.status == "fail"
    assert qrels  # the qrels file above is the same as this dict


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
