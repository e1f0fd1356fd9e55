"""``bdnsca serve-bench``: GGUF models served in-process through llama-cpp-python, with and without
speculative decoding, measured per request and summarised as a quality-at-latency Pareto frontier.

A configuration is one model with one speculative mode:

- ``none``: plain decoding;
- ``prompt-lookup:N``: llama-cpp-python's prompt-lookup drafting (up to N tokens copied from an
  earlier occurrence of the last n-gram);
- ``draft:PATH:N``: a second, smaller GGUF with the target's vocabulary drafts N tokens greedily
  (:class:`DraftModelDecoding`, which keeps the draft's KV cache across steps).

The target verifies drafts in one batch and keeps the longest prefix that matches its own choice,
so at temperature 0 a speculative configuration should reproduce plain decoding; the bench checks
that (the greedy identity rate), since batched and single-token evaluation round differently.

Timing is taken around llama.cpp's own calls in this process: no HTTP server, no tokeniser round
trips in the measured span. Each request starts from an empty KV cache (no prompt reuse between
requests), after one unmeasured warm-up request per configuration. By default every configuration
stays loaded and each prompt x repeat runs across all of them in rotating order, so that drift in
the machine's speed (frequent on shared machines) does not favour whichever ran first.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bdnsca.errors import BdnscaError, DataError
from bdnsca.eval.frontier import frontier_ratio, pareto_frontier
from bdnsca.data.io import file_sha256, id_field, iter_jsonl, umask_mode, write_json, write_jsonl
from bdnsca.eval.quality import chrf, rouge_l

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


# ----------------------------------------------------------------------------- speculative drafting


def _draft_base():
    from llama_cpp.llama_speculative import LlamaDraftModel

    return LlamaDraftModel


class DraftRecorder:
    """Wraps a drafter; records each proposal so that accepted tokens can be counted afterwards
    (a proposal's accepted tokens are its longest prefix that the target then generated)."""

    def __init__(self, drafter: Callable[[np.ndarray], np.ndarray]):
        self.drafter = drafter
        self.prompt_len = 0
        self.proposals: list[tuple[int, list[int]]] = []

    def start(self, prompt_len: int) -> None:
        self.prompt_len = prompt_len
        self.proposals = []

    def __call__(self, input_ids: np.ndarray, /, **kwargs: Any) -> np.ndarray:
        draft = np.asarray(self.drafter(input_ids), dtype=np.intc)
        self.proposals.append((len(input_ids) - self.prompt_len, draft.tolist()))
        return draft

    def counts(self, generated: Sequence[int]) -> tuple[int, int]:
        """(proposed, accepted) for a request that generated ``generated`` (prompt excluded)."""
        proposed = accepted = 0
        for pos, draft in self.proposals:
            # Tokens past the end of the generation were never verified: not counted.
            room = max(0, len(generated) - pos)
            draft = draft[:room]
            proposed += len(draft)
            for a, b in zip(draft, generated[pos:], strict=False):
                if a != b:
                    break
                accepted += 1
        return proposed, accepted


class DraftModelDecoding:
    """Greedy drafting with a second, smaller model that shares the target's vocabulary.

    Its KV cache is kept across steps: each call rolls the draft back to the longest prefix it
    shares with the target's tokens (what the target accepted), evaluates only the new tokens,
    then drafts ``num_pred_tokens`` one at a time."""

    def __init__(self, llm: Any, num_pred_tokens: int = 8):
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.llm = llm
        self.num_pred_tokens = num_pred_tokens
        self.n_vocab = llm.n_vocab()
        self.eos = llm.token_eos()

    def _argmax(self) -> int:
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return int(logits.argmax())

    def __call__(self, input_ids: np.ndarray, /, **kwargs: Any) -> np.ndarray:
        llm = self.llm
        ids = np.asarray(input_ids)
        n = len(ids)
        room = llm.n_ctx() - n
        if n == 0 or room <= 1:
            return np.array([], dtype=np.intc)
        have = llm.input_ids[: llm.n_tokens]
        m = min(len(have), n)
        diff = np.flatnonzero(have[:m] != ids[:m])
        common = int(diff[0]) if len(diff) else m
        common = min(common, n - 1)  # the last token is always re-evaluated: its logits are needed
        llm.n_tokens = common  # eval() drops the KV cache past n_tokens
        llm.eval(ids[common:].tolist())
        out: list[int] = []
        for i in range(min(self.num_pred_tokens, room - 1)):
            tok = self._argmax()
            out.append(tok)
            if tok == self.eos or i == self.num_pred_tokens - 1:
                break
            llm.eval([tok])
        return np.array(out, dtype=np.intc)


@contextlib.contextmanager
def _vocab_only(path: str | os.PathLike[str]):
    """A vocabulary-only ``Llama`` for ``path`` (no weights), closed afterwards. llama.cpp's log
    is muted while it loads: it warns about a context it never uses."""
    import ctypes

    import llama_cpp
    from llama_cpp import _logger

    @llama_cpp.llama_log_callback
    def quiet(level, text, user_data):  # pragma: no cover - called from C
        return None

    llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
    try:
        llm = llama_cpp.Llama(str(path), vocab_only=True, n_ctx=16, verbose=False)
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    try:
        yield llm
    finally:
        with contextlib.suppress(Exception):
            llm.close()


def chat_template(path: str | os.PathLike[str]) -> str:
    """The chat template a GGUF carries (``tokenizer.chat_template``), or a clear error."""
    with _vocab_only(path) as llm:
        template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise BdnscaError(
            f"model {path} has no chat template in its GGUF (tokenizer.chat_template): drop --chat"
        )
    return template


def chat_tokens(llm: Any, text: str) -> list[int]:
    """``text`` as one user turn in the model's own chat template, with the generation prompt
    appended, tokenised with special tokens parsed (BOS added only if the template does not)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise BdnscaError(f"model {llm.model_path} has no chat template: drop --chat")
    bos = llm._model.token_get_text(llm.token_bos())
    eos = llm._model.token_get_text(llm.token_eos())
    rendered = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)(
        messages=[{"role": "user", "content": text}]
    ).prompt
    add_bos = not rendered.startswith(bos)
    return llm.tokenize(rendered.encode("utf-8"), add_bos=add_bos, special=True)


def check_same_vocabulary(target: str | os.PathLike[str], draft: str | os.PathLike[str]) -> None:
    """Raises when ``draft`` does not tokenise exactly as ``target`` (size, special ids, every
    token's text): drafts from another vocabulary are meaningless to the target."""

    def vocab(path):
        with _vocab_only(path) as llm:
            texts = [llm._model.token_get_text(i) for i in range(llm.n_vocab())]
            return llm.n_vocab(), llm.token_bos(), llm.token_eos(), texts

    t, d = vocab(target), vocab(draft)
    if t[0] != d[0]:
        raise BdnscaError(
            f"draft model {draft} has a vocabulary of {d[0]} tokens, the target {target} has {t[0]}: "
            "a draft must share the target's tokenizer (build it with tiny-model --tokenizer-from)"
        )
    if t[1:3] != d[1:3]:
        raise BdnscaError(f"draft model {draft} has BOS/EOS ids {d[1:3]}, the target {target} has {t[1:3]}")
    for i, (a, b) in enumerate(zip(t[3], d[3], strict=True)):
        if a != b:
            raise BdnscaError(
                f"draft model {draft} has another vocabulary than the target {target}: "
                f"token {i} is {b!r} in the draft and {a!r} in the target"
            )


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


# ----------------------------------------------------------------------------- one request


@dataclass
class RequestResult:
    tokens: list[int]
    text: str
    n_prompt_tokens: int
    prompt_ms: float
    ttft_ms: float
    total_ms: float
    decode_tokens_per_s: float | None
    proposed: int | None
    accepted: int | None
    stop: str


def _is_eog(llm: Any, tok: int) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok))


def run_request(
    llm: Any,
    prompt_tokens: list[int],
    settings: ServeBenchSettings,
    recorder: DraftRecorder | None,
    seed: int,
) -> RequestResult:
    """One timed generation from an empty KV cache."""
    if settings.temperature > 0:
        llm.set_seed(seed)
    if recorder is not None:
        recorder.start(len(prompt_tokens))
    llm.reset()
    # With a draft model llama-cpp-python keeps logits for every evaluated token (verification
    # needs them); the prompt needs only its last token's, as any server computes it. Without
    # this, speculative configurations would pay for prompt-wide logits in their TTFT.
    logits_all = llm._logits_all
    llm._logits_all = False
    t0 = time.perf_counter()
    try:
        llm.eval(prompt_tokens)  # prompt processing; generate() then samples from these logits
    finally:
        llm._logits_all = logits_all
    t_prompt = time.perf_counter()
    gen = llm.generate(
        prompt_tokens,
        temp=settings.temperature,
        top_k=settings.top_k,
        top_p=settings.top_p,
        min_p=settings.min_p,
        repeat_penalty=1.0,
    )
    out: list[int] = []
    t_first = None
    stop = "length"
    for tok in gen:
        if t_first is None:
            t_first = time.perf_counter()
        if _is_eog(llm, tok):
            stop = "eos"
            break
        out.append(int(tok))
        if len(out) >= settings.max_tokens:
            break
        if llm.n_tokens >= llm.n_ctx() - 1:
            stop = "context"
            break
    t_end = time.perf_counter()
    gen.close()
    t_first = t_first if t_first is not None else t_end
    decode_s = t_end - t_first
    tps = (len(out) - 1) / decode_s if len(out) > 1 and decode_s > 0 else None
    proposed = accepted = None
    if recorder is not None:
        proposed, accepted = recorder.counts(out)
    text = llm.detokenize(out, prev_tokens=prompt_tokens).decode("utf-8", errors="replace")
    return RequestResult(
        tokens=out,
        text=text,
        n_prompt_tokens=len(prompt_tokens),
        prompt_ms=(t_prompt - t0) * 1e3,
        ttft_ms=(t_first - t0) * 1e3,
        total_ms=(t_end - t0) * 1e3,
        decode_tokens_per_s=tps,
        proposed=proposed,
        accepted=accepted,
        stop=stop,
    )


# ----------------------------------------------------------------------------- statistics


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def timing_stats(values: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> dict[str, Any]:
    """mean, p50, p95, p99 of ``values`` (NaN = missing) with 95% percentile-bootstrap intervals
    that resample prompts (``groups``), keeping each prompt's repeats together: repeats of one
    prompt are not independent draws."""
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    stats = ("mean", "p50", "p95", "p99")
    if not ok.any():
        return {**{s: None for s in stats}, "ci95": {s: None for s in stats}, "n": 0}

    def compute(v: np.ndarray, axis: int | None = None) -> np.ndarray:
        return np.stack([np.nanmean(v, axis=axis), *np.nanpercentile(v, [50, 95, 99], axis=axis)], axis=-1)

    point = compute(values[ok])
    out: dict[str, Any] = {s: float(point[i]) for i, s in enumerate(stats)}
    ci: dict[str, Any] = {s: None for s in stats}
    uniq, inv = np.unique(groups, return_inverse=True)
    if n_boot > 0 and len(uniq) > 1:
        # A (prompts, max repeats) matrix padded with NaN, resampled by rows.
        counts = np.bincount(inv)
        mat = np.full((len(uniq), counts.max()), np.nan)
        slot = np.zeros(len(uniq), dtype=np.int64)
        for v, g in zip(values, inv, strict=True):
            mat[g, slot[g]] = v
            slot[g] += 1
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
        samples = mat[rows].reshape(n_boot, -1)
        keep = ~np.isnan(samples).all(axis=1)
        if keep.any():
            with np.errstate(all="ignore"):
                boot = compute(samples[keep], axis=1)
            lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
            ci = {s: [float(lo[i]), float(hi[i])] for i, s in enumerate(stats)}
    out["ci95"] = ci
    out["n"] = int(ok.sum())
    return out


def _mean_ci(values: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> list[float] | None:
    s = timing_stats(values, groups, n_boot, seed)
    return s["ci95"]["mean"]


# ----------------------------------------------------------------------------- the bench


@dataclass
class ServeBenchResult:
    output_dir: Path
    summary: dict[str, Any]


def _utc_stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _load_llama(path: str, settings: ServeBenchSettings, draft_model: Any = None):
    import llama_cpp

    kwargs: dict[str, Any] = dict(
        model_path=str(path),
        n_ctx=settings.n_ctx,
        n_batch=min(512, settings.n_ctx),
        n_gpu_layers=settings.n_gpu_layers,
        seed=settings.seed,
        verbose=False,
    )
    if settings.n_threads:
        kwargs["n_threads"] = settings.n_threads
        kwargs["n_threads_batch"] = settings.n_threads
    if draft_model is not None:
        kwargs["draft_model"] = draft_model
    try:
        return llama_cpp.Llama(**kwargs)
    except ValueError as exc:
        raise BdnscaError(f"llama.cpp could not load {path}: {exc}") from None


def _drafter_for(spec: SpecMode, settings: ServeBenchSettings):
    """The proposal function for a mode, and what must be closed afterwards."""
    if spec.kind == "prompt-lookup":
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        return LlamaPromptLookupDecoding(num_pred_tokens=spec.n), None
    draft_llm = _load_llama(spec.draft_path, settings)
    return DraftModelDecoding(draft_llm, spec.n), draft_llm


def run_serve_bench(
    settings: ServeBenchSettings,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    argv: Sequence[str] | None = None,
) -> ServeBenchResult:
    """Runs every configuration and writes ``requests.jsonl``, ``summary.json``, ``report.md``,
    ``frontier.png`` and ``settings.json`` under ``<output_root>/<UTC timestamp>/``. Everything
    that can be wrong with the inputs is checked before the first token is generated."""
    settings.validate()
    try:
        import llama_cpp
    except ImportError:
        raise BdnscaError("serve-bench needs llama-cpp-python: pip install 'bdnsca[serve]'") from None

    # --- inputs, all checked before any generation
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
    configs = build_configs(settings)
    model_files = sorted({*settings.models, *(s.draft_path for s in settings.speculative if s.draft_path)})
    models_info = [
        {"path": str(Path(p).resolve()), "bytes": Path(p).stat().st_size, "sha256": file_sha256(p)}
        for p in model_files
    ]

    root = Path(settings.output_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = _utc_stamp()
    # Everything is written into a hidden folder, renamed into place only when complete.
    work = Path(tempfile.mkdtemp(prefix=f".{stamp}.", suffix=".partial", dir=root))
    os.chmod(work, umask_mode(0o777))
    try:
        rows, per_config = _generate_all(configs, prompts, settings, progress)
        summary = _summarise(
            configs, rows, per_config, prompts, references, settings, embedder, missing, unused_refs
        )
        summary["settings"] = _settings_dict(settings, argv)
        summary["models"] = models_info
        summary["environment"] = {
            "bdnsca": _version(),
            "llama_cpp_python": getattr(llama_cpp, "__version__", "unknown"),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        }
        summary["created_utc"] = stamp
        write_jsonl(work / "requests.jsonl", rows)
        write_json(work / "settings.json", {**summary["settings"], "models": models_info})
        write_json(work / "summary.json", summary)
        (work / "report.md").write_text(render_report(summary), encoding="utf-8")
        plot_frontier(summary, work / "frontier.png")
        final = root / stamp
        k = 1
        while final.exists():
            final = root / f"{stamp}-{k}"
            k += 1
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ServeBenchResult(final, summary)


def _version() -> str:
    from bdnsca import __version__

    return __version__


def _settings_dict(settings: ServeBenchSettings, argv: Sequence[str] | None) -> dict[str, Any]:
    d = asdict(settings)
    d["speculative"] = [m.name for m in settings.speculative]
    d["command"] = list(argv) if argv is not None else None
    return d


@dataclass
class _Loaded:
    """One configuration, ready to serve."""

    config: Config
    llm: Any
    recorder: DraftRecorder | None
    extra: Any
    tokenized: list[list[int]]

    def close(self) -> None:
        for obj in (self.llm, self.extra):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()


def _open(c: Config, prompts: list[Prompt], settings: ServeBenchSettings) -> _Loaded:
    drafter, extra = (None, None) if c.spec.kind == "none" else _drafter_for(c.spec, settings)
    recorder = DraftRecorder(drafter) if drafter is not None else None
    try:
        llm = _load_llama(c.model, settings, draft_model=recorder)
    except BaseException:
        if extra is not None:
            extra.close()
        raise
    loaded = _Loaded(c, llm, recorder, extra, [])
    try:
        for p in prompts:
            if settings.chat:
                toks = chat_tokens(llm, p.prompt)
            else:
                toks = llm.tokenize(p.prompt.encode("utf-8"), add_bos=True, special=False)
            if len(toks) + settings.max_tokens + 1 > settings.n_ctx:
                raise BdnscaError(
                    f"prompt {p.prompt_id!r} has {len(toks)} tokens: with --max-tokens "
                    f"{settings.max_tokens} it does not fit --n-ctx {settings.n_ctx}"
                )
            loaded.tokenized.append(toks)
    except BaseException:
        loaded.close()
        raise
    return loaded


def _row(c: Config, p: Prompt, r: int, res: RequestResult) -> dict[str, Any]:
    return {
        "config": c.name,
        "model": c.model_label,
        "speculative": c.speculative,
        "prompt_id": p.prompt_id,
        "domain": p.domain,
        "repeat": r,
        "n_prompt_tokens": res.n_prompt_tokens,
        "n_generated_tokens": len(res.tokens),
        "prompt_ms": res.prompt_ms,
        "ttft_ms": res.ttft_ms,
        "total_ms": res.total_ms,
        "decode_tokens_per_s": res.decode_tokens_per_s,
        "draft_tokens_proposed": res.proposed,
        "draft_tokens_accepted": res.accepted,
        "stop": res.stop,
        "text": res.text,
    }


def _generate_all(configs, prompts, settings, progress):
    """Runs every request. ``interleaved`` (the default) keeps every configuration loaded and
    runs each prompt x repeat across all of them in a rotating order, so that drift in the
    machine's speed falls on every configuration alike; ``sequential`` loads one at a time (for
    models that do not fit in memory together)."""
    total = len(configs) * (1 + len(prompts) * settings.repeats)
    done = 0
    per_config: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    order: list[dict[str, Any]] = []

    def request(lo: _Loaded, i: int, r: int) -> None:
        nonlocal done
        res = run_request(lo.llm, lo.tokenized[i], settings, lo.recorder, settings.seed + r * 100_003 + i)
        row = _row(lo.config, prompts[i], r, res)
        per_config[lo.config.name].append(row)
        order.append(row)
        done += 1
        if progress:
            progress(done, total, lo.config.name)

    def warm_up(lo: _Loaded) -> None:
        nonlocal done
        run_request(lo.llm, lo.tokenized[0], settings, lo.recorder, settings.seed)  # not measured
        done += 1
        if progress:
            progress(done, total, lo.config.name)

    cells = [(i, r) for r in range(settings.repeats) for i in range(len(prompts))]
    if settings.order == "sequential":
        for c in configs:
            lo = _open(c, prompts, settings)
            try:
                warm_up(lo)
                for i, r in cells:
                    request(lo, i, r)
            finally:
                lo.close()
    else:
        loaded: list[_Loaded] = []
        try:
            for c in configs:
                loaded.append(_open(c, prompts, settings))
            for lo in loaded:
                warm_up(lo)
            for k, (i, r) in enumerate(cells):
                for j in range(len(loaded)):
                    request(loaded[(k + j) % len(loaded)], i, r)
        finally:
            for lo in loaded:
                lo.close()
    rows = [row for c in configs for row in per_config[c.name]]
    for n, row in enumerate(order):
        row["sequence"] = n  # the order the requests ran in
    return rows, per_config


def _summarise(configs, rows, per_config, prompts, references, settings, embedder, missing, unused_refs):
    # --- quality per request (None where the prompt has no reference)
    for row in rows:
        ref = references.get(row["prompt_id"])
        q: dict[str, float | None] = {}
        if ref is not None:
            if "chrf" in settings.quality:
                q["chrf"] = chrf(row["text"], ref)
            if "rouge_l" in settings.quality:
                q["rouge_l"] = rouge_l(row["text"], ref)
        row["quality"] = q if ref is not None else None
        row["reference_missing"] = ref is None
    if embedder is not None:
        scored = [r for r in rows if r["quality"] is not None]
        sims = embedder.similarity([r["text"] for r in scored], [references[r["prompt_id"]] for r in scored])
        for r, s in zip(scored, sims, strict=True):
            r["quality"]["embedding"] = s
    for r in rows:
        if r["quality"] is not None:
            r["quality"]["score"] = r["quality"][settings.frontier_metric]

    # --- greedy identity against the plain configuration of the same model
    plain = {c.model: c.name for c in configs if c.spec.kind == "none"}
    greedy = settings.temperature == 0

    def texts(name):
        return {(r["prompt_id"], r["repeat"]): r["text"] for r in per_config[name]}

    entries = []
    for ci, c in enumerate(configs):
        mine = per_config[c.name]
        groups = np.array([r["prompt_id"] for r in mine])
        seed = settings.seed + ci

        def col(key, mine=mine):
            return np.array([np.nan if r[key] is None else r[key] for r in mine], dtype=np.float64)

        entry: dict[str, Any] = {
            "name": c.name,
            "model": c.model_label,
            "model_path": c.model,
            "speculative": c.speculative,
            "requests": len(mine),
            "ttft_ms": timing_stats(col("ttft_ms"), groups, settings.bootstrap, seed),
            "total_ms": timing_stats(col("total_ms"), groups, settings.bootstrap, seed),
            "prompt_ms": timing_stats(col("prompt_ms"), groups, settings.bootstrap, seed),
            "decode_tokens_per_s": timing_stats(col("decode_tokens_per_s"), groups, settings.bootstrap, seed),
            "generated_tokens_mean": float(np.mean([r["n_generated_tokens"] for r in mine])),
        }
        if c.spec.kind == "none":
            entry["acceptance_rate"] = None
            entry["draft_tokens_proposed"] = entry["draft_tokens_accepted"] = 0
        else:
            prop = sum(r["draft_tokens_proposed"] or 0 for r in mine)
            acc = sum(r["draft_tokens_accepted"] or 0 for r in mine)
            entry["acceptance_rate"] = acc / prop if prop else 0.0
            entry["draft_tokens_proposed"], entry["draft_tokens_accepted"] = prop, acc
        scored = [r for r in mine if r["quality"] is not None]
        quality: dict[str, Any] = {}
        for metric in settings.quality:
            quality[metric] = float(np.mean([r["quality"][metric] for r in scored]))
        quality["score"] = quality[settings.frontier_metric]
        quality["metric"] = settings.frontier_metric
        sg = np.array([r["prompt_id"] for r in scored])
        quality["ci95"] = _mean_ci(
            np.array([r["quality"]["score"] for r in scored]), sg, settings.bootstrap, seed
        )
        quality["scored_requests"] = len(scored)
        quality["missing_references"] = len(mine) - len(scored)
        entry["quality"] = quality
        mean_s = entry["total_ms"]["mean"] / 1e3
        entry["quality_per_second"] = quality["score"] / mean_s if mean_s > 0 else None
        # greedy identity
        ref_name = plain.get(c.model)
        if not greedy:
            entry["greedy_identity_rate"] = None
            entry["greedy_identity_note"] = "only defined at temperature 0"
        elif ref_name is None:
            entry["greedy_identity_rate"] = None
            entry["greedy_identity_note"] = "no plain (none) configuration of this model to compare with"
        else:
            base, own = texts(ref_name), texts(c.name)
            same = [k for k in own if own[k] == base.get(k)]
            entry["greedy_identity_rate"] = len(same) / len(own)
            entry["greedy_identity_differs"] = sorted({k[0] for k in own if own[k] != base.get(k)})
            if c.name == ref_name:
                entry["greedy_identity_note"] = "the reference for this model"
        entries.append(entry)

    lat = np.array([e["total_ms"]["mean"] for e in entries], dtype=np.float64)
    qual = np.array([e["quality"]["score"] for e in entries], dtype=np.float64)
    on = set(pareto_frontier(np.column_stack([lat, qual]), [False, True]).tolist())
    ratios = frontier_ratio(lat, qual)
    for i, e in enumerate(entries):
        e["pareto_optimal"] = i in on
        e["frontier_ratio"] = _finite(ratios[i])
    return {
        "configs": entries,
        "frontier": [entries[i]["name"] for i in sorted(on, key=lambda i: lat[i])],
        "prompts": len(prompts),
        "repeats": settings.repeats,
        "requests": len(rows),
        "missing_references": len(missing),
        "missing_reference_prompts": missing,
        "unused_references": unused_refs,
        "quality_metric": settings.frontier_metric,
        "latency_statistic": "total_ms.mean",
    }


# ----------------------------------------------------------------------------- outputs


def _fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _ci(s: dict[str, Any], key: str = "mean", nd: int = 1) -> str:
    ci = s["ci95"].get(key) if s.get("ci95") else None
    return "" if not ci else f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def render_report(summary: dict[str, Any]) -> str:
    st = summary["settings"]
    lines = [
        "# serve-bench report",
        "",
        f"{summary['prompts']} prompts x {summary['repeats']} repeats per configuration, "
        f"max {st['max_tokens']} tokens, temperature {st['temperature']}, seed {st['seed']}, "
        f"n_ctx {st['n_ctx']}, n_gpu_layers {st['n_gpu_layers']}. Created {summary['created_utc']}.",
        f"Quality metric for the frontier: {summary['quality_metric']} (0-1). Latency: mean total ms. "
        "Intervals are 95% bootstrap intervals over prompts.",
        "",
        "| config | TTFT ms mean [95% CI] | p95 | latency ms mean [95% CI] | p50 | p95 | p99 "
        "| decode tok/s | acceptance | chrF | ROUGE-L | score [95% CI] | quality/s | Pareto | frontier ratio "
        "| greedy identity |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in summary["configs"]:
        q = e["quality"]
        qci = q.get("ci95")
        lines.append(
            "| "
            + " | ".join(
                [
                    e["name"],
                    _fmt(e["ttft_ms"]["mean"]) + _ci(e["ttft_ms"]),
                    _fmt(e["ttft_ms"]["p95"]),
                    _fmt(e["total_ms"]["mean"]) + _ci(e["total_ms"]),
                    _fmt(e["total_ms"]["p50"]),
                    _fmt(e["total_ms"]["p95"]),
                    _fmt(e["total_ms"]["p99"]),
                    _fmt(e["decode_tokens_per_s"]["mean"]),
                    _fmt(e["acceptance_rate"], 3),
                    _fmt(q.get("chrf"), 3),
                    _fmt(q.get("rouge_l"), 3),
                    _fmt(q["score"], 3) + ("" if not qci else f" [{qci[0]:.3f}, {qci[1]:.3f}]"),
                    _fmt(e["quality_per_second"], 3),
                    "yes" if e["pareto_optimal"] else "no",
                    _fmt(e["frontier_ratio"], 2),
                    _fmt(e["greedy_identity_rate"], 3),
                ]
            )
            + " |"
        )
    lines += ["", f"Frontier (fastest first): {', '.join(summary['frontier'])}."]
    differs = [(e["name"], e.get("greedy_identity_differs")) for e in summary["configs"]]
    differs = [(n, d) for n, d in differs if d]
    if differs:
        lines += ["", "Prompts whose greedy output differs from plain decoding of the same model:"]
        lines += [f"- {n}: {', '.join(d)}" for n, d in differs]
    if summary["missing_references"]:
        lines += [
            "",
            f"{summary['missing_references']} prompt(s) had no reference and were not scored for quality: "
            + ", ".join(summary["missing_reference_prompts"][:20]),
        ]
    lines += ["", "## Models", ""]
    lines += [f"- `{m['path']}`: {m['bytes']:,} bytes, sha256 `{m['sha256']}`" for m in summary["models"]]
    lines += ["", "## Command", "", "```", " ".join(summary["settings"].get("command") or []), "```", ""]
    return "\n".join(lines)


def plot_frontier(summary: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Latency (x) against quality (y), one point per configuration, the frontier joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfgs = summary["configs"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for e in cfgs:
        x, y = e["total_ms"]["mean"], e["quality"]["score"]
        ci = e["total_ms"]["ci95"]["mean"]
        xerr = None if not ci else [[x - ci[0]], [ci[1] - x]]
        ax.errorbar(
            x,
            y,
            xerr=xerr,
            fmt="o",
            color="tab:red" if e["pareto_optimal"] else "tab:gray",
            ecolor="lightgray",
            capsize=3,
        )
        ax.annotate(e["name"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    front = sorted((e for e in cfgs if e["pareto_optimal"]), key=lambda e: e["total_ms"]["mean"])
    if front:
        ax.step(
            [e["total_ms"]["mean"] for e in front],
            [e["quality"]["score"] for e in front],
            where="post",
            color="tab:red",
            label="Pareto frontier",
        )
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("mean latency per request (ms)")
    ax.set_ylabel(f"quality ({summary['quality_metric']}, 0-1)")
    ax.set_title("serve-bench: quality at latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
