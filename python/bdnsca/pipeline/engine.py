"""Runs a graph of nodes: order, keys, reuse, resume, the manifest.

:func:`execute` is the engine (any nodes, any step functions: the tests drive it with cheap
fakes); :func:`run_pipeline` plans an experiment file's nodes, executes them with the real steps
and writes the matrix report. Every check that can fail on the file (unknown keys, missing
inputs, a cycle, an anchor that is not a run) happens before the first step runs.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError
from bdnsca.pipeline import store
from bdnsca.pipeline.graph import Node, code_fingerprint, compute_keys, topological_order


class StepFailed(BdnscaError):
    """A step raised; the message names the node and its log. Finished nodes stay reusable."""

    def __init__(self, node: str, log: Path, cause: BaseException) -> None:
        text = str(cause).strip().splitlines()
        first = text[0] if text else type(cause).__name__
        super().__init__(f"step {node!r} failed ({type(cause).__name__}: {first}); log: {log}")
        self.node = node
        self.log = log


@dataclass
class StepContext:
    """What a step function gets: its node's settings, inputs, upstream folders and its own
    (empty) output folder. Steps keep no state outside it."""

    name: str
    out: Path
    settings: dict[str, Any]
    inputs: dict[str, Path]
    deps: dict[str, Path]
    log: Path


StepFunction = Callable[[StepContext], dict[str, Any] | None]


@dataclass
class PipelineResult:
    output_dir: Path
    manifest: dict[str, Any]
    manifest_path: Path
    report_path: Path | None = None
    table: str = ""
    folders: dict[str, Path] = field(default_factory=dict)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_keys(nodes: Mapping[str, Node], version: str | None = None) -> list[Node]:
    """The nodes in topological order with their keys filled (errors before anything runs); the
    keys carry bdnsca's version and the fingerprint of its code."""
    from bdnsca import __version__

    order = topological_order(dict(nodes))
    compute_keys(order, version or __version__, code_fingerprint())
    return order


def execute(
    nodes: Mapping[str, Node],
    output_dir: str | os.PathLike[str],
    functions: Mapping[str, StepFunction],
    *,
    manifest_extra: dict[str, Any] | None = None,
    echo: Callable[[str], None] | None = None,
    version: str | None = None,
) -> PipelineResult:
    """Runs every node whose key has no finished folder, in topological order; reuses the rest.
    Writes ``pipeline.json`` after each node. A step that raises stops the run with
    :class:`StepFailed` (its folder left without a marker, so it is never reused)."""
    out = Path(output_dir)
    order = plan_keys(nodes, version)
    for n in order:
        if n.step not in functions:
            raise BdnscaError(f"node {n.name!r}: no step function {n.step!r}")
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _execute(order, out, functions, manifest_extra, echo)


@contextlib.contextmanager
def _exclusive(out: Path):
    """One run per output folder at a time (an advisory lock on ``OUTPUT/.pipeline.lock``)."""
    import fcntl

    with open(out / ".pipeline.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BdnscaError(f"{out}: another pipeline run is using this output folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _execute(
    order: list[Node],
    out: Path,
    functions: Mapping[str, StepFunction],
    manifest_extra: dict[str, Any] | None,
    echo: Callable[[str], None] | None,
) -> PipelineResult:
    say = echo or (lambda _msg: None)
    ndir, ldir = store.nodes_dir(out), store.logs_dir(out)
    ndir.mkdir(parents=True, exist_ok=True)
    ldir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": 1,
        "started": _now(),
        "finished": None,
        "status": "running",
        "versions": store.versions(),
        **(manifest_extra or {}),
        "nodes": {},
    }
    for n in order:
        manifest["nodes"][n.name] = {
            "step": n.step,
            "key": n.key,
            "folder": str(ndir / n.folder_name),
            "deps": dict(n.deps),
            "inputs": {
                role: {"path": str(p), "sha256": n.input_hashes[role]} for role, p in n.inputs.items()
            },
            "settings": n.settings,
            "status": "pending",
            "seconds": None,
            "outputs": None,
            "log": str(ldir / f"{n.folder_name}.log"),
        }
    mpath = store.write_manifest(out, manifest)
    folders = {n.name: ndir / n.folder_name for n in order}
    for i, n in enumerate(order, 1):
        rec = manifest["nodes"][n.name]
        folder = folders[n.name]
        marker = store.read_marker(folder)
        if marker is not None and marker.get("key") == n.key:
            rec.update(
                status="reused",
                seconds=0.0,
                outputs=marker.get("outputs"),
                ran_seconds=marker.get("seconds"),
                versions=marker.get("versions"),  # what computed it, not this run's
            )
            say(f"[{i}/{len(order)}] {n.name}: reused")
            continue
        store.clear(folder)  # a half-written folder is never reused
        folder.mkdir(parents=True)
        log = Path(rec["log"])
        ctx = StepContext(
            name=n.name,
            out=folder,
            settings=dict(n.settings),
            inputs=dict(n.inputs),
            deps={role: folders[dep] for role, dep in n.deps.items()},
            log=log,
        )
        say(f"[{i}/{len(order)}] {n.name}: running")
        rec.update(status="running", started=_now())
        store.write_manifest(out, manifest)
        t0 = time.perf_counter()
        try:
            with open(log, "w", encoding="utf-8") as fh:
                fh.write(f"{_now()} {n.name} ({n.step}) key {n.key}\nsettings: {n.settings}\n")
                fh.flush()
                try:
                    with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                        outputs = functions[n.step](ctx) or {}
                except BaseException:
                    fh.write(traceback.format_exc())
                    raise
        except BaseException as exc:
            rec.update(status="failed", seconds=round(time.perf_counter() - t0, 3), error=str(exc)[:2000])
            manifest.update(status="failed", finished=_now())
            store.write_manifest(out, manifest)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise StepFailed(n.name, log, exc) from exc
        seconds = round(time.perf_counter() - t0, 3)
        store.write_marker(
            folder,
            {
                "name": n.name,
                "step": n.step,
                "key": n.key,
                "outputs": outputs,
                "seconds": seconds,
                "finished": _now(),
                "versions": manifest["versions"],
            },
        )
        rec.update(
            status="computed",
            seconds=seconds,
            outputs=outputs,
            finished=_now(),
            versions=manifest["versions"],
        )
        store.write_manifest(out, manifest)
        say(f"[{i}/{len(order)}] {n.name}: done in {seconds:.1f}s")
    manifest.update(status="ok", finished=_now())
    store.write_manifest(out, manifest)
    return PipelineResult(out, manifest, mpath, folders=folders)


def node_states(nodes: Mapping[str, Node], output_dir: str | os.PathLike[str]) -> list[tuple[Node, str]]:
    """(node, 'finished' | 'to run') for every node, in order, without running anything."""
    order = plan_keys(nodes)
    ndir = store.nodes_dir(Path(output_dir))
    return [(n, "finished" if store.is_finished(ndir / n.folder_name, n.key) else "to run") for n in order]


def run_pipeline(
    spec_path: str | os.PathLike[str],
    *,
    functions: Mapping[str, StepFunction] | None = None,
    echo: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Plans and runs an experiment file; writes ``pipeline.json``, ``report.md`` and
    ``frontier.png`` in its output folder. ``functions`` overrides step functions (tests)."""
    from bdnsca.data.io import file_sha256
    from bdnsca.pipeline.plan import build_plan
    from bdnsca.pipeline.report import write_report
    from bdnsca.pipeline.spec import load_spec
    from bdnsca.pipeline.steps import STEP_FUNCTIONS

    spec = load_spec(spec_path)
    plan = build_plan(spec)
    extra = {
        "experiment_file": str(Path(spec_path).resolve()),
        "experiment_file_sha256": file_sha256(spec_path),
        "output_dir": str(spec.output_dir),
        "anchor": plan.anchor_description,
        "experiments": {e.name: plan.gates[e.name] for e in spec.experiments},
    }
    fns = {**STEP_FUNCTIONS, **(functions or {})}
    for old in ("report.md", "frontier.png"):  # only a finished run has a report: never a stale one
        with contextlib.suppress(FileNotFoundError):
            (spec.output_dir / old).unlink()
    result = execute(plan.nodes, spec.output_dir, fns, manifest_extra=extra, echo=echo)
    result.report_path, result.table = write_report(spec, plan, result)
    return result


def pipeline_status(spec_path: str | os.PathLike[str]) -> list[tuple[Node, str]]:
    """Which nodes of an experiment file are finished and which would run."""
    from bdnsca.pipeline.plan import build_plan
    from bdnsca.pipeline.spec import load_spec

    spec = load_spec(spec_path)
    return node_states(build_plan(spec).nodes, spec.output_dir)
