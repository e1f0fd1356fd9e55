"""BM25 index files, bad input, and the documented behaviour of the Python API."""

from __future__ import annotations

import os
import time
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    bm._save_single_file(path)  # the older single-file format, which still loads
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
    before = (path / "manifest.json").read_bytes()
    with pytest.raises(bdnsca.BdnscaError, match="no index"):
        bdnsca.BM25().save(path)
    assert (path / "manifest.json").read_bytes() == before


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


# --- one tie rule, and MaxScore exactness ---------------------------------------------------------

METHODS = ["robertson", "atire", "bm25l", "bm25+", "lucene"]


def _full_ranking(bm, query, ids, tokens):
    """Matching documents by score descending, then id descending by bytes (trec_eval's order),
    from get_scores: independent of the top-k code."""
    scores = bm.get_scores(query)
    q = set(query)
    matching = [i for i, doc in enumerate(tokens) if q & set(doc)]
    by_id = sorted(matching, key=lambda i: ids[i].encode(), reverse=True)
    return [(ids[i], float(scores[i])) for i in sorted(by_id, key=lambda i: -scores[i])]


@st.composite
def _corpus_and_queries(draw):
    vocab = draw(st.integers(2, 40))
    n_docs = draw(st.integers(1, 150))
    # Short documents over a small vocabulary, some copied: many tied scores.
    tokens = [
        [f"t{draw(st.integers(0, vocab - 1))}" for _ in range(draw(st.integers(1, 6)))] for _ in range(n_docs)
    ]
    for _ in range(draw(st.integers(0, n_docs // 3))):
        tokens.append(list(tokens[draw(st.integers(0, len(tokens) - 1))]))
    ids = draw(
        st.lists(
            st.text(alphabet="aAbz0129-_é", min_size=0, max_size=4),
            min_size=len(tokens),
            max_size=len(tokens),
            unique=True,
        )
    )
    # 1 to 300 terms with repeats (passage-length mining queries), some unknown to the index.
    terms = st.integers(0, vocab + 3).map(lambda t: f"t{t}")
    queries = draw(
        st.lists(
            st.lists(terms, min_size=1, max_size=draw(st.sampled_from([3, 30, 300]))), min_size=1, max_size=4
        )
    )
    return tokens, ids, queries


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    data=_corpus_and_queries(),
    method=st.sampled_from(METHODS),
    params=st.sampled_from([(1.5, 0.75, 0.5), (0.0, 0.0, 1.0), (1.2, 1.0, 0.0), (2.0, 0.5, 1e6)]),
    k=st.integers(1, 200),
)
def test_search_equals_full_sort_under_the_tie_rule(data, method, params, k):
    tokens, ids, queries = data
    k1, b, delta = params
    if method == "bm25+" and k1 == 0:
        k1 = 0.5  # refused: every score would be NaN
    bm = bdnsca.BM25(method=method, k1=k1, b=b, delta=delta).index(tokens, ids=ids)
    batch_ids, batch_scores = bm.search_batch(queries, k=k)
    positions, _ = bm.search_batch_indices(queries, k=k)
    for i, q in enumerate(queries):
        want = _full_ranking(bm, q, ids, tokens)[:k]
        got = bm.search(q, k=k)
        assert got == want
        assert batch_ids[i] == [d for d, _ in want]
        assert [ids[p] for p in positions[i] if p >= 0] == [d for d, _ in want]
        np.testing.assert_array_equal(batch_scores[i][: len(want)], [s for _, s in want])


def test_ties_rank_by_id_descending_everywhere():
    bm = bdnsca.BM25().index(["red fox", "red fox", "red fox", "blue"], ids=["b", "c10", "c9", "a"])
    assert [d for d, _ in bm.search("fox")] == ["c9", "c10", "b"]
    assert bm.search_batch(["fox"], k=2)[0] == [["c9", "c10"]]
    assert bm.search_batch_indices(["fox"], k=3)[0].tolist() == [[2, 1, 0]]
    # Default ids "0".."n-1" compare as strings too: "9" > "10" > "1".
    bm = bdnsca.BM25().index([["x"]] * 11)
    assert [d for d, _ in bm.search(["x"], k=4)] == ["9", "8", "7", "6"]
    assert [d for d, _ in bm.search(["x"], k=11)][-3:] == ["10", "1", "0"]


# --- parameters, memory, threads, forged index files ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "k1", "delta"), [("bm25l", 0.0, 0.0), ("bm25+", 0.0, 0.0), ("bm25+", 0.0, 1.0)]
)
def test_parameters_that_make_every_score_nan_are_refused(method, k1, delta):
    with pytest.raises(bdnsca.BdnscaError, match="NaN"):
        bdnsca.BM25(method=method, k1=k1, delta=delta)


@pytest.mark.parametrize(
    ("k1", "b", "delta"), [(-1.0, 0.75, 0.5), (1.5, -0.1, 0.5), (1.5, 1.1, 0.5), (1.5, 0.75, -1.0)]
)
def test_out_of_range_parameters_are_refused(k1, b, delta):
    for method in METHODS:
        with pytest.raises(bdnsca.BdnscaError):
            bdnsca.BM25(method=method, k1=k1, b=b, delta=delta)


def test_neighbouring_parameters_score_finitely():
    tokens = [["a", "b"], ["b", "c", "c"], ["a"]]
    for method, k1, delta in [("bm25l", 0.0, 0.5), ("bm25l", 0.5, 0.0), ("bm25+", 1e-9, 0.0)]:
        scores = bdnsca.BM25(method=method, k1=k1, delta=delta).index(tokens).get_scores(["a", "c"])
        assert np.isfinite(scores).all(), (method, k1, delta)


def _overcommit_refuses_huge_allocations() -> bool:
    try:
        return open("/proc/sys/vm/overcommit_memory").read().strip() != "1"
    except OSError:
        return True


@pytest.mark.skipif(
    not _overcommit_refuses_huge_allocations(), reason="vm.overcommit_memory=1 accepts any allocation"
)
def test_search_batch_too_large_for_memory_is_a_memory_error():
    bm = bdnsca.BM25().index([["a"]] * 300_000)
    queries = ["zzz"] * 1_500_000  # 1.5M x 300k results: terabytes
    with pytest.raises(MemoryError, match="smaller k"):
        bm.search_batch(queries, k=10**12)
    with pytest.raises(MemoryError):
        bm.search_batch_indices(queries, k=10**12)
    assert bm.search_batch(["a"], k=2)[0] == [["99999", "99998"]]  # still usable; "99999" > "299999"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_thread_pools_do_not_accumulate():
    bm = bdnsca.BM25().index([["a", "b"], ["b"]])

    def threads() -> int:
        return len(os.listdir("/proc/self/task"))

    before = threads()
    for n in range(1, 25):
        bm.search_batch([["a"]], k=1, threads=n)
    # Kept: the last 4 sizes (21..24 threads, 90 in all); 300 if every size were kept.
    deadline = time.monotonic() + 10
    while threads() - before > 90 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads() - before <= 90


def _reseal(data: bytes) -> bytes:
    """The file with a correct CRC-32 again (the format's last 4 bytes, little-endian)."""
    return data[:-4] + zlib.crc32(data[:-4]).to_bytes(4, "little")


def test_forged_index_with_a_valid_checksum_is_refused(tmp_path):
    path = tmp_path / "x.idx"
    bdnsca.BM25().index(["red fox", "lazy dog"], ids=["qq", "rr"])._save_single_file(path)
    data = path.read_bytes()
    forged = data.replace(b"\x02\x00\x00\x00rr", b"\x02\x00\x00\x00qq")
    assert forged != data
    path.write_bytes(_reseal(forged))
    with pytest.raises(bdnsca.IndexFileError, match=r'x\.idx: duplicate document id "qq"'):
        bdnsca.BM25.load(path)
    # A method code past the known ones (256 would have been read as robertson).
    path.write_bytes(_reseal(data[:12] + (256).to_bytes(4, "little") + data[16:]))
    with pytest.raises(bdnsca.IndexFileError, match="unknown BM25 method code 256"):
        bdnsca.BM25.load(path)


def test_tokenizer_pattern_is_saved_with_the_index(tmp_path):
    tok = bdnsca.Tokenizer(pattern="bm25s", stopwords="en")
    bm = bdnsca.BM25(tokenizer=tok).index(["Mach 3 flow, c = e", "a flow at mach 2"])
    bm.save(tmp_path / "x.idx")
    back = bdnsca.BM25.load(tmp_path / "x.idx")
    assert back.tokenizer.pattern == "bm25s"
    assert back.tokenizer.tokenize("Mach 3 c flow") == [["mach", "flow"]]
    with pytest.raises(bdnsca.BdnscaError, match="unknown token pattern"):
        bdnsca.Tokenizer(pattern="regex")
