"""BM25 index files, bad input, and the documented behaviour of the Python API."""

from __future__ import annotations

import os

import numpy as np
import pytest

import bdnsca
from conftest import zipf_corpus


@pytest.fixture
def bm():
    tok = bdnsca.Tokenizer(stopwords="en", stemmer="english")
    return bdnsca.BM25(method="bm25+", k1=1.2, b=0.6, delta=0.7, tokenizer=tok).index(
        ["the red fox runs", "a lazy dog sleeps", "red dogs and red foxes"], ids=["fox", "dog", "both"]
    )


def test_save_load_round_trip(bm, tmp_path):
    path = tmp_path / "idx" / "npc.bdnsca"
    bm.save(path)
    back = bdnsca.BM25.load(path)
    assert (back.method, back.k1, back.b, back.delta) == ("bm25+", 1.2, 0.6, 0.7)
    assert back.ids == ["fox", "dog", "both"]
    assert back.tokenizer.stemmer == "english" and "the" in back.tokenizer.stopwords
    for q in ("red fox", "sleeping dogs", "nothing known"):
        np.testing.assert_array_equal(back.get_scores(q), bm.get_scores(q))
        assert back.search(q) == bm.search(q)
    assert [p for p in os.listdir(path.parent) if p != "npc.bdnsca"] == []  # no temp files left


def test_save_load_large_random(tmp_path):
    tokens = zipf_corpus(np.random.default_rng(0), 3000, 2000)
    bm = bdnsca.BM25(method="bm25l").index(tokens, ids=[f"doc-{i}" for i in range(3000)])
    bm.save(tmp_path / "x.idx")
    back = bdnsca.BM25.load(tmp_path / "x.idx")
    q = [["t1", "t5", "t900"], ["t3"]]
    assert back.search_batch(q, k=20)[0] == bm.search_batch(q, k=20)[0]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "foreign", "version"])
def test_corrupt_files_raise_index_file_error(bm, tmp_path, damage):
    path = tmp_path / "x.idx"
    bm.save(path)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "empty":
        data = bytearray()
    elif damage == "foreign":
        data = bytearray(b"PK\x03\x04 this is a zip file, not an index" * 10)
    elif damage == "version":
        data[8:12] = (99).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(bdnsca.IndexFileError, match=str(path.name)):
        bdnsca.BM25.load(path)


def test_missing_index_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        bdnsca.BM25.load(tmp_path / "nope.idx")


def test_failed_save_keeps_the_old_file(bm, tmp_path):
    path = tmp_path / "x.idx"
    bm.save(path)
    before = path.read_bytes()
    with pytest.raises(bdnsca.BdnscaError, match="no index"):
        bdnsca.BM25().save(path)
    assert path.read_bytes() == before


def test_empty_corpus_is_an_error():
    with pytest.raises(bdnsca.BdnscaError, match="empty corpus"):
        bdnsca.BM25().index([])


def test_duplicate_ids_are_an_error():
    with pytest.raises(bdnsca.BdnscaError, match='duplicate document id "a"'):
        bdnsca.BM25().index(["x", "y"], ids=["a", "a"])


def test_ids_length_mismatch():
    with pytest.raises(bdnsca.BdnscaError, match="2 ids for 3 documents"):
        bdnsca.BM25().index(["x", "y", "z"], ids=["a", "b"])


def test_mixed_corpus_is_a_type_error():
    with pytest.raises(TypeError, match="document 1"):
        bdnsca.BM25().index([["a", "b"], "c d"])
    with pytest.raises(TypeError, match="document 1"):
        bdnsca.BM25().index(["a b", 3])


@pytest.mark.parametrize("k", [0, -3])
def test_non_positive_k_is_an_error(bm, k):
    with pytest.raises(bdnsca.BdnscaError, match="k must be >= 1"):
        bm.search("fox", k=k)
    with pytest.raises(bdnsca.BdnscaError, match="k must be >= 1"):
        bm.search_batch(["fox"], k=k)


def test_huge_k_is_clamped_not_allocated(bm):
    assert len(bm.search("red", k=10**15)) == 2
    ids, scores = bm.search_batch(["red", "dog"], k=2**62)
    assert scores.shape == (2, 3) and ids[0] == ["both", "fox"]


def test_query_without_known_terms_returns_nothing(bm):
    assert bm.search("zebra quagga") == []
    assert bm.search("") == []
    ids, scores = bm.search_batch(["zebra", "fox"], k=2)
    assert ids[0] == [] and np.isnan(scores[0]).all()
    assert ids[1][0] == "fox"


def test_unindexed_bm25_errors():
    with pytest.raises(bdnsca.BdnscaError, match="no index yet"):
        bdnsca.BM25().search("x")


def test_bad_parameters():
    with pytest.raises(bdnsca.BdnscaError, match="unknown BM25 method"):
        bdnsca.BM25(method="bm26")
    with pytest.raises(bdnsca.BdnscaError, match="b must lie"):
        bdnsca.BM25(b=1.5)
    with pytest.raises(bdnsca.BdnscaError, match="stemmer"):
        bdnsca.Tokenizer(stemmer="klingon")
    with pytest.raises(bdnsca.BdnscaError, match="stopword"):
        bdnsca.Tokenizer(stopwords="xx")


def test_tokenizer():
    tok = bdnsca.Tokenizer(stopwords="en", stemmer="english")
    assert tok.tokenize("The Élan of ÜBER-cats, running!") == [["élan", "über", "cat", "run"]]
    assert tok.tokenize(["A b", "c"]) == [["b"], ["c"]]
    assert bdnsca.Tokenizer(lowercase=False).tokenize("Ab cD") == [["Ab", "cD"]]
    assert bdnsca.Tokenizer(stopwords=["foo"]).tokenize("foo bar") == [["bar"]]


def test_repeated_query_terms_count_each_time(bm):
    once = bm.get_scores(["red"])
    twice = bm.get_scores(["red", "red"])
    base = bm.get_scores(["zzz"])  # bm25+ : no query term known -> no base score either
    assert base.tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(twice, 2 * once, rtol=1e-6)


def test_doc_index_and_len(bm):
    assert len(bm) == 3 and bm.doc_index("dog") == 1 and bm.doc_index("cat") is None
