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
    (seg,) = (tmp_path / "x.idx").glob("seg-*.bseg")  # the index folder's one segment
    seg.write_bytes(seg.read_bytes()[:-9])
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


# ----------------------------------------------------------------------------- in process


def run_main(argv, monkeypatch, capsys):
    """bdnsca.cli.main in this process: (exit code, stdout, stderr)."""
    from bdnsca.cli import main

    monkeypatch.delenv("BDNSCA_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.fixture
def small_eval(tmp_path):
    qrels = tmp_path / "q.txt"
    qrels.write_text("1 0 d1 1\n1 0 d2 0\n2 0 d3 2\n")
    run = tmp_path / "r.trec"
    run.write_text("1 Q0 d1 1 2.5 x\n1 Q0 d2 2 1.25 x\n2 Q0 d9 1 0.5 x\n")
    return qrels, run


def test_evaluate_in_process_hand_checked(monkeypatch, capsys, tmp_path, small_eval):
    qrels, run = small_eval
    out = tmp_path / "m.json"
    code, _, err = run_main(
        [
            "evaluate",
            "--qrels",
            qrels,
            "--run",
            run,
            "--metrics",
            "mrr@10,recall@1",
            "-o",
            out,
            "--bootstrap",
            "0",
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    report = json.loads(out.read_text())
    # query 1: d1 relevant at rank 1; query 2: its only relevant document is not retrieved
    assert report["per_query"] == {
        "1": {"mrr@10": 1.0, "recall@1": 1.0},
        "2": {"mrr@10": 0.0, "recall@1": 0.0},
    }
    assert report["metrics"] == {"mrr@10": 0.5, "recall@1": 0.5}


@pytest.mark.parametrize(
    "line, expect",
    [
        ("2 Q0 d3 2 nan x\n", "r.trec:4: score 'nan' of 'd3' is not finite"),
        ("2 Q0 d3 2 -inf x\n", "r.trec:4: score '-inf' of 'd3' is not finite"),
        ("2 Q0 d9 2 0.1 x\n", "r.trec:4: document 'd9' is listed twice for query '2'"),
    ],
)
def test_bad_run_line_is_one_line_user_error(monkeypatch, capsys, small_eval, line, expect):
    qrels, run = small_eval
    with run.open("a") as f:
        f.write(line)
    code, _, err = run_main(["evaluate", "--qrels", qrels, "--run", run], monkeypatch, capsys)
    assert code == 1
    assert err.startswith("error: ") and expect in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("which", ["qrels", "run"])
def test_file_that_is_not_utf8_is_one_line_user_error(monkeypatch, capsys, small_eval, which):
    qrels, run = small_eval
    target = qrels if which == "qrels" else run
    extra = b"3 Q0 caf\xe9 1 1.0 x\n" if which == "run" else b"3 0 caf\xe9 1\n"
    target.write_bytes(target.read_bytes() + extra)
    code, _, err = run_main(["evaluate", "--qrels", qrels, "--run", run], monkeypatch, capsys)
    assert code == 1
    assert err.startswith(f"error: {target}:4: not UTF-8 text (byte 0xe9")
    assert len(err.strip().splitlines()) == 1


def test_os_error_is_one_line_user_error(monkeypatch, capsys, tmp_path, small_eval):
    qrels, run = small_eval
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_main(
        ["evaluate", "--qrels", qrels, "--run", run, "--bootstrap", "0", "-o", blocker / "sub" / "m.json"],
        monkeypatch,
        capsys,
    )
    assert code == 1 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_memory_error_is_one_line_user_error(monkeypatch, capsys, small_eval):
    from bdnsca.eval import metrics

    def exhausted(*_, **__):
        raise MemoryError("cannot allocate 1.4 GB for the bootstrap")

    monkeypatch.setattr(metrics, "bootstrap_ci", exhausted)
    qrels, run = small_eval
    code, _, err = run_main(["evaluate", "--qrels", qrels, "--run", run], monkeypatch, capsys)
    assert code == 1
    assert err.strip() == "error: cannot allocate 1.4 GB for the bootstrap"


@pytest.mark.parametrize("exc", [TypeError("unsupported operand"), KeyError("ndcg@10"), AttributeError("x")])
def test_programming_error_is_reported_as_a_bug_not_a_user_error(monkeypatch, capsys, small_eval, exc):
    from bdnsca.eval import metrics

    def broken(*_, **__):
        raise exc

    monkeypatch.setattr(metrics, "evaluate_matrix", broken)
    qrels, run = small_eval
    code, _, err = run_main(["evaluate", "--qrels", qrels, "--run", run], monkeypatch, capsys)
    assert code == 3
    assert not err.startswith("error: ")
    assert f"internal error (a bug in bdnsca, please report it): {type(exc).__name__}" in err
    assert "in broken" in err and "test_cli.py:" in err  # where it was raised
    assert "BDNSCA_DEBUG=1" in err


def test_debug_variable_shows_the_traceback(monkeypatch, capsys, small_eval):
    from bdnsca.cli import main
    from bdnsca.eval import metrics

    def broken(*_, **__):
        raise TypeError("boom")

    monkeypatch.setattr(metrics, "evaluate_matrix", broken)
    monkeypatch.setenv("BDNSCA_DEBUG", "1")
    qrels, run = small_eval
    with pytest.raises(TypeError, match="boom"):
        main(["evaluate", "--qrels", str(qrels), "--run", str(run)])


def test_user_error_from_a_subprocess_is_one_line_without_traceback(tmp_path):
    run = tmp_path / "r.trec"
    run.write_bytes(b"1 Q0 d1 1 1.0 x\n1 Q0 \xff 2 0.5 x\n")
    qrels = tmp_path / "q.txt"
    qrels.write_text("1 0 d1 1\n")
    r = bdnsca("evaluate", "--qrels", qrels, "--run", run)
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == f"error: {run}:2: not UTF-8 text (byte 0xff at column 6); convert the file to UTF-8"
    )
