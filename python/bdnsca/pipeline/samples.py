"""Several answers of one model per prompt, as arms a preference builder can pair.

The preference run of the pipeline (``eval-train:MODEL``) generates the model's answer to each
scenario ``repeats`` times at a temperature above 0 (each repeat its own seed) with one arm, so
every answer to a scenario answered the same prompt. :func:`split_samples` turns repeat ``r``
into arm ``sampleR`` (repeat index 0), so the scorer and the judge rate each sample and
``build-preferences`` (pairing all arms, same prompt required) pairs the model's own answers:
DPO learns which of its answers is better, not "retrieval-prompted model beats a context-free base".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bdnsca.data.io import iter_jsonl, write_json, write_jsonl
from bdnsca.errors import BdnscaError


def sample_arm(r: int) -> str:
    return f"sample{r}"


def split_samples(run: Path, arm: str = "target") -> list[str]:
    """Rewrites ``run``'s arm ``arm`` (generated with ``repeats`` >= 2) as one arm per repeat;
    returns the new arm ids. ``run_config.json`` lists them (the first as target, the rest as
    baselines) and records where they came from under ``samples_of``."""
    config: dict[str, Any] = json.loads((run / "run_config.json").read_text(encoding="utf-8"))
    repeats = int(config.get("repeats", 1))
    if repeats < 2:
        raise BdnscaError(
            f"{run}: {repeats} answer per scenario; pairing a model's own answers needs 2 or more"
        )
    record = next((a for a in config.get("arms", []) if a.get("arm_id") == arm), None)
    src = run / "responses" / f"{arm}.jsonl"
    if record is None or not src.exists():
        raise BdnscaError(f"{run}: no arm {arm!r} to split into samples")
    by_repeat: dict[int, list[dict[str, Any]]] = {r: [] for r in range(repeats)}
    for _lineno, row in iter_jsonl(src):
        r = int(row.get("repeat_index", 0))
        by_repeat.setdefault(r, []).append({**row, "arm_id": sample_arm(r), "repeat_index": 0, "sample": r})
    arms = [sample_arm(r) for r in sorted(by_repeat)]
    for r, rows in by_repeat.items():
        write_jsonl(run / "responses" / f"{sample_arm(r)}.jsonl", rows)
    src.unlink()
    config.update(
        arms=[{**record, "arm_id": a} for a in arms],
        target_arm=arms[0],
        baseline_arm_ids=arms[1:],
        repeats=1,
        samples_of={"arm": arm, "repeats": repeats, "temperature": config.get("temperature")},
    )
    write_json(run / "run_config.json", config)
    return arms
