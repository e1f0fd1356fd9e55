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


# ----------------------------------------------------------------------------- findings 5 and 6

PARA_GOLD = DATA / "retrieval_gold_paraphrase.jsonl"


def _hand_pairs(path, gold):
    """Pairwise rows for every gold query: its best document against three unjudged documents of
    its domain (built here, not by the miner, so the test depends on the trainer only)."""
    corpus = read_corpus(CORPUS)
    rows = []
    for q in read_queries(gold):
        dom = q.fields.get("domain")
        pos = max(q.relevant, key=lambda d: (q.relevant[d], d))
        negs = [
            d.doc_id
            for d in corpus.documents
            if d.fields.get("domain") == dom and d.doc_id not in q.relevant and "_doc_" in d.doc_id
        ][:3]
        rows += [{"query_id": q.query_id, "positive_doc_id": pos, "negative_doc_id": n} for n in negs]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class _Interrupted(Exception):
    pass


@pytest.fixture
def stubbed_training(monkeypatch, tmp_path):
    """train_reranker with CrossEncoder, CrossEncoderTrainer and its arguments stubbed: records the
    dataset the trainer receives and the query ids given to choose_first_stage_weight."""
    from types import SimpleNamespace

    try:
        import sentence_transformers.cross_encoder as st_ce
    except ImportError:
        pytest.skip("sentence-transformers is not installed (the rerank extra)")
    import bdnsca.retrieval.reranker as rr_mod
    import bdnsca.train.reranker as tr

    seen: dict = {"interrupt": False}

    class FakeTrainer:
        def __init__(self, model, args, train_dataset, loss):
            self.train_dataset = train_dataset
            seen["dataset_queries"] = list(train_dataset["query"])
            self.state = SimpleNamespace(log_history=[{"step": 1, "loss": 0.5}], global_step=1)

        def add_callback(self, cb):
            pass

        def train(self, resume_from_checkpoint=None):
            if seen["interrupt"]:
                raise _Interrupted
            return SimpleNamespace(metrics={"train_runtime": 0.0})

    real_choose = tr.choose_first_stage_weight

    def recording_choose(model, corpus, queries, validation_ids, cfg):
        seen["validation_ids"] = list(validation_ids)
        return real_choose(model, corpus, queries, validation_ids, cfg)

    monkeypatch.setattr(rr_mod, "load_cross_encoder", lambda *a, **k: HashCrossEncoder())
    monkeypatch.setattr(rr_mod, "resolve_model", lambda m: "stub-model")
    monkeypatch.setattr(st_ce, "CrossEncoderTrainer", FakeTrainer)
    monkeypatch.setattr(st_ce, "CrossEncoderTrainingArguments", lambda **kw: kw)
    monkeypatch.setattr(tr, "_loss", lambda *a: None)
    monkeypatch.setattr(tr, "choose_first_stage_weight", recording_choose)
    pairs = _hand_pairs(tmp_path / "pairs.jsonl", PARA_GOLD)

    def train(**kw):
        cfg = tr.RerankerTrainingConfig(
            pairs=str(pairs),
            corpus=str(CORPUS),
            gold=str(PARA_GOLD),
            output_dir=str(tmp_path / "out"),
            eval_depth=20,
            bootstrap_resamples=200,
            progress=False,
            **kw,
        )
        return tr.train_reranker(cfg)

    return train, seen, tmp_path / "out"


def test_trainer_dataset_and_weight_choice_never_see_heldout_queries(stubbed_training):
    train, seen, out = stubbed_training
    metrics = train()
    split = json.loads((out / "split.json").read_text())
    held, val = set(split["heldout_query_ids"]), set(split["validation_query_ids"])
    assert held and val and not held & val
    ids_of_text: dict[str, set[str]] = {}
    for q in read_queries(PARA_GOLD):
        ids_of_text.setdefault(q.text, set()).add(q.query_id)
    trained = set().union(*(ids_of_text[t] for t in seen["dataset_queries"]))
    assert trained and not trained & held and not trained & val
    assert trained | held | val == {i for ids in ids_of_text.values() for i in ids}  # 240 queries
    chose_on = set(seen["validation_ids"])
    assert chose_on == val and not chose_on & held and not chose_on & trained
    assert metrics["interpolation"]["n_queries"] == len(val)


def test_resume_with_another_validation_slice_is_refused(stubbed_training):
    from bdnsca.errors import BdnscaError

    train, seen, out = stubbed_training
    seen["interrupt"] = True
    with pytest.raises(_Interrupted):
        train()
    (out / "checkpoints" / "checkpoint-1").mkdir(parents=True)  # what the interrupted run left
    seen["interrupt"] = False
    for changed in ({"validation_fraction": 0.3}, {"first_stage_weight": 0.4}):
        with pytest.raises(BdnscaError, match="--resume: .* differ"):
            train(resume=True, **changed)
    assert train(resume=True)["resumed"] is True  # the same options resume
