"""Shared inputs for the benchmarks: a synthetic Zipf-distributed corpus and queries, and timers."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

import numpy as np

SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "tu",
    "sel",
    "van",
    "or",
    "eth",
    "lin",
    "dar",
    "qu",
    "ix",
    "bel",
    "no",
    "ash",
    "ur",
]


def vocabulary(size: int, seed: int = 0, max_syllables: int = 4) -> list[str]:
    """Distinct pseudo-words of 2 to ``max_syllables`` syllables."""
    capacity = sum(len(SYLLABLES) ** n for n in range(2, max_syllables + 1))
    if size > capacity:
        raise ValueError(f"{size} distinct words need more than {max_syllables} syllables")
    rng = np.random.default_rng(seed)
    words: set[str] = set()
    out: list[str] = []
    while len(out) < size:
        w = "".join(rng.choice(SYLLABLES, size=rng.integers(2, max_syllables + 1)))
        if w not in words:
            words.add(w)
            out.append(w)
    return out


def zipf_texts(n: int, vocab: list[str], mean_len: int, seed: int, s: float = 1.07) -> list[str]:
    """``n`` texts whose words follow a Zipf law over ``vocab`` (rank r drawn with p ~ 1/r^s)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, len(vocab) + 1) ** s
    p /= p.sum()
    lens = rng.poisson(mean_len, size=n).clip(1)
    ids = rng.choice(len(vocab), size=int(lens.sum()), p=p)
    words = np.array(vocab, dtype=object)[ids]
    out, pos = [], 0
    for ln in lens:
        out.append(" ".join(words[pos : pos + ln]))
        pos += ln
    return out


def corpus_and_queries(n_docs: int, n_queries: int, vocab_size: int = 50_000, seed: int = 0):
    vocab = vocabulary(vocab_size, seed)
    docs = zipf_texts(n_docs, vocab, mean_len=60, seed=seed + 1)
    queries = zipf_texts(n_queries, vocab, mean_len=4, seed=seed + 2)
    return docs, queries


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    """Best wall time of ``repeat`` runs (seconds) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def table(title: str, rows: list[tuple[str, float, str]], baseline: str) -> str:
    """Rows of (library, seconds, note) with each one's speed relative to ``baseline``."""
    base = dict((r[0], r[1]) for r in rows)[baseline]
    lines = [f"\n{title}", f"{'library':<34}{'time (s)':>12}{'vs ' + baseline:>16}  note", "-" * 84]
    for name, secs, note in rows:
        lines.append(f"{name:<34}{secs:>12.4f}{base / secs:>15.2f}x  {note}")
    return "\n".join(lines)
