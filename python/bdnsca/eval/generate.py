"""``bdnsca generate``: one response per (arm, scenario, repeat) on local GGUF models.

The run folder ``<output_root>/<UTC stamp>/`` holds ``run_config.json`` (arms, settings, the
SHA-256 of every model, index, corpus, template and of the scenario file, versions, the target
arm), ``scenarios.jsonl`` (the scenarios as read) and ``responses/<arm>.jsonl`` (one row per
request, the old runs' field names; a failed request is a row with ``ok: false`` and its
``error``). While it runs the folder is ``<stamp>.incomplete/`` with a ``status.json``; each
finished row is appended at once, so an interrupted run keeps what it did, and ``--resume`` on
that folder does the rest (checking that no input changed) and renames it into place.

Requests are seeded (``seed + 100003 * repeat + scenario position``, the same for every arm) and
start from an empty KV cache, so the same inputs and seed give the same rows except the timing
fields (:data:`TIMING_FIELDS`). Arms are grouped by model so that one model is loaded at a time.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.data.io import file_sha256, index_sha256, write_json, write_jsonl
from bdnsca.errors import BdnscaError, DataError
from bdnsca.eval.arms import ArmSpec, read_arms, reranker_sha256
from bdnsca.eval.requests import (
    TIMING_FIELDS,
    Request,
    clean_response,
    first_line,
    make_drafter,
    plan_requests,
    run_one,
)
from bdnsca.eval.scenarios import read_scenario_file

INCOMPLETE = ".incomplete"

Progress = Callable[[int, int, str], None]


@dataclass
class GenerateSettings:
    repeats: int = 1
    temperature: float = 0.2
    max_tokens: int = 80
    seed: int = 19
    n_ctx: int = 2048
    n_threads: int | None = None
    n_gpu_layers: int = 0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05

    def validate(self) -> None:
        if self.repeats < 1:
            raise BdnscaError(f"--repeats must be at least 1, got {self.repeats}")
        if self.max_tokens < 1:
            raise BdnscaError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise BdnscaError(f"--temperature must be >= 0, got {self.temperature}")
        if self.n_ctx < 16:
            raise BdnscaError(f"--n-ctx must be at least 16, got {self.n_ctx}")
        if self.n_threads is not None and self.n_threads < 1:
            raise BdnscaError(f"--n-threads must be at least 1, got {self.n_threads}")


@dataclass
class GenerateResult:
    run_dir: Path
    run_config: dict[str, Any]
    responses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """arm id -> its rows, by request index."""


def generate_run(
    scenarios: str | os.PathLike[str] | None = None,
    arms: str | os.PathLike[str] | None = None,
    output_root: str | os.PathLike[str] = "runs/eval",
    settings: GenerateSettings | None = None,
    *,
    resume: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    argv: Sequence[str] | None = None,
    **overrides: Any,
) -> GenerateResult:
    """Generates every arm's responses into a new run folder (see the module docstring), or,
    with ``resume``, finishes an incomplete one with its own recorded settings. Everything
    that can be wrong with the inputs is checked before the first token; a failure after some
    requests raises :class:`~bdnsca.serve.bench.IncompleteRunError` naming the kept folder."""
    if resume is not None:
        if scenarios is not None or arms is not None or settings is not None or overrides:
            raise BdnscaError(
                "resume takes the run's own scenarios, arms and settings: pass only the run folder"
            )
        return _resume(Path(resume), progress)
    if scenarios is None or arms is None:
        raise BdnscaError("generate needs a scenario file and an arms file (or a run folder to resume)")
    settings = settings or GenerateSettings()
    if overrides:
        settings = GenerateSettings(**{**asdict(settings), **overrides})
    settings.validate()
    arms_file = read_arms(arms)
    rows = read_scenario_file(scenarios)
    requests = plan_requests(arms_file.arms, rows, settings)
    from bdnsca.serve import llama as adapter  # a clear error without llama-cpp-python

    hashes: dict[str, str] = {}
    config = {
        "run_id": "",
        "created_utc": "",
        "target_arm": arms_file.target_arm,
        "baseline_arm_ids": arms_file.baseline_arms,
        "arms": [_arm_record(a, hashes) for a in arms_file.arms],
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
        "repeats": settings.repeats,
        "seed": settings.seed,
        "settings": asdict(settings),
        "scenario_path": str(Path(scenarios).resolve()),
        "scenario_sha256": file_sha256(scenarios),
        "n_scenarios": len(rows),
        "arms_file": str(Path(arms).resolve()),
        "arms_file_sha256": file_sha256(arms),
        "models": [
            {"path": p, "bytes": Path(p).stat().st_size, "sha256": h}
            for p, h in hashes.items()
            if p.lower().endswith(".gguf")
        ],
        "planned_requests": len(requests),
        "versions": {
            "bdnsca": _version(),
            "llama_cpp_python": adapter.VERSION,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "command": list(argv) if argv is not None else None,
    }
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = _new_folder(root, stamp)
    config["run_id"] = work.name[: -len(INCOMPLETE)]
    config["created_utc"] = _dt.datetime.now(_dt.UTC).isoformat()
    try:
        (work / "responses").mkdir()
        write_json(work / "run_config.json", config)
        write_jsonl(work / "scenarios.jsonl", rows)
        _write_status(work, "running", len(requests), 0, None)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _execute(work, config, requests, settings, {}, progress, fresh=True)


def _arm_record(a: ArmSpec, hashes: dict[str, str]) -> dict[str, Any]:
    from bdnsca.serve.bench import parse_speculative

    def sha(path: str) -> str:
        if path not in hashes:
            hashes[path] = index_sha256(path)  # a file's bytes; an index folder's manifest
        return hashes[path]

    d = a.to_dict()
    d["model_sha256"] = sha(a.model_path)
    mode = parse_speculative(a.speculative)[0]
    if mode.kind == "draft":
        d["draft_sha256"] = sha(mode.draft_path)
    if a.prompt_template:
        d["prompt_template_sha256"] = sha(a.prompt_template)
    if a.retrieval:
        d["retrieval"]["index_sha256"] = sha(a.retrieval.index)
        d["retrieval"]["corpus_sha256"] = sha(a.retrieval.corpus)
        if a.retrieval.reranker is not None:
            d["retrieval"]["reranker_sha256"] = reranker_sha256(a.retrieval.reranker)
    return d


def _new_folder(root: Path, stamp: str) -> Path:
    k = 0
    while True:
        name = stamp if k == 0 else f"{stamp}-{k}"
        if not (root / name).exists():
            try:
                os.mkdir(root / f"{name}{INCOMPLETE}")
                return root / f"{name}{INCOMPLETE}"
            except FileExistsError:
                pass
        k += 1


def _write_status(work: Path, status: str, planned: int, done: int, error: str | None) -> None:
    write_json(
        work / "status.json",
        {
            "status": status,
            "planned_requests": planned,
            "completed_requests": done,
            "error": error,
            "updated_utc": _dt.datetime.now(_dt.UTC).isoformat(),
            "resume": "bdnsca generate --resume " + str(work),
        },
    )


# ----------------------------------------------------------------------------- running


def _execute(
    work: Path,
    config: dict[str, Any],
    requests: list[Request],
    settings: GenerateSettings,
    done: dict[tuple[str, int], dict[str, Any]],
    progress: Progress | None,
    fresh: bool,
) -> GenerateResult:
    total = len(requests)
    n_before = len(done)
    handles: dict[str, Any] = {}
    try:
        todo = [q for q in requests if (q.arm.arm_id, q.request_index) not in done]
        count = len(done)
        if progress:
            progress(count, total, "")
        for model_path, group in _by_model(todo):
            from bdnsca.serve.llama import LlamaModel

            model = LlamaModel(
                model_path,
                n_ctx=settings.n_ctx,
                n_gpu_layers=settings.n_gpu_layers,
                n_threads=settings.n_threads,
                seed=settings.seed,
            )
            try:
                for arm_id, arm_requests in _by_arm(group):
                    drafter = make_drafter(arm_requests[0].arm, settings)
                    try:
                        for q in arm_requests:
                            row = run_one(model, drafter, q, settings)
                            f = handles.get(arm_id)
                            if f is None:
                                f = handles[arm_id] = open(
                                    work / "responses" / f"{arm_id}.jsonl", "a", encoding="utf-8"
                                )
                            f.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
                            f.flush()
                            done[(arm_id, q.request_index)] = row
                            count += 1
                            if progress:
                                progress(count, total, arm_id)
                    finally:
                        if drafter is not None:
                            drafter.close()
            finally:
                model.close()
        for f in handles.values():
            f.close()
        handles.clear()
        responses = _finish_rows(work, config, done)
        os.remove(work / "status.json")
        final = _free_name(work.parent, work.name[: -len(INCOMPLETE)])
        os.replace(work, final)
    except BaseException as exc:
        for f in handles.values():
            f.close()
        if fresh and not done:
            shutil.rmtree(work, ignore_errors=True)
            raise
        where = (
            f"{len(done)} of {total} requests finished ({len(done) - n_before} in this call); they are kept "
            f"in {work} (marked incomplete): bdnsca generate --resume {work}"
        )
        try:
            _write_status(work, "incomplete", total, len(done), f"{type(exc).__name__}: {first_line(exc)}")
        except OSError:
            pass
        if isinstance(exc, BdnscaError | OSError | MemoryError):
            from bdnsca.serve.bench import IncompleteRunError

            raise IncompleteRunError(f"{first_line(exc)} ({where})", work) from exc
        exc.add_note(f"generate: {where}")
        raise
    return GenerateResult(final, config, responses)


def _by_model(requests: list[Request]) -> list[tuple[str, list[Request]]]:
    out: dict[str, list[Request]] = {}
    for q in requests:
        out.setdefault(q.arm.model_path, []).append(q)
    return list(out.items())


def _by_arm(requests: list[Request]) -> list[tuple[str, list[Request]]]:
    out: dict[str, list[Request]] = {}
    for q in requests:
        out.setdefault(q.arm.arm_id, []).append(q)
    return list(out.items())


def _finish_rows(
    work: Path, config: dict[str, Any], done: dict[tuple[str, int], dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Rewrites each responses file atomically, rows by request index."""
    out: dict[str, list[dict[str, Any]]] = {}
    for a in config["arms"]:
        arm_id = a["arm_id"]
        rows = sorted((r for (k, _), r in done.items() if k == arm_id), key=lambda r: r["request_index"])
        write_jsonl(work / "responses" / f"{arm_id}.jsonl", rows)
        out[arm_id] = rows
    return out


def _free_name(root: Path, name: str) -> Path:
    final, k = root / name, 1
    while final.exists():
        final = root / f"{name}-{k}"
        k += 1
    return final


# ----------------------------------------------------------------------------- resuming


def _resume(run: Path, progress: Progress | None) -> GenerateResult:
    from bdnsca.data.run_folders import read_run_config
    from bdnsca.serve.bench import parse_speculative

    if not run.is_dir():
        raise BdnscaError(f"--resume {run}: no such folder")
    if not run.name.endswith(INCOMPLETE) or not (run / "status.json").exists():
        raise BdnscaError(
            f"--resume {run}: not an incomplete run (its name ends in {INCOMPLETE} while it is)"
        )
    config = read_run_config(run)
    try:
        arms = [ArmSpec.from_dict(a) for a in config["arms"]]
        settings = GenerateSettings(**config["settings"])
    except (KeyError, TypeError) as exc:
        raise BdnscaError(f"{run / 'run_config.json'}: not written by bdnsca generate ({exc})") from None
    settings.validate()
    for a in config["arms"]:
        checks = [(a["model_path"], a.get("model_sha256"))]
        if a.get("prompt_template"):
            checks.append((a["prompt_template"], a.get("prompt_template_sha256")))
        mode = parse_speculative(a["speculative"])[0]
        if mode.kind == "draft":
            checks.append((mode.draft_path, a.get("draft_sha256")))
        if a.get("retrieval"):
            r = a["retrieval"]
            checks += [(r["index"], r.get("index_sha256")), (r["corpus"], r.get("corpus_sha256"))]
            if r.get("reranker") and r.get("reranker_sha256") != reranker_sha256(r["reranker"]):
                raise BdnscaError(
                    f"--resume: arm {a['arm_id']!r}'s reranker {r['reranker']} changed since the run "
                    "started (SHA-256 differs); the rest of the run would not match what it has"
                )
        for path, expected in checks:
            if not Path(path).exists():
                raise BdnscaError(f"--resume: arm {a['arm_id']!r} needs {path}, which no longer exists")
            if expected and index_sha256(path) != expected:
                raise BdnscaError(
                    f"--resume: {path} changed since the run started (SHA-256 differs); "
                    "the rest of the run would not match what it has"
                )
    rows = read_scenario_file(run / "scenarios.jsonl")
    requests = plan_requests(arms, rows, settings)
    planned = {(q.arm.arm_id, q.request_index) for q in requests}
    done: dict[tuple[str, int], dict[str, Any]] = {}
    for a in arms:
        for row in _read_partial(run / "responses" / f"{a.arm_id}.jsonl"):
            key = (a.arm_id, row.get("request_index"))
            if key in planned:
                done[key] = row
    return _execute(run, config, requests, settings, done, progress, fresh=False)


def _read_partial(path: Path) -> list[dict[str, Any]]:
    """The rows of a responses file being appended to: a last line cut short by an interruption
    is dropped, and a file that does not end with a newline is rewritten (so that the next row
    starts a line of its own); a bad line before the last is an error."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if i == len(lines):  # the unterminated last line
                break
            raise DataError(path, i, "malformed row in an interrupted run") from None
    if data and not data.endswith(b"\n"):
        write_jsonl(path, rows)
    return rows


def _version() -> str:
    from bdnsca import __version__

    return __version__


__all__ = ["GenerateResult", "GenerateSettings", "TIMING_FIELDS", "clean_response", "generate_run"]
