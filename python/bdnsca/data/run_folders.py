"""Evaluation run folders: ``run_config.json`` (the arms), ``scenarios.jsonl`` and
``responses/<arm>.jsonl``, read with file:line errors.

Every command that works from a run folder (``build-preferences`` today; scoring, judging and
the gate next) reads it through these functions, so they agree on which response stands for a
scenario. (Retrieval run files, TREC and JSONL, are :mod:`bdnsca.data.runs`.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bdnsca.data.io import iter_jsonl
from bdnsca.errors import BdnscaError, DataError

__all__ = ["read_run_config", "read_scenarios", "read_responses", "run_arms"]


def read_run_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The run's ``run_config.json``; a missing file says the folder is not a run."""
    run = Path(run_dir)
    path = run / "run_config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (is {run} an evaluation run directory?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, exc.lineno, f"malformed JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise DataError(path, None, f"not UTF-8 (byte {exc.start})") from None
    if not isinstance(config, dict):
        raise DataError(path, 1, "expected a JSON object")
    return config


def run_arms(config: dict[str, Any]) -> list[str]:
    """The arm ids a run config lists, in its order (empty when it lists none)."""
    return [str(a["arm_id"]) for a in config.get("arms", []) if isinstance(a, dict) and "arm_id" in a]


def read_scenarios(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """scenario id -> its row of ``scenarios.jsonl``, in file order; {} when the file is absent.
    A scenario id given twice is an error (the second would silently replace the first)."""
    path = Path(run_dir) / "scenarios.jsonl"
    if not path.exists():
        return {}
    out: dict[str, dict[str, Any]] = {}
    first: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        sid = row.get("scenario_id")
        if not sid:
            raise DataError(path, lineno, "missing field 'scenario_id'")
        sid = str(sid)
        if sid in first:
            raise DataError(path, lineno, f"scenario {sid!r} already given on line {first[sid]}")
        first[sid] = lineno
        out[sid] = row
    return out


def read_responses(run_dir: str | os.PathLike[str], arm: str) -> dict[str, dict[str, Any]]:
    """scenario id -> the one response that stands for it in ``responses/<arm>.jsonl``: among
    rows that succeeded (``ok`` not false) with a non-empty response, the lowest repeat index,
    then the lowest request index."""
    path = Path(run_dir) / "responses" / f"{arm}.jsonl"
    if not path.exists():
        raise BdnscaError(f"arm {arm!r}: no responses file {path}")
    best: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {}
    for lineno, row in iter_jsonl(path):
        sid = row.get("scenario_id")
        if not sid:
            raise DataError(path, lineno, "response without 'scenario_id'")
        if row.get("ok") is False or not str(row.get("response") or "").strip():
            continue
        try:
            key = (int(row.get("repeat_index", 0)), int(row.get("request_index", 0)))
        except (TypeError, ValueError):
            raise DataError(path, lineno, "'repeat_index' and 'request_index' must be integers") from None
        sid = str(sid)
        if sid not in best or key < best[sid][0]:
            best[sid] = (key, row)
    return {sid: row for sid, (_, row) in best.items()}
