"""One ranking from search to evaluate: the run file `search` writes (streamed batch by batch)
holds exactly the ranking search returned, and evaluating the file gives what evaluating the
in-memory results gives, on corpora built to tie."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import bdnsca
from bdnsca.cli import main
from bdnsca.data import io
from bdnsca.data.io import Query
from bdnsca.retrieval import bm25 as bm25_mod

METRICS = ["mrr@10", "ndcg@10", "recall@5", "precision@3", "map", "hit@1", "r-precision"]


def tied_case(seed: int, n_docs: int = 120, n_queries: int = 40):
    """A corpus over a 6-word vocabulary with short documents (many identical scores), some
    longer ones, and a cluster of very long documents holding the term "rare" whose scores
    differ only past the 6th decimal (distinct as float32, equal once rounded to 6 decimals);
    ids not in index order; qrels over all of them."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(6)]
    docs = []
    for i in range(n_docs):
        n = int(rng.integers(1, 4)) if i % 5 else int(rng.integers(20, 400))
        docs.append(" ".join(rng.choice(vocab, size=n)))
    cluster = list(range(n_docs, n_docs + 30))
    for j in range(30):
        docs.append(" ".join(["rare"] * (1000 + j % 2) + ["pad"] * (20_000 + j)))
    ids = [f"{rng.integers(0, 10**6):06d}-{i}" for i in range(len(docs))]
    ids[:3] = ["é", "Z", "a"]  # byte order differs from code-unit and case-folded order
    queries = [
        Query(f"q{j}", " ".join(rng.choice(vocab, size=int(rng.integers(1, 4)))), {})
        for j in range(n_queries)
    ]
    queries += [Query("nothing", "unknownterm", {}), Query("rare", "rare", {}), Query("rare2", "rare w1", {})]
    qrels = {
        q.query_id: {ids[int(d)]: int(rng.integers(0, 3)) for d in rng.choice(n_docs, 8)} for q in queries
    }
    qrels["rare"] = {ids[int(d)]: int(rng.integers(0, 3)) for d in rng.choice(cluster, 10)}
    qrels["rare2"] = dict(qrels["rare"])
    bm = bdnsca.BM25(method="lucene")
    bm.index(docs, ids=ids)
    return bm, queries, qrels


def in_memory(bm, queries, k):
    ids, scores = bm.search_batch([q.text for q in queries], k=k)
    return {
        q.query_id: (list(row), [float(s) for s in srow[: len(row)]])
        for q, row, srow in zip(queries, ids, scores, strict=True)
    }


def as_run(results):
    return {q: dict(zip(ids, scores, strict=True)) for q, (ids, scores) in results.items()}


def file_ranking(path):
    """Each query's (doc ids, scores) in file order."""
    if str(path).endswith(".jsonl"):
        out = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            out[obj["query_id"]] = (
                [r["doc_id"] for r in obj["results"]],
                [r["score"] for r in obj["results"]],
            )
        return out
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        q, _, d, rank, score, _ = line.split()
        ids, scores = out.setdefault(q, ([], []))
        assert int(rank) == len(ids) + 1
        ids.append(d)
        scores.append(float(score))
    return out


def search_with_cli(monkeypatch, tmp_path, bm, queries, name, k):
    index = tmp_path / "x.idx"
    bm.save(index)
    gold = tmp_path / "q.jsonl"
    io.write_jsonl(gold, [{"query_id": q.query_id, "query": q.text} for q in queries])
    out = tmp_path / name
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--index", str(index), "--queries", str(gold), "-o", str(out), "-k", str(k)])
    assert exit_.value.code == 0
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", ["run.trec", "run.jsonl"])
def test_evaluating_the_search_file_equals_evaluating_the_results(monkeypatch, tmp_path, seed, name):
    bm, queries, qrels = tied_case(seed)
    k = 15
    memory = in_memory(bm, queries, k)
    monkeypatch.setattr(bm25_mod, "SEARCH_BATCH", 7)
    files = {
        "cli": search_with_cli(monkeypatch, tmp_path, bm, queries, name, k),
        "write_run": tmp_path / f"w.{name}",
    }
    io.write_run(files["write_run"], as_run(memory))
    want = bdnsca.evaluate(qrels, as_run(memory), METRICS, per_query=True)
    for how, path in files.items():
        from_file = io.read_run(path)
        assert bdnsca.evaluate(qrels, from_file, METRICS, per_query=True) == want, how
        # every score reads back as the float32 search computed
        for q, (ids, scores) in memory.items():
            assert {d: np.float32(s) for d, s in zip(ids, scores, strict=True)} == {
                d: np.float32(s) for d, s in from_file.get(q, {}).items()
            }, (how, q)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", ["run.trec", "run.jsonl"])
def test_the_file_holds_the_ranking_search_returned(monkeypatch, tmp_path, seed, name):
    # Passes once BM25.search orders ties by the project's tie rule (doc id descending): the
    # writer writes a ranking in that order line for line.
    bm, queries, _ = tied_case(seed)
    memory = in_memory(bm, queries, 15)
    monkeypatch.setattr(bm25_mod, "SEARCH_BATCH", 7)
    path = search_with_cli(monkeypatch, tmp_path, bm, queries, name, 15)
    got = file_ranking(path)
    for q, (ids, scores) in memory.items():
        if ids:
            assert got[q][0] == ids, q
            assert [np.float32(s) for s in got[q][1]] == [np.float32(s) for s in scores], q


@pytest.mark.parametrize("seed", range(4))
def test_search_ranks_ties_by_the_tie_rule(seed):
    # the reference: every document's score from get_scores, sorted by float32 score
    # descending, then doc id descending by UTF-8 bytes
    bm, queries, _ = tied_case(seed)
    ids = bm.ids
    for q in queries:
        scores = np.asarray(bm.get_scores(q.text), dtype=np.float32)
        matching = [i for i in range(len(ids)) if scores[i] != 0]
        got = [d for d, _ in bm.search(q.text, k=15)]
        ranked = sorted(matching, key=lambda i: (float(scores[i]), ids[i].encode("utf-8")), reverse=True)
        want = [ids[i] for i in ranked[: len(got)]]
        assert got == want, q.query_id


class SpyIndex:
    """Forwards search_batch to a real index, recording each call's size and how many lines the
    output's temporary file already held (what was written before this batch was searched)."""

    def __init__(self, bm, folder):
        self.bm, self.folder, self.calls = bm, folder, []

    def search_batch(self, texts, k=10, threads=None):
        temps = [p for p in self.folder.iterdir() if p.name.endswith(".tmp")]
        written = sum(p.read_text().count("\n") for p in temps)
        self.calls.append((len(texts), written))
        return self.bm.search_batch(texts, k=k, threads=threads)


@pytest.mark.parametrize("name", ["run.trec", "run.jsonl"])
def test_search_streams_batch_by_batch_and_equals_the_whole_run(monkeypatch, tmp_path, name):
    bm, queries, _ = tied_case(1, n_queries=50)
    monkeypatch.setattr(bm25_mod, "SEARCH_BATCH", 8)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    spy = SpyIndex(bm, out_dir)
    summary = bm25_mod.search_to_file(spy, queries, out_dir / name, k=10)
    sizes = [n for n, _ in spy.calls]
    assert sizes == [8] * 6 + [5]
    # before batch b is searched, the earlier batches are already in the file
    written = [w for _, w in spy.calls]
    assert written[0] == 0 and all(a < b for a, b in zip(written, written[1:], strict=False))
    if name.endswith(".jsonl"):  # one line per query
        assert written == [8 * b for b in range(7)]
    assert summary.queries == 53 and summary.empty == 1
    io.write_run(tmp_path / name, bm25_mod.search_run(bm, queries, k=10))
    assert (out_dir / name).read_bytes() == (tmp_path / name).read_bytes()
    assert sorted(p.name for p in out_dir.iterdir()) == [name]


def test_streaming_holds_one_batch_not_the_run(monkeypatch, tmp_path):
    bm, queries, _ = tied_case(2, n_docs=400, n_queries=4000)

    def peak(fn):
        tracemalloc.start()
        try:
            fn()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    monkeypatch.setattr(bm25_mod, "SEARCH_BATCH", 64)
    streamed = peak(lambda: bm25_mod.search_to_file(bm, queries, tmp_path / "a.trec", k=50))
    whole = peak(lambda: bm25_mod.search_run(bm, queries, k=50))
    # 4000 x 50 results as dicts of str and float are several MB; one batch is 1/60 of it
    assert streamed * 5 < whole, (streamed, whole)


def test_a_failure_midway_leaves_no_output_and_no_temporary_file(monkeypatch, tmp_path):
    bm, queries, _ = tied_case(3)
    monkeypatch.setattr(bm25_mod, "SEARCH_BATCH", 5)

    class Failing(SpyIndex):
        def search_batch(self, texts, k=10, threads=None):
            if len(self.calls) == 3:
                raise MemoryError("out of memory in batch 4")
            return super().search_batch(texts, k=k, threads=threads)

    (tmp_path / "r.trec").write_text("old\n")
    with pytest.raises(MemoryError):
        bm25_mod.search_to_file(Failing(bm, tmp_path), queries, tmp_path / "r.trec", k=5)
    assert [p.name for p in tmp_path.iterdir()] == ["r.trec"]
    assert (tmp_path / "r.trec").read_text() == "old\n"


def test_the_search_command_writes_each_batch_before_searching_the_next(monkeypatch, tmp_path):
    import bdnsca._core

    bm, queries, _ = tied_case(4, n_queries=30)
    index, gold = tmp_path / "x.idx", tmp_path / "q.jsonl"
    bm.save(index)
    io.write_jsonl(gold, [{"query_id": q.query_id, "query": q.text} for q in queries])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    spy = SpyIndex(bdnsca.BM25.load(index), out_dir)

    class Loader:
        @staticmethod
        def load(path):
            return spy

    monkeypatch.setattr(bdnsca._core, "BM25", Loader)
    monkeypatch.setattr(bm25_mod, "SEARCH_BATCH", 4)
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--index", str(index), "--queries", str(gold), "-o", str(out_dir / "r.jsonl")])
    assert exit_.value.code == 0
    # 33 queries in batches of 4: before each batch, every earlier batch is in the file
    assert spy.calls == [(4, 4 * b) for b in range(8)] + [(1, 32)]
