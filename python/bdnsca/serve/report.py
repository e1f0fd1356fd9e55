"""serve-bench outputs for people: the markdown report and the quality-at-latency plot."""

from __future__ import annotations

import os
import shlex
from typing import Any

from bdnsca.data.io import atomic_write


def _fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _ci(s: dict[str, Any], key: str = "mean", nd: int = 1) -> str:
    ci = s["ci95"].get(key) if s.get("ci95") else None
    return "" if not ci else f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def _speedup(s: dict[str, Any] | None) -> str:
    if not s or s.get("mean") is None:
        return "-"
    ci = s.get("ci95")
    return f"{s['mean']:.2f}x" + ("" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


def render_report(summary: dict[str, Any]) -> str:
    st = summary["settings"]
    lines = [
        "# serve-bench report",
        "",
        f"{summary['prompts']} prompts x {summary['repeats']} repeats per configuration, "
        f"max {st['max_tokens']} tokens, temperature {st['temperature']}, seed {st['seed']}, "
        f"n_ctx {st['n_ctx']}, n_gpu_layers {st['n_gpu_layers']}. Created {summary['created_utc']}.",
        f"Quality metric for the frontier: {summary['quality_metric']} (0-1). Latency: mean total ms. "
        "Intervals are 95% bootstrap intervals over prompts, the same resampled prompts for every "
        "configuration; speed-up is plain decoding's mean latency over this configuration's (same "
        "model), its interval paired over those prompts.",
        "",
        "| config | TTFT ms mean [95% CI] | p95 | latency ms mean [95% CI] | p50 | p95 | p99 "
        "| speed-up vs plain [95% CI] | decode tok/s | acceptance | chrF | ROUGE-L | score [95% CI] "
        "| quality/s | Pareto | frontier ratio | greedy identity |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
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
                    _speedup(e.get("speedup_vs_plain")),
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
    command = summary["settings"].get("command")
    if command:
        lines += ["", "## Command", "", "```", shlex.join(command), "```", ""]
    else:
        note = "Called from Python (`run_serve_bench`); the settings are in summary.json."
        lines += ["", "## Command", "", note, ""]
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
        # a percentile interval need not contain the mean: bars never go negative
        xerr = None if not ci else [[max(0.0, x - ci[0])], [max(0.0, ci[1] - x)]]
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
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
