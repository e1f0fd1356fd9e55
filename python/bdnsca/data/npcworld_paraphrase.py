"""Paraphrased queries over the bundled NPC world: players rarely use a document's own words.

``retrieval_gold_wide.jsonl`` asks for documents in their own words (a role, action, place or
fact copied verbatim), so BM25 already ranks as well as any ranker can there: what it misses is
what the query leaves ambiguous. These queries ask for the same documents in *other* words (a
role, an action described rather than named; proper place names kept, as players type them), the
vocabulary mismatch that rerankers and dense retrieval exist for.

Every query states a role, an action and a place (the paraphrases never state the fact), and
its judgements follow from exactly what it states: **2** = a document whose role, action and place
all match (one or two documents: the world has two facts per role/action/place), **1** = a
document matching two of the three (partial: the right NPC and task elsewhere, the right NPC and
place for another task, or the right task and place from another NPC), unjudged (0) otherwise.
Each role/action/place is asked once per domain, so no query text appears twice. As in the wide
gold, the exact and near twins (``*_copy_*``, ``*_revised_*``) stay unjudged.

Written to ``data/retrieval_gold_paraphrase.jsonl`` by ``data/generate.py`` (its own seeded
random stream, so the other bundled files are unchanged by it).
"""

from __future__ import annotations

import random

ROLES: dict[str, str] = {
    "archive keeper": "keeper of the old records",
    "bard of the old road": "travelling singer",
    "temple historian": "scholar who studies the shrine's past",
    "exiled chronicler": "banished writer of histories",
    "harbor captain": "officer who runs the port",
    "guild quartermaster": "supply officer of the guild",
    "village elder": "oldest person in the hamlet",
    "wandering knight": "roaming swordsman",
    "grumpy blacksmith": "bad-tempered smith",
    "cheerful innkeeper": "jolly tavern owner",
    "secretive herbalist": "tight-lipped plant healer",
    "retired mercenary": "old sellsword",
    "player companion": "friend who travels with me",
    "town guard": "watchman",
    "tavern regular": "drinker who is always at the bar",
    "ferryman": "boatman who carries people across",
    "infirmary steward": "person who runs the sickhouse",
    "field surgeon": "battlefield doctor",
    "plague doctor": "beaked physician",
    "village midwife": "woman who delivers babies",
    "border mediator": "peacemaker at the frontier",
    "royal envoy": "king's messenger",
    "treaty scribe": "clerk who writes up agreements",
    "guild ambassador": "representative of the guilds",
    "harbor master": "chief of the docks",
    "ship pilot": "helmsman who guides vessels in",
    "navy quartermaster": "supply officer of the fleet",
    "lighthouse keeper": "beacon tender",
    "siege engineer": "builder of war machines",
    "bridge builder": "mason who spans rivers",
    "mill wright": "millwheel mechanic",
    "tunnel foreman": "boss of the diggers",
    "orchard hand": "fruit picker",
    "shepherd": "sheep herder",
    "granary keeper": "grain store warden",
    "beekeeper": "honey farmer",
    "temple warden": "guardian of the sanctuary",
    "rune carver": "engraver of magic letters",
    "oracle acolyte": "seer's apprentice",
    "ward keeper": "protector of the magic barriers",
}

ACTIONS: dict[str, str] = {
    "recount the founding": "tell how the city began",
    "verify a legend": "check whether an old tale is true",
    "name the first king": "learn who ruled first",
    "trace a bloodline": "follow a family's ancestry",
    "escort the salt caravan": "guard the wagons carrying salt",
    "recover the stolen ledger": "get back the account book that was taken",
    "clear the old mine": "drive the monsters out of the abandoned diggings",
    "deliver the sealed letter": "carry the closed message",
    "greet a stranger": "welcome a newcomer",
    "haggle over prices": "bargain for a better deal",
    "refuse a favour": "turn down a request",
    "share a rumour": "pass on some gossip",
    "recall a past promise": "remember an old vow",
    "remember a debt": "bring up money that is owed",
    "recognise a returning hero": "know a champion who came back",
    "mention a shared battle": "talk about a fight we were both in",
    "assign a ward bed": "find a sick person somewhere to lie down",
    "treat a venom wound": "heal a poisonous bite",
    "quarantine a patient": "isolate someone who is ill",
    "prepare a poultice": "make a healing compress",
    "request an audience": "ask for a meeting",
    "draft a ceasefire": "write up a truce",
    "exchange hostages": "swap prisoners",
    "renew a trade pact": "extend the commerce agreement",
    "chart a safe channel": "map a passage ships can use",
    "inspect a cargo hold": "check what a ship carries below deck",
    "signal the fleet": "send a message to the warships",
    "repair the mainsail": "mend the big sail",
    "reinforce the gate": "strengthen the entrance doors",
    "survey the riverbank": "measure the shore of the stream",
    "repair the water wheel": "fix the paddle wheel",
    "shore up the tunnel": "brace the underground passage",
    "rotate the pasture": "move the flock to fresh grass",
    "store the harvest": "put away the crops",
    "prune the orchard": "trim the fruit trees",
    "tend the hives": "look after the bees",
    "stabilize the ward": "steady the protective spell",
    "bless a blade": "sanctify a sword",
    "read the omens": "interpret the signs",
    "consecrate the shrine": "make the altar holy",
}

TEMPLATES = [
    "How would the {role} over by {place} have me {action}?",
    "Which {role} around {place} could walk me through how to {action}?",
    "What can the {role} near {place} tell me about how to {action}?",
    "I want to {action}. Does the {role} around {place} know the details?",
]
"""each states role, action and place: the grades below depend on all three"""

STATED = ("role", "action", "place")


def grade(query_attrs: dict, doc_attrs: dict) -> int:
    """2 = role, action and place all match; 1 = two of the three match; 0 otherwise."""
    matched = sum(query_attrs[k] == doc_attrs[k] for k in STATED)
    return 2 if matched == 3 else 1 if matched == 2 else 0


def paraphrase_queries(
    rng: random.Random, docs: list[dict], attrs: dict[str, dict], per_domain: int
) -> list[dict]:
    """``per_domain`` paraphrased queries per domain, each for a distinct role/action/place of
    the world's original documents (not its twins) drawn from ``rng``, graded by :func:`grade`."""
    by_domain: dict[str, list[str]] = {}
    for d in docs:
        if d["doc_id"] in attrs:
            by_domain.setdefault(d["domain"], []).append(d["doc_id"])
    out: list[dict] = []
    for domain in sorted(by_domain):
        ids = sorted(by_domain[domain])
        triples = sorted({tuple(attrs[i][k] for k in STATED) for i in ids})
        if len(triples) < per_domain:
            raise ValueError(
                f"domain {domain!r} has {len(triples)} distinct role/action/place, "
                f"fewer than the {per_domain} queries asked"
            )
        for qi, triple in enumerate(rng.sample(triples, per_domain)):
            a = dict(zip(STATED, triple, strict=True))
            text = TEMPLATES[qi % len(TEMPLATES)].format(
                role=ROLES[a["role"]], action=ACTIONS[a["action"]], place=a["place"]
            )
            grades = {i: g for i in ids if (g := grade(a, attrs[i])) > 0}
            ranked = sorted(grades, key=lambda d: (-grades[d], d))
            out.append(
                {
                    "query_id": f"{domain}_pq_{qi:03d}",
                    "query": text,
                    "relevant_doc_ids": ranked,
                    "relevant_doc_grades": {d: grades[d] for d in ranked},
                    "domain": domain,
                }
            )
    return out


__all__ = ["ACTIONS", "ROLES", "STATED", "TEMPLATES", "grade", "paraphrase_queries"]
