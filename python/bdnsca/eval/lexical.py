"""Text-level measures of generated replies that need no model: lexical richness (the n-gram and
MTLD counting runs in Rust over the whole batch, :func:`bdnsca._core.lexical_stats`), sentence
counts, label/metadata leakage, and keyword coverage.

Every function takes a list of texts and returns one value per text, each in [0, 1] unless its
name says it is a count.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from bdnsca._core import Tokenizer, lexical_stats

__all__ = [
    "MTLD_THRESHOLD",
    "MTLD_CAP",
    "LEAKAGE_PATTERNS",
    "lexical_columns",
    "mtld_score",
    "sentence_counts",
    "sentence_score",
    "leakage_free",
    "keyword_coverage",
]

MTLD_THRESHOLD = 0.72
MTLD_CAP = 100.0
"""The MTLD that earns full marks: about what McCarthy & Jarvis (2010) report for written prose."""

# A sentence ends at . ! ? or an ellipsis followed by space or the end, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\n+")
_WORD = re.compile(r"[^\W_]", re.UNICODE)

# Label or metadata leakage: the prompt's hidden fields, speaker labels, key=value pairs,
# chat-template tokens, template placeholders and markup. One hit makes a reply "leaky".
LEAKAGE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "hidden field",
        re.compile(
            r"\b(?:BehaviorTreeState|NearbyEntity|RecentEvent|DynamicContext|Temporal\s*Memor(?:y|ies)"
            r"|Player\s+says|NPC\s+reply)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "speaker label",
        re.compile(
            r"^\s*[*_]*(?:NPC|Player|Persona|Response|Reply|Assistant|User|System|Context|Location"
            r"|Rules?|Answer|Dialogue)[*_]*\s*:",
            re.IGNORECASE | re.MULTILINE,
        ),
    ),
    ("key=value", re.compile(r"\b[A-Za-z_]+\s*=\s*\S")),
    ("template token", re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|<<SYS>>", re.IGNORECASE)),
    ("placeholder or markup", re.compile(r"\{[^}]*\}|\[[A-Za-z _]+\]|^\s*#{1,6}\s|```", re.MULTILINE)),
)


def lexical_columns(
    texts: Sequence[str], *, mtld_threshold: float = MTLD_THRESHOLD, threads: int | None = None
) -> dict[str, np.ndarray]:
    """Rust-computed ``tokens, types, distinct1, distinct2, repetition, mtld`` per text (all
    cores, or ``threads``)."""
    return lexical_stats(list(texts), mtld_threshold=mtld_threshold, threads=threads)


def mtld_score(
    mtld: np.ndarray, tokens: np.ndarray, cap: float = MTLD_CAP, *, types: np.ndarray | None = None
) -> np.ndarray:
    """MTLD on a 0-1 scale: ``min(MTLD, cap) / cap`` (0 for an empty text), and 1 for a reply in
    which no word repeats (``types == tokens``, given ``types``).

    A reply with every word distinct never starts to close a factor, so its MTLD is by convention
    its own length (``lexicalrichness``): 20 distinct words would score 0.2 while the same reply
    with its last word repeating the first has MTLD ~112 and scores 1. The most varied replies
    would rank lowest; with ``types`` they score 1, as their unbounded diversity warrants.

    A reply's MTLD (factors counted with their partial remainder, as ``lexicalrichness`` does)
    is its length over how many times its type-token ratio fell to the threshold. Scaling by
    the reply's own length instead (``min(MTLD, tokens) / tokens``) made it 1 for every reply in
    which no factor completes, which is every reply of the shared runs (median 27 tokens): a
    constant. With a fixed cap a longer reply can earn more (its MTLD may exceed a short reply's
    length); distinct-1 and distinct-2, which fall with length, pull the other way."""
    tokens = np.asarray(tokens, dtype=np.float64)
    mtld = np.asarray(mtld, dtype=np.float64)
    if not (math.isfinite(cap) and cap > 0):
        raise ValueError(f"mtld cap must be a positive number, got {cap}")
    out = np.zeros_like(tokens)
    nz = tokens > 0
    out[nz] = np.minimum(np.nan_to_num(mtld[nz], nan=0.0, posinf=cap), cap) / cap
    if types is not None:
        out[nz & (np.asarray(types, dtype=np.float64) >= tokens)] = 1.0
    return out


def sentence_counts(texts: Sequence[str]) -> list[int]:
    """Sentences per text: pieces between sentence ends that contain a letter or digit."""
    return [sum(1 for p in _SENTENCE_END.split(t.strip()) if _WORD.search(p)) for t in texts]


def sentence_score(counts: Sequence[int], low: int, high: int, step: float) -> list[float]:
    """1 inside [low, high]; ``step`` less per sentence outside; 0 for no sentence at all."""
    out = []
    for c in counts:
        if c == 0:
            out.append(0.0)
            continue
        dist = low - c if c < low else c - high if c > high else 0
        out.append(max(0.0, 1.0 - step * dist))
    return out


def leakage_free(texts: Sequence[str]) -> list[float]:
    """1.0 for a reply with none of :data:`LEAKAGE_PATTERNS`, else 0.0."""
    return [0.0 if any(p.search(t) for _, p in LEAKAGE_PATTERNS) else 1.0 for t in texts]


_STEMMER: Tokenizer | None = None


def _stemming_tokenizer() -> Tokenizer:
    global _STEMMER
    if _STEMMER is None:
        _STEMMER = Tokenizer(stemmer="english")
    return _STEMMER


def keyword_coverage(texts: Sequence[str], keywords: Sequence[Sequence[str]]) -> list[float | None]:
    """Share of each text's keywords that occur in it: a keyword (one word or a phrase) occurs
    when its Snowball-stemmed tokens appear contiguously among the text's stemmed tokens (so
    "archives" matches "archive" and "gate" does not match "investigate"). None for a text
    whose keyword list is empty."""
    if len(texts) != len(keywords):
        raise ValueError(f"{len(texts)} texts for {len(keywords)} keyword lists")
    tok = _stemming_tokenizer()
    text_tokens = tok.tokenize(list(texts))
    unique = sorted({k for ks in keywords for k in ks})
    kw_tokens = dict(zip(unique, tok.tokenize(unique), strict=True))
    out: list[float | None] = []
    for toks, ks in zip(text_tokens, keywords, strict=True):
        phrases = [tuple(kw_tokens[k]) for k in ks if kw_tokens[k]]
        if not phrases:
            out.append(None)
            continue
        grams: set[tuple[str, ...]] = set()
        for n in {len(p) for p in phrases}:
            grams.update(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
        out.append(sum(p in grams for p in phrases) / len(phrases))
    return out
