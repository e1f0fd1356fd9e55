"""``bdnsca score``: per-response automatic scores of an evaluation run, and their summary.

Reads ``RUN/scenarios.jsonl`` and ``RUN/responses/ARM.jsonl``; writes to ``--output-dir``
(default ``RUN/scores``): ``ARM.jsonl`` (each response row, unchanged, plus its scores),
``score_config.json`` (the metrics, every weight and setting used) and ``summary.json``.

Scores, each in [0, 1] (:data:`WEIGHTS` holds every weight, in this one place):

- ``context_relevance``: weighted mean of the cosine similarity (clipped at 0) between the
  response and the scenario's dynamic context (its ``Key=Value`` values, labels dropped), from
  the packaged all-MiniLM-L6-v2, and the context keyword coverage
  (:func:`bdnsca.eval.lexical.keyword_coverage`).
- ``persona_consistency``: the same with the persona text and the persona keywords.
- ``naturalness``: weighted mean of the sentence-count score (1 inside ``sentence_range``, 0.5
  less per sentence outside), no label/metadata leakage (1 or 0,
  :data:`bdnsca.eval.lexical.LEAKAGE_PATTERNS`) and no repetition (1 - rep-3).
- ``lexical_richness``: weighted mean of distinct-1, distinct-2, the MTLD score
  (bidirectional MTLD, ``min(MTLD, mtld_cap) / mtld_cap``, cap 100) and 1 - rep-3, counted in
  Rust; ``summary.json`` also gives each arm's raw MTLD (mean and median).
- ``chrf``, ``rouge_l``: against the reference response (the row's, else the scenario's).
- ``overall_quality``: the weighted mean of the six above (weights renormalised over those
  that have a value). It always uses all six, whatever ``metrics`` writes.

A failed request (``ok: false``) keeps its row, with every score null and ``score_error``; the
gate and the summary skip it. An empty response that succeeded scores 0 everywhere. A part
that cannot be computed (no keywords, an empty context) drops out of its weighted mean; a score
with no part at all (no reference for chrF, neither context nor keywords) is null, never NaN.

``summary.json``: per arm and metric, the mean over scenarios (repeats averaged first) with a
95% percentile bootstrap interval (``bdnsca._core.bootstrap_means``, scenarios resampled), and
per scenario slice (each ``scenario_tags`` key and value) the per-arm means.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bdnsca.data.io import file_sha256, iter_jsonl, write_json, write_jsonl
from bdnsca.data.run_folders import read_run_config, read_scenarios, run_arms
from bdnsca.errors import BdnscaError, DataError
from bdnsca.eval import lexical
from bdnsca.eval.quality import chrf, rouge_l
from bdnsca.eval.score_summary import summarize

__all__ = ["METRICS", "WEIGHTS", "ScoringConfig", "ScoreRunResult", "score_run", "score_rows", "summarize"]

METRICS: tuple[str, ...] = (
    "context_relevance",
    "persona_consistency",
    "naturalness",
    "lexical_richness",
    "chrf",
    "rouge_l",
    "overall_quality",
)
COMPONENTS = METRICS[:-1]

# Every weight of every score, in one place (copied into score_config.json).
WEIGHTS: dict[str, dict[str, float]] = {
    "overall_quality": {
        "context_relevance": 0.25,
        "persona_consistency": 0.20,
        "naturalness": 0.20,
        "lexical_richness": 0.10,
        "chrf": 0.125,
        "rouge_l": 0.125,
    },
    "context_relevance": {"embedding_similarity": 0.5, "keyword_coverage": 0.5},
    "persona_consistency": {"embedding_similarity": 0.5, "keyword_coverage": 0.5},
    "naturalness": {"sentence_count": 1 / 3, "no_leakage": 1 / 3, "no_repetition": 1 / 3},
    "lexical_richness": {"distinct1": 0.25, "distinct2": 0.25, "mtld": 0.25, "no_repetition": 0.25},
}


@dataclass(frozen=True)
class ScoringConfig:
    """What ``score`` computes and how; written to ``score_config.json`` as it was used."""

    metrics: tuple[str, ...] = METRICS
    weights: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: copy.deepcopy(WEIGHTS))
    sentence_range: tuple[int, int] = (2, 3)  # the old runs' prompt: "Write 2-3 natural sentences"
    sentence_step: float = 0.5
    mtld_threshold: float = lexical.MTLD_THRESHOLD
    mtld_cap: float = lexical.MTLD_CAP
    resamples: int = 10_000
    seed: int = 0
    confidence: float = 0.95

    def validate(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise BdnscaError(f"unknown metric(s) {unknown}: choose from {', '.join(METRICS)}")
        for score, parts in WEIGHTS.items():
            given = self.weights.get(score)
            if given is None or set(given) != set(parts):
                raise BdnscaError(f"weights[{score!r}] must give exactly {sorted(parts)}")
            if any(not (math.isfinite(w) and w >= 0) for w in given.values()) or sum(given.values()) <= 0:
                raise BdnscaError(f"weights[{score!r}] must be finite, >= 0 and not all 0")
        lo, hi = self.sentence_range
        if not 0 < lo <= hi:
            raise BdnscaError(f"sentence_range must satisfy 0 < low <= high, got {self.sentence_range}")
        if not (math.isfinite(self.mtld_cap) and self.mtld_cap > 0):
            raise BdnscaError(f"mtld_cap must be a positive number, got {self.mtld_cap}")
        if not 0 < self.confidence < 1 or self.resamples < 1:
            raise BdnscaError("confidence must be in (0, 1) and resamples >= 1")

    def needed(self) -> set[str]:
        """The scores to compute: the chosen ones, and every component when overall is chosen."""
        need = set(self.metrics)
        if "overall_quality" in need:
            need.update(COMPONENTS)
        return need

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": list(self.metrics),
            "weights": {k: dict(v) for k, v in self.weights.items()},
            "sentence_range": list(self.sentence_range),
            "sentence_step": self.sentence_step,
            "mtld_threshold": self.mtld_threshold,
            "mtld_cap": self.mtld_cap,
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "confidence": self.confidence},
        }


@dataclass
class ScoreRunResult:
    """What ``score`` wrote: the scored rows per arm, the summary, the config, the paths."""

    output_dir: Path
    scores: dict[str, list[dict[str, Any]]]
    summary: dict[str, Any]
    config: dict[str, Any]
    paths: dict[str, Path]


def _wmean(parts: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    num = den = 0.0
    for name, value in parts.items():
        if value is not None and weights[name] > 0:
            num += weights[name] * value
            den += weights[name]
    return _unit(num / den) if den > 0 else None


def _unit(x: float) -> float:
    """Clamp to [0, 1] (guards float round-off; NaN never gets here: callers pass finite values)."""
    return min(1.0, max(0.0, float(x)))


_ITEM = re.compile(r";\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*=)")
_KEY = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=\s*")


def context_text(dynamic_context: str) -> str:
    """The dynamic context as the embedding sees it: ``Key=Value; ...`` items become their
    values joined by '. ' (the labels are prompt syntax, not content)."""
    values = [_KEY.sub("", p).strip() for p in _ITEM.split(str(dynamic_context))]
    return ". ".join(v for v in values if v)


_KW_SEP = re.compile(r"[,;]")


def keyword_list(scenario: Mapping[str, Any], name: str) -> list[str]:
    """A scenario's keywords: a JSON list, or one string of comma- or semicolon-separated
    keywords (a bare string was once read letter by letter); anything else is an error."""
    value = scenario.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [k.strip() for k in _KW_SEP.split(value) if k.strip()]
    if isinstance(value, list | tuple) and all(isinstance(k, str | int | float) for k in value):
        return [str(k) for k in value]
    raise BdnscaError(
        f"scenarios.jsonl: scenario {scenario.get('scenario_id')!r}: {name!r} must be a list of "
        f"keywords or a comma-separated string, got {type(value).__name__}"
    )


class _Similarity:
    """Embeds each distinct string once (shortest first, so batches pad little) and gives the
    cosine similarity, clipped to [0, 1], of text pairs."""

    def __init__(self, embedder: Any, texts: Sequence[str]):
        unique = sorted({t for t in texts if t}, key=lambda t: (len(t), t))
        self.pos = {t: i for i, t in enumerate(unique)}
        emb = embedder.embed(unique) if unique else np.zeros((0, 1))
        emb = emb.detach().cpu().numpy() if hasattr(emb, "detach") else emb
        emb = np.asarray(emb, dtype=np.float64)
        if emb.ndim != 2 or len(emb) != len(unique):
            raise BdnscaError(f"the embedder gave shape {emb.shape} for {len(unique)} texts")
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        self.emb = emb / np.where(norms > 0, norms, 1.0)

    def __call__(self, left: Sequence[str], right: Sequence[str]) -> list[float | None]:
        """None where the right text is empty (nothing to compare with)."""
        out: list[float | None] = []
        for a, b in zip(left, right, strict=True):
            if not b:
                out.append(None)
                continue
            s = float(self.emb[self.pos[a]] @ self.emb[self.pos[b]])
            out.append(_unit(s) if math.isfinite(s) else 0.0)
        return out


def score_rows(
    rows: Sequence[Mapping[str, Any]],
    scenarios: Mapping[str, Mapping[str, Any]],
    config: ScoringConfig | None = None,
    *,
    embedder: Any = None,
) -> list[dict[str, Any]]:
    """Scores response rows (each with ``scenario_id``, ``response``, ``ok``); returns the rows
    with the chosen scores and a ``score_details`` object added. ``embedder`` (an object with
    ``embed(texts)`` returning one vector per text) defaults to the packaged MiniLM, loaded only
    when a chosen score needs it."""
    cfg = config or ScoringConfig()
    cfg.validate()
    need = cfg.needed()
    w = cfg.weights
    out = [_clean(dict(r)) for r in rows]
    live = [i for i, r in enumerate(out) if r.get("ok") is not False and str(r.get("response") or "").strip()]
    texts = [str(out[i]["response"]) for i in live]
    scen = [scenarios.get(str(out[i].get("scenario_id")), {}) for i in live]
    comp: dict[str, list[float | None]] = {}
    details: list[dict[str, Any]] = [{} for _ in live]

    def put(name: str, values: Sequence[Any]) -> None:
        for d, v in zip(details, values, strict=True):
            d[name] = v if v is None or isinstance(v, int) else float(v)

    if need & {"naturalness", "lexical_richness"}:
        lx = lexical.lexical_columns(texts, mtld_threshold=cfg.mtld_threshold)
        mtld_s = lexical.mtld_score(lx["mtld"], lx["tokens"], cfg.mtld_cap, types=lx["types"])
        put("tokens", [int(x) for x in lx["tokens"]])
        put("distinct1", lx["distinct1"])
        put("distinct2", lx["distinct2"])
        put("mtld", lx["mtld"])
        put("mtld_score", mtld_s)
        put("repetition_rate", lx["repetition"])
        if "lexical_richness" in need:
            lw = w["lexical_richness"]
            comp["lexical_richness"] = [
                _wmean({"distinct1": a, "distinct2": b, "mtld": c, "no_repetition": 1.0 - r}, lw)
                for a, b, c, r in zip(lx["distinct1"], lx["distinct2"], mtld_s, lx["repetition"], strict=True)
            ]
        if "naturalness" in need:
            counts = lexical.sentence_counts(texts)
            sent = lexical.sentence_score(counts, *cfg.sentence_range, cfg.sentence_step)
            leak = lexical.leakage_free(texts)
            put("sentences", counts)
            put("sentence_score", sent)
            put("leakage_free", leak)
            nw = w["naturalness"]
            comp["naturalness"] = [
                _wmean({"sentence_count": s, "no_leakage": k, "no_repetition": 1.0 - r}, nw)
                for s, k, r in zip(sent, leak, lx["repetition"], strict=True)
            ]
    embedded = [m for m in ("context_relevance", "persona_consistency") if m in need]
    if embedded:
        if embedder is None:
            from bdnsca.eval.quality import EmbeddingScorer

            embedder = EmbeddingScorer()
        targets = {
            "context_relevance": [context_text(s.get("dynamic_context") or "") for s in scen],
            "persona_consistency": [str(s.get("persona") or "") for s in scen],
        }
        similarity = _Similarity(embedder, texts + [t for m in embedded for t in targets[m]])
    for metric in embedded:
        prefix, kw_field = (
            ("context", "context_keywords")
            if metric == "context_relevance"
            else ("persona", "persona_keywords")
        )
        sims = similarity(texts, targets[metric])
        cover = lexical.keyword_coverage(texts, [keyword_list(s, kw_field) for s in scen])
        put(f"{prefix}_similarity", sims)
        put(f"{prefix}_keyword_coverage", cover)
        comp[metric] = [
            _wmean({"embedding_similarity": e, "keyword_coverage": c}, w[metric])
            for e, c in zip(sims, cover, strict=True)
        ]
    for metric, fn in (("chrf", chrf), ("rouge_l", rouge_l)):
        if metric in need:
            refs = [
                str(out[i].get("reference_response") or s.get("reference_response") or "")
                for i, s in zip(live, scen, strict=True)
            ]
            comp[metric] = [_unit(fn(t, r)) if r.strip() else None for t, r in zip(texts, refs, strict=True)]
    if "overall_quality" in need:
        ow = w["overall_quality"]
        comp["overall_quality"] = [_wmean({m: comp[m][j] for m in COMPONENTS}, ow) for j in range(len(texts))]
    live_pos = {i: j for j, i in enumerate(live)}
    for i, row in enumerate(out):
        j = live_pos.get(i)
        if j is not None:
            row.update({m: comp[m][j] for m in cfg.metrics})
            row["score_details"] = details[j]
        elif row.get("ok") is False:
            row.update({m: None for m in cfg.metrics})
            row["score_error"] = "request failed (ok: false)"
        else:  # succeeded with an empty response
            row.update({m: 0.0 for m in cfg.metrics})
            row["score_details"] = {"tokens": 0}
    return out


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """Non-finite floats in an input row become null (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def _response_rows(path: Path, scenarios: Mapping[str, Any], need_scenarios: bool) -> list[dict[str, Any]]:
    rows = []
    for lineno, row in iter_jsonl(path):
        sid = row.get("scenario_id")
        if not sid:
            raise DataError(path, lineno, "response without 'scenario_id'")
        if need_scenarios and str(sid) not in scenarios:
            raise DataError(path, lineno, f"scenario {sid!r} is not in the run's scenarios.jsonl")
        rows.append(row)
    return rows


def list_arms(run_dir: Path) -> list[str]:
    """Arms with a ``responses/ARM.jsonl``, in run_config.json's order, then by name."""
    resp = run_dir / "responses"
    found = sorted(p.stem for p in resp.glob("*.jsonl")) if resp.is_dir() else []
    if not found:
        raise BdnscaError(f"{resp}: no responses/ARM.jsonl files (is {run_dir} an evaluation run?)")
    try:
        order = run_arms(read_run_config(run_dir))
    except FileNotFoundError:
        order = []
    return [a for a in order if a in found] + [a for a in found if a not in order]


def score_run(
    run_dir: str | os.PathLike[str],
    *,
    metrics: Sequence[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    arms: Sequence[str] | None = None,
    config: ScoringConfig | None = None,
    embedder: Any = None,
    embedding_model: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> ScoreRunResult:
    """Scores every response of the run's arms (all, or ``arms``) and writes ``ARM.jsonl``,
    ``score_config.json`` and ``summary.json`` to ``output_dir`` (default ``RUN/scores``);
    returns what it wrote. ``metrics`` overrides ``config.metrics``. An output folder that
    already holds files but no ``score_config.json`` (another tool's scores, such as the old
    project's ``scores/`` in the shared runs) is refused unless ``force``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run directory")
    out = Path(output_dir) if output_dir is not None else run / "scores"
    if not force and out.is_dir() and any(out.iterdir()) and not (out / "score_config.json").exists():
        raise BdnscaError(
            f"{out} holds files that score did not write (no score_config.json): "
            "pass --output-dir DIR, or --force to overwrite them"
        )
    cfg = config or ScoringConfig()
    if metrics is not None:
        cfg = ScoringConfig(**{**cfg.__dict__, "metrics": tuple(metrics)})
    cfg.validate()
    all_arms = list_arms(run)
    chosen = list(arms) if arms else all_arms
    missing = [a for a in chosen if a not in all_arms]
    if missing:
        raise BdnscaError(f"arm(s) {missing} have no responses file in {run / 'responses'}: have {all_arms}")
    scenarios = read_scenarios(run)
    need_scen = bool(cfg.needed() & {"context_relevance", "persona_consistency"})
    if need_scen and not scenarios:
        raise BdnscaError(
            f"{run / 'scenarios.jsonl'}: missing or empty; context_relevance and persona_consistency need it"
        )
    raw = {a: _response_rows(run / "responses" / f"{a}.jsonl", scenarios, need_scen) for a in chosen}
    if embedder is None and need_scen:
        from bdnsca.eval.quality import EmbeddingScorer

        embedder = EmbeddingScorer(embedding_model)
    # One scoring pass over every arm: each distinct text is embedded once.
    flat = [r for a in chosen for r in raw[a]]
    scored_flat = score_rows(flat, scenarios, cfg, embedder=embedder)
    scores: dict[str, list[dict[str, Any]]] = {}
    pos = 0
    for a in chosen:
        scores[a] = scored_flat[pos : pos + len(raw[a])]
        pos += len(raw[a])
    summary = summarize(scores, scenarios, cfg)
    scen_path = run / "scenarios.jsonl"
    run_cfg = {
        "scoring": cfg.to_dict(),
        "run_dir": str(run),
        "arms": chosen,
        "embedding_model": getattr(embedder, "model_path", None) if need_scen else None,
        "scenario_sha256": file_sha256(scen_path) if scen_path.exists() else None,
        "bdnsca_version": _version(),
    }
    paths: dict[str, Path] = {}
    for a in chosen:
        paths[a] = out / f"{a}.jsonl"
        write_jsonl(paths[a], scores[a])
    paths["score_config"] = out / "score_config.json"
    write_json(paths["score_config"], run_cfg)
    paths["summary"] = out / "summary.json"
    write_json(paths["summary"], summary)
    return ScoreRunResult(output_dir=out, scores=scores, summary=summary, config=run_cfg, paths=paths)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bdnsca")
    except PackageNotFoundError:
        return "unknown"
