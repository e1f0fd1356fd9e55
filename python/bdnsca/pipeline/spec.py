"""The experiment file: one TOML declaring the data, the models, each step's settings, the anchor
and the experiments. Everything is checked before any step runs, and each error is one line
naming the file and the key (``examples/tiny.toml: unknown key 'steps.sft.epoch'``).

.. code-block:: toml

    output_dir = "../runs/pipeline-tiny"        # relative to this file
    [data]                                      # every path relative to this file
    scenarios = "../data/scenarios.jsonl"
    corpus = "../data/retrieval_corpus_wide.jsonl"
    gold = "../data/retrieval_gold_wide.jsonl"
    serving_prompts = "../data/serving_prompts.jsonl"
    serving_references = "../data/serving_references.jsonl"
    [model]
    tiny = { layers = 2, hidden_size = 64 }     # or base = "HF folder" (+ gguf = "base.gguf")
    judges = ["tiny"]                           # GGUF paths, or "tiny": a tiny judge built here
    draft = "distill"     # the draft for draft:N modes: a GGUF path, "tiny", or "distill" (distil-draft
                          # a tiny draft from each served model on the SFT prompts)
    [steps.sft]                                 # the settings of each step (see STEP_KEYS)
    max_steps = 4
    [anchor]
    model = "base"          # until OUTPUT/anchors/current exists, evaluate this model as the anchor
    # run = "runs/anchor"   # or: an existing anchor folder (an evaluation run)
    [[experiment]]
    name = "sft-dpo"
    model = "dpo"                               # base | sft | dpo
    reranker = false
    speculative = ["none"]

The training steps say which model they start from (``[steps.sft] from = "base"``, ``[steps.dpo]
from = "sft"``), so a file can describe a dependency cycle; :mod:`.graph` finds it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError

STEPS = ("sft", "dpo", "preferences", "reranker", "mine", "export", "eval", "judge", "score", "serve", "gate")
STEPS += ("distill",)
MODELS = ("base", "sft", "dpo")
TOP_KEYS = {"output_dir", "data", "model", "steps", "anchor", "experiment"}
DATA_KEYS = {"scenarios", "corpus", "gold", "serving_prompts", "serving_references"}
MODEL_KEYS = {"tiny", "base", "gguf", "judges", "draft"}
TINY_KEYS = {"layers", "hidden_size", "heads", "kv_heads", "vocab_size", "seed", "copy_steps"}
ANCHOR_KEYS = {"model", "run"}
EXPERIMENT_KEYS = {"name", "model", "reranker", "speculative"}

# The settings a step accepts beyond those of the function it wraps (listed in step_keys()).
_OWN = {
    "sft": {"from", "rows"},
    "dpo": {"from"},
    "eval": {"max_scenarios", "k"},
    "preferences": {"scenarios", "samples", "temperature"},
}
# Settings the pipeline sets itself (paths, resuming): never from the file.
_RESERVED = {
    "dataset",
    "base_model",
    "output_dir",
    "resume",
    "pairs",
    "corpus",
    "gold",
    "models",
    "prompts",
    "references",
    "output_root",
    "progress",
    "eval_dataset",
    "target_arm",
    "baseline_arms",
    "speculative",
    "arms",
    "from_run",
    "arm",
}


class SpecError(BdnscaError):
    """A bad experiment file; the message is one line naming the file and the key."""


def _dataclass_keys(cls: type) -> set[str]:
    return {f.name for f in fields(cls)} - _RESERVED


def step_keys(step: str) -> set[str]:
    """The keys ``[steps.STEP]`` accepts."""
    own = _OWN.get(step, set())
    if step == "sft":
        from bdnsca.train.sft import SFTTrainingConfig

        return own | (_dataclass_keys(SFTTrainingConfig) - {"use_references"})
    if step == "dpo":
        from bdnsca.train.preference import PreferenceTrainingConfig

        return own | _dataclass_keys(PreferenceTrainingConfig)
    if step == "preferences":
        from bdnsca.prefs.build import PreferenceSettings

        return _OWN["preferences"] | (_dataclass_keys(PreferenceSettings) - {"score_scale"})
    if step == "mine":
        from bdnsca.retrieval.mining import MiningSettings

        return _dataclass_keys(MiningSettings) - {"rank_range", "stopwords"}
    if step == "reranker":
        from bdnsca.train.reranker import RerankerTrainingConfig

        return _dataclass_keys(RerankerTrainingConfig)
    if step == "export":
        return set()
    if step == "eval":
        from bdnsca.eval.generate import GenerateSettings

        return own | _dataclass_keys(GenerateSettings)
    if step == "judge":
        from bdnsca.eval.judge import JudgeSettings

        return _dataclass_keys(JudgeSettings)
    if step == "score":
        return {"metrics", "resamples", "seed"}
    if step == "serve":
        from bdnsca.serve.bench import ServeBenchSettings

        return _dataclass_keys(ServeBenchSettings)
    if step == "distill":
        from bdnsca.train.distill import DistillConfig

        return _dataclass_keys(DistillConfig) - {"target", "draft_init", "gguf"}
    if step == "gate":
        from bdnsca.eval.gate_checks import GateSettings

        return _dataclass_keys(GateSettings) - {"rating_scale"}
    raise SpecError(f"unknown step {step!r}")


def is_pipeline_draft(mode: str) -> bool:
    """``draft`` or ``draft:N``: the draft model the file declares (``model.draft``)."""
    return mode == "draft" or (mode.startswith("draft:") and mode[len("draft:") :].isdigit())


def check_step_settings(path: Path, step: str, settings: dict[str, Any]) -> None:
    """Builds the settings object the step will build and runs its own checks, so a bad value
    (``max_steps = "ten"``, ``alpha = 2``) is reported before any step runs."""
    s = {k: v for k, v in settings.items() if k not in _OWN.get(step, set())}
    from bdnsca.pipeline.checks import check_own, check_types

    x = "unused"
    try:
        check_own(step, settings)
        if step == "score":
            from bdnsca.eval.scoring import ScoringConfig

            check_types(ScoringConfig, {k: v for k, v in s.items() if k != "metrics"})
            metrics = s.get("metrics")
            if metrics is not None and not (
                isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)
            ):
                raise ValueError(f"metrics must be a list of metric names, got {metrics!r}")
            extra = {"metrics": tuple(metrics)} if metrics is not None else {}
            ScoringConfig(**{k: v for k, v in s.items() if k != "metrics"}, **extra).validate()
        if step == "sft":
            from bdnsca.train.sft import SFTTrainingConfig as C

            check_types(C, s)
            C(dataset=x, base_model=x, output_dir=x, **s).validate()
        elif step == "dpo":
            from bdnsca.train.preference import PreferenceTrainingConfig as C

            check_types(C, s)
            C(dataset=x, base_model=x, output_dir=x, **s).validate()
        elif step == "preferences":
            from bdnsca.prefs.build import PreferenceSettings as C

            check_types(C, s)
            C(**{"pairing": "all-arms", **s}).validate()
        elif step == "mine":
            from bdnsca.retrieval.mining import MiningSettings as C

            check_types(C, s)
            C(**s).validate()
        elif step == "reranker":
            from bdnsca.train.reranker import RerankerTrainingConfig as C

            check_types(C, s)
            C(pairs=x, corpus=x, gold=x, **s).validate()
        elif step == "distill":
            from bdnsca.train.distill import DistillConfig as C

            check_types(C, s)
            C(target=x, draft_init="tiny", prompts=x, output_dir=x, **s).validate()
        elif step == "eval":
            from bdnsca.eval.generate import GenerateSettings as C

            check_types(C, s)
            C(**s).validate()
        elif step == "judge":
            from bdnsca.eval.judge import JudgeSettings as C

            check_types(C, s)
            C(**s).validate()
        elif step == "serve":
            from bdnsca.serve.bench import ServeBenchSettings as C

            check_types(C, s)
            C(models=[x], **s).validate()
        elif step == "gate":
            from bdnsca.eval.gate_checks import GateSettings as C
            from bdnsca.eval.scoring import METRICS, WEIGHTS

            check_types(C, s)
            unknown = [m for m in s.get("quality_metrics", []) if m not in {*METRICS, *WEIGHTS}]
            if unknown:
                raise ValueError(f"unknown quality metric {unknown[0]!r} (scored: {', '.join(METRICS)})")
            C(**s).validate()
    except (BdnscaError, TypeError, ValueError) as exc:
        text = str(exc).strip().splitlines()
        raise _fail(path, f"steps.{step}: {text[0] if text else type(exc).__name__}") from None


def check_tiny(path: Path, tiny: dict[str, Any]) -> None:
    """``model.tiny`` built as the step builds it (:class:`~bdnsca.train.tiny.TinyModelConfig`)."""
    from bdnsca.pipeline.checks import check_types, positive_int
    from bdnsca.train.tiny import TinyModelConfig

    t = {k: v for k, v in tiny.items() if k != "copy_steps"}
    try:
        check_types(TinyModelConfig, t)
        if "copy_steps" in tiny:
            positive_int("copy_steps", tiny["copy_steps"], 0)
        t.setdefault("kv_heads", min(2, t.get("heads", 4)))
        TinyModelConfig(**t).validate()
    except (BdnscaError, TypeError, ValueError) as exc:
        raise _fail(path, f"model.tiny: {exc}") from None


def _check_eval_pool(path: Path, scenarios: Path, eval_settings: dict[str, Any]) -> None:
    """``steps.eval.max_scenarios`` must leave scenarios outside the evaluated ones: the SFT rows
    and the preference run come from those."""
    from bdnsca.eval.scenarios import read_scenario_file

    n = len(read_scenario_file(scenarios))
    given = eval_settings.get("max_scenarios")
    if given is None or given >= n:
        raise _fail(
            path,
            f"steps.eval.max_scenarios = {given!r} leaves none of the {n} scenarios of {scenarios} for SFT "
            f"and the preference run: set it below {n}",
        )


@dataclass
class Experiment:
    name: str
    model: str = "dpo"
    reranker: bool = False
    speculative: list[str] = field(default_factory=lambda: ["none"])


@dataclass
class PipelineSpec:
    path: Path
    output_dir: Path
    data: dict[str, Path]
    tiny: dict[str, Any] | None
    base: Path | None
    base_gguf: Path | None
    judges: list[str]
    """GGUF paths (absolute) or "tiny"."""
    draft: str | None
    """A GGUF path, "tiny" or "distill"."""
    steps: dict[str, dict[str, Any]]
    anchor_model: str | None
    anchor_run: Path | None
    experiments: list[Experiment]

    def settings(self, step: str) -> dict[str, Any]:
        return dict(self.steps.get(step, {}))


def _fail(path: Path, what: str) -> SpecError:
    return SpecError(f"{path}: {what}")


def _unknown(path: Path, table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise _fail(path, f"unknown key {name!r} (known: {', '.join(sorted(allowed))})")


def _table(path: Path, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"{where!r} must be a table")
    return value


def _file(path: Path, base: Path, value: Any, where: str, must_exist: bool = True) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(path, f"{where!r} must be a path")
    p = Path(value) if os.path.isabs(value) else (base / value)
    p = Path(os.path.normpath(p))
    if must_exist and not p.exists():
        raise _fail(path, f"{where} = {value!r}: no such file {p}")
    return p


def load_spec(path: str | os.PathLike[str]) -> PipelineSpec:
    """Reads and checks an experiment file (see the module docstring)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such experiment file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 (byte {exc.start})") from None
    base = path.parent.resolve()
    _unknown(path, raw, TOP_KEYS, "")
    if "output_dir" not in raw:
        raise _fail(path, "missing key 'output_dir'")
    out = _file(path, base, raw["output_dir"], "output_dir", must_exist=False)

    data_t = _table(path, raw.get("data", {}), "data")
    _unknown(path, data_t, DATA_KEYS, "data")
    missing = sorted(DATA_KEYS - set(data_t))
    if missing:
        raise _fail(path, f"missing key 'data.{missing[0]}'")
    data = {k: _file(path, base, v, f"data.{k}") for k, v in data_t.items()}

    model_t = _table(path, raw.get("model", {}), "model")
    _unknown(path, model_t, MODEL_KEYS, "model")
    tiny = model_t.get("tiny")
    if tiny is not None:
        tiny = _table(path, tiny, "model.tiny")
        _unknown(path, tiny, TINY_KEYS, "model.tiny")
        check_tiny(path, tiny)
    if (tiny is None) == ("base" not in model_t):
        raise _fail(path, "give exactly one of 'model.tiny' and 'model.base'")
    base_model = _file(path, base, model_t["base"], "model.base") if "base" in model_t else None
    base_gguf = _file(path, base, model_t["gguf"], "model.gguf") if "gguf" in model_t else None
    if base_model is not None and base_gguf is None:
        raise _fail(path, "'model.base' needs 'model.gguf' (the base model as GGUF, for serving)")
    judges = model_t.get("judges", ["tiny"] if tiny is not None else [])
    if not isinstance(judges, list) or not judges:
        raise _fail(path, "'model.judges' must be a non-empty list")
    judges = [j if j == "tiny" else str(_file(path, base, j, "model.judges")) for j in judges]
    if "tiny" in judges and tiny is None:
        raise _fail(path, "'model.judges' names 'tiny' but there is no 'model.tiny'")
    draft = model_t.get("draft")
    if draft is not None and draft not in ("tiny", "distill"):
        draft = str(_file(path, base, draft, "model.draft"))
    if draft == "tiny" and tiny is None:
        raise _fail(path, "'model.draft' is 'tiny' but there is no 'model.tiny'")

    steps_t = _table(path, raw.get("steps", {}), "steps")
    steps: dict[str, dict[str, Any]] = {}
    for name, settings in steps_t.items():
        if name not in STEPS:
            raise _fail(path, f"unknown step 'steps.{name}' (known: {', '.join(STEPS)})")
        settings = _table(path, settings, f"steps.{name}")
        _unknown(path, settings, step_keys(name), f"steps.{name}")
        check_step_settings(path, name, settings)
        steps[name] = settings
    for step, default in (("sft", "base"), ("dpo", "sft")):
        src = steps.setdefault(step, {}).setdefault("from", default)
        if src not in MODELS:
            raise _fail(path, f"'steps.{step}.from' must be one of {', '.join(MODELS)}, got {src!r}")
    for start in ("sft", "dpo"):  # a training step that starts, through others, from its own model
        chain = [start]
        while chain[-1] != "base" and steps[chain[-1]]["from"] not in chain:
            chain.append(steps[chain[-1]]["from"])
        if chain[-1] != "base":
            keys = " and ".join(f"steps.{m}.from = {steps[m]['from']!r}" for m in chain)
            cycle = " -> ".join([*chain, steps[chain[-1]]["from"]])
            raise _fail(path, f"{keys} form a dependency cycle ({cycle})")

    anchor_t = _table(path, raw.get("anchor", {}), "anchor")
    _unknown(path, anchor_t, ANCHOR_KEYS, "anchor")
    if len(anchor_t) != 1:
        raise _fail(path, "'anchor' needs exactly one of 'model' (bootstrap) and 'run' (a run folder)")
    anchor_model = anchor_t.get("model")
    if anchor_model is not None and anchor_model not in MODELS:
        raise _fail(path, f"'anchor.model' must be one of {', '.join(MODELS)}, got {anchor_model!r}")
    anchor_run = None
    if "run" in anchor_t:
        anchor_run = _file(path, base, anchor_t["run"], "anchor.run")
        if not (anchor_run / "run_config.json").is_file():
            raise _fail(
                path, f"anchor.run = {anchor_t['run']!r}: {anchor_run} is not a run (no run_config.json)"
            )

    exps_raw = raw.get("experiment", [])
    if not isinstance(exps_raw, list) or not exps_raw:
        raise _fail(path, "no [[experiment]]")
    experiments: list[Experiment] = []
    for i, e in enumerate(exps_raw):
        where = f"experiment[{i}]"
        e = _table(path, e, where)
        _unknown(path, e, EXPERIMENT_KEYS, where)
        if not isinstance(e.get("name"), str) or not e["name"]:
            raise _fail(path, f"'{where}.name' must be a non-empty string")
        if not isinstance(e.get("reranker", False), bool):
            raise _fail(path, f"'{where}.reranker' must be true or false, got {e['reranker']!r}")
        spec_modes = e.get("speculative", ["none"])
        if (
            not isinstance(spec_modes, list)
            or not spec_modes
            or not all(isinstance(m, str) for m in spec_modes)
        ):
            example = '["none", "draft:4"]'
            raise _fail(
                path, f"'{where}.speculative' must be a non-empty list such as {example}, got {spec_modes!r}"
            )
        exp = Experiment(**e)
        if exp.model not in MODELS:
            raise _fail(path, f"'{where}.model' must be one of {', '.join(MODELS)}, got {exp.model!r}")
        if any(x.name == exp.name for x in experiments):
            raise _fail(path, f"'{where}.name': experiment {exp.name!r} given twice")
        from bdnsca.serve.bench import parse_speculative

        for mode in exp.speculative:
            if is_pipeline_draft(mode):
                if draft is None:
                    raise _fail(path, f"'{where}.speculative' {mode!r} needs 'model.draft'")
                continue
            try:
                parse_speculative(mode)
            except BdnscaError as exc:
                raise _fail(path, f"'{where}.speculative': {exc}") from None
        experiments.append(exp)
    # Only SFT (and DPO, trained from it) and a distilled draft draw on the scenarios outside the
    # evaluated ones; a file that uses none of them may evaluate every scenario.
    trained = {e.model for e in experiments} | {anchor_model}
    if trained & {"sft", "dpo"} or draft == "distill":
        _check_eval_pool(path, data["scenarios"], steps.get("eval", {}))
    return PipelineSpec(
        path=path,
        output_dir=out,
        data=data,
        tiny=tiny,
        base=base_model,
        base_gguf=base_gguf,
        judges=judges,
        draft=draft,
        steps=steps,
        anchor_model=anchor_model,
        anchor_run=anchor_run,
        experiments=experiments,
    )
