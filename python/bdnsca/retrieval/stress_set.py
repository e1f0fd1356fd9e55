"""Stress sets for ``bdnsca stress``: the case file (the shared poison benchmark's format, or ids
into a corpus carrying ``source`` / ``trust_score``) read into one mixed corpus of documents with
their trust metadata, every bad line a DataError with file:line. See :mod:`bdnsca.retrieval.stress`."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bdnsca.data.io import id_field, iter_jsonl
from bdnsca.errors import DataError


@dataclass
class StressDoc:
    doc_id: str
    text: str
    source: str | None = None
    trust: float | None = None
    origin: str = ""
    """where it was defined, 'file:line'"""


@dataclass
class StressCase:
    case_id: str
    query: str
    safe_id: str
    poison_id: str
    attack_type: str
    line: int
    also_safe: tuple[str, ...] = ()
    """other documents the case counts as safe answers (``also_safe_doc_ids``: e.g. another lore
    document stating the same role, task and place), for Safe@1 and Safe@k"""


@dataclass
class StressSet:
    docs: dict[str, StressDoc]
    cases: list[StressCase]
    path: str = ""
    background: int = 0
    """documents from --corpus that no case names"""

    @property
    def poison_ids(self) -> set[str]:
        return {c.poison_id for c in self.cases}

    def spoofed(self) -> StressSet:
        """Every poison document claims the safe documents' most common source and highest trust."""
        safe = {c.safe_id for c in self.cases}
        sources = Counter(self.docs[d].source for d in safe if self.docs[d].source)
        source = sources.most_common(1)[0][0] if sources else "verified"
        trusts = [self.docs[d].trust for d in safe if self.docs[d].trust is not None]
        trust = max(trusts) if trusts else 0.99
        docs = dict(self.docs)
        for d in self.poison_ids:
            docs[d] = replace(docs[d], source=source, trust=trust)
        return StressSet(docs, self.cases, self.path, self.background)


def parse_trust(value: Any, path: Path | str, lineno: int | None, where: str) -> float | None:
    """A trust score: a number or a numeric string; absent is None; anything else is a DataError."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(path, lineno, f"{where} trust_score {value!r} is not a number")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise DataError(path, lineno, f"{where} trust_score {value!r} is not a number") from None
    else:
        raise DataError(path, lineno, f"{where} trust_score {value!r} is not a number")
    if not math.isfinite(out):
        raise DataError(path, lineno, f"{where} trust_score {value!r} is not a finite number")
    return out


def text_id(text: str) -> str:
    """The id of a document given by text: a hash, so its order among ids is arbitrary."""
    return "d" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _read_background(path: Path) -> dict[str, StressDoc]:
    docs: dict[str, StressDoc] = {}
    if path.is_dir():
        path = path / "corpus.jsonl"
    for lineno, obj in iter_jsonl(path):
        doc_id = id_field(obj, ("doc_id", "_id", "id"), path, lineno)
        text = obj.get("text")
        if not isinstance(text, str):
            raise DataError(path, lineno, "missing field 'text'")
        title = obj.get("title")
        full = f"{title}\n{text}" if isinstance(title, str) and title else text
        if doc_id in docs:
            raise DataError(path, lineno, f"duplicate document id {doc_id!r}")
        source = obj.get("source")
        docs[doc_id] = StressDoc(
            doc_id,
            full,
            str(source) if source is not None else None,
            parse_trust(obj.get("trust_score"), path, lineno, "document"),
            f"{path}:{lineno}",
        )
    return docs


def read_stress_set(path: str | Path, corpus: str | Path | None = None) -> StressSet:
    """Reads a stress set (see the module doc); every bad line is a DataError with file:line."""
    path = Path(path)
    docs = _read_background(Path(corpus)) if corpus is not None else {}
    named: set[str] = set()
    role: dict[str, str] = {}
    cases: list[StressCase] = []
    seen_ids: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        query = obj.get("query")
        if not isinstance(query, str) or not query.strip():
            raise DataError(path, lineno, "missing field 'query'")
        ids = []
        for side in ("safe", "poison"):
            meta = obj.get(f"{side}_metadata") or {}
            if not isinstance(meta, dict):
                raise DataError(path, lineno, f"'{side}_metadata' must be an object")
            trust = parse_trust(meta.get("trust_score"), path, lineno, f"{side}_metadata")
            source = meta.get("source")
            text, given_id = obj.get(f"{side}_doc"), obj.get(f"{side}_doc_id")
            if given_id is not None:
                doc_id = id_field(obj, (f"{side}_doc_id",), path, lineno)
            elif isinstance(text, str) and text.strip():
                doc_id = text_id(text)
            else:
                raise DataError(path, lineno, f"missing field '{side}_doc' (text) or '{side}_doc_id'")
            old = docs.get(doc_id)
            if old is None:
                if not isinstance(text, str):
                    raise DataError(path, lineno, f"{side} document {doc_id!r} is not in the corpus")
                docs[doc_id] = StressDoc(
                    doc_id, text, str(source) if source is not None else None, trust, f"{path}:{lineno}"
                )
            else:
                if isinstance(text, str) and text != old.text:
                    raise DataError(
                        path, lineno, f"document {doc_id!r} has another text at {old.origin or 'the corpus'}"
                    )
                new_source = str(source) if source is not None else old.source
                new_trust = trust if trust is not None else old.trust
                if doc_id in named and (new_source, new_trust) != (old.source, old.trust):
                    raise DataError(path, lineno, f"document {doc_id!r} has other metadata at {old.origin}")
                docs[doc_id] = replace(old, source=new_source, trust=new_trust, origin=f"{path}:{lineno}")
            if role.setdefault(doc_id, side) != side:
                raise DataError(
                    path, lineno, f"document {doc_id!r} is a safe document in one case and poison in another"
                )
            named.add(doc_id)
            ids.append(doc_id)
        if ids[0] == ids[1]:
            raise DataError(path, lineno, "the safe and the poison document are the same")
        case_id = str(obj.get("scenario_id") or obj.get("case_id") or obj.get("id") or f"case_{lineno}")
        if case_id in seen_ids:
            raise DataError(
                path, lineno, f"duplicate case id {case_id!r} (first on line {seen_ids[case_id]})"
            )
        seen_ids[case_id] = lineno
        pmeta = obj.get("poison_metadata") or {}
        attack = obj.get("attack_type") or pmeta.get("attack_type") or "unknown"
        also = obj.get("also_safe_doc_ids") or []
        if not isinstance(also, list) or not all(isinstance(x, str) for x in also):
            raise DataError(path, lineno, "'also_safe_doc_ids' must be a list of document ids")
        cases.append(StressCase(case_id, query, ids[0], ids[1], str(attack), lineno, tuple(also)))
    if not cases:
        raise DataError(path, None, "no stress cases in the file")
    for c in cases:  # after every line: an also-safe document may be defined by a later case
        for d in c.also_safe:
            if d not in docs:
                raise DataError(path, c.line, f"also_safe_doc_ids names {d!r}, which no case or corpus has")
            if role.get(d) == "poison" or d == c.poison_id:
                raise DataError(path, c.line, f"also_safe_doc_ids names {d!r}, a poison document")
    return StressSet(docs, cases, str(path), len(set(docs) - named))


__all__ = ["StressCase", "StressDoc", "StressSet", "parse_trust", "read_stress_set", "text_id"]
