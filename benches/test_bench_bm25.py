"""Index build and batch search: bdnsca vs bm25s, rank-bm25 and tantivy (pytest-benchmark)."""

from __future__ import annotations

import pytest

import bdnsca

pytest.importorskip("pytest_benchmark")


@pytest.mark.benchmark(group="index")
def test_index_bdnsca(benchmark, zipf):
    docs, _ = zipf
    bm = benchmark(lambda: bdnsca.BM25().index(docs))
    assert bm.n_docs == len(docs)


@pytest.mark.benchmark(group="index")
def test_index_bm25s(benchmark, zipf):
    bm25s = pytest.importorskip("bm25s")
    docs, _ = zipf

    def build():
        m = bm25s.BM25()
        m.index(bm25s.tokenize(docs, stopwords=None, show_progress=False), show_progress=False)
        return m

    benchmark.pedantic(build, rounds=1, iterations=1)


@pytest.fixture(scope="module")
def ours(zipf):
    return bdnsca.BM25().index(zipf[0])


@pytest.mark.benchmark(group="search-1-thread")
def test_search_bdnsca(benchmark, ours, zipf):
    ids, _ = benchmark(lambda: ours.search_batch(zipf[1], k=10, threads=1))
    assert len(ids) == len(zipf[1])


@pytest.mark.benchmark(group="search-1-thread")
def test_search_bdnsca_2_threads(benchmark, ours, zipf):
    benchmark(lambda: ours.search_batch(zipf[1], k=10, threads=2))


@pytest.mark.benchmark(group="search-1-thread")
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_search_bm25s(benchmark, zipf, backend):
    bm25s = pytest.importorskip("bm25s")
    if backend == "numba":
        pytest.importorskip("numba")
    docs, queries = zipf
    m = bm25s.BM25(backend=backend)
    m.index(bm25s.tokenize(docs, stopwords=None, show_progress=False), show_progress=False)
    q = bm25s.tokenize(queries, stopwords=None, show_progress=False)
    m.retrieve(q, k=10, show_progress=False, n_threads=1)  # warm-up (numba JIT)
    benchmark.pedantic(lambda: m.retrieve(q, k=10, show_progress=False, n_threads=1), rounds=2, iterations=1)


@pytest.mark.benchmark(group="search-1-thread")
def test_search_tantivy(benchmark, zipf, tmp_path):
    tantivy = pytest.importorskip("tantivy")
    docs, queries = zipf
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("body", stored=False)
    ix = tantivy.Index(sb.build(), path=str(tmp_path))
    w = ix.writer(heap_size=256_000_000, num_threads=1)
    for t in docs:
        w.add_document(tantivy.Document(body=t))
    w.commit()
    w.wait_merging_threads()
    ix.reload()
    searcher = ix.searcher()
    benchmark.pedantic(
        lambda: [searcher.search(ix.parse_query(q, ["body"]), 10) for q in queries], rounds=1, iterations=1
    )


@pytest.mark.benchmark(group="search-sample-100")
def test_search_rank_bm25_sample(benchmark, zipf):
    rank_bm25 = pytest.importorskip("rank_bm25")
    docs, queries = zipf
    m = rank_bm25.BM25Okapi([d.split() for d in docs])
    benchmark.pedantic(
        lambda: [m.get_top_n(q.split(), docs, n=10) for q in queries[:100]], rounds=1, iterations=1
    )


@pytest.mark.benchmark(group="search-sample-100")
def test_search_bdnsca_sample(benchmark, ours, zipf):
    benchmark(lambda: ours.search_batch(zipf[1][:100], k=10, threads=1))
