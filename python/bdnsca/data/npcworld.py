"""bdnsca's example NPC world, for retrieval, mining, serving demos and tiny-model tokenizers.

Deterministic (seeded): ``python data/generate.py`` writes it to ``data/``, the same bytes every
time; :func:`world` builds it in memory, so installed copies of bdnsca have it too. The corpus has 10
domains; each document states one NPC role, one action, one place and one operational fact.
Queries ask for a document by two or three of those attributes, so documents that share the
others are near-miss distractors. Graded judgements: 2 = the document that answers, 1 = a
document about the same role and place that answers only in part. A few documents are exact
and near duplicates of judged-relevant documents under new ids and are left *unjudged*, as
real annotation leaves them: the hard-negative miner must not take them for negatives.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DOMAINS: dict[str, dict[str, list[str]]] = {
    "lore": {
        "roles": ["archive keeper", "bard of the old road", "temple historian", "exiled chronicler"],
        "actions": ["recount the founding", "verify a legend", "name the first king", "trace a bloodline"],
        "places": ["Emberfall", "the Drowned Library", "Saltmarch", "the Pale Citadel"],
        "facts": [
            "the comet returns every ninety winters",
            "the river Vess once ran backwards",
            "the crown was forged from meteor iron",
            "the founders sealed a pact with the wind spirits",
            "the old tongue has no word for surrender",
            "the first library burned during the ash storm",
            "the twin moons mark the harvest truce",
            "the citadel walls hold the bones of giants",
        ],
    },
    "quests": {
        "roles": ["harbor captain", "guild quartermaster", "village elder", "wandering knight"],
        "actions": [
            "escort the salt caravan",
            "recover the stolen ledger",
            "clear the old mine",
            "deliver the sealed letter",
        ],
        "places": ["Gloomfen", "the Copper Pass", "Redwater ford", "the Hollow Oak"],
        "facts": [
            "the reward is forty silver and a writ of passage",
            "the fen wardens demand a toll in amber",
            "bandits strike only after the third bell",
            "the mine shafts flood at high tide",
            "the letter must not be opened before dawn",
            "the caravan master distrusts elves",
            "a broken bridge forces a detour east",
            "the ledger is written in cipher",
        ],
    },
    "persona": {
        "roles": ["grumpy blacksmith", "cheerful innkeeper", "secretive herbalist", "retired mercenary"],
        "actions": ["greet a stranger", "haggle over prices", "refuse a favour", "share a rumour"],
        "places": ["the Anvil and Ale", "Thornbrook market", "the east gate", "the chapel steps"],
        "facts": [
            "speaks in short clipped sentences",
            "laughs at every misfortune",
            "never names her clients",
            "lost an eye at the siege of Harrow",
            "hums sea shanties while working",
            "calls everyone little sparrow",
            "quotes scripture when nervous",
            "keeps a pet raven named Ledger",
        ],
    },
    "memory": {
        "roles": ["player companion", "town guard", "tavern regular", "ferryman"],
        "actions": [
            "recall a past promise",
            "remember a debt",
            "recognise a returning hero",
            "mention a shared battle",
        ],
        "places": ["the north docks", "the burned mill", "the crossroads shrine", "the barracks yard"],
        "facts": [
            "the player saved his brother from wolves",
            "the player still owes twelve copper",
            "the player broke the mill wheel last spring",
            "the player swore to return the silver locket",
            "the player fought beside her at the ford",
            "the player sold him a cursed ring",
            "the player was once banished from town",
            "the player taught him to read",
        ],
    },
    "medicine": {
        "roles": ["infirmary steward", "field surgeon", "plague doctor", "village midwife"],
        "actions": ["assign a ward bed", "treat a venom wound", "quarantine a patient", "prepare a poultice"],
        "places": ["the infirmary", "the field tent", "the lazaret", "the herb garden"],
        "facts": [
            "silverleaf reduces venom",
            "boiled linen prevents rot fever",
            "moss poultice stops bleeding",
            "the lazaret holds twenty beds",
            "nightshade is kept under lock",
            "fever patients need willow bark tea",
            "burns are cooled with river clay",
            "the surgeon washes hands in vinegar",
        ],
    },
    "diplomacy": {
        "roles": ["border mediator", "royal envoy", "treaty scribe", "guild ambassador"],
        "actions": ["request an audience", "draft a ceasefire", "exchange hostages", "renew a trade pact"],
        "places": ["the neutral hall", "the river fort", "the envoy tent", "the marble court"],
        "facts": [
            "the sealed draft is stored in the archive vault",
            "envoys must arrive unarmed",
            "the treaty expires at midsummer",
            "gifts of salt signal peace",
            "the duke refuses to meet before noon",
            "hostages are exchanged at the bridge",
            "every clause needs two witnesses",
            "the guild vetoes tariffs above one tenth",
        ],
    },
    "naval": {
        "roles": ["harbor master", "ship pilot", "navy quartermaster", "lighthouse keeper"],
        "actions": [
            "chart a safe channel",
            "inspect a cargo hold",
            "signal the fleet",
            "repair the mainsail",
        ],
        "places": ["the south harbor", "the reef passage", "the dry dock", "the lighthouse"],
        "facts": [
            "the reef is safe only at high tide",
            "red lanterns mean quarantine",
            "smugglers hide casks under the ballast",
            "the fleet sails at the new moon",
            "the lighthouse lamp burns whale oil",
            "pilots are paid in advance",
            "storm flags fly from the north tower",
            "the dry dock holds two galleys",
        ],
    },
    "engineering": {
        "roles": ["siege engineer", "bridge builder", "mill wright", "tunnel foreman"],
        "actions": [
            "reinforce the gate",
            "survey the riverbank",
            "repair the water wheel",
            "shore up the tunnel",
        ],
        "places": ["the outer wall", "the stone bridge", "the grain mill", "the lower tunnels"],
        "facts": [
            "oak beams outlast pine by a decade",
            "the bridge carries four wagons at once",
            "the wheel turns faster in spring floods",
            "tunnels need a prop every six paces",
            "mortar sets in three days",
            "the gate hinges are forged in Emberfall",
            "catapults need thirty men to reload",
            "the mill gears are greased with tallow",
        ],
    },
    "agriculture": {
        "roles": ["orchard hand", "shepherd", "granary keeper", "beekeeper"],
        "actions": ["rotate the pasture", "store the harvest", "prune the orchard", "tend the hives"],
        "places": ["the west orchard", "the high pasture", "the granary", "the apiary"],
        "facts": [
            "orchard irrigation opens at sunrise",
            "sheep graze the high pasture after the thaw",
            "grain must stay below the damp line",
            "bees swarm before thunderstorms",
            "apples are picked before the first frost",
            "the granary rats fear cats more than traps",
            "honey is taxed at one jar in ten",
            "fallow fields are sown with clover",
        ],
    },
    "ritual": {
        "roles": ["temple warden", "rune carver", "oracle acolyte", "ward keeper"],
        "actions": ["stabilize the ward", "bless a blade", "read the omens", "consecrate the shrine"],
        "places": ["the moon temple", "the standing stones", "the crypt", "the sacred grove"],
        "facts": [
            "wards weaken during an eclipse",
            "runes must be carved with silver",
            "omens are read at midnight only",
            "salt circles keep spirits out",
            "the grove rejects iron tools",
            "candles of beeswax honor the dead",
            "the crypt door opens for the bloodline",
            "offerings of bread calm restless spirits",
        ],
    },
}

DOCS_PER_DOMAIN = 32
QUERIES_PER_DOMAIN = 16
PARAPHRASES_PER_DOMAIN = 24
"""queries of retrieval_gold_paraphrase.jsonl per domain (bdnsca.data.npcworld_paraphrase)"""


def make_documents(rng: random.Random) -> tuple[list[dict], dict[str, dict]]:
    docs: list[dict] = []
    attrs: dict[str, dict] = {}
    for domain, v in DOMAINS.items():
        combos = [
            (r, a, p, f)
            for r in range(4)
            for a in range(4)
            for p in range(4)
            for f in range(8)
            if (r + a + p + f) % 4 == 0
        ]
        rng.shuffle(combos)
        for i, (r, a, p, f) in enumerate(combos[:DOCS_PER_DOMAIN]):
            role, action, place, fact = v["roles"][r], v["actions"][a], v["places"][p], v["facts"][f]
            doc_id = f"{domain}_doc_{i:03d}"
            title = f"{domain.capitalize()} note: {action} at {place}"
            text = (
                f"The {role} explains how to {action} at {place}. "
                f"Key fact: {fact}. "
                f"Ask the {role} near {place} before you {action}."
            )
            docs.append({"doc_id": doc_id, "title": title, "text": text, "domain": domain})
            attrs[doc_id] = {"domain": domain, "role": role, "action": action, "place": place, "fact": fact}
    return docs, attrs


TEMPLATES = [
    "How do I {action} at {place}, and what should I know about it?",
    "What does the {role} say about how to {action}?",
    "Which rule says that {fact}?",
    "I need to {action}. Who at {place} can help, and what is the key fact?",
    "Tell me what the {role} at {place} knows.",
    "Is it true that {fact}? Who would know at {place}?",
]


def make_queries(rng: random.Random, docs: list[dict], attrs: dict[str, dict]) -> list[dict]:
    queries: list[dict] = []
    by_domain: dict[str, list[str]] = {}
    for d in docs:
        by_domain.setdefault(d["domain"], []).append(d["doc_id"])
    for domain, ids in by_domain.items():
        targets = rng.sample(ids, QUERIES_PER_DOMAIN)
        for qi, target in enumerate(targets):
            a = attrs[target]
            template = TEMPLATES[qi % len(TEMPLATES)]
            text = template.format(**a)
            grades = {target: 2}
            # Partial answers: same role and place, another fact.
            for other in ids:
                o = attrs[other]
                if other != target and o["role"] == a["role"] and o["place"] == a["place"]:
                    grades[other] = 1
            ranked = sorted(grades, key=lambda d: (-grades[d], d))
            queries.append(
                {
                    "query_id": f"{domain}_q_{qi:03d}",
                    "query": text,
                    "relevant_doc_ids": ranked,
                    "relevant_doc_grades": {d: grades[d] for d in ranked},
                    "domain": domain,
                }
            )
    return queries


def add_twins(rng: random.Random, docs: list[dict], queries: list[dict]) -> int:
    """Exact and near duplicates of judged-relevant documents, under new ids, unjudged."""
    relevant = sorted({q["relevant_doc_ids"][0] for q in queries})
    picks = rng.sample(relevant, 24)
    by_id = {d["doc_id"]: d for d in docs}
    for n, src in enumerate(picks):
        d = dict(by_id[src])
        if n % 2 == 0:
            d["doc_id"] = f"{d['domain']}_copy_{n:03d}"  # exact text twin
        else:
            d["doc_id"] = f"{d['domain']}_revised_{n:03d}"  # near duplicate: one sentence reworded
            d["text"] = d["text"].replace("Ask the", "Speak with the")
        docs.append(d)
    return len(picks)


def make_serving(rng: random.Random, attrs: dict[str, dict]) -> tuple[list[dict], list[dict]]:
    prompts, refs = [], []
    ids = sorted(attrs)
    for i, doc_id in enumerate(rng.sample(ids, 48)):
        a = attrs[doc_id]
        pid = f"{a['domain']}_p_{i:03d}"
        prompt = (
            f"You are the {a['role']} at {a['place']}. Context: {a['fact']}. "
            f"A player asks how to {a['action']}. Answer in character, briefly, and use the context."
        )
        reference = (
            f"As the {a['role']} at {a['place']}, I can tell you how to {a['action']}. "
            f"Remember: {a['fact']}. Come back to me when it is done."
        )
        prompts.append({"prompt_id": pid, "prompt": prompt, "domain": a["domain"]})
        refs.append({"prompt_id": pid, "reference_response": reference, "domain": a["domain"]})
    return prompts, refs


def world(seed: int = 20261126) -> dict[str, list[dict]]:
    """The whole world: corpus documents, gold queries, serving prompts and references."""
    rng = random.Random(seed)
    docs, attrs = make_documents(rng)
    queries = make_queries(rng, docs, attrs)
    add_twins(rng, docs, queries)
    rng.shuffle(docs)
    prompts, refs = make_serving(rng, attrs)
    from bdnsca.data.npcworld_paraphrase import paraphrase_queries

    # its own random stream: the files above are the same bytes with or without it
    paraphrased = paraphrase_queries(random.Random(seed + 1), docs, attrs, PARAPHRASES_PER_DOMAIN)
    return {
        "retrieval_corpus_wide.jsonl": docs,
        "retrieval_gold_wide.jsonl": queries,
        "retrieval_gold_paraphrase.jsonl": paraphrased,
        "serving_prompts.jsonl": prompts,
        "serving_references.jsonl": refs,
    }


def bundled_texts() -> list[str]:
    """Every sentence of the world, for training tiny tokenizers and models."""
    w = world()
    out = [f"{d['title']}\n{d['text']}" for d in w["retrieval_corpus_wide.jsonl"]]
    out += [q["query"] for q in w["retrieval_gold_wide.jsonl"]]
    out += [p["prompt"] for p in w["serving_prompts.jsonl"]]
    out += [r["reference_response"] for r in w["serving_references.jsonl"]]
    return out


def write_world(folder: Path) -> dict[str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, rows in world().items():
        with open(folder / name, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        counts[name] = len(rows)
    return counts
