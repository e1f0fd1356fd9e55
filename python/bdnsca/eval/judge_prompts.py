"""What the judge sees and what it may answer: the rubric, the prompts, the JSON schemas.

The prompts are blind: a judge sees the scenario (persona, game state, the player's line) and
the response text under "Response" (pointwise) or "Response A" / "Response B" (pairwise). Arm
ids, model names and file names are never put in a prompt; where a response itself contains one
(a model that names itself), it is replaced by ``[redacted]`` and counted.

Answers are JSON objects constrained by a JSON schema (llama.cpp turns it into a grammar): a
short ``rationale`` first, then each metric as an integer 1-5 (pointwise) or ``"A"``, ``"B"``
or ``"tie"`` (pairwise). :func:`parse_answer` accepts exactly that and nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bdnsca.eval.scenarios import game_state_lines

METRICS = ("context_relevance", "persona_consistency", "naturalness", "overall_quality")
VERDICTS = ("A", "B", "tie")
RATIONALE_MAX_CHARS = 160
RATIONALE_PATTERN = f"^[ !#-\\[\\]-~]{{0,{RATIONALE_MAX_CHARS}}}$"
"""Printable ASCII without quote or backslash, at most RATIONALE_MAX_CHARS: a bounded rationale
that no run of stray byte tokens (partial UTF-8, as small models emit) can keep open until the
token limit cuts the JSON short."""

RUBRIC = {
    "context_relevance": (
        "Does the reply use the current game state and answer what the player said?",
        "1 = ignores the situation or the player; 3 = generic but not wrong; "
        "5 = answers the player using concrete, correct details of the game state",
    ),
    "persona_consistency": (
        "Does the reply sound like this character (role, attitude, manner of speech)?",
        "1 = out of character or speaks as an AI; 3 = neutral, could be anyone; "
        "5 = unmistakably this character throughout",
    ),
    "naturalness": (
        "Is it fluent spoken dialogue of two or three sentences, without labels, metadata, "
        "repetition or broken text?",
        "1 = garbled, repetitive or full of labels; 3 = understandable but stiff or too long; "
        "5 = fluent, natural speech",
    ),
    "overall_quality": (
        "Taking everything together, how good is this reply for the game?",
        "1 = unusable; 3 = acceptable; 5 = excellent",
    ),
}

_BIAS_NOTE = (
    "Judge the content only. The order in which responses are shown is random and means nothing; "
    "a longer response is not better for being longer."
)


def scenario_block(scenario: dict[str, Any]) -> str:
    lines = [f"Character: {scenario.get('persona') or '(not given)'}"]
    state = game_state_lines(scenario.get("dynamic_context") or "")
    if state:
        lines.append("Current game state:")
        lines += state
    lines.append(f"Player says: {scenario['player_input']}")
    return "\n".join(lines)


def _quoted(text: str) -> str:
    return '"""\n' + text.replace('"""', "'''") + '\n"""'


def pointwise_prompt(scenario: dict[str, Any], response: str) -> str:
    criteria = "\n".join(f"- {m}: {q}\n  Scale: {scale}" for m, (q, scale) in RUBRIC.items())
    return (
        "You are an impartial judge of dialogue written for a non-player character (NPC) in a "
        "narrative game. Rate the NPC's reply to the player.\n\n"
        f"{scenario_block(scenario)}\n\n"
        f"Response:\n{_quoted(response)}\n\n"
        f"Rate the response from 1 to 5 on each criterion:\n{criteria}\n\n"
        f"{_BIAS_NOTE}\n"
        "Answer with one JSON object: a short rationale first, then an integer 1-5 for each "
        f"criterion ({', '.join(METRICS)})."
    )


def pairwise_prompt(scenario: dict[str, Any], response_a: str, response_b: str) -> str:
    criteria = "\n".join(f"- {m}: {q}" for m, (q, _) in RUBRIC.items())
    return (
        "You are an impartial judge of dialogue written for a non-player character (NPC) in a "
        "narrative game. Compare two replies to the same player line.\n\n"
        f"{scenario_block(scenario)}\n\n"
        f"Response A:\n{_quoted(response_a)}\n\n"
        f"Response B:\n{_quoted(response_b)}\n\n"
        f'For each criterion say which response is better: "A", "B", or "tie".\n{criteria}\n\n'
        f"{_BIAS_NOTE}\n"
        'Answer with one JSON object: a short rationale first, then "A", "B" or "tie" for each '
        f"criterion ({', '.join(METRICS)})."
    )


def answer_schema(kind: str) -> dict[str, Any]:
    """The JSON schema of a pointwise or pairwise answer (rationale first, so that a judge
    explains before it decides)."""
    value: dict[str, Any] = (
        {"type": "integer", "enum": [1, 2, 3, 4, 5]}
        if kind == "pointwise"
        else {"type": "string", "enum": list(VERDICTS)}
    )
    props: dict[str, Any] = {"rationale": {"type": "string", "pattern": RATIONALE_PATTERN}}
    props.update({m: value for m in METRICS})
    return {
        "type": "object",
        "properties": props,
        "required": ["rationale", *METRICS],
        "additionalProperties": False,
    }


def shortest_answer(kind: str) -> str:
    """The shortest answer the schema of ``kind`` allows (compact JSON, empty rationale)."""
    value: Any = 1 if kind == "pointwise" else "A"
    return json.dumps({"rationale": "", **{m: value for m in METRICS}}, separators=(",", ":"))


MIN_ANSWER_TOKENS = max(len(shortest_answer(k)) for k in ("pointwise", "pairwise"))
"""The fewest answer tokens that always leave room for a schema-valid answer: its characters, as
a token holds at least one character (a byte-level model may spend one token on each)."""


@dataclass
class ParsedAnswer:
    values: dict[str, Any]
    rationale: str


def parse_answer(kind: str, raw: str) -> ParsedAnswer:
    """The ratings in ``raw``; ValueError says what is wrong (not JSON, a missing metric, a
    value outside the scale). The first JSON object in the text counts; control characters in
    strings are tolerated (small models emit them)."""
    text = raw.strip()
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the answer")
    try:
        obj, _ = json.JSONDecoder(strict=False).raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("the answer is not a JSON object")
    values: dict[str, Any] = {}
    for m in METRICS:
        v = obj.get(m)
        if kind == "pointwise":
            if isinstance(v, str) and v.strip().isdigit():
                v = int(v.strip())
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5:
                raise ValueError(f"{m}: expected an integer 1-5, got {v!r}")
        else:
            if isinstance(v, str) and v.strip().lower() == "tie":
                v = "tie"
            elif isinstance(v, str) and v.strip().upper() in ("A", "B"):
                v = v.strip().upper()
            else:
                raise ValueError(f'{m}: expected "A", "B" or "tie", got {v!r}')
        values[m] = v
    rationale = obj.get("rationale")
    return ParsedAnswer(values, rationale if isinstance(rationale, str) else "")


class Redactor:
    """Replaces arm ids, model names and model file names found in response text by
    ``[redacted]`` (whole words, case-insensitive), counting what it replaced. Every name of 3+
    characters counts, so an arm id that is an ordinary word (``rag``, ``base``) also blanks
    that word wherever a response uses it: give arms distinctive ids."""

    def __init__(self, names: Iterable[str]) -> None:
        words = sorted({n.strip() for n in names if n and len(n.strip()) >= 3}, key=len, reverse=True)
        self.pattern = (
            re.compile(r"(?<![\w])(?:" + "|".join(re.escape(w) for w in words) + r")(?![\w])", re.IGNORECASE)
            if words
            else None
        )
        self.count = 0

    def __call__(self, text: str) -> str:
        if self.pattern is None:
            return text
        out, n = self.pattern.subn("[redacted]", text)
        self.count += n
        return out
