"""Readers and writers: every bad input names its file, line and field; runs keep float32
precision and the tie rule; atomic writes are tested in test_atomic.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# float32 values a 6-decimal or float64-repr writer gets wrong: digits beyond the 6th decimal,
# tiny and huge magnitudes, neighbours one ulp apart, a subnormal, a negative score
F32_SCORES = [
    0.1234567,
    1e-8,
    12345.678,
    3.4028235e38,
    1.1754944e-38,
    1e-45,
    -2.5e-7,
    1.0000001,
    1.0000002,
    7.0,
]


def f32(x) -> np.float32:
    return np.float32(x)


@pytest.mark.parametrize("name", ["run.trec", "run.jsonl"])
def test_run_round_trip_keeps_every_float32_bit(tmp_path, name):
    docs = {f"d{i}": float(f32(s)) for i, s in enumerate(F32_SCORES)}
    run = {"q1": docs, "q2": {"x": float(f32(0.1))}, "q3": {}}
    io.write_run(tmp_path / name, run)
    back = io.read_run(tmp_path / name)
    assert set(back) == ({"q1", "q2", "q3"} if name.endswith(".jsonl") else {"q1", "q2"})
    for q in ("q1", "q2"):
        assert set(back[q]) == set(run[q])
        for d, s in run[q].items():
            assert f32(back[q][d]) == f32(s), (d, s, back[q][d])


@pytest.mark.parametrize("name", ["run.trec", "run.jsonl"])
def test_scores_are_written_in_shortest_round_trip_form(tmp_path, name):
    io.write_run(tmp_path / name, {"q": {"a": float(f32(0.1234567)), "b": float(f32(1e-8))}})
    text = (tmp_path / name).read_text()
    # the float32 nearest 0.1234567 is 0.12345670163631439 as a float64: only the short form
    assert "0.1234567 " in text or "0.1234567}" in text
    assert "1e-08" in text
    assert "0.12345670" not in text


@settings(max_examples=500, deadline=None)
@given(x=st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_every_finite_float32_reads_back_bit_for_bit(x):
    text = io.format_score(x)
    # read as a float64 (what read_run and trec_eval's atof do), then ranked as a float32
    assert np.float32(float(text)).tobytes() == np.float32(x).tobytes(), text
    assert json.loads(text) == float(text)  # valid JSON for the JSONL writer
    # shortest: dropping the last significant digit no longer reads back as the same float32
    mantissa, _, exponent = text.partition("e")
    digits = mantissa.replace("-", "").replace(".", "").lstrip("0")
    if len(digits) > 1 and not mantissa.endswith(".0"):
        shorter = mantissa[:-1] + (f"e{exponent}" if exponent else "")
        assert np.float32(float(shorter)) != np.float32(x), (text, shorter)


def test_writing_creates_no_new_ties(tmp_path):
    # 1.0000001 and 1.0000002 are neighbouring float32 values; at 6 decimals both are 1.000000,
    # and the tie rule would then put "z" first.
    run = {"q": {"z": float(f32(1.0000001)), "a": float(f32(1.0000002))}}
    qrels = {"q": {"a": 1}}
    io.write_run(tmp_path / "r.trec", run)
    assert [ln.split()[2] for ln in (tmp_path / "r.trec").read_text().splitlines()] == ["a", "z"]
    assert bdnsca.evaluate(qrels, io.read_run(tmp_path / "r.trec"), ["mrr"])["mrr"] == 1.0


def tie_rule_reference(docs: dict[str, float]) -> list[str]:
    """Score descending as float32, then doc id descending by UTF-8 bytes (trec_eval's order)."""
    return sorted(docs, key=lambda d: (float(f32(docs[d])), d.encode("utf-8")), reverse=True)


@settings(max_examples=150, deadline=None)
@given(
    docs=st.dictionaries(
        st.text(alphabet="abAB0é€😀", min_size=1, max_size=4),
        st.sampled_from([0.0, 0.5, 1.0, 1.0000001, 2.25, 1e-8, -3.0, 12345.678]),
        max_size=25,
    ),
    fmt=st.sampled_from(["trec", "jsonl"]),
)
def test_written_order_is_the_tie_rule(tmp_path_factory, docs, fmt):
    path = tmp_path_factory.mktemp("w") / f"r.{fmt}"
    io.write_run(path, {"q": docs})
    back = io.read_run(path)
    want = tie_rule_reference(docs)
    if docs:
        assert list(back["q"]) == want  # the reader keeps file order
    if fmt == "trec" and docs:
        ranks = [int(ln.split()[3]) for ln in path.read_text(encoding="utf-8").splitlines()]
        assert ranks == list(range(1, len(docs) + 1))


def test_a_ranking_in_tie_rule_order_is_written_line_for_line(tmp_path):
    # what search returns: ties already by doc id descending; written unchanged
    ranked = {"q": {"b": 2.0, "zz": 1.0, "z": 1.0, "a": 1.0, "y": 0.5}}
    io.write_run(tmp_path / "r.trec", ranked)
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines == [
        "q Q0 b 1 2.0 bdnsca",
        "q Q0 zz 2 1.0 bdnsca",
        "q Q0 z 3 1.0 bdnsca",
        "q Q0 a 4 1.0 bdnsca",
        "q Q0 y 5 0.5 bdnsca",
    ]


def test_reader_keeps_file_order(tmp_path):
    p = write(tmp_path / "r.trec", "q Q0 low 1 0.5 t\nq Q0 high 2 9.0 t\nq Q0 mid 3 2.0 t\n")
    assert list(io.read_run(p)["q"]) == ["low", "high", "mid"]


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"])
def test_non_finite_score_in_trec_run_names_file_and_line(tmp_path, score):
    p = write(tmp_path / "bad.trec", f"q Q0 a 1 0.5 t\nq Q0 b 2 {score} t\n")
    with pytest.raises(bdnsca.DataError, match=r"bad.trec:2: score .* is not finite"):
        io.read_run(p)


@pytest.mark.parametrize(
    "line",
    [
        '{"query_id": "q", "results": [{"doc_id": "a", "score": 1.0}, {"doc_id": "b", "score": NaN}]}',
        '{"query_id": "q", "doc_id": "b", "score": Infinity}',
        '{"query_id": "q", "doc_id": "b", "score": -1e999}',
    ],
)
def test_non_finite_score_in_jsonl_run_names_file_and_line(tmp_path, line):
    p = write(tmp_path / "bad.jsonl", '{"query_id": "q0", "doc_id": "a", "score": 1}\n' + line + "\n")
    with pytest.raises(bdnsca.DataError, match=r"bad.jsonl:2: score .* of 'b' is not finite"):
        io.read_run(p)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e39])
@pytest.mark.parametrize("name", ["r.trec", "r.jsonl"])
def test_writer_refuses_scores_trec_eval_cannot_rank(tmp_path, bad, name):
    with pytest.raises(bdnsca.BdnscaError, match=r"query 'q', document 'b': score .* (not finite|float32)"):
        io.write_run(tmp_path / name, {"q": {"a": 1.0, "b": bad}})
    assert list(tmp_path.iterdir()) == []


def test_document_listed_twice_is_an_error(tmp_path):
    p = write(tmp_path / "r.trec", "q Q0 a 1 2.0 t\nq Q0 b 2 1.0 t\nq Q0 a 3 0.5 t\n")
    with pytest.raises(bdnsca.DataError, match=r"r.trec:3: document 'a' is listed twice for query 'q'"):
        io.read_run(p)


def test_trec_writer_refuses_ids_with_whitespace(tmp_path):
    with pytest.raises(bdnsca.BdnscaError, match=r"document id 'a b' cannot be written to a TREC run"):
        io.write_run(tmp_path / "r.trec", {"q": {"a b": 1.0}})
    io.write_run(tmp_path / "r.jsonl", {"q": {"a b": 1.0}})  # JSONL holds any id
    assert io.read_run(tmp_path / "r.jsonl") == {"q": {"a b": 1.0}}


def test_trec_run_errors(tmp_path):
    bad = write(tmp_path / "bad.trec", "q Q0 a 1 0.5 tag\nq Q0 b 2 oops tag\n")
    with pytest.raises(bdnsca.DataError, match=r"bad.trec:2: score 'oops'"):
        io.read_run(bad)
    bad = write(tmp_path / "five.trec", "q Q0 a 1 0.5\n")
    with pytest.raises(bdnsca.DataError, match=r"five.trec:1: expected 6 fields"):
        io.read_run(bad)


# --------------------------------------------------------------------- text that is not UTF-8

LATIN1 = "caf\xe9".encode("latin-1")  # b"caf\xe9": not UTF-8


@pytest.mark.parametrize(
    "name, good, bad, reader",
    [
        (
            "c.jsonl",
            b'{"doc_id": "a", "text": "x"}\n',
            b'{"doc_id": "b", "text": "' + LATIN1 + b'"}\n',
            "corpus",
        ),
        (
            "g.jsonl",
            b'{"query_id": "q", "query": "x"}\n',
            b'{"query_id": "r", "query": "' + LATIN1 + b'"}\n',
            "queries",
        ),
        ("q.txt", b"1 0 d1 1\n", b"1 0 " + LATIN1 + b" 1\n", "qrels"),
        ("q.tsv", b"query-id\tcorpus-id\tscore\n", b"1\t" + LATIN1 + b"\t1\n", "qrels"),
        ("r.trec", b"q Q0 a 1 1.0 t\n", b"q Q0 " + LATIN1 + b" 2 0.5 t\n", "run"),
        (
            "r.jsonl",
            b'{"query_id": "q", "doc_id": "a", "score": 1}\n',
            b'{"query_id": "q", "doc_id": "' + LATIN1 + b'", "score": 1}\n',
            "run",
        ),
    ],
)
def test_text_that_is_not_utf8_names_file_line_and_column(tmp_path, name, good, bad, reader):
    p = tmp_path / name
    p.write_bytes(good + bad)
    read = {"corpus": io.read_corpus, "queries": io.read_queries, "qrels": io.read_qrels, "run": io.read_run}
    with pytest.raises(
        bdnsca.DataError, match=rf"{name}:2: not UTF-8 text \(byte 0xe9 at column \d+\)"
    ) as info:
        read[reader](p)
    assert "\n" not in str(info.value)
    col = int(str(info.value).split("column ")[1].split(")")[0])
    assert bad.decode("latin-1")[col - 1] == "\xe9"


def test_utf8_text_beyond_ascii_reads_back(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"doc_id": "ж", "text": "Ёлка 😀 naïve"}\n')
    assert io.read_corpus(p).documents[0].text == "Ёлка 😀 naïve"


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        io.read_corpus("nope.jsonl")
