"""Changing an index (issue 14 §1): BM25.add / delete / update / merge / add_index, save and load
of the segmented folder, pickling, and the CLI's index --append / --delete / --merge / --upsert /
--shards. The reference everywhere is a fresh ``BM25.index`` of the live documents in order (and
bm25s for the scores themselves): after any sequence of changes, scores and rankings must equal it
bit for bit, for all five methods."""

from __future__ import annotations

import importlib.util
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bdnsca
from bdnsca import BM25, BdnscaError

METHODS = ["robertson", "atire", "bm25l", "bm25+", "lucene"]
# A small vocabulary, so that terms collide across segments and scores tie often.
WORDS = ["ash", "bolt", "crow", "dusk", "ember", "fang"]
QUERIES = ["ash", "bolt crow", "dusk ember fang ash", "crow crow", "zebra", "fang zebra bolt"]
ID_POOL = [f"d{i}" for i in range(14)] + ["d1x", "9", "10"]


def _same(idx: BM25, live: dict[str, str], method: str) -> None:
    """``idx`` scores and ranks as a fresh index of ``live`` (id -> text, in index order)."""
    assert idx.ids == list(live)
    assert idx.n_docs == len(live)
    if not live:
        for q in QUERIES:
            assert idx.get_scores(q).size == 0
            assert idx.search(q, k=3) == []
        return
    fresh = BM25(method=method, k1=1.2, b=0.75, delta=0.5).index(list(live.values()), ids=list(live))
    for q in QUERIES:
        a, b = idx.get_scores(q), fresh.get_scores(q)
        assert a.dtype == np.float32
        assert a.tobytes() == b.tobytes(), (method, q)
        for k in (1, 3, 100):
            assert idx.search(q, k=k) == fresh.search(q, k=k), (method, q, k)
    ids_a, sc_a = idx.search_batch(QUERIES, k=4)
    ids_b, sc_b = fresh.search_batch(QUERIES, k=4)
    assert ids_a == ids_b
    assert sc_a.tobytes() == sc_b.tobytes()


_doc = st.lists(st.sampled_from(WORDS), min_size=0, max_size=6).map(" ".join)
_op = st.one_of(
    st.tuples(st.just("add"), st.lists(st.tuples(st.sampled_from(ID_POOL), _doc), min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=3)),
    st.tuples(st.just("update"), st.lists(st.tuples(st.sampled_from(ID_POOL), _doc), min_size=1, max_size=3)),
    st.tuples(st.just("merge"), st.integers(1, 3)),
    st.tuples(st.just("save_load"), st.none()),
    st.tuples(st.just("pickle"), st.none()),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(st.tuples(st.sampled_from(ID_POOL), _doc), min_size=1, max_size=5),
    ops=st.lists(_op, max_size=7),
)
def test_any_sequence_of_changes_equals_a_fresh_index_of_the_live_documents(tmp_path, first, ops):
    first = list(dict(first).items())  # unique ids, first text wins
    live = dict(first)
    idxs = {
        m: BM25(method=m, k1=1.2, b=0.75, delta=0.5).index([t for _, t in first], ids=[i for i, _ in first])
        for m in METHODS
    }
    for step, (kind, arg) in enumerate(ops):
        for m in METHODS:
            idx = idxs[m]
            if kind == "add":
                ids = [i for i, _ in arg]
                # The error names the first id already in the index, else one listed twice.
                present = next((i for i in ids if i in live), None)
                twice = sorted({i for n, i in enumerate(ids) if i in ids[:n]})
                if present is not None or twice:
                    named = [present] if present is not None else twice
                    pattern = "|".join(re.escape(f'"{i}"') for i in named)
                    with pytest.raises(BdnscaError, match=f"document id ({pattern})"):
                        idx.add([t for _, t in arg], ids)
                else:
                    idx.add([t for _, t in arg], ids)
            elif kind == "delete":
                unknown = next((i for i in arg if i not in live), None)
                if unknown is not None:
                    with pytest.raises(BdnscaError, match=f'"{unknown}" is not in the index'):
                        idx.delete(arg)
                elif len(set(arg)) < len(arg):
                    with pytest.raises(BdnscaError, match="listed twice"):
                        idx.delete(arg)
                else:
                    idx.delete(arg)
            elif kind == "update":
                upd = dict(arg)
                unknown = next((i for i in upd if i not in live), None)
                if unknown is not None:
                    with pytest.raises(BdnscaError, match=f'"{unknown}" is not in the index'):
                        idx.update(list(upd.values()), list(upd))
                else:
                    idx.update(list(upd.values()), list(upd))
            elif kind == "merge":
                idx.merge(max_segments=arg)
                assert idx.n_segments <= arg
            elif kind == "save_load":
                path = tmp_path / f"{m}-{step}"
                idx.save(path)
                idxs[m] = idx = BM25.load(path)
            else:
                idxs[m] = idx = pickle.loads(pickle.dumps(idx))
        # The model: what the index should now hold, in order.
        if kind == "add":
            ids = [i for i, _ in arg]
            if not any(i in live for i in ids) and len(set(ids)) == len(ids):
                live.update(arg)
        elif kind == "delete":
            if all(i in live for i in arg) and len(set(arg)) == len(arg):
                for i in arg:
                    del live[i]
        elif kind == "update":
            upd = dict(arg)
            if all(i in live for i in upd):
                for i in upd:
                    del live[i]
                live.update(upd)
        for m in METHODS:
            _same(idxs[m], live, m)


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(WORDS + [f"w{i}" for i in range(40)], size=rng.integers(1, 12))) for _ in range(n)
    ]


@pytest.mark.skipif(importlib.util.find_spec("bm25s") is None, reason="bm25s is not installed")
@pytest.mark.parametrize("method", METHODS)
def test_scores_after_an_append_and_a_delete_equal_bm25s_of_the_live_documents(method):
    import bm25s

    texts = _texts(300, 1)
    tok = bdnsca.Tokenizer(pattern="bm25s")
    idx = BM25(method=method, tokenizer=tok).index(texts[:200], ids=[str(i) for i in range(200)])
    idx.add(texts[200:], [str(i) for i in range(200, 300)])
    idx.delete([str(i) for i in range(0, 300, 7)])
    live = [t for i, t in enumerate(texts) if i % 7]
    ref = bm25s.BM25(method=method)
    ref.index(bm25s.tokenize(live, stopwords=None, show_progress=False), show_progress=False)
    for q in ["ash bolt", "w3 w17 crow", "ember ember fang w39"]:
        known = [t for t in tok.tokenize(q)[0] if t in ref.vocab_dict]
        assert known, q
        np.testing.assert_allclose(idx.get_scores(q), ref.get_scores(known), rtol=1e-5, atol=1e-6)


def test_errors_name_the_id_and_change_nothing():
    idx = BM25().index(["a b", "c d"], ids=["x", "y"])
    before = idx.get_scores("a c")
    with pytest.raises(BdnscaError, match='"x" is already in the index'):
        idx.add(["e"], ["x"])
    with pytest.raises(BdnscaError, match='"nope" is not in the index'):
        idx.delete(["y", "nope"])
    with pytest.raises(BdnscaError, match='"new" is not in the index'):
        idx.update(["e"], ["new"])
    with pytest.raises(BdnscaError, match="got 2 ids for 1 documents"):
        idx.add(["e"], ["p", "q"])
    with pytest.raises(TypeError, match="single str"):
        idx.delete("xy")
    with pytest.raises(BdnscaError, match="max_segments must be >= 1"):
        idx.merge(0)
    assert idx.ids == ["x", "y"]
    assert idx.get_scores("a c").tobytes() == before.tobytes()


def test_a_search_after_a_change_sees_it():
    idx = BM25().index(["red fox", "blue fox"], ids=["a", "b"])
    assert [i for i, _ in idx.search("fox")] == ["b", "a"]
    idx.add(["green fox fox"], ["c"])
    assert idx.search("fox")[0][0] == "c"
    assert idx.doc_index("c") == 2
    idx.delete(["a"])
    assert idx.doc_index("a") is None
    assert idx.doc_index("c") == 1
    assert [i for i, _ in idx.search("red")] == []
    assert idx.n_segments == 2
    idx.merge()
    assert idx.n_segments == 1


def test_add_index_joins_shards_as_one_index():
    texts = _texts(90, 2)
    ids = [f"doc{i}" for i in range(90)]
    whole = BM25(method="bm25l").index(texts, ids=ids)
    joined = BM25(method="bm25l").index(texts[:30], ids=ids[:30])
    for lo, hi in [(30, 60), (60, 90)]:
        joined.add_index(BM25(method="bm25l").index(texts[lo:hi], ids=ids[lo:hi]))
    assert joined.n_segments == 3
    for q in QUERIES + ["w1 w2 ash"]:
        assert joined.get_scores(q).tobytes() == whole.get_scores(q).tobytes()
        assert joined.search(q, k=20) == whole.search(q, k=20)
    with pytest.raises(BdnscaError, match='"doc5" is in both indexes'):
        joined.add_index(BM25(method="bm25l").index(["x"], ids=["doc5"]))
    with pytest.raises(BdnscaError, match="different BM25 parameters"):
        joined.add_index(BM25(method="lucene").index(["x"], ids=["new"]))
    with pytest.raises(BdnscaError, match="tokenise differently"):
        joined.add_index(
            BM25(method="bm25l", tokenizer=bdnsca.Tokenizer(stemmer="english")).index(["x"], ids=["n"])
        )


def test_pickle_round_trip_keeps_segments_and_scores():
    idx = BM25(method="atire").index(_texts(50, 3), ids=[f"i{i}" for i in range(50)])
    idx.add(_texts(10, 4), [f"j{i}" for i in range(10)])
    idx.delete(["i3", "j2"])
    back = pickle.loads(pickle.dumps(idx))
    assert back.n_segments == idx.n_segments == 2
    assert back.ids == idx.ids
    assert (back.method, back.k1, back.b, back.delta) == (idx.method, idx.k1, idx.b, idx.delta)
    for q in QUERIES:
        assert back.get_scores(q).tobytes() == idx.get_scores(q).tobytes()
    back.add(["ash"], ["i3"])  # a deleted id may come back, in the copy only
    assert "i3" not in idx.ids


def test_an_index_with_every_document_deleted_finds_nothing():
    idx = BM25().index(["a", "b"], ids=["x", "y"])
    idx.delete(["x", "y"])
    assert idx.search("a") == []
    assert idx.get_scores("a").size == 0
    ids, scores = idx.search_batch(["a", "b"], k=3)
    assert ids == [[], []]
    assert scores.shape == (2, 0)
    idx.add(["a"], ["x"])
    assert [i for i, _ in idx.search("a")] == ["x"]


# ----------------------------------------------------------------------------- CLI


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args)], capture_output=True, text=True
    )


def _corpus(path: Path, rows: list[tuple[str, str]]) -> Path:
    import json

    path.write_text("".join(json.dumps({"doc_id": i, "title": "", "text": t}) + "\n" for i, t in rows))
    return path


def _assert_index_holds(index: Path, live: dict[str, str], method: str = "lucene") -> None:
    """The saved index scores and ranks as a fresh index of ``live``, in order."""
    back = BM25.load(index)
    assert back.ids == list(live)
    fresh = BM25(method=method).index(list(live.values()), ids=list(live))
    for q in QUERIES + ["w1 w7 ash"]:
        assert back.get_scores(q).tobytes() == fresh.get_scores(q).tobytes(), q
        assert back.search(q, k=5) == fresh.search(q, k=5)


def test_cli_append_delete_upsert_merge_equal_a_fresh_index(tmp_path):
    texts = _texts(40, 5)
    rows = [(f"d{i}", t) for i, t in enumerate(texts)]
    idx = tmp_path / "npc.index"
    r = _cli("index", "--corpus", _corpus(tmp_path / "a.jsonl", rows[:20]), "-o", idx, "--method", "bm25l")
    assert r.returncode == 0, r.stderr
    r = _cli("index", "--append", _corpus(tmp_path / "b.jsonl", rows[20:30]), "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "added 10" in r.stderr and "30 live documents in 2 segments" in r.stderr
    live = dict(rows[:30])
    _assert_index_holds(idx, live, "bm25l")

    # A duplicate id without --upsert: one line, exit 1, the index unchanged.
    before = (idx / "manifest.json").read_bytes()
    dup = _corpus(tmp_path / "c.jsonl", [("d3", "ember ember"), ("new1", "fang crow")])
    r = _cli("index", "--append", dup, "-o", idx)
    assert r.returncode == 1
    assert (
        r.stderr.startswith("error: ")
        and "'d3' is already in the index" in r.stderr
        and "--upsert" in r.stderr
    )
    assert len(r.stderr.strip().splitlines()) == 1
    assert (idx / "manifest.json").read_bytes() == before

    r = _cli("index", "--append", dup, "--upsert", "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "added 1, updated 1" in r.stderr
    del live["d3"]
    live.update({"d3": "ember ember", "new1": "fang crow"})
    _assert_index_holds(idx, live, "bm25l")

    gone = tmp_path / "gone.txt"
    gone.write_text("d0\nd25\n\nnew1\n")
    r = _cli("index", "--delete", gone, "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "deleted 3" in r.stderr
    for i in ("d0", "d25", "new1"):
        del live[i]
    _assert_index_holds(idx, live, "bm25l")

    gone.write_text("d1\nnope\n")
    r = _cli("index", "--delete", gone, "-o", idx)
    assert r.returncode == 1 and "'nope'" not in r.stderr and '"nope" is not in the index' in r.stderr
    _assert_index_holds(idx, live, "bm25l")

    r = _cli("index", "--merge", "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "in 1 segment " in r.stderr
    assert BM25.load(idx).n_segments == 1
    _assert_index_holds(idx, live, "bm25l")


def test_cli_shards_equal_one_build(tmp_path):
    rows = [(f"s{i}", t) for i, t in enumerate(_texts(50, 6))]
    c = _corpus(tmp_path / "c.jsonl", rows)
    r = _cli("index", "--corpus", c, "-o", tmp_path / "sharded", "--shards", 4)
    assert r.returncode == 0, r.stderr
    assert "indexed 50 documents" in r.stderr and "4 segments" in r.stderr
    assert BM25.load(tmp_path / "sharded").n_segments == 4
    _assert_index_holds(tmp_path / "sharded", dict(rows))


def test_cli_changes_refuse_a_single_file_index(tmp_path):
    rows = [("a", "ash bolt"), ("b", "crow")]
    old = tmp_path / "old.idx"
    BM25().index([t for _, t in rows], ids=[i for i, _ in rows])._save_single_file(old)
    assert old.is_file()
    r = _cli("index", "--append", _corpus(tmp_path / "n.jsonl", [("c", "dusk")]), "-o", old)
    assert r.returncode == 1
    assert "single-file format" in r.stderr and "rebuild" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # It still searches, through the CLI too.
    q = tmp_path / "q.jsonl"
    q.write_text('{"query_id": "q", "query": "ash", "relevant_doc_ids": ["a"]}\n')
    r = _cli("search", "--index", old, "--queries", q, "-o", tmp_path / "run.trec")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run.trec").read_text().split()[2] == "a"
    with pytest.raises(BdnscaError, match="single-file format"):
        BM25.load(old).add(["x"], ["z"])


def test_cli_usage_errors(tmp_path):
    r = _cli("index", "-o", tmp_path / "x")
    assert r.returncode == 2 and "--corpus" in r.stderr
    r = _cli("index", "--upsert", "--merge", "-o", tmp_path / "x")
    assert r.returncode == 2 and "--upsert goes with --append" in r.stderr


def test_a_damaged_index_folder_raises_index_file_error_naming_the_file(tmp_path):
    idx = BM25().index(_texts(30, 8), ids=[f"x{i}" for i in range(30)])
    idx.save(tmp_path / "i")
    (seg,) = (tmp_path / "i").glob("seg-*.bseg")
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x40
    seg.write_bytes(bytes(data))
    with pytest.raises(bdnsca.IndexFileError, match=re.escape(seg.name)):
        BM25.load(tmp_path / "i")
    with pytest.raises(BdnscaError, match="a file is there"):
        idx.save(seg)


def test_saving_back_writes_only_the_new_segment(tmp_path):
    idx = BM25().index(_texts(30, 9), ids=[f"x{i}" for i in range(30)])
    idx.save(tmp_path / "i")
    first = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "i").glob("seg-*")}
    back = BM25.load(tmp_path / "i")
    back.add(["ash bolt"], ["new"])
    back.save(tmp_path / "i")
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "i").glob("seg-*")}
    assert len(after) == 2 and all(after[n] == t for n, t in first.items())
    assert BM25.read_ids(tmp_path / "i") == [f"x{i}" for i in range(30)] + ["new"]


def test_index_sha256_follows_the_manifest_of_a_folder_and_the_bytes_of_a_file(tmp_path):
    from bdnsca.data.io import Corpus, Document, file_sha256, index_sha256
    from bdnsca.retrieval.segments import append_to_index

    BM25().index(["ash bolt", "crow"], ids=["a", "b"]).save(tmp_path / "i")
    h0 = index_sha256(tmp_path / "i")
    assert h0 == file_sha256(tmp_path / "i" / "manifest.json")
    assert index_sha256(tmp_path / "i") == h0  # stable while nothing changes
    append_to_index(tmp_path / "i", Corpus([Document(doc_id="c", text="dusk")]))
    assert index_sha256(tmp_path / "i") != h0
    BM25().index(["ash"], ids=["a"])._save_single_file(tmp_path / "old.idx")
    assert index_sha256(tmp_path / "old.idx") == file_sha256(tmp_path / "old.idx")


def test_cli_build_over_an_old_single_file_index_replaces_it_with_a_folder(tmp_path):
    old = tmp_path / "npc.index"
    BM25().index(["stale"], ids=["zz"])._save_single_file(old)
    rows = [("a", "ash bolt"), ("b", "crow dusk")]
    r = _cli("index", "--corpus", _corpus(tmp_path / "c.jsonl", rows), "-o", old)
    assert r.returncode == 0, r.stderr
    assert "replaced the single-file index" in r.stderr
    assert old.is_dir() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    _assert_index_holds(old, dict(rows))


def test_memory_bytes_counts_the_segments_as_well_as_the_search_index() -> None:
    # 2,000 documents of 40 distinct terms out of 60: 80,000 (document, term) entries, far more
    # than the vocabulary. The flat search index holds a doc id and a weight per entry (8 bytes);
    # the segments hold a term id and a tf per entry (8 bytes) beside it, so the total is at least
    # 16 bytes an entry (the search index alone is about 8).
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(60)]
    docs = [" ".join(rng.choice(vocab, size=40, replace=False)) for _ in range(2000)]
    bm = BM25().index(docs)
    entries = bm.n_postings
    assert entries == 80_000
    assert bm.memory_bytes >= 16 * entries
    before = bm.memory_bytes
    bm.add(docs[:500], ids=[f"n{i}" for i in range(500)])
    assert bm.memory_bytes >= before + 16 * 500 * 40
