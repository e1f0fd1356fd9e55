"""The CLI as a user runs it: the README's main job on the bundled data, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import DATA


def bdnsca(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_main_job_on_bundled_data(tmp_path):
    idx, run, out = tmp_path / "npc.index", tmp_path / "npc.run", tmp_path / "metrics.json"
    r = bdnsca("index", "--corpus", DATA / "retrieval_corpus_wide.jsonl", "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "indexed 344 documents" in r.stderr
    r = bdnsca("search", "--index", idx, "--queries", DATA / "retrieval_gold_wide.jsonl", "-o", run, "-k", 50)
    assert r.returncode == 0, r.stderr
    r = bdnsca(
        "evaluate", "--qrels", DATA / "retrieval_gold_wide.jsonl", "--run", run, "-o", out, "--bootstrap", 200
    )
    assert r.returncode == 0, r.stderr
    assert "mrr@10" in r.stdout and "95% CI" in r.stdout
    report = json.loads(out.read_text())
    assert report["n_queries"] == 160
    assert set(report["metrics"]) == {
        "mrr@10",
        "ndcg@10",
        "recall@10",
        "recall@100",
        "precision@10",
        "hit@1",
        "map",
    }
    assert 0.5 < report["metrics"]["mrr@10"] <= 1.0
    lo, hi = report["ci95"]["ndcg@10"]
    assert lo <= report["metrics"]["ndcg@10"] <= hi
    assert len(report["per_query"]) == 160


def test_help_on_every_command():
    for cmd in ([], ["index"], ["search"], ["evaluate"]):
        r = bdnsca(*cmd, "--help")
        assert r.returncode == 0 and "Usage" in r.stdout


@pytest.mark.parametrize(
    "body, expect",
    [
        ('{"doc_id": "a", "text": "x"}\n{oops\n', "c.jsonl:2: malformed JSON"),
        ('{"doc_id": "a", "text": "x"}\n{"doc_id": "a", "text": "y"}\n', "duplicate document id 'a'"),
        ("", "the corpus is empty"),
    ],
)
def test_bad_corpus_gives_one_line_error(tmp_path, body, expect):
    c = tmp_path / "c.jsonl"
    c.write_text(body)
    r = bdnsca("index", "--corpus", c, "-o", tmp_path / "x.idx")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and expect in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.idx").exists()


def test_dedupe_flag(tmp_path):
    c = tmp_path / "c.jsonl"
    c.write_text('{"doc_id": "a", "text": "x"}\n{"doc_id": "a", "text": "y"}\n{"doc_id": "b", "text": "z"}\n')
    r = bdnsca("index", "--corpus", c, "-o", tmp_path / "x.idx", "--dedupe")
    assert r.returncode == 0 and "dropped 1 documents" in r.stderr


def test_search_k_zero_and_corrupt_index(tmp_path):
    c = tmp_path / "c.jsonl"
    c.write_text('{"doc_id": "a", "text": "x y"}\n')
    q = tmp_path / "q.jsonl"
    q.write_text('{"query_id": "q", "query": "x", "relevant_doc_ids": ["a"]}\n')
    assert bdnsca("index", "--corpus", c, "-o", tmp_path / "x.idx").returncode == 0
    r = bdnsca("search", "--index", tmp_path / "x.idx", "--queries", q, "-o", tmp_path / "r.trec", "-k", 0)
    assert r.returncode == 1 and "k must be >= 1" in r.stderr
    (tmp_path / "x.idx").write_bytes((tmp_path / "x.idx").read_bytes()[:-9])
    r = bdnsca("search", "--index", tmp_path / "x.idx", "--queries", q, "-o", tmp_path / "r.trec")
    assert r.returncode == 1 and ("checksum" in r.stderr or "truncated" in r.stderr)


def test_evaluate_warns_when_nothing_is_shared(tmp_path):
    qrels = tmp_path / "q.txt"
    qrels.write_text("1 0 d1 1\n")
    run = tmp_path / "r.trec"
    run.write_text("9 Q0 d1 1 1.0 x\n")
    r = bdnsca("evaluate", "--qrels", qrels, "--run", run, "--metrics", "mrr@10")
    assert r.returncode == 0 and "share no query ids" in r.stderr


def test_cli_imports_no_heavy_libraries():
    heavy = ("torch", "transformers", "llama_cpp", "bm25s")
    code = f"import sys, bdnsca.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]"
