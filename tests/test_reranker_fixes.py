"""Review fixes for the reranker (issue #12 review): pairs whose negative is an exact copy of the
positive, the stress benchmark's 'BM25 + reranker' against Reranker.rerank_run, --resume with a
different split, non-finite first-stage scores, and what train_reranker actually hands the trainer
and the interpolation-weight choice (stubbed CrossEncoder and trainer, so it is fast)."""

from __future__ import annotations

import json

import pytest

from bdnsca.data.io import read_corpus, read_queries
from bdnsca.errors import DataError
from bdnsca.train.reranker_data import read_pairs
from conftest import DATA

GOLD = DATA / "retrieval_gold_wide.jsonl"
CORPUS = DATA / "retrieval_corpus_wide.jsonl"


def _copy_of_a_positive():
    """(query, positive id, id of an exact copy of it under another id) from the bundled data."""
    corpus, queries = read_corpus(CORPUS), read_queries(GOLD)
    text = {d.doc_id: d.indexed_text(True) for d in corpus.documents}
    for q in queries:
        for pos in sorted(q.relevant):
            copies = [d for d in sorted(text) if d != pos and text[d] == text[pos] and d not in q.relevant]
            if copies:
                return corpus, queries, q, pos, copies[0]
    raise AssertionError("the bundled corpus has exact copies of judged documents")


@pytest.mark.parametrize("positive_first", [True, False])
def test_negative_that_copies_the_positive_is_dropped(tmp_path, positive_first):
    corpus, queries, q, pos, copy = _copy_of_a_positive()
    other = next(d.doc_id for d in corpus.documents if d.doc_id not in q.relevant and d.doc_id != copy)
    path = tmp_path / "pairs.jsonl"
    if positive_first:
        rows = [
            {"query_id": q.query_id, "positive_doc_id": pos, "negative_doc_id": copy},
            {"query_id": q.query_id, "positive_doc_id": pos, "negative_doc_id": other},
        ]
    else:  # pointwise: the copy is read as a negative before the positive arrives
        rows = [
            {"query_id": q.query_id, "doc_id": copy, "label": 0},
            {"query_id": q.query_id, "doc_id": other, "label": 0},
            {"query_id": q.query_id, "doc_id": pos, "label": 1},
        ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    groups, report = read_pairs(path, corpus, queries)
    (g,) = [g for g in groups if q.query_id in g.query_ids]
    assert copy not in g.negatives and g.negatives == {other}
    assert report.issues["negative_copy_of_positive"] == 1
    with pytest.raises(DataError, match="same text as positive"):
        read_pairs(path, corpus, queries, strict=True)


# ----------------------------------------------------------------------------- fakes


class HashCrossEncoder:
    """A stand-in cross-encoder: a fixed pseudo-random score per (query, document) pair."""

    def predict(self, pairs, **kwargs):
        import hashlib

        import numpy as np

        def one(q, d):
            return int.from_bytes(hashlib.sha256(f"{q}\0{d}".encode()).digest()[:4], "big") / 2**32

        return np.array([one(q, d) for q, d in pairs], dtype=np.float32)

    def save_pretrained(self, path):  # train_reranker saves the model it trained
        pass


def _model_folder(tmp_path, monkeypatch, weight: float):
    """A model folder whose training_config.json stores ``weight``, loading as HashCrossEncoder."""
    import bdnsca.retrieval.reranker as rr_mod

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "training_config.json").write_text(
        json.dumps({"interpolation": {"first_stage_weight": weight}})
    )
    monkeypatch.setattr(rr_mod, "load_cross_encoder", lambda *a, **k: HashCrossEncoder())
    return folder


# ----------------------------------------------------------------------------- finding 3


def test_stress_bm25_plus_reranker_is_rerank_run_on_bm25_scores(tmp_path, monkeypatch):
    """With a stored weight of 0.5, the stress benchmark's 'BM25 + reranker' ranking is exactly
    Reranker.rerank_run on BM25's scored run (what search --rerank does), not on rank positions."""
    from bdnsca.data.io import Query
    from bdnsca.retrieval.reranker import Reranker
    from bdnsca.retrieval.stress import StressDoc, _bm25_scored, bm25_retriever, reranked

    folder = _model_folder(tmp_path, monkeypatch, 0.5)
    corpus = read_corpus(CORPUS)
    docs = {d.doc_id: StressDoc(d.doc_id, d.text) for d in corpus.documents}
    qs = [Query(q.query_id, q.text) for q in read_queries(GOLD)[:20]]
    depth = 15
    got = reranked(bm25_retriever(depth), str(folder), depth)(qs, docs)
    texts = {d: doc.text for d, doc in docs.items()}
    want = Reranker(HashCrossEncoder(), texts, first_stage_weight=0.5).rerank_run(
        _bm25_scored(qs, docs, depth), qs, depth=depth
    )
    assert got == {q: list(r) for q, r in want.items()}


# ----------------------------------------------------------------------------- finding 7


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e39])
@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_rerank_run_refuses_non_finite_first_stage_scores(bad, weight):
    from bdnsca.errors import BdnscaError
    from bdnsca.retrieval.reranker import Reranker

    rr = Reranker(HashCrossEncoder(), {"a": "ta", "b": "tb", "c": "tc"}, first_stage_weight=weight)
    run = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"a": 3.0, "b": bad, "c": 1.0}}
    with pytest.raises(BdnscaError, match=r"document 'b' for query 'q2'"):
        rr.rerank_run(run, {"q1": "x", "q2": "y"}, depth=3)
    assert rr.rerank_run({"q1": run["q1"]}, {"q1": "x"}, depth=3)  # finite scores still work
