"""The preference builder on hand-made runs, and the playbook's command on the shared run."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest

import bdnsca
from bdnsca.prefs.agreement import krippendorff_alpha_ordinal, mean_pairwise_kappa, weighted_kappa
from bdnsca.prefs.build import PreferenceSettings, build_preferences, normalise_score
from bdnsca.prefs.ratings import read_ratings
from conftest import SHARED

ARMS = ["target", "base_a", "base_b"]


def make_run(tmp_path, ratings, *, prompts=None, extra_responses=None, config_arms=ARMS):
    """ratings: {(scenario, arm): [r1, r2, ...]} -> a run directory with responses and a CSV."""
    run = tmp_path / "run"
    (run / "responses").mkdir(parents=True)
    (run / "run_config.json").write_text(json.dumps({"arms": [{"arm_id": a} for a in config_arms]}))
    scenarios = sorted({s for s, _ in ratings} | {"s_unrated"})
    (run / "scenarios.jsonl").write_text(
        "".join(
            json.dumps({"scenario_id": s, "persona": "p", "player_input": f"hi {s}"}) + "\n"
            for s in scenarios
        )
    )
    for arm in config_arms:
        rows = []
        for s in scenarios:
            prompt = (prompts or {}).get((s, arm), f"prompt for {s}")
            rows.append(
                {
                    "scenario_id": s,
                    "repeat_index": 1,
                    "request_index": 0,
                    "prompt": prompt,
                    "response": f"{arm} late {s}",
                    "ok": True,
                }
            )
            rows.append(
                {
                    "scenario_id": s,
                    "repeat_index": 0,
                    "request_index": 5,
                    "prompt": prompt,
                    "response": f"{arm} says {s}",
                    "ok": True,
                }
            )
            rows.append(
                {
                    "scenario_id": s,
                    "repeat_index": 0,
                    "request_index": 1,
                    "prompt": prompt,
                    "response": "",
                    "ok": False,
                }
            )
        rows += (extra_responses or {}).get(arm, [])
        (run / "responses" / f"{arm}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open(run / "ratings.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario_id", "arm_id", "annotator_id", "overall_quality", "naturalness", "notes"])
        for (s, arm), values in ratings.items():
            for i, v in enumerate(values):
                w.writerow([s, arm, f"rater{i}", v, v, ""])
    return run


def build(run, **kw):
    base = dict(target_arm="target", baseline_arms=["base_a", "base_b"])
    return build_preferences(run, run / "ratings.csv", PreferenceSettings(**{**base, **kw}))


def test_margins_and_directions(tmp_path):
    run = make_run(
        tmp_path,
        {
            ("s1", "target"): [5, 4, 5],
            ("s1", "base_a"): [3, 3, 4],  # target leads by 1.33
            ("s1", "base_b"): [5, 4, 4],  # leads by 0.33
            ("s2", "target"): [3, 3],
            ("s2", "base_a"): [4, 5],  # baseline leads by 1.5
            ("s2", "base_b"): [3, 3],  # tie
        },
    )
    res = build(run, min_margin=0.5)
    assert [(r["metadata"]["scenario_id"], r["metadata"]["rejected_arm"]) for r in res.train] == [
        ("s1", "base_a")
    ]
    row = res.train[0]
    assert row["chosen"] == "target says s1"  # lowest repeat, then request index; failed rows ignored
    assert row["rejected"] == "base_a says s1"
    assert row["metadata"]["score_delta_raw"] == pytest.approx(4 / 3)
    assert row["metadata"]["chosen_score_norm"] == pytest.approx((14 / 3 - 1) / 4)
    assert res.summary["skipped"] == {
        "baseline_preferred": 1,
        "below_margin": 2,
        "unrated_scenario": 2,
    }
    rev = build(run, min_margin=0.5, allow_reverse_pairs=True)
    assert [r["metadata"]["preference_direction"] for r in rev.train] == [
        "target_over_baseline",
        "baseline_over_target",
    ]
    assert rev.train[1]["chosen"] == "base_a says s2" and rev.train[1]["rejected"] == "target says s2"


def test_min_raters(tmp_path):
    run = make_run(tmp_path, {("s1", "target"): [5, 5], ("s1", "base_a"): [1], ("s1", "base_b"): [1, 2]})
    res = build(run, min_raters=2)
    assert [r["metadata"]["rejected_arm"] for r in res.train] == ["base_b"]
    assert res.summary["skipped"]["insufficient_raters"] == 1
    assert len(build(run, min_raters=1).train) == 2


RATINGS_HARSH_LENIENT = {
    ("s1", "target"): [2, 5, 5],
    ("s1", "base_a"): [4, 4, 4],
    ("s1", "base_b"): [1, 1, 1],
    ("s2", "target"): [1, 4, 4],
    ("s2", "base_a"): [1, 4, 4],
    ("s2", "base_b"): [2, 5, 2],
}


def test_aggregation_modes(tmp_path):
    # rater0 is harsh, rater1 lenient: medians and z-scores tell a different story from means
    run = make_run(tmp_path, RATINGS_HARSH_LENIENT)
    mean = {
        (r["metadata"]["scenario_id"], r["metadata"]["rejected_arm"])
        for r in build(run, min_margin=0.1).train
    }
    median = {
        (r["metadata"]["scenario_id"], r["metadata"]["rejected_arm"])
        for r in build(run, min_margin=0.1, aggregate="median").train
    }
    assert ("s1", "base_a") not in mean  # mean 4.0 vs 4.0: a tie
    assert ("s1", "base_a") in median  # median 5 vs 4
    # zscore against scipy: each rater standardised over the file (population SD), averaged per
    # (scenario, arm); a lead counts in units of the mean rater SD
    stats = pytest.importorskip("scipy.stats")
    np = pytest.importorskip("numpy")
    table = RATINGS_HARSH_LENIENT
    keys = sorted(table)
    per_rater = np.array([[table[k][i] for k in keys] for i in range(3)], dtype=float)
    z = stats.zscore(per_rater, axis=1, ddof=0)
    zmean = dict(zip(keys, z.mean(axis=0), strict=True))
    unit = per_rater.std(axis=1, ddof=0).mean()
    expected = {
        (s, b)
        for s in ("s1", "s2")
        for b in ("base_a", "base_b")
        if (zmean[(s, "target")] - zmean[(s, b)]) * unit >= 0.1
    }
    got = build(run, min_margin=0.1, aggregate="zscore").train
    assert (
        expected and {(r["metadata"]["scenario_id"], r["metadata"]["rejected_arm"]) for r in got} == expected
    )
    for r in got:
        s, b = r["metadata"]["scenario_id"], r["metadata"]["rejected_arm"]
        assert r["metadata"]["score_delta_raw"] == pytest.approx(
            (zmean[(s, "target")] - zmean[(s, b)]) * unit
        )


@pytest.mark.parametrize("aggregate", ["mean", "median", "zscore"])
def test_metadata_holds_the_scores_that_were_compared(tmp_path, aggregate):
    run = make_run(tmp_path, RATINGS_HARSH_LENIENT)
    rows = build(run, min_margin=0.1, aggregate=aggregate, allow_reverse_pairs=True).train
    assert rows
    for r in rows:
        m = r["metadata"]
        assert m["aggregate"] == aggregate
        assert m["chosen_score"] - m["rejected_score"] == pytest.approx(m["score_delta_raw"])
        assert m["chosen_score_norm"] - m["rejected_score_norm"] == pytest.approx(m["score_delta_norm"])
        assert m["score_delta_raw"] > 0


def test_median_metadata_by_hand(tmp_path):
    run = make_run(tmp_path, RATINGS_HARSH_LENIENT)
    rows = build(run, min_margin=0.5, aggregate="median").train
    row = next(
        r for r in rows if (r["metadata"]["scenario_id"], r["metadata"]["rejected_arm"]) == ("s1", "base_a")
    )
    m = row["metadata"]
    # target [2, 5, 5]: median 5, mean 4; base_a [4, 4, 4]: 4 either way; scale 1:5
    assert (m["chosen_score"], m["rejected_score"]) == (5, 4)
    assert (m["chosen_score_norm"], m["rejected_score_norm"]) == (1.0, 0.75)
    assert (m["score_delta_raw"], m["score_delta_norm"]) == (1, 0.25)
    assert (m["chosen_score_mean"], m["rejected_score_mean"]) == (4, 4)


# ----------------------------------------------------------------------------- the ratings CSV


def write_ratings(run, header, rows):
    with open(run / "ratings.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def small_run(tmp_path):
    return make_run(tmp_path, {("s1", "target"): [5, 5], ("s1", "base_a"): [1, 1], ("s1", "base_b"): [1, 1]})


ID = ["scenario_id", "arm_id", "annotator_id"]


def test_duplicate_rating_rows_are_an_error_naming_both_lines(tmp_path):
    run = small_run(tmp_path)
    write_ratings(
        run,
        [*ID, "overall_quality"],
        [["s1", "target", "r0", 5], ["s1", "base_a", "r0", 1], ["s1", "target", "r0", 4]],
    )
    with pytest.raises(bdnsca.DataError, match=r"ratings.csv:4: .*'r0' already rated on line 2"):
        build(run, min_raters=1)


def test_collapsed_duplicates_are_averaged_and_count_one_rater(tmp_path):
    krippendorff = pytest.importorskip("krippendorff")
    np = pytest.importorskip("numpy")
    run = small_run(tmp_path)
    rows = [
        ["s1", "target", "r0", 5],
        ["s1", "target", "r1", 5],
        ["s1", "target", "r1", 3],  # r1 rated twice: one rating of 4
        ["s1", "base_a", "r0", 4],
        ["s1", "base_a", "r1", 4],
        ["s2", "target", "r0", 2],
        ["s2", "target", "r1", 3],
        ["s2", "base_a", "r0", 1],
        ["s2", "base_a", "r1", 2],
    ]
    write_ratings(run, [*ID, "overall_quality"], rows)
    res = build(run, baseline_arms=["base_a"], min_margin=0.1, duplicate_ratings="collapse")
    s1 = next(r for r in res.train if r["metadata"]["scenario_id"] == "s1")["metadata"]
    assert s1["chosen_raters"] == 2 and s1["chosen_score"] == 4.5 and s1["score_delta_raw"] == 0.5
    assert res.summary["ratings"]["duplicate_rows_collapsed"] == 1
    # --min-raters counts distinct annotators: two, not three
    strict = build(run, baseline_arms=["base_a"], min_margin=0.1, min_raters=3, duplicate_ratings="collapse")
    assert strict.train == [] and strict.summary["skipped"]["insufficient_raters"] == 2
    # alpha and kappa both see one value per annotator: alpha as the reference package computes it
    # units s1/target, s1/base_a, s2/target, s2/base_a; rows r0, r1 (r1's duplicate averaged)
    matrix = np.array([[5, 4, 2, 1], [4, 4, 3, 2]], dtype=float)
    ref = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    got = res.summary["agreement"]["overall_quality"]
    assert got["krippendorff_alpha_ordinal"] == pytest.approx(ref, abs=1e-12)
    assert got["mean_pairwise_weighted_kappa"] == pytest.approx(
        weighted_kappa([5, 4, 2, 1], [4, 4, 3, 2], [1, 2, 3, 4, 5])
    )


def test_free_text_columns_are_not_metrics(tmp_path):
    run = small_run(tmp_path)
    header = [*ID, "overall_quality", "comment", "rationale", "notes"]
    rows = [["s1", a, f"r{i}", v, "fine, I guess", "because", "n"] for a, v in (("target", 5), ("base_a", 1))
            for i in range(2)]  # fmt: skip
    write_ratings(run, header, rows)
    ratings = read_ratings(run / "ratings.csv")
    assert ratings.metrics == ["overall_quality"]
    assert ratings.text_columns == ["comment", "rationale", "notes"]


@pytest.mark.parametrize(
    "header, row, message",
    [
        # a text column under a name that is not a known free-text column
        (
            ["overall_quality", "rater_model"],
            ["5", "gpt-4"],
            r"ratings.csv:2: column 'rater_model': 'gpt-4' is not a number.*free-text",
        ),
        # a column that holds nothing is not a metric either
        (["overall_quality", "model"], ["5", ""], r"ratings.csv:1: column 'model' holds no ratings"),
        # an unquoted comma in a note shifts the row
        (
            ["overall_quality", "notes"],
            ["5", "good", " but short"],
            r"ratings.csv:2: 6 fields, but the header has 5",
        ),
        (["overall_quality", "notes"], ["5"], r"ratings.csv:2: 4 fields, but the header has 5"),
        (
            ["overall_quality", "overall_quality"],
            ["5", "4"],
            r"ratings.csv:1: column 'overall_quality' appears twice",
        ),
        (["overall_quality"], ["nan"], r"ratings.csv:2: column 'overall_quality': 'nan' is not a number"),
    ],
)
def test_columns_that_are_not_metrics_are_errors(tmp_path, header, row, message):
    run = small_run(tmp_path)
    write_ratings(run, [*ID, *header], [["s1", "target", "r0", *row]])
    with pytest.raises(bdnsca.DataError, match=message):
        read_ratings(run / "ratings.csv", (1, 5))


def test_cli_duplicate_ratings_flag(tmp_path):
    from click.testing import CliRunner

    from bdnsca.cli import cli

    run = small_run(tmp_path)
    write_ratings(
        run,
        [*ID, "overall_quality"],
        [["s1", "target", "r0", 5], ["s1", "target", "r0", 5], ["s1", "base_a", "r0", 1]],
    )
    args = ["build-preferences", "--run-dir", str(run), "--human-eval-file", str(run / "ratings.csv"),
            "--target-arm", "target", "--baseline-arms", "base_a", "--min-raters", "1"]  # fmt: skip
    failed = CliRunner().invoke(cli, args)
    assert failed.exit_code != 0 and "already rated on line 2" in str(failed.exception)
    ok = CliRunner().invoke(cli, [*args, "--duplicate-ratings", "collapse"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads((run / "preference_dataset_summary.json").read_text())
    assert summary["pairs"] == 1 and summary["ratings"]["duplicate_rows_collapsed"] == 1


def test_all_arms_pairing(tmp_path):
    run = make_run(
        tmp_path,
        {("s1", "target"): [3, 3], ("s1", "base_a"): [5, 5], ("s1", "base_b"): [1, 1]},
    )
    res = build_preferences(run, run / "ratings.csv", PreferenceSettings(pairing="all-arms", min_margin=0.5))
    got = {(r["metadata"]["chosen_arm"], r["metadata"]["rejected_arm"]) for r in res.train}
    assert got == {("base_a", "target"), ("target", "base_b"), ("base_a", "base_b")}
    assert all(r["metadata"]["preference_direction"] == "arm_over_arm" for r in res.train)


def test_prompt_mismatch_counted_and_dropped(tmp_path):
    ratings = {("s1", "target"): [5, 5], ("s1", "base_a"): [1, 1], ("s1", "base_b"): [1, 1]}
    run = make_run(tmp_path, ratings, prompts={("s1", "base_a"): "a prompt without the game state"})
    res = build(run)
    assert res.summary["prompt_mismatch_pairs"] == 1 and len(res.train) == 2
    bad = next(r for r in res.train if r["metadata"]["rejected_arm"] == "base_a")
    assert not bad["metadata"]["same_prompt"]
    assert bad["metadata"]["rejected_prompt"] == "a prompt without the game state"
    strict = build(run, require_same_prompt=True)
    assert len(strict.train) == 1 and strict.summary["skipped"]["prompt_mismatch"] == 1


def test_identical_responses_are_no_pair(tmp_path):
    """Two samples of one model can say the same thing; rated apart by a noisy judge they would
    make a pair with nothing to prefer (a no-op for DPO)."""
    ratings = {("s1", "target"): [5, 5], ("s1", "base_a"): [1, 1], ("s1", "base_b"): [1, 1]}
    run = make_run(tmp_path, ratings)
    f = run / "responses" / "base_a.jsonl"
    f.write_text(f.read_text().replace("base_a says", "target says").replace("base_a late", "target late"))
    res = build(run)
    assert [r["metadata"]["rejected_arm"] for r in res.train] == ["base_b"]
    assert res.summary["skipped"]["identical_responses"] == 1


def test_scenario_level_split(tmp_path):
    ratings = {}
    for i in range(20):
        ratings[(f"s{i:02d}", "target")] = [5, 5]
        ratings[(f"s{i:02d}", "base_a")] = [1, 2]
        ratings[(f"s{i:02d}", "base_b")] = [2, 1]
    run = make_run(tmp_path, ratings)
    res = build(run, eval_fraction=0.25, seed=3)
    train_s = {r["metadata"]["scenario_id"] for r in res.train}
    eval_s = {r["metadata"]["scenario_id"] for r in res.eval}
    assert len(eval_s) == 5 and not train_s & eval_s and len(res.train) + len(res.eval) == 40
    assert {r["metadata"]["scenario_id"] for r in build(run, eval_fraction=0.25, seed=3).eval} == eval_s


def test_chat_format(tmp_path):
    run = make_run(tmp_path, {("s1", "target"): [5, 5], ("s1", "base_a"): [1, 1], ("s1", "base_b"): [1, 1]})
    row = build(run, chat=True).train[0]
    assert row["prompt"] == [{"role": "user", "content": "prompt for s1"}]
    assert row["chosen"] == [{"role": "assistant", "content": "target says s1"}]


def test_normalisation_maps_worst_to_zero():
    assert normalise_score(1, (1, 5)) == 0.0 and normalise_score(5, (1, 5)) == 1.0
    assert normalise_score(3, (1, 5)) == 0.5


HEADER = "scenario_id,arm_id,annotator_id,"


def _write(name, text):
    return lambda run: (run / name).write_text(text)


BAD_INPUTS = {
    "missing arm": (
        lambda run: (run / "responses" / "base_b.jsonl").unlink(),
        "arm 'base_b': no responses file",
    ),
    "response without scenario": (
        _write("responses/target.jsonl", '{"response": "x"}\n'),
        "target.jsonl:1: response without 'scenario_id'",
    ),
    "rating off the scale": (
        _write("ratings.csv", HEADER + "overall_quality\ns1,target,r,7\n"),
        "ratings.csv:2: column 'overall_quality': rating 7 is outside the scale 1:5",
    ),
    "no metric column": (
        _write("ratings.csv", HEADER + "naturalness\ns1,target,r,3\n"),
        "no column 'overall_quality'",
    ),
    "not long form": (
        _write("ratings.csv", "scenario_id,arm,annotator_id,overall_quality\n"),
        "missing column 'arm_id'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs(tmp_path, case):
    mutate, message = BAD_INPUTS[case]
    run = make_run(tmp_path, {("s1", "target"): [5, 5], ("s1", "base_a"): [1, 1], ("s1", "base_b"): [1, 1]})
    mutate(run)
    with pytest.raises((bdnsca.BdnscaError, FileNotFoundError), match=message.replace("(", r"\(")):
        build(run)


def test_unknown_arm_is_an_error(tmp_path):
    run = make_run(tmp_path, {("s1", "target"): [5, 5], ("s1", "base_a"): [1, 1]})
    with pytest.raises(bdnsca.BdnscaError, match="arm 'nope' is not in"):
        build_preferences(
            run, run / "ratings.csv", PreferenceSettings(target_arm="target", baseline_arms=["nope"])
        )


# ----------------------------------------------------------------------------- agreement


def test_krippendorff_alpha_matches_reference_package():
    krippendorff = pytest.importorskip("krippendorff")
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    for _ in range(5):
        data = rng.integers(1, 6, size=(3, 30)).astype(float)
        data[0] = np.clip(data[1] + rng.integers(-1, 2, 30), 1, 5)
        data[rng.random((3, 30)) < 0.15] = np.nan
        ref = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
        triples = [(u, r, data[r, u]) for r in range(3) for u in range(30) if not np.isnan(data[r, u])]
        assert krippendorff_alpha_ordinal(triples) == pytest.approx(ref, abs=1e-12)


def test_weighted_kappa_hand_checked():
    # identical ratings: 1; perfectly reversed on a symmetric scale: -1
    assert weighted_kappa([1, 2, 3], [1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert weighted_kappa([1, 2, 3], [3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    # by hand: O = [[.5,0],[.25,.25]], E = outer([.5,.5],[.75,.25]); quadratic w on 2 classes
    assert weighted_kappa([1, 1, 2, 2], [1, 1, 1, 2], [1, 2]) == pytest.approx(1 - 0.25 / 0.25 / 2)
    triples = [("u1", "a", 1), ("u1", "b", 1), ("u2", "a", 2), ("u2", "b", 2), ("u3", "a", 3), ("u3", "b", 3)]
    assert mean_pairwise_kappa(triples) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the playbook


def test_playbook_command_reproduces_the_51_pairs(tmp_path):
    src = SHARED / "npc-ai" / "proposal_run"
    if not src.exists():
        pytest.skip(f"{src} not found (the shared data lives in ../shared/data)")
    run = tmp_path / "run"
    shutil.copytree(src, run)
    r = subprocess.run(
        [
            sys.executable, "-m", "bdnsca.cli", "build-preferences",
            "--run-dir", run, "--human-eval-file", run / "human_eval_llm_multirater_consistent.csv",
            "--target-arm", "proposed_contextual_controlled",
            "--baseline-arms", "baseline_no_context,baseline_no_context_phi3_latest",
            "--metric", "overall_quality", "--min-raters", "2", "--min-margin", "0.25",
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    new = [json.loads(x) for x in (run / "preference_dataset.jsonl").read_text().splitlines()]
    old = [json.loads(x) for x in (src / "preference_dataset.jsonl").read_text().splitlines()]
    key = lambda row: (row["metadata"]["scenario_id"], row["metadata"]["baseline_arm"])  # noqa: E731
    assert len(new) == 51 and sorted(map(key, new)) == sorted(map(key, old))
    by_key = {key(o): o for o in old}
    for row in new:
        o = by_key[key(row)]
        assert (row["prompt"], row["chosen"], row["rejected"]) == (o["prompt"], o["chosen"], o["rejected"])
        assert row["metadata"]["score_delta_raw"] == pytest.approx(o["metadata"]["score_delta_raw"])
    summary = json.loads((run / "preference_dataset_summary.json").read_text())
    assert summary["unrated_scenarios"] == 76
    # the old builder's 21 "insufficient margin" = 8 close calls + 13 where the baseline led
    assert summary["skipped"]["below_margin"] + summary["skipped"]["baseline_preferred"] == 21
    # the known flaw: every rejected response answered a prompt without the game state
    assert summary["prompt_mismatch_pairs"] == 51
