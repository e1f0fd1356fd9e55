"""Hard-negative mining: twins of positives are never negatives, outputs are reproducible,
and each control (rank window, score ratio, domain balance) does what it says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

import bdnsca
from bdnsca.data.io import Corpus, Document, Query
from bdnsca.retrieval.mining import MiningSettings, default_output_paths, mine_hard_negatives
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
    bm25 = bdnsca.build_index(corpus, tokenizer=bdnsca.Tokenizer(stopwords="en", stemmer="english"))
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
