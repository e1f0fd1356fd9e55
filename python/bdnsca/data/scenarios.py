"""Dialogue scenarios for the bundled NPC world (:mod:`bdnsca.data.npcworld`), for ``generate``,
``score`` and ``judge``: ``python data/generate.py`` writes them to ``data/scenarios.jsonl``.

Rows have the old evaluation runs' fields (``scenario_id, persona, dynamic_context,
player_input, reference_response, context_keywords, persona_keywords, scenario_tags``, plus
``source_scenario_id`` and ``variant_index`` as there) and ``source_doc_id``: the corpus document
(``retrieval_corpus_wide.jsonl``) that states the scenario's fact, so a retrieval-augmented arm
can find it. Ten personas, one per domain of the world, twelve scenarios each; per persona the
player asks in six ways (one per ``conflict_type``) and the variants grow harder: ``core`` (one
event), ``expanded_a`` (an urgent player), ``expanded_b`` (urgent, and a second, distracting
event). Seeded: the same rows every time.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from bdnsca.data.npcworld import make_documents

__all__ = ["PERSONAS", "SCENARIOS_PER_PERSONA", "scenarios", "write_scenarios"]

SCENARIOS_PER_PERSONA = 12
WORLD_SEED = 20261126  # npcworld.world's default seed

# domain -> (archetype, persona text, persona keywords, location type, behaviour states,
#            opening line, closing line)
PERSONAS: dict[str, dict[str, Any]] = {
    "lore": {
        "archetype": "scholar",
        "persona": "You are Archivist Maelis, keeper of the Drowned Library: scholarly, precise, "
        "and fond of citing old sources.",
        "keywords": ["scholarly", "precise", "sources", "archivist", "maelis", "library", "record"],
        "location_type": "knowledge",
        "states": ["Researching", "Cataloguing", "Observing"],
        "open": "The records are precise on this point.",
        "close": "Consult the sources yourself if you doubt me.",
    },
    "quests": {
        "archetype": "quest_giver",
        "persona": "You are Captain Orsk, a harbor captain who hands out contracts: gruff, "
        "practical, and short on patience.",
        "keywords": ["gruff", "practical", "contract", "captain", "orsk", "reward", "job"],
        "location_type": "travel",
        "states": ["Negotiating", "Idle", "Observing"],
        "open": "Listen, I have no time to waste.",
        "close": "Take the contract or leave it, but decide now.",
    },
    "persona": {
        "archetype": "blacksmith",
        "persona": "You are Brenna, the grumpy blacksmith of Thornbrook: blunt, proud of her "
        "craft, and stingy with praise.",
        "keywords": ["blunt", "craft", "forge", "blacksmith", "brenna", "steel", "hammer"],
        "location_type": "commerce",
        "states": ["Forging", "Trading", "Idle"],
        "open": "Bah, you again, and my forge is still hot.",
        "close": "Now let me get back to my hammer and steel.",
    },
    "memory": {
        "archetype": "guard",
        "persona": "You are Tomas, a town guard who never forgets a face: loyal, wary, and quick "
        "to recall old debts.",
        "keywords": ["loyal", "wary", "remember", "guard", "tomas", "debt", "watch"],
        "location_type": "security",
        "states": ["Patrolling", "Guarding", "Investigating"],
        "open": "I remember you, stranger, and I remember everything.",
        "close": "The watch keeps its eyes on you until that debt is settled.",
    },
    "medicine": {
        "archetype": "healer",
        "persona": "You are Sister Ilse, the infirmary steward: calm, caring, and precise with "
        "medical advice.",
        "keywords": ["calm", "caring", "medical", "healer", "ilse", "patient", "treatment"],
        "location_type": "medical",
        "states": ["TreatingPatient", "Assisting", "Researching"],
        "open": "Breathe slowly and stay calm, I am here to help.",
        "close": "Come back to me at once if the treatment does not work.",
    },
    "diplomacy": {
        "archetype": "diplomat",
        "persona": "You are Envoy Castellan Vire, a royal envoy: formal, careful, and bound by protocol.",
        "keywords": ["formal", "careful", "protocol", "envoy", "vire", "treaty", "crown"],
        "location_type": "court",
        "states": ["Negotiating", "Observing", "Assisting"],
        "open": "With respect, protocol must be observed here.",
        "close": "The crown expects every treaty to be honoured to the letter.",
    },
    "naval": {
        "archetype": "sailor",
        "persona": "You are Old Hask, the harbor master: weathered, superstitious, and exact "
        "about tides and cargo.",
        "keywords": ["weathered", "superstitious", "tide", "harbor", "hask", "ship", "sea"],
        "location_type": "harbor",
        "states": ["Observing", "Trading", "Patrolling"],
        "open": "The sea gives no second chances, friend.",
        "close": "Mind the tide and the omens before your ship leaves harbor.",
    },
    "engineering": {
        "archetype": "engineer",
        "persona": "You are Foreman Dagna, a siege engineer: practical, impatient, and obsessed "
        "with load, timber and stone.",
        "keywords": ["practical", "impatient", "load", "engineer", "dagna", "timber", "stone"],
        "location_type": "craft",
        "states": ["Building", "Investigating", "Assisting"],
        "open": "Quickly now, the work will not wait for us.",
        "close": "Check every beam and stone twice, the load never forgives.",
    },
    "agriculture": {
        "archetype": "farmer",
        "persona": "You are Wenna, the beekeeper of the west orchard: warm, patient, and "
        "talkative about the seasons.",
        "keywords": ["warm", "patient", "season", "beekeeper", "wenna", "orchard", "harvest"],
        "location_type": "farm",
        "states": ["Tending", "Trading", "Idle"],
        "open": "Oh, welcome, dear, the season has been kind to us.",
        "close": "Be patient with the land and the harvest will follow.",
    },
    "ritual": {
        "archetype": "mystic",
        "persona": "You are Warden Sefu of the moon temple: solemn, cryptic, and strict about "
        "rites and omens.",
        "keywords": ["solemn", "cryptic", "rite", "warden", "sefu", "temple", "omen"],
        "location_type": "sacred",
        "states": ["RitualPreparation", "Guarding", "Observing"],
        "open": "Hush, the spirits are listening tonight.",
        "close": "Heed the omens, for the temple forgives no careless rite.",
    },
}

# conflict type -> (player input, reference middle sentence); {action}, {place}, {fact}, {role}.
ASKS: tuple[tuple[str, str, str], ...] = (
    (
        "advisory_request",
        "How do I {action}? What should I watch out for?",
        "To {action}, remember that {fact}.",
    ),
    (
        "assistance_request",
        "Can you help me {action} at {place}?",
        "I can help you {action} at {place}, but know that {fact}.",
    ),
    (
        "access_control",
        "Let me through to {place}, I have to {action} tonight.",
        "Nobody goes to {place} to {action} without leave, and {fact}.",
    ),
    (
        "economic_negotiation",
        "What will it cost me to {action}, and is it worth it?",
        "It costs more than coin to {action} at {place}, because {fact}.",
    ),
    (
        "credibility_dispute",
        "The {role} says {fact}. Is that a lie?",
        "It is no lie: {fact}, and the {role} at {place} will tell you the same.",
    ),
    ("general_dialogue", "What news do you have from {place}?", "The news from {place} is that {fact}."),
)

URGENCY = ("I need an answer now: {q}", "Please, this is urgent. {q}", "{q} We are running out of time.")

ENTITIES = (
    "a nervous courier with sealed letters",
    "two traders arguing over prices",
    "a hooded stranger watching the door",
    "an apprentice taking notes",
    "a wounded scout asking for water",
    "a child chasing a stray goat",
)

DISTRACTIONS = (
    "A storm is rolling in from the coast.",
    "A missing ledger page raised suspicion of tampering.",
    "Rumours say the duke is travelling in disguise.",
    "The bell tower rang twice at midnight for no reason.",
    "A merchant caravan arrived a day early.",
    "Wolves were heard near the old road.",
)

_STOP = {
    "the", "a", "an", "of", "to", "at", "in", "on", "and", "or", "is", "are", "be", "by", "for",
    "with", "from", "only", "once", "must", "not", "before", "after", "than", "more", "every",
    "one", "two", "three", "four", "ten", "its", "his", "her", "their", "this", "that", "into",
    "has", "have", "was", "were", "who", "what", "when", "where", "how",
}  # fmt: skip


def _title(place: str) -> str:
    return place[0].upper() + place[1:]


def _content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in _STOP]


def _keywords(*groups: list[str], limit: int = 12) -> list[str]:
    out: list[str] = []
    for g in groups:
        for k in g:
            if k and k not in out:
                out.append(k)
    return out[:limit]


def _sentence(s: str) -> str:
    return s[0].upper() + s[1:]


def scenarios(seed: int = 20261127) -> list[dict[str, Any]]:
    """The bundled scenarios: ``len(PERSONAS) * SCENARIOS_PER_PERSONA`` rows, the same every time."""
    rng = random.Random(seed)
    # The world's corpus documents, made as npcworld.world makes them (its first draw from its seed).
    docs, attrs = make_documents(random.Random(WORLD_SEED))
    by_domain: dict[str, list[str]] = {}
    for d in docs:
        by_domain.setdefault(d["domain"], []).append(d["doc_id"])
    rows: list[dict[str, Any]] = []
    for p_index, (domain, p) in enumerate(PERSONAS.items()):
        picks = rng.sample(sorted(by_domain[domain]), SCENARIOS_PER_PERSONA)
        source = f"b{p_index + 1:02d}_{p['archetype']}"
        for v, doc_id in enumerate(picks):
            a = attrs[doc_id]
            conflict, ask, middle = ASKS[v % len(ASKS)]
            band = "core" if v < 2 else "expanded_a" if v < 7 else "expanded_b"
            state = p["states"][v % len(p["states"])]
            entity = rng.choice(ENTITIES) if v % 3 else f"the {a['role']}"
            # The persona domain's facts are traits of a role ("keeps a pet raven named Ledger").
            fact = f"the {a['role']} {a['fact']}" if domain == "persona" else a["fact"]
            fields = {"action": a["action"], "place": a["place"], "fact": fact, "role": a["role"]}
            event = f"Word came that {fields['fact']}."
            if band == "expanded_b":
                event += " " + rng.choice(DISTRACTIONS)
            question = ask.format(**fields)
            if band != "core":
                question = rng.choice(URGENCY).format(q=question)
            reference = " ".join(
                s
                for s in (p["open"] if band != "core" else "", _sentence(middle.format(**fields)), p["close"])
                if s
            )
            place_words = _content_words(a["place"])
            rows.append(
                {
                    "scenario_id": f"{source}_v{v:02d}",
                    "source_scenario_id": source,
                    "variant_index": v,
                    "persona": p["persona"],
                    "dynamic_context": (
                        f"BehaviorTreeState={state}; Location={_title(a['place'])}; "
                        f"NearbyEntity={_sentence(entity)}; RecentEvent={event}"
                    ),
                    "player_input": question,
                    "reference_response": reference,
                    "context_keywords": _keywords(
                        [" ".join(place_words)] if len(place_words) > 1 else [],
                        _content_words(fields["fact"]),
                        place_words,
                        _content_words(a["action"]),
                        [state.lower()],
                    ),
                    "persona_keywords": list(p["keywords"]),
                    "scenario_tags": {
                        "persona_archetype": p["archetype"],
                        "conflict_type": conflict,
                        "location_type": p["location_type"],
                        "behavior_state": state,
                        "coverage_band": band,
                    },
                    "source_doc_id": doc_id,
                }
            )
    return rows


def write_scenarios(folder: Path, name: str = "scenarios.jsonl") -> int:
    """Writes :func:`scenarios` to ``folder/name``; returns the row count."""
    rows = scenarios()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(rows)
