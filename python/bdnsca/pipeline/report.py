"""The matrix report: one row per experiment with each gate check's delta, interval and verdict,
and the frontier plot of every serving configuration the pipeline measured."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bdnsca.data.io import atomic_write


def _check_label(c: dict[str, Any]) -> str:
    on = c.get("metric") or c.get("baseline") or ""
    return f"{c['check']}:{on}" if on else c["check"]


def _cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    if c["status"] == "not_evaluated":
        return "n/a"
    mark = "pass" if c["status"] == "pass" else "FAIL"
    delta = c.get("delta")
    ci = c.get("ci95")
    if delta is None:
        return mark
    text = f"{delta:+.3f}"
    if ci:
        text += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    return f"{text} {mark}"


def matrix_rows(gates: dict[str, Path | None]) -> tuple[list[str], list[tuple[str, str, dict[str, dict]]]]:
    """(check columns, [(experiment, verdict, {column: check})]) from each experiment's gate
    folder (``gate_report.json``); an experiment without a report is ``not run``."""
    columns: list[str] = []
    rows = []
    for name, folder in gates.items():
        report = None
        if folder is not None and (folder / "gate_report.json").exists():
            report = json.loads((folder / "gate_report.json").read_text(encoding="utf-8"))
        checks: dict[str, dict] = {}
        for c in (report or {}).get("checks", []):
            label = _check_label(c)
            checks[label] = c
            if label not in columns:
                columns.append(label)
        verdict = "not run" if report is None else ("PASS" if report["passed"] else "FAIL")
        rows.append((name, verdict, checks))
    return columns, rows


def matrix_table(gates: dict[str, Path | None]) -> str:
    """The matrix as a markdown table (delta [95% CI] and pass/FAIL per check)."""
    columns, rows = matrix_rows(gates)
    lines = [
        "| experiment | gate | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for name, verdict, checks in rows:
        lines.append(
            f"| {name} | **{verdict}** | " + " | ".join(_cell(checks.get(c)) for c in columns) + " |"
        )
    return "\n".join(lines)


def plot_all_frontiers(summaries: dict[str, Path], path: Path) -> bool:
    """Latency against quality for every serving configuration of every serve node, the Pareto
    frontier over all of them marked; False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from bdnsca.eval.frontier import pareto_frontier

    points = []
    for node, p in summaries.items():
        if not p.exists():
            continue
        s = json.loads(p.read_text(encoding="utf-8"))
        model = node.split(":")[1] if ":" in node else node
        for c in s.get("configs", []):
            x, y = c["total_ms"]["mean"], c["quality"]["score"]
            if x is not None and y is not None:
                mode = re.sub(r"^draft:.*:(\d+)$", r"draft:\1", c["name"].split("|", 1)[-1])
                label = f"{model}|{mode}"
                seen = sum(p[0].split(" #")[0] == label for p in points)
                points.append((label + (f" #{seen + 1}" if seen else ""), float(x), float(y)))
    if not points:
        return False
    xy = np.array([[x, y] for _, x, y in points])
    front = set(pareto_frontier(xy, maximize=[False, True]).tolist())
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, (label, x, y) in enumerate(points):
        ax.plot(x, y, "o", color="tab:red" if i in front else "tab:gray")
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    fr = sorted((points[i] for i in front), key=lambda p: p[1])
    ax.step([p[1] for p in fr], [p[2] for p in fr], where="post", color="tab:red", label="Pareto frontier")
    ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("mean latency per request (ms)")
    ax.set_ylabel("quality (0-1)")
    ax.set_title("every serving configuration of the pipeline")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)
    return True


def write_report(spec: Any, plan: Any, result: Any) -> tuple[Path, str]:
    """``OUTPUT/report.md`` (the matrix, the anchor, where each gate report is) and
    ``OUTPUT/frontier.png``; returns the path and the table."""
    out = result.output_dir
    gates = {e.name: result.folders.get(plan.gates[e.name]["gate"]) for e in spec.experiments}
    table = matrix_table(gates)
    serves = {
        name: result.folders[name] / "bench" / "summary.json"
        for name, n in plan.nodes.items()
        if n.step == "serve" and name in result.folders
    }
    has_plot = plot_all_frontiers(serves, out / "frontier.png")
    anchor = plan.anchor_description
    lines = [
        f"# Experiment matrix: {spec.path.name}",
        "",
        "Anchor: "
        + (
            f"`{anchor['path']}`"
            if anchor.get("kind") == "folder"
            else f"bootstrap, the `{anchor.get('model')}` model evaluated (`{anchor.get('eval')}`)"
        ),
        "",
        "Each cell: candidate - anchor, its 95% interval, and the check's verdict (n/a: not evaluated).",
        "",
        table,
        "",
        "| experiment | model | gate report |",
        "| --- | --- | --- |",
    ]
    for e in spec.experiments:
        folder = gates[e.name]
        lines.append(f"| {e.name} | {e.model} | {folder / 'gate_report.md' if folder else '-'} |")
    if has_plot:
        lines += ["", "![every serving configuration](frontier.png)"]
    lines += ["", f"Manifest: `{result.manifest_path}`", ""]
    path = out / "report.md"
    with atomic_write(path) as fh:
        fh.write("\n".join(lines))
    return path, table
