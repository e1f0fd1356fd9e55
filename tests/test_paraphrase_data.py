"""The bundled paraphrased gold: the file is what the generator writes, queries ask in other words
than the documents' (no role or action phrase copied), and the grades follow what each query
states (2 = role, action and place all match, 1 = two of the three), checked by reading the role,
action and place back out of the query's words and the documents' own text."""

from __future__ import annotations

import json
import re

from bdnsca.data.npcworld import DOMAINS, world
from bdnsca.data.npcworld_paraphrase import ACTIONS, ROLES
from conftest import DATA


def _attrs(text: str) -> tuple[str, str, str]:
    m = re.match(r"The (.+) explains how to (.+) at (.+)\. Key fact: ", text)
    assert m, text
    return m[1], m[2], m[3]


def test_file_is_the_generators_and_other_files_unchanged():
    w = world()
    lines = (DATA / "retrieval_gold_paraphrase.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == w["retrieval_gold_paraphrase.jsonl"]
    wide = (DATA / "retrieval_gold_wide.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in wide] == w["retrieval_gold_wide.jsonl"]  # its own random stream


def _stated(query: str, domain: str) -> tuple[str, str, str]:
    """The role, action and place a query's words state, read back through the paraphrase tables:
    exactly one of each of its domain's, or the query is ambiguous."""
    v = DOMAINS[domain]
    roles = [r for r in v["roles"] if ROLES[r] in query]
    actions = [a for a in v["actions"] if ACTIONS[a] in query]
    places = [p for p in v["places"] if re.search(rf"\b{re.escape(p)}\b", query)]
    assert len(roles) == len(actions) == len(places) == 1, (query, roles, actions, places)
    return roles[0], actions[0], places[0]


def test_queries_use_other_words_and_grades_follow_the_rule():
    w = world()
    docs = {d["doc_id"]: d for d in w["retrieval_corpus_wide.jsonl"]}
    phrases = {p for v in DOMAINS.values() for p in v["roles"] + v["actions"]}
    queries = w["retrieval_gold_paraphrase.jsonl"]
    assert len(queries) == 240 and len({q["query_id"] for q in queries}) == 240
    assert len({q["query"] for q in queries}) == 240  # no query text twice (with two gradings)
    for q in queries:
        text = q["query"].lower()
        assert not [p for p in phrases if re.search(rf"\b{re.escape(p)}\b", text)], q["query"]
        stated = _stated(q["query"], q["domain"])
        originals = {  # twins stay unjudged, as in the wide gold
            d: _attrs(doc["text"])
            for d, doc in docs.items()
            if doc["domain"] == q["domain"] and re.fullmatch(rf"{q['domain']}_doc_\d+", d)
        }
        matches = {d: sum(x == y for x, y in zip(a, stated, strict=True)) for d, a in originals.items()}
        grades = q["relevant_doc_grades"]
        assert {d for d, g in grades.items() if g == 2} == {d for d, m in matches.items() if m == 3}
        assert {d for d, g in grades.items() if g == 1} == {d for d, m in matches.items() if m == 2}
        assert set(grades) <= set(originals) and q["relevant_doc_ids"][0] in grades
