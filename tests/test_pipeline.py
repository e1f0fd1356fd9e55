"""``bdnsca pipeline``: the engine (keys, reuse, resume, half-written nodes) on cheap fake steps,
the experiment file's one-line errors, promotion through the real gate on planted runs, and the
tiny pipeline end to end (slow)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bdnsca.errors import BdnscaError
from bdnsca.pipeline import store
from bdnsca.pipeline.engine import StepFailed, execute, pipeline_status, run_pipeline
from bdnsca.pipeline.graph import GraphError, Node, dependents, topological_order
from bdnsca.pipeline.plan import build_plan, current_anchor
from bdnsca.pipeline.promote import PromotionRefused, promote
from bdnsca.pipeline.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

# ----------------------------------------------------------------------------- engine on fakes


def fake_graph(tmp: Path, b_setting: int = 1) -> dict[str, Node]:
    """a -> b -> c, a -> d; e alone (reads a file)."""
    (tmp / "in.txt").exists() or (tmp / "in.txt").write_text("hello")
    nodes = [
        Node("a", "write", settings={"v": 1}),
        Node("b", "write", settings={"v": b_setting}, deps={"up": "a"}),
        Node("c", "write", settings={"v": 3}, deps={"up": "b"}),
        Node("d", "write", settings={"v": 4}, deps={"up": "a"}),
        Node("e", "write", settings={"v": 5}, inputs={"f": tmp / "in.txt"}),
    ]
    return {n.name: n for n in nodes}


class Recorder:
    """A step that writes its upstream's text plus its own setting, counting its calls."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on = fail_on

    def __call__(self, ctx) -> dict:
        self.calls.append(ctx.name)
        up = (ctx.deps["up"] / "out.txt").read_text() if "up" in ctx.deps else ""
        (ctx.out / "out.txt").write_text(up + f"{ctx.name}{ctx.settings['v']};")
        if ctx.name == self.fail_on:
            print("about to fail")  # goes to the node's log
            raise RuntimeError("planted failure")
        return {"text": (ctx.out / "out.txt").read_text()}


def statuses(manifest) -> dict[str, str]:
    return {k: v["status"] for k, v in manifest["nodes"].items()}


def test_second_run_reuses_every_node_and_a_changed_setting_recomputes_exactly_its_dependents(tmp_path):
    out = tmp_path / "out"
    rec = Recorder()
    r1 = execute(fake_graph(tmp_path), out, {"write": rec})
    assert sorted(rec.calls) == list("abcde")
    assert set(statuses(r1.manifest).values()) == {"computed"}
    assert (r1.folders["c"] / "out.txt").read_text() == "a1;b1;c3;"

    rec2 = Recorder()
    r2 = execute(fake_graph(tmp_path), out, {"write": rec2})
    assert rec2.calls == []
    assert set(statuses(r2.manifest).values()) == {"reused"}
    assert all(v["seconds"] == 0.0 for v in r2.manifest["nodes"].values())
    assert json.loads((out / "pipeline.json").read_text())["status"] == "ok"

    rec3 = Recorder()
    nodes = fake_graph(tmp_path, b_setting=2)
    r3 = execute(nodes, out, {"write": rec3})
    assert set(rec3.calls) == {"b"} | dependents(nodes, "b") == {"b", "c"}
    assert (r3.folders["c"] / "out.txt").read_text() == "a1;b2;c3;"
    assert statuses(r3.manifest) == {
        "a": "reused",
        "b": "computed",
        "c": "computed",
        "d": "reused",
        "e": "reused",
    }

    # an input file's content is part of the key
    (tmp_path / "in.txt").write_text("changed")
    rec4 = Recorder()
    execute(fake_graph(tmp_path, b_setting=2), out, {"write": rec4})
    assert rec4.calls == ["e"]


def test_a_failing_step_stops_with_its_log_and_a_rerun_finishes_without_redoing_finished_nodes(tmp_path):
    out = tmp_path / "out"
    failing = Recorder(fail_on="c")
    with pytest.raises(StepFailed) as err:
        execute(fake_graph(tmp_path), out, {"write": failing})
    msg = str(err.value)
    assert "'c'" in msg and "planted failure" in msg and "\n" not in msg
    log = Path(re.search(r"log: (\S+)$", msg).group(1))
    text = log.read_text()
    assert "about to fail" in text and "RuntimeError: planted failure" in text
    m = json.loads((out / "pipeline.json").read_text())
    assert m["status"] == "failed" and m["nodes"]["c"]["status"] == "failed"
    # c's folder holds its half-written output but no marker: it must never count as finished
    c_folder = Path(m["nodes"]["c"]["folder"])
    assert (c_folder / "out.txt").exists() and not (c_folder / store.MARKER).exists()
    (c_folder / "stale.txt").write_text("left by the interrupted step")

    rec = Recorder()
    r = execute(fake_graph(tmp_path), out, {"write": rec})
    done_before = {k for k, v in m["nodes"].items() if v["status"] == "computed"}
    assert set(rec.calls) == set("abcde") - done_before
    assert "c" in rec.calls and "a" not in rec.calls and "b" not in rec.calls
    assert not (r.folders["c"] / "stale.txt").exists()  # the half-written folder was cleared
    assert r.manifest["status"] == "ok"


def test_a_node_whose_marker_is_missing_or_of_another_key_is_recomputed(tmp_path):
    out = tmp_path / "out"
    r = execute(fake_graph(tmp_path), out, {"write": Recorder()})
    (r.folders["d"] / store.MARKER).unlink()
    marker = json.loads((r.folders["b"] / store.MARKER).read_text())
    store.write_marker(r.folders["b"], {**marker, "key": "0" * 64})
    rec = Recorder()
    execute(fake_graph(tmp_path), out, {"write": rec})
    assert sorted(rec.calls) == ["b", "d"]  # c keeps its key: b's output is the same computation


def test_two_runs_never_share_an_output_folder(tmp_path):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".pipeline.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rec = Recorder()
        with pytest.raises(BdnscaError, match="another pipeline run is using this output folder"):
            execute(fake_graph(tmp_path), out, {"write": rec})
        assert rec.calls == []
    execute(fake_graph(tmp_path), out, {"write": rec})
    assert sorted(rec.calls) == list("abcde")


def test_cycles_and_unknown_dependencies_are_one_line_errors():
    nodes = {
        n.name: n
        for n in [
            Node("x", "s", deps={"a": "y"}),
            Node("y", "s", deps={"a": "z"}),
            Node("z", "s", deps={"a": "x"}),
        ]
    }
    with pytest.raises(GraphError, match=r"^dependency cycle: x -> y -> z -> x$"):
        topological_order(nodes)
    with pytest.raises(GraphError, match="'q'"):
        topological_order({"p": Node("p", "s", deps={"a": "q"})})


# ----------------------------------------------------------------------------- the experiment file


def write_spec(
    tmp: Path,
    extra: str = "",
    *,
    model: str = "",
    steps: str = "",
    anchor: str = 'model = "base"',
    exps: str | None = None,
    tiny: str = "{ layers = 1, hidden_size = 32 }",
) -> Path:
    exps = exps if exps is not None else '[[experiment]]\nname = "one"\nmodel = "dpo"\n'
    if "[steps.eval]" not in steps:  # leave scenarios outside the evaluated ones for SFT
        steps += "\n[steps.eval]\nmax_scenarios = 8\n"
    text = f"""
output_dir = "{tmp / "out"}"
{extra}
[data]
scenarios = "{DATA / "scenarios.jsonl"}"
corpus = "{DATA / "retrieval_corpus_wide.jsonl"}"
gold = "{DATA / "retrieval_gold_wide.jsonl"}"
serving_prompts = "{DATA / "serving_prompts.jsonl"}"
serving_references = "{DATA / "serving_references.jsonl"}"
[model]
tiny = {tiny}
{model}
{steps}
[anchor]
{anchor}
{exps}
"""
    path = tmp / "exp.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"extra": "colour = 1"}, r"unknown key 'colour'"),
        ({"steps": "[steps.sftt]\nmax_steps = 1"}, r"unknown step 'steps.sftt'"),
        ({"steps": "[steps.dpo]\nbetaa = 0.1"}, r"unknown key 'steps.dpo.betaa'"),
        ({"steps": "[steps.reranker]\nepoch = 1"}, r"unknown key 'steps.reranker.epoch'"),
        ({"anchor": 'run = "nowhere"'}, r"anchor.run = 'nowhere': no such file"),
        ({"exps": '[[experiment]]\nname = "x"\nmodel = "gpt"'}, r"experiment\[0\].model' must be one of"),
        ({"steps": "[steps.gate]\nalpha = 2.0"}, r"steps.gate: --alpha must be in \(0, 1\), got 2.0"),
        ({"steps": '[steps.eval]\nmax_tokens = "ten"'}, r"steps.eval: max_tokens must be int, got 'ten'"),
        ({"exps": '[[experiment]]\nname = "x"\nspeculative = ["draft:4"]'}, r"needs 'model.draft'"),
        # values that used to pass the check and fail only after the training steps
        ({"steps": '[steps.sft]\nrows = "many"'}, r"steps.sft: rows must be a whole number >= 1, got 'many'"),
        ({"steps": "[steps.sft]\nrows = 0"}, r"steps.sft: rows must be a whole number >= 1, got 0"),
        (
            {"steps": "[steps.eval]\nmax_scenarios = 0"},
            r"steps.eval: max_scenarios must be a whole number >= 1",
        ),
        ({"steps": '[steps.eval]\nmax_scenarios = "x"'}, r"steps.eval: max_scenarios must be a whole number"),
        ({"steps": "[steps.eval]\nmax_scenarios = 100000"}, r"steps.eval.max_scenarios = 100000 leaves none"),
        ({"steps": "[steps.eval]\nk = 2"}, r"steps.eval.max_scenarios = None leaves none"),
        ({"steps": '[steps.eval]\nmax_scenarios = 8\nk = "x"'}, r"steps.eval: k must be a whole number"),
        (
            {"steps": "[steps.preferences]\nscenarios = 0"},
            r"steps.preferences: scenarios must be a whole number",
        ),
        ({"steps": "[steps.preferences]\nsamples = 1"}, r"steps.preferences: samples .* >= 2, got 1"),
        (
            {"steps": "[steps.preferences]\ntemperature = 0"},
            r"steps.preferences: temperature must be a number > 0",
        ),
        ({"steps": '[steps.score]\nmetrics = ["nope"]'}, r"steps.score: unknown metric\(s\) \['nope'\]"),
        ({"steps": '[steps.score]\nresamples = "x"'}, r"steps.score: resamples must be int, got 'x'"),
        ({"steps": '[steps.gate]\nquality_metrics = ["nope"]'}, r"steps.gate: unknown quality metric 'nope'"),
        (
            {"steps": '[steps.distill]\nlearning_rate = "x"'},
            r"steps.distill: learning_rate must be float.*, got 'x'",
        ),
        (
            {"steps": '[steps.reranker]\nmax_steps = "x"'},
            r"steps.reranker: max_steps must be .*int.*, got 'x'",
        ),
        ({"tiny": '{ layers = "x" }'}, r"model.tiny: layers must be int, got 'x'"),
        ({"tiny": "{ layers = 1, hidden_size = 30 }"}, r"model.tiny: hidden size 30 is not divisible"),
        (
            {"exps": '[[experiment]]\nname = "x"\nreranker = "false"'},
            r"experiment\[0\].reranker' must be true or",
        ),
        (
            {"exps": '[[experiment]]\nname = "x"\nspeculative = []'},
            r"experiment\[0\].speculative' must be a non-",
        ),
        (
            {"exps": '[[experiment]]\nname = "x"\nspeculative = "none"'},
            r"speculative' must be a non-empty list",
        ),
        ({"exps": '[[experiment]]\nname = "x"\nspeculative = [3]'}, r"speculative' must be a non-empty list"),
    ],
)
def test_bad_experiment_files_are_one_line_errors_naming_the_key(tmp_path, kwargs, pattern):
    path = write_spec(tmp_path, **kwargs)
    with pytest.raises(SpecError) as err:
        run_pipeline(path, functions={})
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and re.search(pattern, msg), msg
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_missing_data_file_and_an_anchor_that_is_not_a_run_are_named(tmp_path):
    path = write_spec(tmp_path)
    path.write_text(path.read_text().replace("scenarios.jsonl", "scenarios-missing.jsonl"))
    with pytest.raises(SpecError, match=r"data.scenarios = .*scenarios-missing.jsonl.*: no such file"):
        load_spec(path)
    (tmp_path / "not_a_run").mkdir()
    path = write_spec(tmp_path, anchor=f'run = "{tmp_path / "not_a_run"}"')
    with pytest.raises(SpecError, match=r"is not a run \(no run_config.json\)"):
        load_spec(path)


def test_a_dependency_cycle_in_the_file_is_found_before_any_step_runs(tmp_path):
    path = write_spec(tmp_path, steps='[steps.sft]\nfrom = "dpo"\n[steps.dpo]\nfrom = "sft"')
    called = []
    with pytest.raises(SpecError) as err:
        run_pipeline(path, functions={k: called.append for k in ("tiny_model", "sft", "dpo")})
    msg = str(err.value)  # names the file and the keys to change
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert (
        "steps.sft.from = 'dpo' and steps.dpo.from = 'sft' form a dependency cycle (sft -> dpo -> sft)" in msg
    )
    assert called == [] and not (tmp_path / "out" / "nodes").exists()
    path = write_spec(tmp_path, steps='[steps.sft]\nfrom = "sft"')
    with pytest.raises(SpecError, match=r"steps.sft.from = 'sft' form a dependency cycle \(sft -> sft\)"):
        load_spec(path)


def test_the_cli_prints_one_line_for_a_bad_file(tmp_path):
    path = write_spec(tmp_path, steps="[steps.sftt]\nmax_steps = 1")
    p = subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", "pipeline", "run", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "unknown step 'steps.sftt'" in p.stderr


def test_experiments_share_the_nodes_they_have_in_common(tmp_path):
    exps = "\n".join(
        f'[[experiment]]\nname = "{n}"\nmodel = "dpo"\nreranker = {r}\nspeculative = {s}\n'
        for n, r, s in [
            ("1", "false", '["none"]'),
            ("2", "true", '["none"]'),
            ("3", "true", '["none", "prompt-lookup:4", "draft:4"]'),
        ]
    )
    plan = build_plan(load_spec(write_spec(tmp_path, model='draft = "tiny"', exps=exps)))
    g = plan.gates
    # answers are generated through the reranker where the experiment declares one; speculative
    # decoding is serving only, so experiment 3 shares experiment 2's evaluation
    assert g["1"]["eval"] == "eval:dpo" and g["2"]["eval"] == g["3"]["eval"] == "eval:dpo+reranker"
    assert plan.nodes["eval:dpo+reranker"].deps["reranker"] == "reranker"
    assert "reranker" not in plan.nodes["eval:dpo"].deps
    assert g["1"]["serve"] == g["2"]["serve"] != g["3"]["serve"]
    assert (
        g["1"]["retrieval"] == "retrieval:bm25"
        and g["2"]["retrieval"] == g["3"]["retrieval"] == "retrieval:reranker"
    )
    assert [n for n in plan.nodes if n.startswith("dpo") or n == "sft"] == ["sft", "dpo"]


# ----------------------------------------------------------------------------- promotion (real gate)


def _fake_functions(quality: dict[str, float]):
    """Fakes for every step but the gate: model nodes carry a planted quality; the evaluation
    writes a run whose target arm scores that quality (plus scenario noise) on 40 scenarios."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(-0.1, 0.1, 40)

    def model(ctx):
        name = ctx.name.replace("export:", "")
        (ctx.out / "model.json").write_text(json.dumps({"hf": None, "gguf": "x.gguf", "name": name}))

    def evaluate(ctx):
        name = json.loads((ctx.deps["model"] / "model.json").read_text())["name"]
        run = ctx.out / "run"
        (run / "scores").mkdir(parents=True)
        (run / "run_config.json").write_text(json.dumps({"target_arm": "target", "baseline_arm_ids": []}))
        with open(run / "scores" / "target.jsonl", "w") as f:
            for i in range(40):
                q = quality[name] + noise[i]
                f.write(
                    json.dumps(
                        {
                            "scenario_id": f"s{i:02d}",
                            "repeat_index": 0,
                            "ok": True,
                            "arm_id": "target",
                            "overall_quality": q,
                            "context_relevance": q,
                        }
                    )
                    + "\n"
                )

    noop = lambda ctx: None  # noqa: E731
    return {
        "tiny_model": model,
        "export": model,
        "evaluate": evaluate,
        **{
            k: noop
            for k in (
                "sft_data",
                "sft",
                "preferences",
                "dpo",
                "index",
                "mine",
                "reranker",
                "retrieval",
                "serve",
            )
        },
    }


def test_a_better_candidate_is_promoted_and_a_worse_one_is_not(tmp_path):
    exps = '[[experiment]]\nname = "better"\nmodel = "dpo"\n[[experiment]]\nname = "worse"\nmodel = "sft"\n'
    path = write_spec(tmp_path, steps="[steps.gate]\nresamples = 1000\nallow_missing = true", exps=exps)
    out = tmp_path / "out"
    fns = _fake_functions({"base": 0.5, "sft": 0.4, "dpo": 0.6})
    res = run_pipeline(path, functions=fns)
    assert "| better | **PASS** |" in res.table and "| worse | **FAIL** |" in res.table
    anchors = out / "anchors"

    with pytest.raises(
        PromotionRefused,
        match=r"gate of 'worse' failed \(paired_quality overall_quality fail: .*anchor unchanged",
    ):
        promote(path, "worse")
    assert current_anchor(out) is None and not (anchors / "current").is_symlink()

    pr = promote(path, "better")
    link = anchors / "current"
    assert link.is_symlink() and link.resolve() == pr.anchor.resolve()
    promoted = json.loads((pr.anchor / "promoted.json").read_text())
    gate_folder = Path(res.manifest["nodes"]["gate:better"]["folder"])
    from bdnsca.data.io import file_sha256

    assert promoted["experiment"] == "better"
    assert promoted["gate_report_sha256"] == file_sha256(gate_folder / "gate_report.json")
    assert promoted["manifest_sha256"] == file_sha256(out / "pipeline.json")
    assert (pr.anchor / "run_config.json").exists() and (pr.anchor / "scores" / "target.jsonl").exists()

    # the anchor moved: the old gates are stale, so nothing is promoted before a new run
    with pytest.raises(PromotionRefused, match="has not run with the current inputs"):
        promote(path, "better")
    res2 = run_pipeline(path, functions=fns)
    recomputed = {k for k, v in res2.manifest["nodes"].items() if v["status"] == "computed"}
    assert recomputed == {"gate:better", "gate:worse"}
    assert res2.manifest["anchor"] == {"kind": "folder", "path": str(pr.anchor.resolve())}
    # against the promoted anchor (0.6), the worse candidate fails again and the pointer stays
    with pytest.raises(PromotionRefused):
        promote(path, "worse")
    assert link.resolve() == pr.anchor.resolve()
    assert {p.name for p in anchors.iterdir() if not p.name.startswith(".")} == {"current", pr.anchor.name}
    # the record still verifies after the next run rewrote OUTPUT/pipeline.json
    assert file_sha256(out / "pipeline.json") != promoted["manifest_sha256"]
    assert file_sha256(pr.anchor / "pipeline.json") == promoted["manifest_sha256"]
    kept = json.loads((pr.anchor / "pipeline.json").read_text())
    assert kept["nodes"]["gate:better"]["key"] == res.manifest["nodes"]["gate:better"]["key"]
    toml_sha = file_sha256(pr.anchor / "experiment.toml")
    assert toml_sha == promoted["experiment_file_sha256"] == file_sha256(path)


# ----------------------------------------------------------------------------- the tiny pipeline


def _tiny_copy(tmp: Path) -> Path:
    text = (ROOT / "examples" / "tiny.toml").read_text()
    text = text.replace('"../data/', f'"{DATA}/').replace('"../runs/pipeline-tiny"', f'"{tmp / "out"}"')
    path = tmp / "tiny.toml"
    path.write_text(text)
    return path


TRAINING_STEPS = {"tiny_model", "sft", "dpo", "reranker", "export"}


@pytest.mark.slow
def test_the_tiny_pipeline_runs_end_to_end_then_reuses_everything_then_recomputes_only_dependents(tmp_path):
    pytest.importorskip("llama_cpp", reason="the tiny pipeline serves GGUF models with llama-cpp-python")
    pytest.importorskip("trl", reason="the tiny pipeline trains with trl")
    path = _tiny_copy(tmp_path)
    res = run_pipeline(path)
    m = res.manifest
    assert m["status"] == "ok" and set(statuses(m).values()) == {"computed"}
    assert len(res.table.splitlines()) == 2 + 3
    for name in ("1-sft-dpo", "2-reranker", "3-speculative"):
        assert re.search(rf"^\| {name} \| \*\*(PASS|FAIL)\*\* \|", res.table, re.M)
    assert (tmp_path / "out" / "report.md").exists() and (tmp_path / "out" / "frontier.png").exists()
    trained = {k for k, v in m["nodes"].items() if v["step"] in TRAINING_STEPS}
    assert {"sft", "dpo", "reranker", "export:sft", "export:dpo"} <= trained

    again = run_pipeline(path)
    assert set(statuses(again.manifest).values()) == {"reused"}
    assert sum(v["seconds"] for v in again.manifest["nodes"].values()) == 0.0
    assert again.table == res.table

    path.write_text(
        path.read_text().replace("[steps.reranker]\nmax_steps = 4", "[steps.reranker]\nmax_steps = 5")
    )
    plan_nodes = build_plan(load_spec(path)).nodes
    third = run_pipeline(path)
    computed = {k for k, v in third.manifest["nodes"].items() if v["status"] == "computed"}
    assert computed == {"reranker"} | dependents(plan_nodes, "reranker")
    assert computed == {
        "reranker",
        "retrieval:reranker",
        "eval:dpo+reranker",
        "gate:2-reranker",
        "gate:3-speculative",
    }
    assert [s for n, s in pipeline_status(path)] == ["finished"] * len(plan_nodes)


def test_status_lists_what_would_run(tmp_path):
    path = write_spec(tmp_path)
    states = pipeline_status(path)
    assert states and {s for _, s in states} == {"to run"}
    names = [n.name for n, _ in states]
    assert names.index("sft") < names.index("export:sft") < names.index("dpo") < names.index("gate:one")
    with pytest.raises(BdnscaError):
        promote(path, "nope")


def test_a_distilled_draft_hangs_off_the_served_model_and_trains_on_prompts_kept_from_serving(tmp_path):
    exps = '[[experiment]]\nname = "s"\nmodel = "dpo"\nspeculative = ["none", "draft:4"]\n'
    path = write_spec(tmp_path, model='draft = "distill"', steps="[steps.distill]\nmax_steps = 3", exps=exps)
    plan = build_plan(load_spec(path))
    node = plan.nodes["distill:dpo"]
    assert node.deps == {"target": "export:dpo", "prompts": "sft-data"} and node.settings == {"max_steps": 3}
    serve = plan.nodes[plan.gates["s"]["serve"]]
    assert serve.deps == {"model": "export:dpo", "draft": "distill:dpo"}
    assert "prompts" in serve.inputs and "draft" not in plan.nodes
    # a changed distillation setting touches only the draft, the serving bench using it and its gate
    from bdnsca.pipeline.engine import plan_keys

    before = {n.name: n.key for n in plan_keys(plan.nodes)}
    path.write_text(path.read_text().replace("max_steps = 3", "max_steps = 4"))
    after = {n.name: n.key for n in plan_keys(build_plan(load_spec(path)).nodes)}
    changed = {k for k in before if before[k] != after[k]}
    assert (
        changed
        == {"distill:dpo", serve.name, "gate:s"}
        == {"distill:dpo"} | dependents(plan.nodes, "distill:dpo")
    )


def test_a_step_raising_mid_pipeline_then_a_rerun_redoes_only_that_step_and_what_follows(tmp_path):
    path = write_spec(tmp_path, steps="[steps.gate]\nresamples = 1000\nallow_missing = true")
    fns = _fake_functions({"base": 0.5, "sft": 0.4, "dpo": 0.6})
    calls: list[str] = []

    def boom(ctx):
        calls.append(ctx.name)
        (ctx.out / "adapter").mkdir()  # half-written output
        raise KeyError("planted crash inside dpo")

    with pytest.raises(
        StepFailed, match=r"step 'dpo' failed \(KeyError: 'planted crash inside dpo'\); log: "
    ):
        run_pipeline(path, functions={**fns, "dpo": boom})
    first = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    finished = {k for k, v in first["nodes"].items() if v["status"] == "computed"}
    assert first["nodes"]["dpo"]["status"] == "failed" and "export:sft" in finished

    ran: list[str] = []
    from bdnsca.pipeline.steps import gate

    recorded = {k: _recording(f, ran) for k, f in {**fns, "gate": gate}.items()}
    res = run_pipeline(path, functions=recorded)
    plan_nodes = build_plan(load_spec(path)).nodes
    assert set(ran) == set(plan_nodes) - finished
    assert "dpo" in ran and not set(ran) & finished
    assert not (res.folders["dpo"] / "adapter").exists()  # the half-written folder was cleared
    assert res.manifest["status"] == "ok" and calls == ["dpo"]


def _recording(fn, ran: list[str]):
    def wrapped(ctx):
        ran.append(ctx.name)
        return fn(ctx)

    return wrapped


def test_sft_rows_and_the_preference_run_never_use_the_scenarios_the_gates_evaluate(tmp_path):
    from bdnsca.eval.scenarios import read_scenario_file
    from bdnsca.pipeline.engine import StepContext
    from bdnsca.pipeline.steps import eval_subset, outside, sft_data

    rows = read_scenario_file(DATA / "scenarios.jsonl")
    evaluated = eval_subset(rows, 8)
    assert len({r["scenario_id"] for r in evaluated}) == 8
    assert len({r["persona"] for r in evaluated}) > 4  # spread over the file, not one persona's block
    train_pool = eval_subset(outside(rows, evaluated), 8)
    assert not {r["scenario_id"] for r in train_pool} & {r["scenario_id"] for r in evaluated}

    out = tmp_path / "sft"
    out.mkdir()
    ctx = StepContext(
        "sft-data", out, {"skip": 8, "rows": 500}, {"scenarios": DATA / "scenarios.jsonl"}, {}, out
    )
    assert sft_data(ctx) == {"rows": len(rows) - 8}
    trained = {json.loads(line)["metadata"]["scenario_id"] for line in (out / "sft.jsonl").open()}
    assert not trained & {r["scenario_id"] for r in evaluated}

    plan = build_plan(load_spec(write_spec(tmp_path, steps="[steps.eval]\nmax_scenarios = 8")))
    run = plan.nodes[plan.nodes["preferences"].deps["run"]]
    assert run.name == "eval-train:sft" and run.settings["train_pool"] == 8
    assert "train_pool" not in plan.nodes["eval:dpo"].settings


# ----------------------------------------------------------------------------- review fixes


def _ctx_for(node, folders: dict[str, Path], out: Path):
    from bdnsca.pipeline.engine import StepContext

    out.mkdir(parents=True, exist_ok=True)
    return StepContext(
        node.name,
        out,
        dict(node.settings),
        dict(node.inputs),
        {role: folders[dep] for role, dep in node.deps.items()},
        out / "log",
    )


def test_a_draft_given_as_a_gguf_path_reaches_serve_bench_as_draft_path_n(tmp_path, monkeypatch):
    import bdnsca.serve.bench as bench
    from bdnsca.pipeline.steps import serve

    draft = tmp_path / "draft.gguf"
    draft.write_bytes(b"GGUF")
    exps = '[[experiment]]\nname = "s"\nmodel = "dpo"\nspeculative = ["none", "draft:4"]\n'
    plan = build_plan(load_spec(write_spec(tmp_path, model=f'draft = "{draft}"', exps=exps)))
    node = plan.nodes[plan.gates["s"]["serve"]]
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"hf": None, "gguf": str(tmp_path / "m.gguf")}))
    seen = {}

    class Stop(Exception):
        pass

    def fake_bench(settings):
        seen["modes"] = settings.speculative
        raise Stop

    monkeypatch.setattr(bench, "run_serve_bench", fake_bench)
    with pytest.raises(Stop):
        serve(_ctx_for(node, {d: model for d in node.deps.values()}, tmp_path / "serve"))
    assert [(m.kind, m.n, m.draft_path) for m in seen["modes"]] == [("none", 0, ""), ("draft", 4, str(draft))]


@pytest.mark.parametrize("kind", ["empty folder", "link to a non-run folder", "dangling link", "plain file"])
def test_a_current_anchor_that_is_not_a_run_is_one_line_before_any_step(tmp_path, kind):
    path = write_spec(tmp_path)
    anchors = tmp_path / "out" / "anchors"
    anchors.mkdir(parents=True)
    if kind == "empty folder":
        (anchors / "current").mkdir()
    elif kind == "dangling link":  # a promoted anchor folder deleted later
        (anchors / "current").symlink_to("gone-20260101T000000Z")
    elif kind == "plain file":
        (anchors / "current").write_text("x")
    else:
        (anchors / "elsewhere").mkdir()
        (anchors / "current").symlink_to("elsewhere")
    called: list[str] = []
    with pytest.raises(SpecError) as err:
        run_pipeline(path, functions={k: called.append for k in ("tiny_model", "sft", "dpo", "index")})
    msg = str(err.value)
    assert "\n" not in msg and "anchors/current" in msg and "not a run (no run_config.json)" in msg, msg
    assert called == [] and not (tmp_path / "out" / "nodes").exists()


def test_a_file_without_sft_dpo_or_distilled_draft_may_evaluate_every_scenario(tmp_path):
    """The evaluated scenarios must leave some for SFT only when something trains on them."""
    exps = '[[experiment]]\nname = "b"\nmodel = "base"\n'
    spec = load_spec(write_spec(tmp_path, steps="[steps.eval]\nk = 2", exps=exps))
    plan = build_plan(spec)
    assert not any(n.startswith(("sft", "eval-train")) for n in plan.nodes)
    with pytest.raises(SpecError, match="max_scenarios = None leaves none"):
        load_spec(write_spec(tmp_path, steps="[steps.eval]\nk = 2"))  # model dpo trains on them


def test_the_gate_retrieval_split_is_the_reranker_trainers_own_defaults(tmp_path):
    from dataclasses import fields

    from bdnsca.train.reranker import RerankerTrainingConfig

    defaults = {f.name: f.default for f in fields(RerankerTrainingConfig)}
    plan = build_plan(load_spec(write_spec(tmp_path, steps="[steps.reranker]\nmax_steps = 2")))
    s = plan.nodes["retrieval:bm25"].settings
    assert s["depth"] == defaults["eval_depth"]
    assert s["heldout_fraction"] == defaults["heldout_fraction"]
    assert s["split_seed"] == defaults["split_seed"] and s["domain_field"] == defaults["domain_field"]
    plan = build_plan(load_spec(write_spec(tmp_path, steps="[steps.reranker]\neval_depth = 7")))
    assert plan.nodes["retrieval:bm25"].settings["depth"] == 7


def test_an_experiment_with_the_reranker_generates_its_answers_through_it(tmp_path, monkeypatch):
    import tomllib

    import bdnsca
    from bdnsca.eval.arms import read_arms
    from bdnsca.pipeline.steps import evaluate

    exps = (
        '[[experiment]]\nname = "1"\nmodel = "dpo"\n'
        '[[experiment]]\nname = "2"\nmodel = "dpo"\nreranker = true\n'
    )
    plan = build_plan(load_spec(write_spec(tmp_path, steps="[steps.reranker]\neval_depth = 7", exps=exps)))
    assert plan.gates["1"]["eval"] != plan.gates["2"]["eval"]
    folders = {}
    for name in ("export:dpo", "base", "index", "reranker", "judge"):
        f = tmp_path / "nodes" / name.replace(":", "_")
        (f / "model").mkdir(parents=True)
        (f / "model.json").write_text(json.dumps({"hf": None, "gguf": str(f / "m.gguf")}))
        (f / "m.gguf").write_bytes(b"GGUF")
        (f / "index.bm25").write_bytes(b"")
        folders[name] = f

    class Stop(Exception):
        pass

    def fake_generate(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(bdnsca, "generate_run", fake_generate)
    arms = {}
    for exp in ("1", "2"):
        node = plan.nodes[plan.gates[exp]["eval"]]
        out = tmp_path / f"eval{exp}"
        with pytest.raises(Stop):
            evaluate(_ctx_for(node, folders, out))
        arms[exp] = tomllib.loads((out / "arms.toml").read_text())["arms"]["target"]["retrieval"]
        read_arms(out / "arms.toml")  # a valid arms file
    assert "reranker" not in arms["1"]
    assert arms["2"]["reranker"] == str(folders["reranker"] / "model")
    assert arms["2"]["rerank_depth"] == 7 >= arms["2"]["k"]


def test_node_keys_follow_bdnsca_code_and_a_reused_node_shows_the_versions_that_computed_it(
    tmp_path, monkeypatch
):
    from bdnsca.pipeline import graph

    pkg = tmp_path / "pkg"
    (pkg / "sub" / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    (pkg / "sub" / "step.py").write_text("def f():\n    return 1\n")
    (pkg / "_core.abi3.so").write_bytes(b"\x7fELF one")
    first = graph.package_fingerprint(pkg)
    (pkg / "sub" / "__pycache__" / "step.cpython-311.pyc").write_bytes(b"cache")
    (pkg / "notes.txt").write_text("not code")
    assert graph.package_fingerprint(pkg) == first
    (pkg / "_core.abi3.so").write_bytes(b"\x7fELF two")  # a rebuilt extension
    second = graph.package_fingerprint(pkg)
    (pkg / "sub" / "step.py").write_text("def f():\n    return 2\n")  # an edited step
    third = graph.package_fingerprint(pkg)
    assert len({first, second, third}) == 3

    out = tmp_path / "out"
    r1 = execute(fake_graph(tmp_path), out, {"write": Recorder()})
    computed_with = r1.manifest["versions"]
    assert computed_with["bdnsca_code"] == graph.code_fingerprint()
    assert all(v["versions"] == computed_with for v in r1.manifest["nodes"].values())
    assert all(store.read_marker(f)["versions"] == computed_with for f in r1.folders.values())

    # a later run under other library versions reuses the nodes and says what computed them
    monkeypatch.setattr(store, "versions", lambda: {**computed_with, "torch": "99.0"})
    r2 = execute(fake_graph(tmp_path), out, {"write": Recorder()})
    assert set(statuses(r2.manifest).values()) == {"reused"} and r2.manifest["versions"]["torch"] == "99.0"
    assert all(v["versions"] == computed_with for v in r2.manifest["nodes"].values())

    # edited bdnsca code: every key changes, so nothing is reused
    monkeypatch.setattr(graph, "code_fingerprint", lambda: "edited")
    monkeypatch.setattr("bdnsca.pipeline.engine.code_fingerprint", lambda: "edited")
    rec = Recorder()
    execute(fake_graph(tmp_path), out, {"write": rec})
    assert sorted(rec.calls) == list("abcde")


def test_dpo_pairs_are_the_sft_models_own_answers_to_one_prompt(tmp_path):
    from bdnsca.pipeline.samples import split_samples
    from bdnsca.pipeline.steps import preferences

    path = write_spec(tmp_path, steps="[steps.preferences]\nsamples = 3\ntemperature = 0.9\n")
    plan = build_plan(load_spec(path))
    run_node = plan.nodes[plan.nodes["preferences"].deps["run"]]
    assert run_node.settings["eval"]["repeats"] == 3 and run_node.settings["eval"]["temperature"] == 0.9
    assert "baseline" not in run_node.deps  # no context-free base model to compare against
    assert "samples" not in plan.nodes["preferences"].settings

    # a run of one arm, 3 repeats per scenario; one repeat of s2 answered another prompt
    run = tmp_path / "evaltrain" / "run"
    (run / "responses").mkdir(parents=True)
    (run / "run_config.json").write_text(
        json.dumps({"target_arm": "target", "baseline_arm_ids": [], "repeats": 3, "temperature": 0.9,
                    "arms": [{"arm_id": "target", "model": "m.gguf"}]})
    )  # fmt: skip
    sids = ["s0", "s1", "s2"]
    (run / "scenarios.jsonl").write_text("".join(json.dumps({"scenario_id": s}) + "\n" for s in sids))
    rows = [
        {"scenario_id": s, "arm_id": "target", "repeat_index": r, "request_index": 3 * i + r, "ok": True,
         "prompt": f"prompt of {s}" + (" (other)" if (s, r) == ("s2", 2) else ""),
         "response": f"{s} answer {r}"}
        for i, s in enumerate(sids) for r in range(3)
    ]  # fmt: skip
    (run / "responses" / "target.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert split_samples(run) == ["sample0", "sample1", "sample2"]
    (run / "scores").mkdir()
    for r in range(3):
        with open(run / "scores" / f"sample{r}.jsonl", "w") as fh:
            for i, s in enumerate(sids):
                fh.write(json.dumps({"scenario_id": s, "arm_id": f"sample{r}", "repeat_index": 0,
                                     "ok": True, "overall_quality": 0.1 * r + 0.01 * i}) + "\n")  # fmt: skip
    out = tmp_path / "prefs"
    out.mkdir()
    from bdnsca.pipeline.engine import StepContext

    settings = {"require_same_prompt": False}  # the step insists on one prompt regardless
    got = preferences(StepContext("preferences", out, settings, {}, {"run": run.parent}, out / "log"))
    pairs = [json.loads(line) for line in (out / "preferences.jsonl").open()]
    # s0, s1: 3 pairs each (every two samples); s2: only sample0 vs sample1 share a prompt
    assert got["pairs"] == len(pairs) == 7
    for p in pairs:
        m = p["metadata"]
        assert m["same_prompt"] is True and m["chosen_prompt"] == m["rejected_prompt"] == p["prompt"]
        sid = m["scenario_id"]
        assert p["prompt"] == f"prompt of {sid}"
        chosen, rejected = int(p["chosen"][-1]), int(p["rejected"][-1])
        assert p["chosen"].startswith(sid) and p["rejected"].startswith(sid) and chosen > rejected


def test_a_failed_run_leaves_no_stale_report_and_a_missing_gate_report_refuses_promotion(tmp_path):
    path = write_spec(tmp_path, steps="[steps.gate]\nresamples = 1000\nallow_missing = true")
    fns = _fake_functions({"base": 0.5, "sft": 0.4, "dpo": 0.6})
    out = tmp_path / "out"
    res = run_pipeline(path, functions=fns)
    assert (out / "report.md").exists()
    gate_report = Path(res.manifest["nodes"]["gate:one"]["folder"]) / "gate_report.json"
    gate_report.unlink()
    with pytest.raises(PromotionRefused, match=r"gate_report.json: the gate report of 'one' is missing"):
        promote(path, "one")
    assert current_anchor(out) is None

    def boom(ctx):
        raise RuntimeError("planted")

    path.write_text(path.read_text().replace("resamples = 1000", "resamples = 999"))
    with pytest.raises(StepFailed):
        run_pipeline(path, functions={**fns, "gate": boom})
    assert not (out / "report.md").exists()  # the last report described other settings
