"""``bdnsca serve-bench``: GGUF models served in-process through llama.cpp, with and without
speculative decoding, measured per request and summarised as a quality-at-latency Pareto frontier.

This module holds the settings, the inputs and the orchestration; the llama.cpp adapter is
:mod:`bdnsca.serve.llama`, the drafters :mod:`~bdnsca.serve.drafters`, the timed request
:mod:`~bdnsca.serve.runner`, the statistics :mod:`~bdnsca.serve.summary` and the report and plot
:mod:`~bdnsca.serve.report`.

A configuration is one model with one speculative mode:

- ``none``: plain decoding;
- ``prompt-lookup:N``: llama-cpp-python's prompt-lookup drafting (up to N tokens copied from an
  earlier occurrence of the last n-gram);
- ``draft:PATH:N``: a second, smaller GGUF with the target's vocabulary drafts N tokens greedily.

The target verifies drafts in one batch and keeps the longest prefix that matches its own choice,
so at temperature 0 a speculative configuration should reproduce plain decoding; the bench checks
that (the greedy identity rate), since batched and single-token evaluation round differently.

Timing is taken around llama.cpp's own calls in this process: no HTTP server, no tokeniser round
trips in the measured span. Each request starts from empty KV caches, the target's and a draft
model's alike (no prompt reuse between requests), after one unmeasured warm-up request per
configuration. By default every configuration stays loaded and each prompt x repeat runs across
all of them in rotating order, so that drift in the machine's speed (frequent on shared machines)
does not favour whichever ran first.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.data.io import atomic_write, file_sha256, id_field, iter_jsonl, write_json, write_jsonl
from bdnsca.errors import BdnscaError, DataError

QUALITY_METRICS = ("chrf", "rouge_l", "embedding")

# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    prompt: str
    domain: str = ""


@dataclass(frozen=True)
class SpecMode:
    """One speculative mode: ``none``, ``prompt-lookup:N`` or ``draft:PATH:N``."""

    kind: str
    n: int = 0
    draft_path: str = ""

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        if self.kind == "prompt-lookup":
            return f"prompt-lookup:{self.n}"
        return f"draft:{self.draft_path}:{self.n}"


def parse_speculative(text: str) -> list[SpecMode]:
    """Parses ``none,prompt-lookup:10,draft:draft.gguf:8`` (N defaults to 10 and 8)."""
    modes: list[SpecMode] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "none":
            modes.append(SpecMode("none"))
        elif item == "prompt-lookup" or item.startswith("prompt-lookup:"):
            n = _positive(item.partition(":")[2] or "10", item)
            modes.append(SpecMode("prompt-lookup", n))
        elif item.startswith("draft:"):
            rest = item[len("draft:") :]
            path, sep, n_text = rest.rpartition(":")
            if not sep or not n_text.isdigit():
                path, n_text = rest, "8"
            if not path:
                raise BdnscaError(f"speculative mode {item!r}: draft needs a model path (draft:PATH:N)")
            modes.append(SpecMode("draft", _positive(n_text, item), path))
        else:
            raise BdnscaError(f"unknown speculative mode {item!r}: use none, prompt-lookup:N or draft:PATH:N")
    if not modes:
        raise BdnscaError("--speculative names no mode")
    if len({m.name for m in modes}) != len(modes):
        raise BdnscaError(f"--speculative repeats a mode: {text!r}")
    return modes


def _positive(text: str, item: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise BdnscaError(f"speculative mode {item!r}: N must be a whole number, got {text!r}") from None
    if n < 1:
        raise BdnscaError(f"speculative mode {item!r}: N must be at least 1")
    return n


def read_prompts(path: str | os.PathLike[str]) -> list[Prompt]:
    """The playbook's serving prompts: JSONL with ``prompt_id``, ``prompt`` and optional ``domain``."""
    path = Path(path)
    prompts: list[Prompt] = []
    seen: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        pid = id_field(obj, ("prompt_id",), path, lineno)
        text = obj.get("prompt")
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, lineno, f"prompt {pid!r}: missing or empty field 'prompt'")
        if pid in seen:
            raise DataError(path, lineno, f"duplicate prompt_id {pid!r} (first on line {seen[pid]})")
        seen[pid] = lineno
        domain = obj.get("domain") or ""
        prompts.append(Prompt(pid, text, str(domain)))
    if not prompts:
        raise DataError(path, None, "no prompts in the file")
    return prompts


def read_references(path: str | os.PathLike[str]) -> dict[str, str]:
    """The playbook's serving references: JSONL with ``prompt_id`` and ``reference_response``."""
    path = Path(path)
    refs: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        pid = id_field(obj, ("prompt_id",), path, lineno)
        text = obj.get("reference_response", obj.get("reference"))
        if not isinstance(text, str):
            raise DataError(path, lineno, f"prompt {pid!r}: missing field 'reference_response'")
        if pid in refs:
            raise DataError(path, lineno, f"duplicate prompt_id {pid!r} (first on line {lines[pid]})")
        refs[pid] = text
        lines[pid] = lineno
    return refs


def check_gguf(path: str | os.PathLike[str], role: str = "model") -> Path:
    """A clear error for a missing file or one that is not GGUF (before llama.cpp sees it)."""
    p = Path(path)
    if not p.exists():
        raise BdnscaError(f"{role} file {p} does not exist")
    if not p.is_file():
        raise BdnscaError(f"{role} path {p} is not a file")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise BdnscaError(f"{role} file {p} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    return p


# ----------------------------------------------------------------------------- settings


@dataclass
class ServeBenchSettings:
    models: list[str]
    speculative: list[SpecMode] = field(default_factory=lambda: [SpecMode("none")])
    prompts: str = "data/serving_prompts.jsonl"
    references: str = "data/serving_references.jsonl"
    max_tokens: int = 64
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeats: int = 3
    seed: int = 53
    n_threads: int | None = None
    n_gpu_layers: int = 0
    n_ctx: int = 2048
    quality: list[str] = field(default_factory=lambda: ["chrf", "rouge_l"])
    frontier_metric: str = "chrf"
    strict: bool = False
    limit: int | None = None
    bootstrap: int = 1000
    order: str = "interleaved"
    chat: bool = False
    output_root: str = "artifacts/serving"

    def validate(self) -> None:
        if not self.models:
            raise BdnscaError("--models names no model")
        if self.max_tokens < 1:
            raise BdnscaError(f"--max-tokens must be at least 1, got {self.max_tokens}")
        if self.repeats < 1:
            raise BdnscaError(f"--repeats must be at least 1, got {self.repeats}")
        if self.temperature < 0:
            raise BdnscaError(f"--temperature must be >= 0, got {self.temperature}")
        if self.n_ctx < 16:
            raise BdnscaError(f"--n-ctx must be at least 16, got {self.n_ctx}")
        if self.limit is not None and self.limit < 1:
            raise BdnscaError(f"--limit must be at least 1, got {self.limit}")
        unknown = [q for q in self.quality if q not in QUALITY_METRICS]
        if unknown:
            raise BdnscaError(f"unknown quality metric(s) {unknown}: choose from {list(QUALITY_METRICS)}")
        if self.frontier_metric not in self.quality:
            raise BdnscaError(
                f"--frontier-metric {self.frontier_metric} is not among the quality metrics {self.quality}"
            )
        if self.bootstrap < 0:
            raise BdnscaError("--bootstrap must be >= 0")
        if self.order not in ("interleaved", "sequential"):
            raise BdnscaError(f"--order must be interleaved or sequential, got {self.order!r}")


@dataclass
class Config:
    name: str
    model: str
    model_label: str
    spec: SpecMode
    draft_label: str = ""

    @property
    def speculative(self) -> str:
        if self.spec.kind == "draft":
            return f"draft:{self.draft_label}:{self.spec.n}"
        return self.spec.name


def _labels(paths: Sequence[str]) -> dict[str, str]:
    """Short unique names for model files: the stem, or folder/stem where stems collide."""
    stems = [Path(p).stem for p in paths]
    out = {}
    for p, s in zip(paths, stems, strict=True):
        out[p] = s if stems.count(s) == 1 else f"{Path(p).parent.name}/{s}"
    return out


def build_configs(settings: ServeBenchSettings) -> list[Config]:
    drafts = [m.draft_path for m in settings.speculative if m.kind == "draft"]
    labels = _labels(list(dict.fromkeys([*settings.models, *drafts])))
    configs = []
    for model in settings.models:
        for spec in settings.speculative:
            c = Config("", model, labels[model], spec, labels.get(spec.draft_path, ""))
            c.name = f"{c.model_label}|{c.speculative}"
            configs.append(c)
    return configs


# ----------------------------------------------------------------------------- the bench


@dataclass
class ServeBenchResult:
    output_dir: Path
    summary: dict[str, Any]


class IncompleteRunError(BdnscaError):
    """A run stopped after some requests had finished: they are kept in ``folder``."""

    def __init__(self, message: str, folder: Path | None) -> None:
        super().__init__(message)
        self.folder = folder


def _utc_stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _make_work_dir(root: Path, stamp: str) -> Path:
    """A new hidden folder under ``root``, created with the default mode (the process umask
    applies, as for any folder the user creates; the umask itself is never changed)."""
    while True:
        work = root / f".{stamp}.{os.getpid()}.{secrets.token_hex(4)}.partial"
        try:
            os.mkdir(work)
            return work
        except FileExistsError:
            continue


def _free_name(root: Path, name: str) -> Path:
    final, k = root / name, 1
    while final.exists():
        final = root / f"{name}-{k}"
        k += 1
    return final


def _check_inputs(settings: ServeBenchSettings):
    """Everything that can be wrong with the inputs, checked before the first token."""
    from bdnsca.serve.llama import chat_template, check_same_vocabulary

    for m in settings.models:
        check_gguf(m, "model")
    for spec in settings.speculative:
        if spec.kind == "draft":
            check_gguf(spec.draft_path, "draft model")
    prompts = read_prompts(settings.prompts)
    if settings.limit:
        prompts = prompts[: settings.limit]
    references = read_references(settings.references)
    missing = [p.prompt_id for p in prompts if p.prompt_id not in references]
    if missing and settings.strict:
        raise BdnscaError(
            f"{len(missing)} prompt(s) have no reference in {settings.references} "
            f"(first: {missing[0]!r}); drop --strict to score them as missing"
        )
    if len(missing) == len(prompts):
        raise BdnscaError(
            f"no prompt in {settings.prompts} has a reference in {settings.references}: "
            "quality cannot be scored (are the prompt_id values the same in both files?)"
        )
    unused_refs = len(set(references) - {p.prompt_id for p in prompts})
    embedder = None
    if "embedding" in settings.quality:
        from bdnsca.eval.quality import EmbeddingScorer

        embedder = EmbeddingScorer()
    for spec in settings.speculative:
        if spec.kind == "draft":
            for m in settings.models:
                check_same_vocabulary(m, spec.draft_path)
    if settings.chat:
        for m in settings.models:
            chat_template(m)
    return prompts, references, missing, unused_refs, embedder


def run_serve_bench(
    settings: ServeBenchSettings,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    argv: Sequence[str] | None = None,
) -> ServeBenchResult:
    """Runs every configuration and writes ``requests.jsonl``, ``summary.json``, ``report.md``,
    ``frontier.png`` and ``settings.json`` under ``<output_root>/<UTC timestamp>/``. Everything
    that can be wrong with the inputs is checked before the first token is generated.

    If the run fails after some requests have finished, they are kept in
    ``<output_root>/<UTC timestamp>.incomplete/`` (``requests.jsonl`` so far and ``status.json``)
    and the error says where."""
    settings.validate()
    from bdnsca.serve import llama as adapter  # a clear error without llama-cpp-python or outside its range
    from bdnsca.serve.report import plot_frontier, render_report
    from bdnsca.serve.runner import run_all
    from bdnsca.serve.summary import score_quality, summarise

    prompts, references, missing, unused_refs, embedder = _check_inputs(settings)
    configs = build_configs(settings)
    model_files = sorted({*settings.models, *(s.draft_path for s in settings.speculative if s.draft_path)})
    models_info = [
        {"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size, "sha256": file_sha256(p)}
        for p in model_files
    ]
    settings_info = _settings_dict(settings, argv)

    root = Path(settings.output_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = _utc_stamp()
    # Everything is written into a hidden folder, renamed into place only when complete.
    work = _make_work_dir(root, stamp)
    done_rows: list[dict[str, Any]] = []
    try:
        rows = run_all(configs, prompts, settings, progress, done_rows)
        score_quality(rows, references, settings, embedder)
        summary = summarise(configs, rows, settings, missing=missing, unused_refs=unused_refs)
        summary["settings"] = settings_info
        summary["models"] = models_info
        summary["environment"] = {
            "bdnsca": _version(),
            "llama_cpp_python": adapter.VERSION,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        }
        summary["created_utc"] = stamp
        write_jsonl(work / "requests.jsonl", rows)
        write_json(work / "settings.json", {**settings_info, "models": models_info})
        write_json(work / "summary.json", summary)
        with atomic_write(work / "report.md") as f:
            f.write(render_report(summary))
        plot_frontier(summary, work / "frontier.png")
        final = _free_name(root, stamp)
        os.replace(work, final)
    except BaseException as exc:
        planned = len(configs) * len(prompts) * settings.repeats
        kept = _keep_incomplete(work, root, stamp, done_rows, planned, exc, settings_info, models_info)
        if kept is None:
            raise
        where = (
            f"{len(done_rows)} of {planned} requests finished; they are kept in {kept} (marked incomplete)"
        )
        if isinstance(exc, BdnscaError | OSError | MemoryError):
            raise IncompleteRunError(f"{_first_line(exc)} ({where})", kept) from exc
        exc.add_note(f"serve-bench: {where}")
        raise
    return ServeBenchResult(final, summary)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _keep_incomplete(
    work: Path,
    root: Path,
    stamp: str,
    rows: list[dict[str, Any]],
    planned: int,
    exc: BaseException,
    settings_info: dict[str, Any],
    models_info: list[dict[str, Any]],
) -> Path | None:
    """Renames the work folder to ``<stamp>.incomplete`` with the finished requests and a
    ``status.json`` saying why it stopped; with no finished request, removes it (None)."""
    if not rows:
        shutil.rmtree(work, ignore_errors=True)
        return None
    try:
        for name in os.listdir(work):  # half-written outputs of the final stage are not results
            path = work / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        write_jsonl(work / "requests.jsonl", rows)
        status = {
            "status": "incomplete",
            "completed_requests": len(rows),
            "planned_requests": planned,
            "error": f"{type(exc).__name__}: {_first_line(exc)}",
            "created_utc": stamp,
            "settings": settings_info,
            "models": models_info,
        }
        write_json(work / "status.json", status)
        final = _free_name(root, f"{stamp}.incomplete")
        os.replace(work, final)
        return final
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
        return None


def _version() -> str:
    from bdnsca import __version__

    return __version__


def _settings_dict(settings: ServeBenchSettings, argv: Sequence[str] | None) -> dict[str, Any]:
    d = asdict(settings)
    d["speculative"] = [m.name for m in settings.speculative]
    d["command"] = list(argv) if argv is not None else None
    return d
