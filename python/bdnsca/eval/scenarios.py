"""Evaluation scenarios and the prompt a generating arm sends for each.

A scenario file is JSONL with ``scenario_id``, ``persona``, ``dynamic_context`` (``Key=Value``
items joined by ``; ``), ``player_input`` and optionally ``reference_response``,
``context_keywords``, ``persona_keywords``, ``scenario_tags`` (kept as they are).

The default template reproduces the prompt of the old project's runs byte for byte (checked
against every row of the shared runs): the persona, the rules, the game state as ``- Key: Value``
lines (or "Current dynamic game state is unavailable." for an arm without it), the player's line.
A retrieval-augmented arm adds its passages under "Relevant knowledge:" before the player's line.

A template file is plain text with the placeholders ``{persona}``, ``{dynamic_context}`` (the raw
field), ``{game_state}`` (the block described above), ``{player_input}`` and ``{passages}`` (the
knowledge block, empty without retrieval). A line holding only a placeholder that renders empty
is dropped. Any other ``{name}`` is an error (a misspelt placeholder would otherwise reach the
model verbatim); other braces are kept as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdnsca.data.io import id_field, iter_jsonl
from bdnsca.errors import BdnscaError, DataError

PLACEHOLDERS = ("persona", "dynamic_context", "game_state", "player_input", "passages")

DEFAULT_TEMPLATE = """You are roleplaying one NPC in a narrative game.
Persona: {persona}
Rules:
- Stay in persona.
- Write 2-3 natural sentences.
- Return only spoken dialogue, no labels, no metadata, no templates.
- Never output hidden fields such as Temporal Memories or BehaviorTreeState.
{game_state}
{passages}
Player says: {player_input}
NPC reply:"""

NO_GAME_STATE = "Current dynamic game state is unavailable."
GAME_STATE_HEADER = "Current dynamic game state:"
GAME_STATE_FOOTER = "Use at least two concrete details from current dynamic game state."
PASSAGES_HEADER = "Relevant knowledge:"

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ITEM_SPLIT = re.compile(r";\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*=)")


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    text: str


def read_scenario_file(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The scenarios of a JSONL file, in file order, each row as it is. A row without a
    ``scenario_id`` or a non-empty ``player_input``, a ``persona`` or ``dynamic_context`` that
    is not text, or a repeated id is a DataError naming the line."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        sid = id_field(row, ("scenario_id",), path, lineno)
        if sid in first:
            raise DataError(path, lineno, f"scenario {sid!r} already given on line {first[sid]}")
        first[sid] = lineno
        player = row.get("player_input")
        if not isinstance(player, str) or not player.strip():
            raise DataError(path, lineno, f"scenario {sid!r}: missing or empty field 'player_input'")
        for name in ("persona", "dynamic_context", "reference_response"):
            value = row.get(name)
            if value is not None and not isinstance(value, str):
                raise DataError(
                    path, lineno, f"scenario {sid!r}: field {name!r} must be text, got {type(value).__name__}"
                )
        row["scenario_id"] = sid
        rows.append(row)
    if not rows:
        raise DataError(path, None, "no scenarios in the file")
    return rows


def game_state_lines(dynamic_context: str) -> list[str]:
    """``Key=Value; Key=Value`` as ``- Key: Value`` lines (an item without ``=`` as ``- item``).
    Items are split only at a ``;`` that a ``Key=`` follows, so values may hold semicolons."""
    lines = []
    for item in _ITEM_SPLIT.split(dynamic_context.strip()):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        lines.append(f"- {key.strip()}: {value.strip()}" if sep else f"- {item}")
    return lines


def game_state_block(scenario: dict[str, Any], include: bool) -> str:
    lines = game_state_lines(scenario.get("dynamic_context") or "") if include else []
    if not lines:
        return NO_GAME_STATE
    return "\n".join([GAME_STATE_HEADER, *lines, GAME_STATE_FOOTER])


def passages_block(passages: Sequence[Passage]) -> str:
    if not passages:
        return ""
    lines = [PASSAGES_HEADER]
    for p in passages:
        text = " ".join(p.text.split())
        title = " ".join(p.title.split())
        lines.append(f"- {title}: {text}" if title else f"- {text}")
    return "\n".join(lines)


class PromptTemplate:
    """A generation prompt template (see the module docstring)."""

    def __init__(self, text: str, source: str = "default") -> None:
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(PLACEHOLDERS))
        if unknown:
            raise BdnscaError(
                f"prompt template {source}: unknown placeholder {{{unknown[0]}}} "
                f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
            )
        if "{player_input}" not in text:
            raise BdnscaError(f"prompt template {source}: it has no {{player_input}} placeholder")
        self.text = text
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> PromptTemplate:
        if path is None:
            return cls(DEFAULT_TEMPLATE)
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BdnscaError(f"prompt template {p} does not exist") from None
        except UnicodeDecodeError as exc:
            raise BdnscaError(f"prompt template {p} is not UTF-8 (byte {exc.start})") from None
        return cls(text.rstrip("\n"), str(p))

    def render(
        self, scenario: dict[str, Any], include_dynamic_context: bool, passages: Sequence[Passage] = ()
    ) -> str:
        values = {
            "persona": scenario.get("persona") or "",
            "dynamic_context": (scenario.get("dynamic_context") or "") if include_dynamic_context else "",
            "game_state": game_state_block(scenario, include_dynamic_context),
            "player_input": scenario["player_input"],
            "passages": passages_block(passages),
        }
        out = []
        for line in self.text.split("\n"):
            m = _PLACEHOLDER.fullmatch(line.strip())
            if m and not values[m.group(1)]:
                continue  # a line that is only an empty placeholder
            out.append(_PLACEHOLDER.sub(lambda mm: values[mm.group(1)], line))
        return "\n".join(out)
