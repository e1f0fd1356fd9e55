"""BM25 scores equal bm25s's for every method on the same token lists."""

from __future__ import annotations

import numpy as np
import pytest

import bdnsca
from conftest import zipf_corpus

bm25s = pytest.importorskip("bm25s")

METHODS = ["robertson", "atire", "bm25l", "bm25+", "lucene"]


def _bm25s_scores(tokens, queries, method, k1, b, delta):
    ref = bm25s.BM25(method=method, k1=k1, b=b, delta=delta)
    ref.index(tokens, show_progress=False)
    vocab = ref.vocab_dict
    out = []
    for q in queries:
        known = [t for t in q if t in vocab]
        out.append(ref.get_scores(known) if known else None)
    return out


def _assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [0, 1])
def test_random_corpus_scores_equal_bm25s(method, seed):
    rng = np.random.default_rng(seed)
    tokens = zipf_corpus(rng, n_docs=400, vocab=600)
    queries = [[f"t{t}" for t in rng.integers(0, 700, size=rng.integers(1, 8))] for _ in range(40)]
    k1, b, delta = [(1.5, 0.75, 0.5), (1.2, 0.3, 1.0)][seed]
    ours = bdnsca.BM25(method=method, k1=k1, b=b, delta=delta).index(tokens)
    for q, ref in zip(queries, _bm25s_scores(tokens, queries, method, k1, b, delta), strict=True):
        if ref is None:
            continue
        _assert_close(ours.get_scores(q), ref)


@pytest.mark.parametrize("method", METHODS)
def test_cranfield_scores_equal_bm25s(cranfield, method):
    docs, queries, _ = cranfield
    tok = bdnsca.Tokenizer(stopwords="en", stemmer="english")
    doc_tokens = tok.tokenize([t for _, t in docs])
    query_tokens = tok.tokenize([t for _, t in queries])
    ours = bdnsca.BM25(method=method).index(doc_tokens, ids=[d for d, _ in docs])
    refs = _bm25s_scores(doc_tokens, query_tokens, method, 1.5, 0.75, 0.5)
    compared = 0
    for q, ref in zip(query_tokens, refs, strict=True):
        if ref is not None:
            _assert_close(ours.get_scores(q), ref)
            compared += 1
    assert compared == len(queries)


def test_search_top_k_matches_sorted_scores():
    rng = np.random.default_rng(7)
    tokens = zipf_corpus(rng, n_docs=300, vocab=50, mean_len=10)  # small vocab: many ties
    bm = bdnsca.BM25().index(tokens)
    for q in (["t0"], ["t3", "t7"], ["t1", "t1", "t40"]):
        scores = bm.get_scores(q)
        matching = [i for i, doc in enumerate(tokens) if set(doc) & set(q)]
        want = sorted(matching, key=lambda i: (-scores[i], i))[:10]
        got = bm.search(q, k=10)
        assert [d for d, _ in got] == [str(i) for i in want]
        assert [s for _, s in got] == [float(scores[i]) for i in want]
        ids, batch = bm.search_batch([q], k=10)
        assert ids[0] == [str(i) for i in want]


def test_search_batch_same_with_any_thread_count():
    rng = np.random.default_rng(3)
    tokens = zipf_corpus(rng, n_docs=2000, vocab=300)
    bm = bdnsca.BM25().index(tokens)
    queries = [[f"t{t}" for t in rng.integers(0, 300, size=4)] for _ in range(300)]
    ids1, s1 = bm.search_batch(queries, k=7, threads=1)
    ids2, s2 = bm.search_batch(queries, k=7, threads=2)
    ids3, s3 = bm.search_batch(queries, k=7)
    assert ids1 == ids2 == ids3
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(s1, s3)
    idx, s4 = bm.search_batch_indices(queries, k=7)
    assert [[str(i) for i in row if i >= 0] for row in idx.tolist()] == ids1
    np.testing.assert_array_equal(s1, s4)


def test_raw_text_index_equals_pretokenised():
    texts = ["The Cats are running", "a dog runs; the dog ran!", "Über cats, über alles"]
    tok = bdnsca.Tokenizer(stopwords="en", stemmer="english")
    a = bdnsca.BM25(tokenizer=tok).index(texts)
    b = bdnsca.BM25(tokenizer=tok).index(tok.tokenize(texts))
    np.testing.assert_array_equal(a.get_scores("running cat"), b.get_scores(["run", "cat"]))
    assert a.search("über")[0][0] == "2"
