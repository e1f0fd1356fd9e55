"""``bdnsca pipeline promote``: make an experiment's candidate the anchor, only when its gate passed.

The promoted anchor is a folder ``OUTPUT/anchors/<experiment>-<UTC stamp>/``: the candidate's
evaluation run (``run_config.json``, ``scenarios.jsonl``, ``responses/``, ``scores/``, the judge's
ratings), ``serving/summary.json``, ``retrieval/run.jsonl`` and ``qrels.jsonl``, ``gate/`` (the
report that justified it), ``model.json``, copies of ``pipeline.json`` and the experiment file
(``experiment.toml``: the next run rewrites the manifest) and ``promoted.json`` (what was
promoted, the gate report's SHA-256 and those copies' SHA-256). It is built beside its final
name and renamed into place; then ``OUTPUT/anchors/current`` (a symbolic link) is replaced
atomically to point at it. A failed, stale or missing gate leaves the anchor untouched and says why.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import file_sha256, fsync_dir, write_json
from bdnsca.errors import BdnscaError
from bdnsca.pipeline import store


class PromotionRefused(BdnscaError):
    """The gate did not pass (or its report is missing or stale); the anchor is unchanged."""


@dataclass
class PromotionResult:
    anchor: Path
    promoted: dict[str, Any]


def _copy_run(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, symlinks=False)


def point_current(anchors: Path, target: Path) -> Path:
    """Replaces ``anchors/current`` with a link to ``target`` in one rename (never absent, never
    half-written)."""
    link = anchors / "current"
    tmp = anchors / f".current.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target.name, tmp)
    os.replace(tmp, link)
    fsync_dir(anchors)
    return link


def promote(spec_path: str | os.PathLike[str], experiment: str) -> PromotionResult:
    """Promotes ``experiment``'s candidate when the gate of the last ``pipeline run`` passed and
    is current (the same key the experiment file gives now); raises :class:`PromotionRefused`
    otherwise, with the failed checks' reasons. Holds the output folder's lock, as a run does."""
    from bdnsca.pipeline.engine import _exclusive
    from bdnsca.pipeline.spec import load_spec

    spec = load_spec(spec_path)
    if not spec.output_dir.is_dir():
        raise PromotionRefused(
            f"{spec.output_dir}: no such folder; run `bdnsca pipeline run {spec.path}` first"
        )
    with _exclusive(spec.output_dir):
        return _promote(spec, experiment)


def _promote(spec: Any, experiment: str) -> PromotionResult:
    from bdnsca.pipeline.engine import plan_keys
    from bdnsca.pipeline.plan import build_plan, current_anchor

    names = [e.name for e in spec.experiments]
    if experiment not in names:
        raise BdnscaError(f"{spec.path}: no experiment {experiment!r} (experiments: {', '.join(names)})")
    out = spec.output_dir
    manifest = store.read_manifest(out)
    if manifest is None:
        raise PromotionRefused(
            f"{out / store.MANIFEST}: no manifest; run `bdnsca pipeline run {spec.path}` first"
        )
    plan = build_plan(spec)
    order = {n.name: n for n in plan_keys(plan.nodes)}
    names_of = plan.gates[experiment]
    gate = order[names_of["gate"]]
    rec = manifest.get("nodes", {}).get(gate.name)
    folder = store.nodes_dir(out) / gate.folder_name
    if rec is None or rec.get("key") != gate.key or not store.is_finished(folder, gate.key):
        raise PromotionRefused(
            f"the gate of {experiment!r} has not run with the current inputs (the anchor or a setting "
            f"changed since): run `bdnsca pipeline run {spec.path}` again; anchor unchanged"
        )
    report_path = folder / "gate_report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PromotionRefused(
            f"{report_path}: the gate report of {experiment!r} is missing or unreadable "
            f"({type(exc).__name__}); run `bdnsca pipeline run {spec.path}` again; anchor unchanged"
        ) from None
    if not report.get("passed"):
        why = "; ".join(
            " ".join(str(x) for x in (c["check"], c.get("metric") or c.get("baseline")) if x)
            + f" {c['status']}: {c.get('reason')}"
            for c in report.get("checks", [])
            if c.get("status") == "fail"
            or (c.get("status") == "not_evaluated" and not report.get("settings", {}).get("allow_missing"))
        )
        raise PromotionRefused(f"gate of {experiment!r} failed ({why}); anchor unchanged")

    def node_folder(name: str) -> Path:
        return store.nodes_dir(out) / order[name].folder_name

    anchors = out / "anchors"
    anchors.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = anchors / f"{experiment}-{stamp}"
    stage = anchors / f".{final.name}.partial"
    shutil.rmtree(stage, ignore_errors=True)
    previous = current_anchor(out)
    try:
        _copy_run(node_folder(names_of["eval"]) / "run", stage)
        bench = node_folder(names_of["serve"]) / "bench" / "summary.json"
        if bench.exists():
            (stage / "serving").mkdir()
            shutil.copy2(bench, stage / "serving" / "summary.json")
        (stage / "retrieval").mkdir()
        for name in ("run.jsonl", "qrels.jsonl"):
            src = node_folder(names_of["retrieval"]) / name
            if src.exists():
                shutil.copy2(src, stage / "retrieval" / name)
        shutil.copytree(folder, stage / "gate", ignore=shutil.ignore_patterns(store.MARKER))
        model_json = node_folder(plan.nodes[names_of["eval"]].deps["model"]) / "model.json"
        if model_json.exists():
            shutil.copy2(model_json, stage / "model.json")
        # the record must outlive the next run, which rewrites OUTPUT/pipeline.json: keep copies
        shutil.copy2(out / store.MANIFEST, stage / store.MANIFEST)
        shutil.copy2(spec.path, stage / "experiment.toml")
        promoted = {
            "experiment": experiment,
            "model": names_of["model"],
            "model_files": json.loads(model_json.read_text()) if model_json.exists() else None,
            "candidate_run": str(node_folder(names_of["eval"]) / "run"),
            "gate_report": str(report_path),
            "gate_report_sha256": file_sha256(report_path),
            "manifest": store.MANIFEST,
            "manifest_sha256": file_sha256(stage / store.MANIFEST),
            "experiment_file": "experiment.toml",
            "experiment_file_sha256": file_sha256(stage / "experiment.toml"),
            "previous_anchor": str(previous) if previous else plan.anchor_description,
            "promoted_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        write_json(stage / "promoted.json", promoted)
        os.rename(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    point_current(anchors, final)
    return PromotionResult(final, promoted)
