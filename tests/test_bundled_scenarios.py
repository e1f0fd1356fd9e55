"""The bundled scenario file: what data/generate.py writes, in the old runs' shapes, grounded in
the bundled corpus, and readable by the run-folder reader."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from bdnsca.data.npcworld import world
from bdnsca.data.scenarios import scenarios, write_scenarios

DATA = Path(__file__).parents[1] / "data"
SHARED_SCENARIOS = (
    Path(__file__).parents[2] / "shared" / "data" / "npc-ai" / "proposal_run" / "scenarios.jsonl"
)
FIELDS = {
    "scenario_id": str,
    "persona": str,
    "dynamic_context": str,
    "player_input": str,
    "reference_response": str,
    "context_keywords": list,
    "persona_keywords": list,
    "scenario_tags": dict,
}


def test_committed_file_is_what_the_generator_writes(tmp_path):
    write_scenarios(tmp_path)
    assert (tmp_path / "scenarios.jsonl").read_bytes() == (DATA / "scenarios.jsonl").read_bytes()
    assert scenarios() == scenarios()


def test_size_personas_and_fields():
    rows = scenarios()
    assert len(rows) >= 100
    assert len({r["persona"] for r in rows}) >= 8
    assert len({r["scenario_id"] for r in rows}) == len(rows)
    for r in rows:
        for name, kind in FIELDS.items():
            assert isinstance(r[name], kind), (r["scenario_id"], name)
        assert r["reference_response"].strip() and r["player_input"].strip()
        assert r["context_keywords"] and r["persona_keywords"]
        assert all(isinstance(k, str) and k for k in r["context_keywords"] + r["persona_keywords"])
        assert all(isinstance(v, str) for v in r["scenario_tags"].values())


@pytest.mark.skipif(not SHARED_SCENARIOS.exists(), reason="shared data not present")
def test_shapes_mirror_the_old_runs():
    old = json.loads(SHARED_SCENARIOS.read_text().splitlines()[0])
    new = scenarios()[0]
    assert set(old) <= set(new)
    assert set(old["scenario_tags"]) == set(new["scenario_tags"])
    keys = [item.split("=", 1)[0] for item in old["dynamic_context"].split("; ")]
    assert [item.split("=", 1)[0] for item in new["dynamic_context"].split("; ")] == keys


def test_grounded_in_the_bundled_corpus():
    docs = {d["doc_id"]: d for d in world()["retrieval_corpus_wide.jsonl"]}
    for r in scenarios():
        doc = docs[r["source_doc_id"]]
        # the doc's fact is the context's event, and the reference states it too
        fact = doc["text"].split("Key fact: ", 1)[1].split(".")[0]
        assert fact in r["dynamic_context"] and fact in r["reference_response"], r["scenario_id"]


def test_every_slice_is_populated():
    tags = Counter((k, v) for r in scenarios() for k, v in r["scenario_tags"].items())
    for key in ("persona_archetype", "conflict_type", "coverage_band"):
        values = [n for (k, _), n in tags.items() if k == key]
        assert len(values) >= 3 and min(values) >= 10, key


def test_the_run_folder_reader_accepts_it(tmp_path):
    from bdnsca.data.run_folders import read_scenarios

    shutil.copy(DATA / "scenarios.jsonl", tmp_path / "scenarios.jsonl")
    assert list(read_scenarios(tmp_path)) == [r["scenario_id"] for r in scenarios()]
