"""Readers and writers: every bad input names its file, line and field; writes are atomic."""

from __future__ import annotations

import json

import pytest

import bdnsca
from bdnsca.data import io


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_corpus_fields_and_title(tmp_path):
    p = write(
        tmp_path / "c.jsonl",
        '{"doc_id": "a", "title": "T", "text": "x", "domain": "lore"}\n\n{"_id": 7, "text": "y"}\n',
    )
    c = io.read_corpus(p)
    assert c.ids == ["a", "7"]
    assert c.documents[0].fields == {"domain": "lore"}
    assert c.texts() == ["T\nx", "y"] and c.texts(include_title=False) == ["x", "y"]


@pytest.mark.parametrize(
    "body, message",
    [
        ('{"doc_id": "a", "text": "x"}\n{"doc_id": "b", "text": }\n', r"c.jsonl:2: malformed JSON"),
        ('{"doc_id": "a", "text": "x"}\n{"text": "y"}\n', r"c.jsonl:2: missing field 'doc_id' or '_id'"),
        ('{"doc_id": "a"}\n', r"c.jsonl:1: missing field 'text'"),
        ('{"doc_id": "a", "text": 5}\n', r"c.jsonl:1: field 'text' must be a string"),
        ("[1, 2]\n", r"c.jsonl:1: expected a JSON object"),
        (
            '{"doc_id": "a", "text": "x"}\n{"doc_id": "a", "text": "y"}\n',
            r"c.jsonl:2: duplicate document id 'a'",
        ),
        ("\n\n", r"c.jsonl: the corpus is empty"),
    ],
)
def test_corpus_errors(tmp_path, body, message):
    p = write(tmp_path / "c.jsonl", body)
    with pytest.raises(bdnsca.DataError, match=message):
        io.read_corpus(p)


def test_dedupe_counts(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"doc_id": "a", "text": "x"}\n{"doc_id": "a", "text": "y"}\n')
    c = io.read_corpus(p, dedupe=True)
    assert c.ids == ["a"] and c.duplicates_dropped == 1 and c.documents[0].text == "x"


def test_gold_queries_with_grades(tmp_path):
    p = write(
        tmp_path / "g.jsonl",
        json.dumps({"query_id": "q1", "query": "a", "relevant_doc_ids": ["d1", "d2"], "domain": "x"})
        + "\n"
        + json.dumps(
            {"query_id": "q2", "query": "b", "relevant_doc_ids": ["d1"], "relevant_doc_grades": {"d1": 3}}
        )
        + "\n"
        + json.dumps(
            {"query_id": "q3", "query": "c", "relevant_doc_ids": ["d1", "d4"], "relevant_doc_grades": [2, 1]}
        )
        + "\n",
    )
    qs = io.read_queries(p)
    assert [q.relevant for q in qs] == [{"d1": 1, "d2": 1}, {"d1": 3}, {"d1": 2, "d4": 1}]
    assert qs[0].fields == {"domain": "x"}
    assert io.read_qrels(p) == {"q1": {"d1": 1, "d2": 1}, "q2": {"d1": 3}, "q3": {"d1": 2, "d4": 1}}


def test_bad_grades(tmp_path):
    p = write(tmp_path / "g.jsonl", '{"query_id": "q", "query": "a", "relevant_doc_grades": {"d": "high"}}\n')
    with pytest.raises(bdnsca.DataError, match=r"g.jsonl:1: grade of 'd'"):
        io.read_queries(p)


def test_qrels_formats(tmp_path):
    trec = write(tmp_path / "q.txt", "1 0 d1 2\n1 0 d2 0\n2 0 d1 1\n")
    beir = write(tmp_path / "q.tsv", "query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t0\n2\td1\t1\n")
    assert io.read_qrels(trec) == io.read_qrels(beir) == {"1": {"d1": 2, "d2": 0}, "2": {"d1": 1}}
    bad = write(tmp_path / "bad.txt", "1 0 d1 2\n1 0 d2 high\n")
    with pytest.raises(bdnsca.DataError, match=r"bad.txt:2: relevance 'high'"):
        io.read_qrels(bad)


def test_beir_folder(tmp_path):
    (tmp_path / "qrels").mkdir()
    write(
        tmp_path / "corpus.jsonl",
        '{"_id": "d1", "title": "", "text": "alpha"}\n{"_id": "d2", "text": "beta"}\n',
    )
    write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "alpha?"}\n')
    write(tmp_path / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert io.read_corpus(tmp_path).ids == ["d1", "d2"]
    qs = io.read_queries(tmp_path)
    assert qs[0].text == "alpha?" and qs[0].relevant == {"d1": 1}


@pytest.mark.parametrize("name", ["run.trec", "run.jsonl"])
def test_run_round_trip(tmp_path, name):
    run = {"q1": {"a": 2.5, "b": 1.0, "c": 2.5}, "q2": {"x": 0.125}}
    io.write_run(tmp_path / name, run)
    assert io.read_run(tmp_path / name) == run


def test_trec_run_order_and_errors(tmp_path):
    io.write_run(tmp_path / "r.trec", {"q": {"b": 1.0, "a": 1.0, "c": 3.0}})
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert [ln.split()[2] for ln in lines] == ["c", "a", "b"]
    assert lines[0].split()[3] == "1"
    bad = write(tmp_path / "bad.trec", "q Q0 a 1 0.5 tag\nq Q0 b 2 oops tag\n")
    with pytest.raises(bdnsca.DataError, match=r"bad.trec:2: score 'oops'"):
        io.read_run(bad)


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    io.write_jsonl(target, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.write_jsonl(target, rows())
    assert target.read_text() == '{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        io.read_corpus("nope.jsonl")
