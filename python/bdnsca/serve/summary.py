"""serve-bench summaries: quality per request, timing statistics with paired bootstrap intervals,
each configuration's speed-up over plain decoding of the same model, greedy identity, and the
quality-at-latency Pareto frontier.

Intervals are percentile-bootstrap intervals that resample prompts, keeping each prompt's repeats
together (repeats of one prompt are not independent draws). Every configuration uses the SAME
resampled prompt sets, so their intervals are comparable and a speed-up's interval is paired:
plain and speculative latencies of the same prompts are compared within each resample.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bdnsca.eval.frontier import frontier_ratio, pareto_frontier
from bdnsca.eval.quality import chrf, rouge_l

if TYPE_CHECKING:
    from bdnsca.serve.bench import Config, ServeBenchSettings

STATS = ("mean", "p50", "p95", "p99")


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def resample_indices(n_prompts: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_prompts) prompt indices drawn with replacement: one set for every configuration."""
    return np.random.default_rng(seed).integers(0, n_prompts, size=(n_boot, n_prompts))


def prompt_matrix(values: np.ndarray, groups: Sequence[str], prompt_ids: Sequence[str]) -> np.ndarray:
    """``values`` as a (len(prompt_ids), max repeats) matrix, one row per prompt in
    ``prompt_ids`` order, padded with NaN (a prompt without values is a row of NaN)."""
    index = {p: i for i, p in enumerate(prompt_ids)}
    rows = np.array([index[g] for g in groups], dtype=np.int64)
    counts = np.bincount(rows, minlength=len(prompt_ids)) if len(rows) else np.zeros(len(prompt_ids), int)
    mat = np.full((len(prompt_ids), max(1, int(counts.max(initial=0)))), np.nan)
    slot = np.zeros(len(prompt_ids), dtype=np.int64)
    for v, g in zip(np.asarray(values, dtype=np.float64), rows, strict=True):
        mat[g, slot[g]] = v
        slot[g] += 1
    return mat


def _stats(v: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.stack([np.nanmean(v, axis=axis), *np.nanpercentile(v, [50, 95, 99], axis=axis)], axis=-1)


def _resampled(mat: np.ndarray, resample: np.ndarray) -> np.ndarray:
    """(n_boot, n_prompts * repeats): each resample's values, flattened."""
    return mat[resample].reshape(len(resample), -1)


def timing_stats(
    values: np.ndarray,
    groups: Sequence[str] | np.ndarray,
    n_boot: int,
    seed: int,
    *,
    prompt_ids: Sequence[str] | None = None,
    resample: np.ndarray | None = None,
) -> dict[str, Any]:
    """mean, p50, p95, p99 of ``values`` (NaN = missing) with 95% percentile-bootstrap intervals
    over prompts (``groups``). ``resample`` (rows of indices into ``prompt_ids``) is shared by
    every configuration of a run; without it one is drawn from ``seed`` over the sorted groups."""
    values = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(values)
    if not ok.any():
        return {**{s: None for s in STATS}, "ci95": {s: None for s in STATS}, "n": 0}
    point = _stats(values[ok])
    out: dict[str, Any] = {s: float(point[i]) for i, s in enumerate(STATS)}
    ci: dict[str, Any] = {s: None for s in STATS}
    if prompt_ids is None:
        prompt_ids = sorted({str(g) for g in groups})
    if resample is None and n_boot > 0:
        resample = resample_indices(len(prompt_ids), n_boot, seed)
    if resample is not None and len(resample) and len(prompt_ids) > 1:
        samples = _resampled(prompt_matrix(values, [str(g) for g in groups], prompt_ids), resample)
        keep = ~np.isnan(samples).all(axis=1)
        if keep.any():
            with np.errstate(all="ignore"):
                boot = _stats(samples[keep], axis=1)
            lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
            ci = {s: [float(lo[i]), float(hi[i])] for i, s in enumerate(STATS)}
    out["ci95"] = ci
    out["n"] = int(ok.sum())
    return out


def paired_ratio(
    numerator: np.ndarray, denominator: np.ndarray, resample: np.ndarray | None
) -> dict[str, Any]:
    """mean(numerator) / mean(denominator) over two (prompts, repeats) matrices of the same
    prompts, with the 95% percentile interval of that ratio over the shared prompt resamples."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN mean is NaN, dropped below
        point = np.nanmean(numerator) / np.nanmean(denominator)
    out: dict[str, Any] = {"mean": _finite(point), "ci95": None}
    if resample is not None and len(resample) and numerator.shape[0] > 1 and out["mean"] is not None:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            boot = np.nanmean(_resampled(numerator, resample), axis=1) / np.nanmean(
                _resampled(denominator, resample), axis=1
            )
        boot = boot[np.isfinite(boot)]
        if len(boot):
            lo, hi = np.percentile(boot, [2.5, 97.5])
            out["ci95"] = [float(lo), float(hi)]
    return out


def score_quality(
    rows: list[dict[str, Any]], references: dict[str, str], settings: ServeBenchSettings, embedder: Any
) -> None:
    """Adds ``quality`` (None where the prompt has no reference) and ``reference_missing`` to rows."""
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


def _col(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r[key] is None else r[key] for r in rows], dtype=np.float64)


def summarise(
    configs: Sequence[Config],
    rows: list[dict[str, Any]],
    settings: ServeBenchSettings,
    *,
    missing: Sequence[str] = (),
    unused_refs: int = 0,
) -> dict[str, Any]:
    """The per-configuration summary of scored rows (see :func:`score_quality`)."""
    per_config: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    for r in rows:
        per_config[r["config"]].append(r)
    prompt_ids = sorted({r["prompt_id"] for r in rows})
    resample = (
        resample_indices(len(prompt_ids), settings.bootstrap, settings.seed) if settings.bootstrap else None
    )
    plain = {c.model: c.name for c in configs if c.spec.kind == "none"}
    greedy = settings.temperature == 0

    def texts(name):
        return {(r["prompt_id"], r["repeat"]): r["text"] for r in per_config[name]}

    def stats(mine, key):
        groups = [r["prompt_id"] for r in mine]
        return timing_stats(_col(mine, key), groups, 0, 0, prompt_ids=prompt_ids, resample=resample)

    def matrix(name, key):
        mine = per_config[name]
        return prompt_matrix(_col(mine, key), [r["prompt_id"] for r in mine], prompt_ids)

    entries = []
    for c in configs:
        mine = per_config[c.name]
        entry: dict[str, Any] = {
            "name": c.name,
            "model": c.model_label,
            "model_path": c.model,
            "speculative": c.speculative,
            "requests": len(mine),
            "ttft_ms": stats(mine, "ttft_ms"),
            "total_ms": stats(mine, "total_ms"),
            "prompt_ms": stats(mine, "prompt_ms"),
            "decode_tokens_per_s": stats(mine, "decode_tokens_per_s"),
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
        quality: dict[str, Any] = {
            m: float(np.mean([r["quality"][m] for r in scored])) for m in settings.quality
        }
        quality["score"] = quality[settings.frontier_metric]
        quality["metric"] = settings.frontier_metric
        qs = timing_stats(
            np.array([r["quality"]["score"] for r in scored]),
            [r["prompt_id"] for r in scored],
            0,
            0,
            prompt_ids=prompt_ids,
            resample=resample,
        )
        quality["ci95"] = qs["ci95"]["mean"]
        quality["scored_requests"] = len(scored)
        quality["missing_references"] = len(mine) - len(scored)
        entry["quality"] = quality
        mean_s = entry["total_ms"]["mean"] / 1e3
        entry["quality_per_second"] = quality["score"] / mean_s if mean_s > 0 else None
        ref_name = plain.get(c.model)
        # Paired speed-ups over plain decoding of the same model: latency (plain / this) and
        # decode tokens/s (this / plain), over the same prompt resamples.
        if ref_name is None:
            entry["speedup_vs_plain"] = entry["decode_speedup_vs_plain"] = None
        else:
            entry["speedup_vs_plain"] = paired_ratio(
                matrix(ref_name, "total_ms"), matrix(c.name, "total_ms"), resample
            )
            entry["decode_speedup_vs_plain"] = paired_ratio(
                matrix(c.name, "decode_tokens_per_s"), matrix(ref_name, "decode_tokens_per_s"), resample
            )
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
        "prompts": len(prompt_ids),
        "repeats": settings.repeats,
        "requests": len(rows),
        "missing_references": len(missing),
        "missing_reference_prompts": list(missing),
        "unused_references": unused_refs,
        "quality_metric": settings.frontier_metric,
        "latency_statistic": "total_ms.mean",
        "bootstrap": {
            "resamples": settings.bootstrap,
            "seed": settings.seed,
            "paired": True,
            "unit": "prompt",
        },
    }
