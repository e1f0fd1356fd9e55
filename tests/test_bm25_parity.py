"""BM25 scores equal bm25s's for every method on the same token lists; the bm25s token pattern
yields bm25s.tokenize's tokens; search ranks like trec_eval."""

from __future__ import annotations

import importlib.util
import random
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bdnsca
from conftest import zipf_corpus

needs_bm25s = pytest.mark.skipif(importlib.util.find_spec("bm25s") is None, reason="bm25s is not installed")
if importlib.util.find_spec("bm25s") is not None:
    import bm25s

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


@needs_bm25s
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


@needs_bm25s
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


def _ranked(docs, scores, ids):
    """trec_eval's order: score descending, then document id descending by bytes (two stable sorts)."""
    by_id = sorted(docs, key=lambda i: ids[i].encode(), reverse=True)
    return sorted(by_id, key=lambda i: -scores[i])


def test_search_top_k_matches_sorted_scores():
    rng = np.random.default_rng(7)
    tokens = zipf_corpus(rng, n_docs=300, vocab=50, mean_len=10)  # small vocab: many ties
    bm = bdnsca.BM25().index(tokens)
    for q in (["t0"], ["t3", "t7"], ["t1", "t1", "t40"]):
        scores = bm.get_scores(q)
        matching = [i for i, doc in enumerate(tokens) if set(doc) & set(q)]
        want = _ranked(matching, scores, [str(i) for i in range(len(tokens))])[:10]
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


# --- the bm25s token pattern ---------------------------------------------------------------------


def _bm25s_tokens(texts, **kw):
    return bm25s.tokenize(texts, return_ids=False, show_progress=False, **kw)


def _english(rng: random.Random, n: int) -> list[str]:
    """Cranfield-like English: words, one-letter symbols, numbers, decimals, hyphens, punctuation."""
    words = (
        "the boundary layer of a flat plate at mach 3 is laminar and the heat transfer c e x "
        "supersonic flow over wings in 2.5 dimensions with k-epsilon models; it's an o(1) effect "
        "I II NACA-0012 Reynolds number R=10^6 x_1 y' U.S.A. THE Aerodynamic In"
    ).split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for _ in range(n)]


@needs_bm25s
def test_bm25s_pattern_yields_bm25s_tokens_on_english_text():
    texts = _english(random.Random(0), 300)
    assert bdnsca.Tokenizer(pattern="bm25s", stopwords="en").tokenize(texts) == _bm25s_tokens(texts)
    assert bdnsca.Tokenizer(pattern="bm25s").tokenize(texts) == _bm25s_tokens(texts, stopwords=None)
    assert bdnsca.Tokenizer(pattern="bm25s", lowercase=False).tokenize(texts) == _bm25s_tokens(
        texts, stopwords=None, lower=False
    )
    # The default pattern keeps what bm25s drops (the defect this setting answers).
    assert bdnsca.Tokenizer(stopwords="en").tokenize(texts) != _bm25s_tokens(texts)


@needs_bm25s
def test_bm25s_stopwords_are_bdnscas_en_list():
    from bm25s.stopwords import STOPWORDS_EN as theirs

    assert sorted(bdnsca.STOPWORDS_EN) == sorted(theirs)


@needs_bm25s
def test_bm25s_pattern_yields_bm25s_tokens_on_cranfield(cranfield):
    docs, queries, _ = cranfield
    texts = [t for _, t in docs] + [t for _, t in queries]
    ours = bdnsca.Tokenizer(pattern="bm25s", stopwords="en").tokenize(texts)
    assert ours == _bm25s_tokens(texts)
    assert sum(map(len, ours)) > 100_000


# Characters where Python's and Rust's Unicode rules differ, mixed into random text: combining
# marks (not \w in Python), final sigma, dotted capital I (lowers to two characters), underscore.
_TRICKY = "ΣσςΟΔİIıiAaÉé\u0301\u0307\u0345ǅΆ_ 1.'-\u00aa\u2160\u0660\u3007ⅰ"


# The \w tables of pattern="bm25s" come from one Python's Unicode database (rust/src/pyunicode.rs);
# another Unicode version classifies the characters it added differently.
_TABLE_UNICODE = "14.0.0"


@needs_bm25s
@pytest.mark.skipif(
    unicodedata.unidata_version != _TABLE_UNICODE,
    reason=f"the bm25s pattern's tables follow Unicode {_TABLE_UNICODE} (Python 3.11); this Python has "
    f"{unicodedata.unidata_version}: regenerate them with rust/tools/gen_pyunicode.py",
)
@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(alphabet=st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(_TRICKY))))
)
def test_bm25s_pattern_yields_bm25s_tokens_on_random_unicode(texts):
    for lower in (True, False):
        tok = bdnsca.Tokenizer(pattern="bm25s", lowercase=lower, stopwords="en")
        assert tok.tokenize(texts) == _bm25s_tokens(texts, lower=lower)


@needs_bm25s
def test_bm25s_pattern_index_scores_equal_bm25s_from_raw_text():
    texts = _english(random.Random(1), 200)
    queries = _english(random.Random(2), 20)
    ref = bm25s.BM25()
    ref.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
    ours = bdnsca.BM25(tokenizer=bdnsca.Tokenizer(pattern="bm25s", stopwords="en")).index(texts)
    compared = 0
    for q in queries:
        known = [t for t in _bm25s_tokens([q])[0] if t in ref.vocab_dict]
        if known:
            _assert_close(ours.get_scores(q), ref.get_scores(known))
            compared += 1
    assert compared > 10


# --- one ranking: what search returns is what trec_eval scores --------------------------------


@pytest.mark.skipif(importlib.util.find_spec("pytrec_eval") is None, reason="pytrec_eval is not installed")
def test_search_order_is_trec_evals_order():
    """For tied scores, the document search puts at rank r is the one trec_eval puts at rank r."""
    import pytrec_eval

    rng = np.random.default_rng(11)
    tokens = zipf_corpus(rng, n_docs=400, vocab=12, mean_len=3)  # tiny vocabulary: ties everywhere
    ids = [f"{rng.choice(['d', 'D', 'doc', ''])}{rng.integers(0, 10**6)}-{i}" for i in range(len(tokens))]
    bm = bdnsca.BM25().index(tokens, ids=ids)
    queries = [[f"t{t}" for t in rng.integers(0, 12, size=rng.integers(1, 4))] for _ in range(20)]
    hits, _ = bm.search_batch(queries, k=30)
    tied = 0
    for q, got in zip(queries, hits, strict=True):
        ranked = bm.search(q, k=30)
        run = {"q": {d: float(s) for d, s in ranked}}
        tied += len(run["q"]) - len(set(run["q"].values()))
        assert [d for d, _ in ranked] == got
        for r, doc in enumerate(got):
            ev = pytrec_eval.RelevanceEvaluator({"q": {doc: 1}}, {"recip_rank"})
            assert ev.evaluate(run)["q"]["recip_rank"] == pytest.approx(1 / (r + 1)), (r, doc)
    assert tied > 100


@needs_bm25s
def test_index_command_with_the_bm25s_pattern_scores_like_bm25s(tmp_path):
    """A CLI user moving from bm25s: `bdnsca index --pattern bm25s --stopwords en` gives
    bm25s's scores from raw text (one-letter tokens such as "c" or "3" are dropped as bm25s does)."""
    import json
    import subprocess
    import sys

    texts = _english(random.Random(5), 60)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"doc_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    index = tmp_path / "i.idx"
    args = [
        "index",
        "--corpus",
        corpus,
        "-o",
        index,
        "--method",
        "lucene",
        "--pattern",
        "bm25s",
        "--stopwords",
        "en",
    ]
    r = subprocess.run([sys.executable, "-m", "bdnsca.cli", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ours = bdnsca.BM25.load(index)
    assert ours.tokenizer.pattern == "bm25s"
    ref = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    ref.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    for query in ("boundary layer c 3", "heat transfer of wings", "the mach"):
        q_tokens = _bm25s_tokens([query], stopwords="en")[0]
        want = ref.get_scores(q_tokens) if q_tokens else np.zeros(len(texts))
        np.testing.assert_allclose(ours.get_scores(query), want, rtol=1e-6, atol=1e-6)
