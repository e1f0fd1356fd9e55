"""``bdnsca judge``: a blind LLM-as-judge over a run folder's responses.

(Past ~450 lines: the judging loop, its retries and the summary share state that splitting would
thread through every call; the CSV tables and statistics already live in judge_tables/judge_stats.)

Each judge model at each temperature is one annotator (``<judge>__t<temperature>``). Pointwise,
every (scenario, arm) response is rated 1-5 on :data:`~bdnsca.eval.judge_prompts.METRICS`;
pairwise, every pair of arms is compared per metric as A / B / tie, in both orders (which order
comes first is drawn per scenario, pair and annotator from the seed). Answers are JSON
constrained by a schema; one that still does not parse is asked again (``retries`` times, with
another seed) and then recorded as missing with its raw text, never given a default score.

Writes into the run folder: ``judge_ratings.csv`` (``scenario_id, arm_id, annotator_id,
<metrics>, notes``: the pointwise ratings, blank where missing, which ``build-preferences`` and
the gate read; in ``pairwise`` mode each arm's soft win share against the other arms of the
scenario, mapped onto 1-5 as ``1 + 4 * share``), ``judge_pairwise.csv`` (each pair's verdict per
order and the final one), ``judge_requests.jsonl`` (every prompt sent and raw answer) and
``judge_summary.json`` (:mod:`~bdnsca.eval.judge_stats`).

A scenario where an arm has no usable response (failed or empty) is left out of that arm's
judgements, so its win-rates are conditional on the scenarios it answered; the summary's
``missing_responses`` lists those scenarios per arm (an arm that fails on the hard scenarios
shows up there, not as losses). With ``missing_as_loss`` (``--missing-as-loss``) such a scenario
counts as a loss against every arm that answered it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from bdnsca.data.io import file_sha256, write_json, write_jsonl
from bdnsca.data.run_folders import read_responses, read_run_config, read_scenarios, run_arms
from bdnsca.errors import BdnscaError
from bdnsca.eval import judge_stats
from bdnsca.eval.judge_llm import Judge, JudgeRequest, LlamaJudge, check_judge_model, judge_labels
from bdnsca.eval.judge_prompts import (
    METRICS,
    MIN_ANSWER_TOKENS,
    Redactor,
    answer_schema,
    pairwise_prompt,
    parse_answer,
    pointwise_prompt,
)
from bdnsca.eval.judge_tables import PAIR_COLUMNS, pair_rows, ratings_rows, write_csv

MODES = ("pointwise", "pairwise", "both")
Progress = Callable[[int, int, str], None]

PARTIAL_LOG = "judge_requests.partial.jsonl"  # what an interrupted judging answered


@dataclass
class JudgeSettings:
    temperatures: list[float] = field(default_factory=lambda: [0.0, 0.7])
    mode: str = "both"
    arms: list[str] | None = None
    max_scenarios: int | None = None
    sample_seed: int = 0
    seed: int = 19
    retries: int = 2
    max_tokens: int = 320
    """Room for the longest answer the schema allows, even one character per token. Each retry
    doubles it (cut to the judge's context): at temperature 0 only more room changes a greedy
    answer that was cut short."""
    n_ctx: int = 2048
    n_threads: int | None = None
    n_gpu_layers: int = 0
    chat: bool | None = None
    """Judge prompts through the GGUF's chat template: None uses it when the model has one."""
    missing_as_loss: bool = False
    """In the win-rates, an arm without a usable response (failed or empty) where another arm
    has one loses that scenario, instead of leaving it out (conditional win-rates)."""

    def validate(self) -> None:
        if self.mode not in MODES:
            raise BdnscaError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.temperatures:
            raise BdnscaError("--temperatures names no temperature")
        temps = self.temperatures
        if any(not t >= 0 for t in temps) or len(set(temps)) != len(temps):
            raise BdnscaError(f"--temperatures must be distinct and >= 0, got {self.temperatures}")
        ids = [temperature_label(t) for t in self.temperatures]
        clash = next((t for t, i in zip(self.temperatures, ids, strict=True) if ids.count(i) > 1), None)
        if clash is not None:
            twins = [t for t, i in zip(self.temperatures, ids, strict=True) if i == temperature_label(clash)]
            raise BdnscaError(
                f"--temperatures {twins} would share the annotator id suffix __t{temperature_label(clash)}: "
                "give temperatures that differ in their first 6 significant digits"
            )
        if self.max_scenarios is not None and self.max_scenarios < 1:
            raise BdnscaError(f"--max-scenarios must be at least 1, got {self.max_scenarios}")
        if self.retries < 0:
            raise BdnscaError(f"--retries must be >= 0, got {self.retries}")
        if self.max_tokens < MIN_ANSWER_TOKENS:
            raise BdnscaError(
                f"--max-tokens must be at least {MIN_ANSWER_TOKENS} (the shortest answer the JSON "
                f"schema allows, at one character per token), got {self.max_tokens}"
            )


def temperature_label(t: float) -> str:
    """A temperature as it appears in an annotator id: two decimals (``0.70``) when that is exact,
    else its shortest general form (``0.001``), so that distinct temperatures get distinct ids."""
    two = f"{t:.2f}"
    return two if float(two) == t else f"{t:g}"


@dataclass
class JudgeResult:
    run_dir: Path
    summary: dict[str, Any]
    ratings: list[dict[str, Any]]
    """The rows of ``judge_ratings.csv``."""
    requests: list[dict[str, Any]]
    """The rows of ``judge_requests.jsonl``."""
    pairs: list[dict[str, Any]]
    """Each judged pair with both orders' answers (``judge_pairwise.csv`` in long form)."""


def judge_run(
    run_dir: str | os.PathLike[str],
    judges: Sequence[str | os.PathLike[str] | Judge],
    settings: JudgeSettings | None = None,
    *,
    progress: Progress | None = None,
    argv: Sequence[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> JudgeResult:
    """Judges a run folder (see the module docstring). ``judges`` are GGUF paths or objects
    with a ``name`` and ``complete(request) -> str`` (:class:`~bdnsca.eval.judge_llm.Judge`).
    The files go to ``output_dir`` (default: the run folder; ``JudgeResult.run_dir`` is where
    they went). Everything that can be wrong (no responses, unknown arms, a judge that cannot
    load) is an error before the first judgement."""
    s = settings or JudgeSettings()
    if overrides:
        s = JudgeSettings(**{**asdict(s), **overrides})
    s.validate()
    run = Path(run_dir)
    out = Path(output_dir) if output_dir is not None else run
    arms, responses, scenarios, all_arms = _read_run(run, s)
    sample = _sample(scenarios, responses, s)
    if not judges:
        raise BdnscaError("no judge: pass --judge JUDGE.gguf (one or more)")
    paths = [str(j) for j in judges if isinstance(j, str | os.PathLike)]
    labels = judge_labels(paths) if paths else {}
    for p in paths:
        check_judge_model(p, s.n_ctx, s.n_threads, s.n_gpu_layers)
    names = [labels[str(j)] if isinstance(j, str | os.PathLike) else j.name for j in judges]
    if len(set(names)) != len(names):
        raise BdnscaError(f"two judges share a name ({names}): annotator ids must differ")

    redact = Redactor(_identifying_names(run, all_arms, responses))
    judged = set(sample)
    shown = {
        (sid, a): redact(str(row["response"]))
        for a in arms
        for sid, row in responses[a].items()
        if sid in judged
    }
    lengths = {k: len(v.split()) for k, v in shown.items()}
    items = _items(sample, arms, responses, s)
    if not items:
        raise BdnscaError(f"{run}: nothing to judge (no scenario has responses from two of the arms {arms})")
    total = len(items) * len(judges) * len(s.temperatures)

    log: list[dict[str, Any]] = []
    pointwise: dict[tuple[str, str, str], dict[str, int] | None] = {}
    notes: dict[tuple[str, str, str], str] = {}
    pairs: list[dict[str, Any]] = []
    annotators: list[str] = []
    try:
        _judge_all(judges, names, items, scenarios, shown, s, log, pointwise, notes, pairs, annotators,
                   progress, total)  # fmt: skip
    except BaseException as exc:
        # An interrupted or failed judging keeps what the judges answered so far, for audit, in
        # a file of its own: a complete earlier judging's log must stay beside its ratings.
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / PARTIAL_LOG, log)
        exc.add_note(f"the {len(log)} answers so far are in {out / PARTIAL_LOG}")
        raise

    ratings = ratings_rows(s.mode, sample, arms, annotators, pointwise, notes, pairs)
    summary = _summary(
        run, s, arms, sample, scenarios, annotators, judges, names, log, pointwise, pairs, lengths
    )
    # An arm without a usable response (failed or empty) in a scenario is left out of that
    # scenario's judgements, so its win-rates are conditional on the scenarios it answered.
    summary["missing_responses"] = {
        a: {"count": len(m), "scenario_ids": m}
        for a in arms
        for m in [[sid for sid in sample if sid not in responses[a]]]
    }
    summary["redactions"] = redact.count
    summary["command"] = list(argv) if argv is not None else None
    out.mkdir(parents=True, exist_ok=True)
    write_csv(
        out / "judge_ratings.csv", ["scenario_id", "arm_id", "annotator_id", *METRICS, "notes"], ratings
    )
    if pairs:
        write_csv(out / "judge_pairwise.csv", PAIR_COLUMNS, pair_rows(pairs))
    else:  # a pointwise re-judging must not leave an earlier judging's pairs beside its ratings
        (out / "judge_pairwise.csv").unlink(missing_ok=True)
    write_jsonl(out / "judge_requests.jsonl", log)
    write_json(out / "judge_summary.json", summary)
    (out / PARTIAL_LOG).unlink(missing_ok=True)
    return JudgeResult(out, summary, ratings, log, pairs)


def _judge_all(judges, names, items, scenarios, shown, s, log, pointwise, notes, pairs, annotators,
               progress, total) -> None:  # fmt: skip
    """Asks every judge at every temperature about every item, filling the given containers."""
    done = 0
    for judge_obj, name in zip(judges, names, strict=True):
        judge = (
            LlamaJudge(
                judge_obj,
                name,
                n_ctx=s.n_ctx,
                n_threads=s.n_threads,
                n_gpu_layers=s.n_gpu_layers,
                chat=s.chat,
            )
            if isinstance(judge_obj, str | os.PathLike)
            else judge_obj
        )
        try:
            for t in s.temperatures:
                ann = f"{name}__t{temperature_label(t)}"
                annotators.append(ann)
                for item in items:
                    sid = item["scenario_id"]
                    if item["kind"] == "pointwise":
                        arm = item["arm"]
                        prompt = pointwise_prompt(scenarios[sid], shown[(sid, arm)])
                        base = {"kind": "pointwise", "scenario_id": sid, "arm_id": arm}
                        parsed, raw = _ask(judge, ann, name, t, prompt, (shown[(sid, arm)],), base, s, log)
                        pointwise[(sid, arm, ann)] = parsed.values if parsed else None
                        notes[(sid, arm, ann)] = _note(parsed, raw, s)
                    else:
                        a1, a2 = item["arms"]
                        rng = random.Random(_stable_seed(s.seed, "order", sid, a1, a2, ann))
                        first = (a1, a2) if rng.random() < 0.5 else (a2, a1)
                        pair: dict[str, Any] = {
                            "scenario_id": sid,
                            "arm_1": a1,
                            "arm_2": a2,
                            "annotator_id": ann,
                        }
                        pair["orders"] = []
                        for k, (x, y) in enumerate((first, first[::-1])):
                            prompt = pairwise_prompt(scenarios[sid], shown[(sid, x)], shown[(sid, y)])
                            base = {"kind": "pairwise", "scenario_id": sid, "arms_shown": [x, y], "order": k}
                            texts = (shown[(sid, x)], shown[(sid, y)])
                            parsed, _ = _ask(judge, ann, name, t, prompt, texts, base, s, log)
                            pair["orders"].append({"a": x, "values": parsed.values if parsed else None})
                        pairs.append(pair)
                    done += 1
                    if progress:
                        progress(done, total, ann)
        finally:
            close = getattr(judge, "close", None)
            if close is not None:
                close()


def _read_run(run: Path, s: JudgeSettings):
    resp_dir = run / "responses"
    files = sorted(resp_dir.glob("*.jsonl")) if resp_dir.is_dir() else []
    if not files:
        raise BdnscaError(f"run folder {run} has no responses (responses/ARM.jsonl): nothing to judge")
    have = [f.stem for f in files]
    config = read_run_config(run) if (run / "run_config.json").exists() else {}
    ordered = [a for a in run_arms(config) if a in have] + [a for a in have if a not in run_arms(config)]
    if s.arms:
        unknown = [a for a in s.arms if a not in have]
        if unknown:
            raise BdnscaError(
                f"--arms: {unknown[0]!r} has no responses in {run} (arms: {', '.join(ordered)})"
            )
        arms = list(dict.fromkeys(s.arms))
    else:
        arms = ordered
    if s.mode != "pointwise" and len(arms) < 2:
        raise BdnscaError(f"pairwise judging needs at least two arms, got {arms}: use --mode pointwise")
    scenarios = read_scenarios(run)
    if not scenarios:
        raise BdnscaError(f"run folder {run} has no scenarios.jsonl: the judge needs each scenario's context")
    responses = {a: read_responses(run, a) for a in arms}
    for sid, row in scenarios.items():
        if not isinstance(row.get("player_input"), str) or not row["player_input"].strip():
            raise BdnscaError(f"{run / 'scenarios.jsonl'}: scenario {sid!r} has no 'player_input'")
    unknown_sids = sorted({sid for a in arms for sid in responses[a]} - set(scenarios))
    if unknown_sids:
        raise BdnscaError(f"{run}: responses for scenario {unknown_sids[0]!r}, which scenarios.jsonl lacks")
    if not any(responses.values()):
        raise BdnscaError(f"run folder {run}: no successful response in the arms {arms}")
    return arms, responses, scenarios, ordered


def _sample(scenarios: dict[str, Any], responses: dict[str, dict[str, Any]], s: JudgeSettings) -> list[str]:
    ids = [sid for sid in scenarios if any(sid in r for r in responses.values())]
    if s.max_scenarios is not None and s.max_scenarios < len(ids):
        chosen = set(random.Random(s.sample_seed).sample(ids, s.max_scenarios))
        ids = [sid for sid in ids if sid in chosen]
    return ids


def _items(sample: list[str], arms: list[str], responses: dict[str, dict[str, Any]], s: JudgeSettings):
    items: list[dict[str, Any]] = []
    for sid in sample:
        have = [a for a in arms if sid in responses[a]]
        if s.mode in ("pointwise", "both"):
            items += [{"kind": "pointwise", "scenario_id": sid, "arm": a} for a in have]
        if s.mode in ("pairwise", "both"):
            items += [{"kind": "pairwise", "scenario_id": sid, "arms": p} for p in combinations(have, 2)]
    return items


def _identifying_names(run: Path, arms: list[str], responses: dict[str, dict[str, Any]]) -> set[str]:
    """Arm ids, model names, model file names and (non-generic) stems: what must not reach a judge."""
    names = set(arms)
    models = {str(row.get("model") or "") for r in responses.values() for row in r.values()}
    config = read_run_config(run) if (run / "run_config.json").exists() else {}
    for a in config.get("arms", []):
        if isinstance(a, dict):
            models |= {str(a.get("model") or ""), str(a.get("model_path") or "")}
    for m in filter(None, models):
        names |= {m, Path(m).name, m.split(":")[0]}
        if Path(m).stem.lower() not in ("model", "ggml-model", "models"):
            names.add(Path(m).stem)
    return names


def _stable_seed(*parts: Any) -> int:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _ask(judge, ann, name, temperature, prompt, texts, base, s: JudgeSettings, log):
    """Asks until the answer parses (1 + retries attempts); every attempt is logged."""
    schema = answer_schema(base["kind"])
    raw = ""
    for attempt in range(s.retries + 1):
        seed = _stable_seed(s.seed, ann, base["kind"], base["scenario_id"], base.get("arm_id"),
                            base.get("arms_shown"), base.get("order"), attempt)  # fmt: skip
        max_tokens = s.max_tokens * 2**attempt  # a greedy answer cut short needs more room, not a seed
        req = JudgeRequest(base["kind"], prompt, schema, temperature, seed, max_tokens, tuple(texts),
                           min_tokens=s.max_tokens)  # fmt: skip
        entry = {**base, "annotator_id": ann, "judge": name, "temperature": temperature, "attempt": attempt,
                 "seed": seed, "max_tokens": max_tokens, "prompt": prompt}  # fmt: skip
        try:
            raw = judge.complete(req)
        except BdnscaError as exc:  # the request cannot be answered (e.g. too long): no retry helps
            log.append({**entry, "raw": None, "ok": False, "error": str(exc), "parsed": None})
            return None, f"(no answer: {exc})"
        try:
            parsed = parse_answer(base["kind"], raw)
        except ValueError as exc:
            log.append({**entry, "raw": raw, "ok": False, "error": str(exc), "parsed": None})
            continue
        log.append({**entry, "raw": raw, "ok": True, "error": None, "parsed": parsed.values})
        return parsed, raw
    return None, raw


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
NOTE_RAW_CHARS = 200


def _note(parsed, raw: str, s: JudgeSettings) -> str:
    if parsed is None:
        last = _CONTROL.sub(" ", raw or "").strip()
        if len(last) > NOTE_RAW_CHARS:
            last = last[:NOTE_RAW_CHARS] + "..."
        return (
            f"missing: no parseable answer in {s.retries + 1} attempts (all in judge_requests.jsonl); "
            f"last raw answer: {last or '(empty)'}"
        )
    return _CONTROL.sub(" ", parsed.rationale).strip()


def _summary(run, s, arms, sample, scenarios, annotators, judges, names, log, pointwise, pairs, lengths):
    attempts = len(log)
    failed_attempts = sum(not e["ok"] for e in log)
    n_requests = len(pointwise) + 2 * len(pairs)
    missing = sum(v is None for v in pointwise.values()) + sum(
        o["values"] is None for p in pairs for o in p["orders"]
    )
    out: dict[str, Any] = {
        "run_dir": str(run),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(),
        "mode": s.mode,
        "arms": arms,
        "annotators": annotators,
        "judges": [
            {"name": n, "path": str(j), "sha256": file_sha256(j)}
            if isinstance(j, str | os.PathLike)
            else {"name": n}
            for j, n in zip(judges, names, strict=True)
        ],
        "settings": asdict(s),
        "scenarios": {
            "available": len(scenarios),
            "judged": len(sample),
            "sampled": len(sample) < len(scenarios),
        },
        "requests": {
            "questions": n_requests,
            "attempts": attempts,
            "failed_attempts": failed_attempts,
            "missing": missing,
        },  # fmt: skip
        "parse_failure_rate": {
            "questions": missing / n_requests if n_requests else None,
            "attempts": failed_attempts / attempts if attempts else None,
        },
    }
    # A judge that also generated an arm may prefer its own outputs (MT-Bench's self-enhancement
    # bias): such (judge, arm) pairs are listed so that their verdicts are read with care.
    config = read_run_config(run) if (run / "run_config.json").exists() else {}
    arm_sha = {a.get("arm_id"): a.get("model_sha256") for a in config.get("arms", []) if isinstance(a, dict)}
    out["self_judging"] = [
        {"judge": j["name"], "arm_id": arm}
        for j in out["judges"]
        for arm in arms
        if j.get("sha256") and arm_sha.get(arm) == j["sha256"]
    ]
    seed = _stable_seed(s.seed, "bootstrap")
    answered = {(sid, a) for (sid, a) in lengths}
    forfeits = (
        [
            (sid, x, y) if (sid, x) in answered else (sid, y, x)
            for sid in sample
            for x, y in combinations(arms, 2)
            if ((sid, x) in answered) != ((sid, y) in answered)
        ]
        if s.missing_as_loss
        else []
    )
    if pointwise:
        out["pointwise"] = judge_stats.pointwise_summary(pointwise, arms, lengths, seed, forfeits)
    if pairs:
        out["pairwise"] = judge_stats.pairwise_summary(pairs, arms, lengths, seed, forfeits)
    main = out.get("pairwise") or out["pointwise"]
    out["headline_source"] = "pairwise" if "pairwise" in out else "pointwise"
    out["krippendorff_alpha"] = (out.get("pointwise") or main)["krippendorff_alpha"]
    out["position_consistency_rate"] = out["pairwise"]["position_consistency"]["all"] if pairs else None
    out["tie_rate"] = main["tie_rate"]
    out["win_rates"] = main["win_rates"]
    out["verbosity"] = main["verbosity"]
    return out
