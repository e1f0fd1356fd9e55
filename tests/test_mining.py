"""Hard-negative mining: twins of positives are never negatives, outputs are reproducible,
and each control (rank window, score ratio, domain balance) does what it says."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bdnsca
from bdnsca.data.io import Corpus, Document, Query
from bdnsca.retrieval.mining import (
    MiningSettings,
    default_output_paths,
    mine_hard_negatives,
    retrieval_settings,
)
from conftest import DATA, SHARED


def normalise(t: str) -> str:
    return " ".join(re.findall(r"\w+", t.lower()))


def jaccard5(a: str, b: str) -> float:
    """An independent reimplementation of the twin test: character 5-gram Jaccard."""
    sa = {a[i : i + 5] for i in range(len(a) - 4)} or {a}
    sb = {b[i : i + 5] for i in range(len(b) - 4)} or {b}
    return len(sa & sb) / len(sa | sb)


def is_twin(a: Document, b: Document, threshold: float = 0.8) -> bool:
    na, nb = normalise(a.indexed_text()), normalise(b.indexed_text())
    return na == nb or jaccard5(na, nb) >= threshold


def check_no_twin_negatives(corpus: Corpus, result) -> int:
    by_id = corpus.by_id()
    for row in result.hard_negatives:
        for neg in row["hard_negative_doc_ids"]:
            assert neg not in row["relevant_doc_ids"]
            for rel in row["relevant_doc_ids"]:
                assert not is_twin(by_id[neg], by_id[rel]), (row["query_id"], neg, rel)
        for s in row["suspected_false_negatives"]:
            assert is_twin(by_id[s["doc_id"]], by_id[s["duplicate_of"]], 0.79)
    return sum(len(r["suspected_false_negative_doc_ids"]) for r in result.hard_negatives)


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


# ----------------------------------------------------------------------------- twins


def test_bundled_data_twins_are_reported_not_negatives():
    corpus = bdnsca.read_corpus(DATA / "retrieval_corpus_wide.jsonl")
    queries = bdnsca.read_queries(DATA / "retrieval_gold_wide.jsonl")
    result = mine_hard_negatives(corpus, queries)
    n_suspects = check_no_twin_negatives(corpus, result)
    # Every bundled twin (an unjudged copy of a relevant document) that the ranking reaches is caught.
    twins = {d.doc_id: d for d in corpus.documents if "_copy_" in d.doc_id or "_revised_" in d.doc_id}
    by_id = corpus.by_id()
    bm25 = bdnsca.build_index(corpus)  # the miner's default tokenizer
    texts = {q.query_id: q.text for q in queries}
    caught = 0
    for row in result.hard_negatives:
        reached = {d for d, _ in bm25.search(texts[row["query_id"]], k=100)}
        for rel in row["relevant_doc_ids"]:
            for tid, twin in twins.items():
                if normalise(twin.text.replace("Speak with", "Ask")) == normalise(by_id[rel].text):
                    assert tid not in row["hard_negative_doc_ids"]
                    if tid in reached:
                        assert tid in row["suspected_false_negative_doc_ids"], (row["query_id"], tid)
                        caught += 1
    assert caught >= 24 and n_suspects >= caught
    assert result.summary["suspected_false_negatives"]["count"] == n_suspects
    assert result.summary["queries"]["used"] == 160
    # Only documents sharing a query term are candidates: a few narrow queries get fewer, and say so.
    short = [r for r in result.hard_negatives if len(r["hard_negative_same_domain_doc_ids"]) < 10]
    assert len(short) == result.summary["negatives"]["queries_short_of_same_domain"] < 40
    assert all(len(r["hard_negative_same_domain_doc_ids"]) <= 10 for r in result.hard_negatives)
    assert all(len(r["hard_negative_cross_domain_doc_ids"]) <= 4 for r in result.hard_negatives)


def test_generated_twin_corpus(tmp_path):
    """The shared data's flaw: doc i and doc i+12 differ only in 'Record index: N'."""
    docs, queries = [], []
    facts = [
        "silverleaf reduces venom",
        "boiled linen prevents rot",
        "moss stops bleeding",
        "salt keeps spirits",
    ]
    for dom in ["medicine", "ritual", "naval"]:
        for i in range(24):
            fact = facts[(i % 12) % 4]
            text = f"Domain: {dom}. Role: keeper {i % 12}. Fact: {fact} in case {i % 12}. Record index: {i}."
            docs.append(Document(f"{dom}_{i:03d}", text, "", {"domain": dom}))
        for i in range(12):
            queries.append(
                Query(
                    f"{dom}_q{i}",
                    f"{dom} keeper {i} {facts[i % 4]} case {i}",
                    {f"{dom}_{i:03d}": 1},
                    {"domain": dom},
                )
            )
    corpus = Corpus(docs)
    result = mine_hard_negatives(
        corpus, queries, hard_negatives_per_query=5, cross_domain_negatives_per_query=2
    )
    check_no_twin_negatives(corpus, result)
    for row in result.hard_negatives:
        pos = row["relevant_doc_ids"][0]
        dom, idx = pos.rsplit("_", 1)
        twin = f"{dom}_{int(idx) + 12:03d}"
        assert twin in row["suspected_false_negative_doc_ids"]
        assert twin not in row["hard_negative_doc_ids"]


def test_exact_duplicates_caught_even_with_threshold_off():
    docs = [
        Document("a", "the reef is safe at high tide", "", {"domain": "x"}),
        Document("a2", "The reef is safe at HIGH tide!", "", {"domain": "x"}),
        Document("a3", "the reef is safe at high tide, mostly", "", {"domain": "x"}),
        Document("b", "tide tables for the reef", "", {"domain": "x"}),
    ]
    q = [Query("q", "reef safe high tide", {"a": 1}, {"domain": "x"})]
    res = mine_hard_negatives(Corpus(docs), q, near_duplicate_threshold=None, stopwords=None, stemmer=None)
    row = res.hard_negatives[0]
    assert row["suspected_false_negative_doc_ids"] == ["a2"]
    assert (
        "a3" in row["hard_negative_doc_ids"]
    )  # a near (not exact) duplicate, allowed with the threshold off
    res = mine_hard_negatives(Corpus(docs), q, near_duplicate_threshold=0.7, stopwords=None, stemmer=None)
    assert set(res.hard_negatives[0]["suspected_false_negative_doc_ids"]) == {"a2", "a3"}


# ----------------------------------------------------------------------------- controls


def small_world() -> tuple[Corpus, list[Query]]:
    """One query with a known ranking: doc n{i} repeats 'harbor' less as i grows; n0-n2 also
    name the pilot, so they score close to the positive."""
    docs = [Document("pos", "harbor harbor harbor pilot", "", {"domain": "naval"})]
    for i in range(8):
        words = ["harbor"] * (8 - i) + ["filler"] * (i + 1) + (["pilot"] if i < 3 else [])
        docs.append(Document(f"n{i}", " ".join(words), "", {"domain": "naval"}))
    for dom in ["lore", "quests", "memory"]:
        for i in range(3):
            docs.append(
                Document(f"{dom}{i}", " ".join(["harbor"] * (3 - i) + [dom] * 4), "", {"domain": dom})
            )
    return Corpus(docs), [Query("q", "harbor pilot", {"pos": 1}, {"domain": "naval"})]


def plain(**kw):
    return MiningSettings(stopwords=None, stemmer=None, **kw)


def test_rank_window():
    corpus, qs = small_world()
    full = mine_hard_negatives(
        corpus, qs, plain(hard_negatives_per_query=20, cross_domain_negatives_per_query=0)
    )
    ranks = {n["doc_id"]: n["rank"] for n in full.hard_negatives[0]["hard_negatives"]}
    res = mine_hard_negatives(corpus, qs, plain(hard_negatives_per_query=20, rank_range=(3, 6)))
    row = res.hard_negatives[0]
    got = row["hard_negatives"]
    assert got and all(3 <= n["rank"] <= 6 for n in got)
    assert {n["doc_id"] for n in got if n["same_domain"]} == {d for d, r in ranks.items() if 3 <= r <= 6}
    assert res.summary["negatives"]["dropped_by_rank_range"] > 0


def test_score_ratio_is_positive_aware():
    corpus, qs = small_world()
    res = mine_hard_negatives(corpus, qs, plain(hard_negatives_per_query=20, max_score_ratio=0.6))
    row = res.hard_negatives[0]
    ceiling = 0.6 * row["positive_scores"]["pos"]
    assert row["hard_negatives"] and all(n["score"] <= ceiling + 1e-6 for n in row["hard_negatives"])
    full = mine_hard_negatives(corpus, qs, plain(hard_negatives_per_query=20))
    dropped = [n for n in full.hard_negatives[0]["hard_negatives"] if n["score"] > ceiling]
    assert dropped and res.summary["negatives"]["dropped_by_score_ratio"] == len(dropped)


def test_cross_domain_negatives_spread_across_domains():
    corpus, qs = small_world()
    res = mine_hard_negatives(
        corpus, qs, plain(hard_negatives_per_query=2, cross_domain_negatives_per_query=3)
    )
    row = res.hard_negatives[0]
    domains = [n["domain"] for n in row["hard_negatives"] if not n["same_domain"]]
    assert sorted(domains) == ["lore", "memory", "quests"]  # one from each, not three from one
    assert all(d == "naval" for d in (n["domain"] for n in row["hard_negatives"] if n["same_domain"]))
    res = mine_hard_negatives(
        corpus, qs, plain(hard_negatives_per_query=2, cross_domain_negatives_per_query=6)
    )
    domains = [n["domain"] for n in res.hard_negatives[0]["hard_negatives"] if not n["same_domain"]]
    assert sorted(domains) == ["lore", "lore", "memory", "memory", "quests", "quests"]


def test_asking_for_more_than_exist_gives_fewer_and_says_so():
    corpus, qs = small_world()
    res = mine_hard_negatives(
        corpus, qs, plain(hard_negatives_per_query=50, cross_domain_negatives_per_query=50)
    )
    assert len(res.hard_negatives[0]["hard_negative_same_domain_doc_ids"]) == 8
    assert res.summary["negatives"]["queries_short_of_same_domain"] == 1
    assert res.summary["negatives"]["queries_short_of_cross_domain"] == 1


def test_huge_counts_are_safe():
    corpus, qs = small_world()
    res = mine_hard_negatives(
        corpus,
        qs,
        plain(
            hard_negatives_per_query=10**12, cross_domain_negatives_per_query=10**12, candidate_depth=10**12
        ),
    )
    assert len(res.hard_negatives[0]["hard_negative_doc_ids"]) == 8 + 9


def test_graded_gold_never_makes_a_relevant_doc_negative():
    corpus, _ = small_world()
    qs = [Query("q", "harbor pilot", {"pos": 2, "n0": 1}, {"domain": "naval"})]
    res = mine_hard_negatives(corpus, qs, plain(min_positive_grade=2))
    row = res.hard_negatives[0]
    assert row["positive_doc_ids"] == ["pos"] and "n0" not in row["hard_negative_doc_ids"]
    assert all(p["positive_doc_id"] == "pos" for p in res.pairs)


# ----------------------------------------------------------------------------- sampling


def test_random_sampling_within_window_and_reproducible():
    corpus = bdnsca.read_corpus(DATA / "retrieval_corpus_wide.jsonl")
    queries = bdnsca.read_queries(DATA / "retrieval_gold_wide.jsonl")
    kw = dict(sampling="random", rank_range=(3, 40), hard_negatives_per_query=5)
    a = mine_hard_negatives(corpus, queries, seed=1, **kw)
    b = mine_hard_negatives(corpus, queries, seed=1, **kw)
    c = mine_hard_negatives(corpus, queries, seed=2, **kw)
    assert a.hard_negatives == b.hard_negatives and a.pairs == b.pairs
    assert a.hard_negatives != c.hard_negatives
    for row in a.hard_negatives + c.hard_negatives:
        assert all(3 <= n["rank"] <= 40 for n in row["hard_negatives"])


def test_same_seed_gives_byte_identical_files(tmp_path):
    outs = []
    for run in ("a", "b"):
        d = tmp_path / run
        r = run_cli(
            "mine-negatives",
            "--retrieval-gold", DATA / "retrieval_gold_wide.jsonl",
            "--retrieval-corpus", DATA / "retrieval_corpus_wide.jsonl",
            "--sampling", "random", "--seed", "7", "--rank-range", "2:60",
            "--output-hard-negatives", d / "hn.jsonl",
            "--output-reranker-pairs", d / "pairs.jsonl",
            "--output-summary", d / "summary.json",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        outs.append(d)
    for name in ("hn.jsonl", "pairs.jsonl"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in outs)
    s1.pop("timings_s"), s2.pop("timings_s")
    s1.pop("outputs"), s2.pop("outputs")
    assert s1 == s2


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["pairwise", "triplet", "pointwise"])
def test_pair_formats(fmt):
    corpus, qs = small_world()
    res = mine_hard_negatives(
        corpus, qs, plain(pair_format=fmt, hard_negatives_per_query=3, cross_domain_negatives_per_query=2)
    )
    cols = {
        "pairwise": {
            "query_id", "query", "positive_doc_id", "negative_doc_id", "positive_text",
            "negative_text", "positive_title", "negative_title", "label",
        },
        "triplet": {"anchor", "positive", "negative"},
        "pointwise": {"query", "doc_id", "text", "label"},
    }[fmt]  # fmt: skip
    assert res.pairs and all(set(p) == cols for p in res.pairs)
    if fmt == "pointwise":
        assert sorted(p["label"] for p in res.pairs) == [0, 0, 0, 0, 0, 1]
    else:
        assert len(res.pairs) == 5  # 1 positive x (3 same-domain + 2 cross-domain)


def test_max_pairs_per_query():
    corpus, qs = small_world()
    res = mine_hard_negatives(corpus, qs, plain(max_pairs_per_query=2))
    assert len(res.pairs) == 2


# ----------------------------------------------------------------------------- bad input


def test_missing_gold_documents_counted_or_strict():
    corpus, _ = small_world()
    qs = [
        Query("q1", "harbor", {"pos": 1, "ghost": 1}, {"domain": "naval"}),
        Query("q2", "harbor", {"ghost2": 1}, {"domain": "naval"}),
        Query("q3", "harbor", {}, {"domain": "naval"}),
    ]
    res = mine_hard_negatives(corpus, qs, plain())
    assert res.summary["missing_gold_documents"]["count"] == 2
    assert res.summary["queries"] == {
        "total": 3,
        "used": 1,
        "skipped": {"no_positive_in_corpus_or_grade": 1, "no_positives": 1},
    }
    with pytest.raises(bdnsca.BdnscaError, match="missing from the corpus"):
        mine_hard_negatives(corpus, qs, plain(strict=True))


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(rank_range=(5, 2)), "rank range"),
        (dict(sampling="best"), "sampling"),
        (dict(pair_format="quad"), "pair format"),
        (dict(candidate_depth=0), "depth"),
    ],
)
def test_bad_settings(kw, msg):
    corpus, qs = small_world()
    with pytest.raises(bdnsca.BdnscaError, match=msg):
        mine_hard_negatives(corpus, qs, plain(**kw))


def test_cli_errors_leave_no_outputs(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"query_id": "q", "query": "x", "relevant_doc_ids": ["a"]}\n')
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"doc_id": "a", "text": "x"}\n{"doc_id": "a", "text": "y"}\n')
    r = run_cli("mine-negatives", "--retrieval-gold", gold, "--retrieval-corpus", corpus)
    assert r.returncode == 1 and "duplicate document id 'a'" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "gold.jsonl"]
    r = run_cli("mine-negatives", "--retrieval-gold", gold, "--retrieval-corpus", corpus, "--rank-range", "9")
    assert r.returncode == 1 and "MIN:MAX" in r.stderr


def test_default_output_paths():
    hn, pairs, summary = default_output_paths("data/retrieval_gold_wide.jsonl")
    assert (str(hn), str(pairs), str(summary)) == (
        "data/retrieval_hard_negatives_wide.jsonl",
        "data/retrieval_reranker_pairs_wide.jsonl",
        "data/retrieval_hard_negatives_wide.summary.json",
    )


# ----------------------------------------------------------------------------- the playbook


@pytest.mark.parametrize("source", ["bundled", "shared"])
def test_playbook_command_as_written(tmp_path, source):
    src = DATA if source == "bundled" else SHARED / "npc-ai"
    if not (src / "retrieval_gold_wide.jsonl").exists():
        pytest.skip(f"{src} not found (the shared data lives in ../shared/data)")
    (tmp_path / "data").mkdir()
    for name in ("retrieval_gold_wide.jsonl", "retrieval_corpus_wide.jsonl"):
        shutil.copy(src / name, tmp_path / "data" / name)
    r = run_cli(
        "mine-negatives",
        "--retrieval-gold", "data/retrieval_gold_wide.jsonl",
        "--retrieval-corpus", "data/retrieval_corpus_wide.jsonl",
        "--hard-negatives-per-query", "10",
        "--cross-domain-negatives-per-query", "4",
        cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = tmp_path / "data"
    summary = json.loads((out / "retrieval_hard_negatives_wide.summary.json").read_text())
    rows = [json.loads(x) for x in (out / "retrieval_hard_negatives_wide.jsonl").read_text().splitlines()]
    pairs = (out / "retrieval_reranker_pairs_wide.jsonl").read_text().splitlines()
    assert len(rows) == summary["queries"]["used"] and len(pairs) == summary["pairs"] > 0
    kept_out = summary["suspected_false_negatives"]["count"]
    assert kept_out > 0 and "kept out" in r.stderr
    corpus = bdnsca.read_corpus(out / "retrieval_corpus_wide.jsonl")

    class R:
        hard_negatives = rows

    check_no_twin_negatives(corpus, R)
    if source == "shared":
        # every query's twin (doc i +/- 12, same text but the record index) is kept out
        assert summary["queries"]["used"] == 240
        print(f"shared data: {kept_out} suspected false negatives kept out of {len(pairs)} pairs")


# ----------------------------------------------------------------------------- a prebuilt index


def _negatives(result) -> list[tuple[str, list[tuple[str, int]], list[str]]]:
    return [
        (
            r["query_id"],
            [(n["doc_id"], n["rank"]) for n in r["hard_negatives"]],
            r["suspected_false_negative_doc_ids"],
        )
        for r in result.hard_negatives
    ]


def _twin_world() -> tuple[Corpus, list[Query]]:
    """Two queries over naval documents and three other domains, with a twin of a positive,
    and no two candidates tied in score (so the rows do not depend on how ties are broken)."""
    corpus, qs = small_world()
    docs = [d for d in corpus.documents if d.fields["domain"] == "naval"]
    docs.append(Document("pos_twin", "Harbor harbor harbor, pilot!", "", {"domain": "naval"}))
    for j, dom in enumerate(["lore", "quests", "memory"]):
        for i in range(3):
            words = ["harbor"] * (3 - i) + [dom] * (11 + j)
            docs.append(Document(f"{dom}{i}", " ".join(words), "", {"domain": dom}))
    qs = qs + [Query("q2", "filler", {"n7": 1}, {"domain": "naval"})]
    return Corpus(docs), qs


def test_prebuilt_index_maps_documents_by_id_not_position():
    """An index built over the corpus in another order gives the same rows as one built over
    the corpus itself. (Mapping by position, as before, turned the reversed index's positions
    into the wrong documents: other ids, and the positive's twin no longer caught.)"""
    corpus, qs = _twin_world()
    kw = dict(hard_negatives_per_query=20, cross_domain_negatives_per_query=3)
    expected = mine_hard_negatives(corpus, qs, **kw)
    for row in expected.hard_negatives:
        scores = [n["score"] for n in row["hard_negatives"]]
        assert len(set(scores)) == len(scores), "the test needs untied candidates"
    reversed_corpus = Corpus(corpus.documents[::-1])
    bm25 = bdnsca.build_index(reversed_corpus)
    got = mine_hard_negatives(corpus, qs, bm25=bm25, **kw)
    assert _negatives(got) == _negatives(expected)
    assert got.pairs == expected.pairs
    assert "pos_twin" in got.hard_negatives[0]["suspected_false_negative_doc_ids"]
    # and a shuffled corpus against an index in the original order
    shuffled = corpus.documents[:]
    random.Random(3).shuffle(shuffled)
    got = mine_hard_negatives(Corpus(shuffled), qs, bm25=bdnsca.build_index(corpus), **kw)
    assert _negatives(got) == _negatives(expected)
    assert got.summary["retrieval"]["index"] == "reused"


def test_prebuilt_index_refuses_a_corpus_with_other_ids():
    corpus, qs = small_world()
    bm25 = bdnsca.build_index(corpus)
    docs = corpus.documents
    renamed = Corpus([Document("stranger", docs[0].text, "", docs[0].fields)] + docs[1:])
    with pytest.raises(bdnsca.BdnscaError, match="'stranger'"):
        mine_hard_negatives(renamed, qs, bm25=bm25)
    with pytest.raises(bdnsca.BdnscaError, match="index holds document 'n7', the corpus does not"):
        mine_hard_negatives(Corpus([d for d in docs if d.doc_id != "n7"]), qs, bm25=bm25)
    with pytest.raises(bdnsca.BdnscaError, match="'n3' twice"):
        mine_hard_negatives(Corpus(docs[:-1] + [docs[4]]), qs, bm25=bm25)


def test_prebuilt_index_tokenizer_and_method_are_used_and_recorded():
    corpus, qs = _twin_world()
    stemmed = dict(
        method="bm25+", k1=1.2, b=0.5, delta=0.25, stopwords="en", stemmer="english", pattern="bm25s"
    )
    direct = mine_hard_negatives(corpus, qs, **stemmed)
    bm25 = bdnsca.build_index(
        corpus,
        method="bm25+",
        k1=1.2,
        b=0.5,
        delta=0.25,
        tokenizer=bdnsca.Tokenizer(stopwords="en", stemmer="english", pattern="bm25s"),
    )
    reused = mine_hard_negatives(corpus, qs, bm25=bm25)  # the settings' defaults differ
    assert _negatives(reused) == _negatives(direct)
    want = {**stemmed, "lowercase": True}
    assert {k: reused.summary["retrieval"][k] for k in want} == want
    assert {k: reused.summary["settings"][k] for k in want} == want
    assert {k: direct.summary["retrieval"][k] for k in want} == want
    assert direct.summary["retrieval"]["index"] == "built"


def test_index_and_mine_negatives_share_one_default_tokenizer(tmp_path):
    """`bdnsca index` and `bdnsca mine-negatives` with no tokenizer flags tokenise alike, and
    the summary says how."""
    corpus_path = DATA / "retrieval_corpus_wide.jsonl"
    r = run_cli("index", "--corpus", corpus_path, "--output", tmp_path / "idx.bm25")
    assert r.returncode == 0, r.stderr
    index_defaults = retrieval_settings(bdnsca.BM25.load(tmp_path / "idx.bm25"))
    assert index_defaults["stopwords"] is None and index_defaults["stemmer"] is None
    r = run_cli(
        "mine-negatives",
        "--retrieval-gold", DATA / "retrieval_gold_wide.jsonl",
        "--retrieval-corpus", corpus_path,
        "--output-hard-negatives", tmp_path / "hn.jsonl",
        "--output-reranker-pairs", tmp_path / "pairs.jsonl",
        "--output-summary", tmp_path / "summary.json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {k: v for k, v in summary["retrieval"].items() if k != "index"} == index_defaults
    # --index reuses the saved index: the same rows, recorded as reused
    r = run_cli(
        "mine-negatives",
        "--retrieval-gold", DATA / "retrieval_gold_wide.jsonl",
        "--retrieval-corpus", corpus_path,
        "--index", tmp_path / "idx.bm25",
        "--output-hard-negatives", tmp_path / "hn2.jsonl",
        "--output-reranker-pairs", tmp_path / "pairs2.jsonl",
        "--output-summary", tmp_path / "summary2.json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "hn2.jsonl").read_bytes() == (tmp_path / "hn.jsonl").read_bytes()
    assert json.loads((tmp_path / "summary2.json").read_text())["retrieval"]["index"] == "reused"
    r = run_cli(
        "mine-negatives",
        "--retrieval-gold", DATA / "retrieval_gold_wide.jsonl",
        "--retrieval-corpus", corpus_path,
        "--index", tmp_path / "idx.bm25",
        "--stemmer", "english",
    )  # fmt: skip
    assert r.returncode != 0 and "--index brings its own" in r.stderr


# ----------------------------------------------------------------------------- score ceiling


def test_score_ceiling_ignores_positives_scoring_zero():
    """A positive sharing no term with the query scores 0; the ceiling comes from the other
    positive (before, the 0 made the ceiling 0 and every candidate was dropped)."""
    corpus, _ = small_world()
    corpus = Corpus(corpus.documents + [Document("pos0", "anchor chain", "", {"domain": "naval"})])
    qs = [Query("q", "harbor pilot", {"pos": 1, "pos0": 1}, {"domain": "naval"})]
    res = mine_hard_negatives(corpus, qs, plain(hard_negatives_per_query=20, max_score_ratio=0.6))
    row = res.hard_negatives[0]
    assert row["positive_scores"]["pos0"] == 0.0
    ceiling = 0.6 * row["positive_scores"]["pos"]
    full = mine_hard_negatives(corpus, qs, plain(hard_negatives_per_query=20))
    below = [n["doc_id"] for n in full.hard_negatives[0]["hard_negatives"] if n["score"] <= ceiling]
    assert below and [n["doc_id"] for n in row["hard_negatives"]] == below
    n_above = len(full.hard_negatives[0]["hard_negatives"]) - len(below)
    assert res.summary["negatives"]["dropped_by_score_ratio"] == n_above > 0
    assert {p["positive_doc_id"] for p in res.pairs} == {"pos", "pos0"}


def test_query_whose_positives_all_score_zero_is_skipped_under_a_ceiling():
    corpus, qs = small_world()
    corpus = Corpus(corpus.documents + [Document("pos0", "anchor chain", "", {"domain": "naval"})])
    qs = qs + [Query("q0", "harbor pilot", {"pos0": 1}, {"domain": "naval"})]
    res = mine_hard_negatives(corpus, qs, plain(max_score_ratio=0.9))
    assert [r["query_id"] for r in res.hard_negatives] == ["q"]
    assert res.summary["queries"] == {"total": 2, "used": 1, "skipped": {"positives_all_score_zero": 1}}
    assert all(p["query_id"] == "q" for p in res.pairs)
    # without a ceiling, q0 is mined as usual
    res = mine_hard_negatives(corpus, qs, plain())
    assert [r["query_id"] for r in res.hard_negatives] == ["q", "q0"]
    assert res.hard_negatives[1]["hard_negative_doc_ids"]


# ----------------------------------------------------------------------------- non-ASCII twins


def jaccard5_bytes(a: str, b: str) -> float:
    """What the miner measured before: 5-byte windows of the UTF-8 encoding."""
    ea, eb = a.encode(), b.encode()
    sa = {ea[i : i + 5] for i in range(len(ea) - 4)} or {ea}
    sb = {eb[i : i + 5] for i in range(len(eb) - 4)} or {eb}
    return len(sa & sb) / len(sa | sb)


CYRILLIC = "абвгдежзийклмнопрстуфхцчшщыэюя"
CJK = "港船長安全航路知危険灯台海風波潮岸島"
BASES = {
    "cyrillic": "Капитан ведёт корабль через узкий пролив у старого маяка, когда ветер стихает к ночи",
    "cjk": "港の船長は夜に安全な航路を知っている灯台の光を見て船を岸へ導く"
    "風が強い日には島の近くで波が高くなるので漁師たちは早く港に戻る",
}


def _variants(base: str, alphabet: str, rng: random.Random, n: int) -> list[str]:
    """Copies of base with 1..n characters replaced (spaces kept, so words stay words)."""
    out = []
    letters = [i for i, c in enumerate(base) if c.isalpha()]
    for k in range(1, n + 1):
        chars = list(base)
        for i in rng.sample(letters, k):
            chars[i] = rng.choice(alphabet)
        out.append("".join(chars))
    return out


@pytest.mark.parametrize("script", ["cyrillic", "cjk"])
def test_non_ascii_twins_are_character_5gram_jaccard(script):
    """Suspects among non-ASCII near copies are exactly those whose character 5-gram Jaccard
    (a brute-force reference) reaches the threshold."""
    rng = random.Random(7)
    base = BASES[script]
    alphabet = CYRILLIC if script == "cyrillic" else CJK
    variants = _variants(base, alphabet, rng, 14) + _variants(base, alphabet, rng, 14)
    docs = [Document("rel", f"маяк {base}", "", {"domain": "x"})]
    docs += [Document(f"v{i}", f"маяк {v}", "", {"domain": "x"}) for i, v in enumerate(variants)]
    corpus = Corpus(docs)
    qs = [Query("q", "маяк", {"rel": 1}, {"domain": "x"})]
    res = mine_hard_negatives(corpus, qs, hard_negatives_per_query=100, near_duplicate_threshold=0.8)
    row = res.hard_negatives[0]
    rel = normalise(docs[0].text)
    ref = {d.doc_id: jaccard5(normalise(d.text), rel) for d in docs[1:]}
    assert set(row["suspected_false_negative_doc_ids"]) == {d for d, j in ref.items() if j >= 0.8}
    assert set(row["hard_negative_doc_ids"]) == {d for d, j in ref.items() if j < 0.8}
    for s in row["suspected_false_negatives"]:
        assert s["similarity"] == round(ref[s["doc_id"]], 4)
    # the data tell characters from bytes: some copies are twins only by 5-byte windows
    byte_only = [d for d in docs[1:] if ref[d.doc_id] < 0.8 <= jaccard5_bytes(normalise(d.text), rel)]
    assert byte_only and {d.doc_id for d in byte_only}.isdisjoint(row["suspected_false_negative_doc_ids"])
    assert any(j >= 0.8 for j in ref.values())


@settings(max_examples=40, deadline=None)
@given(
    st.text(alphabet=CYRILLIC + CJK + "ab ", min_size=1, max_size=40),
    st.text(alphabet=CYRILLIC + CJK + "ab ", min_size=1, max_size=40),
)
def test_twin_similarity_matches_reference_on_random_unicode(a, b):
    na, nb = normalise(a), normalise(b)
    if not na or not nb or na == nb:
        return
    docs = [
        Document("rel", f"маяк {a}", "", {"domain": "x"}),
        Document("cand", f"маяк {b}", "", {"domain": "x"}),
    ]
    qs = [Query("q", "маяк", {"rel": 1}, {"domain": "x"})]
    j = jaccard5(normalise(docs[1].text), normalise(docs[0].text))
    res = mine_hard_negatives(Corpus(docs), qs, near_duplicate_threshold=min(max(j, 1e-9), 1.0))
    row = res.hard_negatives[0]
    # at threshold j the candidate is a twin with similarity j exactly
    assert row["suspected_false_negative_doc_ids"] == ["cand"]
    assert row["suspected_false_negatives"][0]["similarity"] == round(j, 4)
