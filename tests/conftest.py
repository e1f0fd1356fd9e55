from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
CRANFIELD = SHARED / "ir" / "cranfield"
DATA = ROOT / "data"


def zipf_corpus(rng: np.random.Generator, n_docs: int, vocab: int, mean_len: int = 30) -> list[list[str]]:
    """Token lists with a Zipf-like term distribution (heavy head, long tail)."""
    ranks = np.arange(1, vocab + 1)
    p = 1.0 / ranks**1.1
    p /= p.sum()
    lens = rng.poisson(mean_len, size=n_docs).clip(1)
    return [[f"t{t}" for t in rng.choice(vocab, size=n, p=p)] for n in lens]


def _parse_cranfield(path: Path) -> list[tuple[str, str]]:
    """(.I id, title + text) records of a Cranfield file."""
    records: list[tuple[str, str]] = []
    cur_id, field, parts = None, None, {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(".I "):
            if cur_id is not None:
                records.append((cur_id, " ".join(parts.get(".T", []) + parts.get(".W", []))))
            cur_id, field, parts = line[3:].strip(), None, {}
        elif line[:2] in (".T", ".A", ".B", ".W") and line.strip() == line[:2]:
            field = line[:2]
        elif field:
            parts.setdefault(field, []).append(line.strip())
    if cur_id is not None:
        records.append((cur_id, " ".join(parts.get(".T", []) + parts.get(".W", []))))
    return records


@pytest.fixture(scope="session")
def cranfield():
    """(docs [(id, text)], queries [(qid 1..225, text)], qrels) or skip when absent."""
    if not (CRANFIELD / "cran.all.1400").exists():
        pytest.skip(f"Cranfield collection not found at {CRANFIELD} (it lives in ../shared/data)")
    docs = _parse_cranfield(CRANFIELD / "cran.all.1400")
    # qrels number the queries 1..225 by their order in cran.qry, not by .I
    queries = [(str(i + 1), text) for i, (_, text) in enumerate(_parse_cranfield(CRANFIELD / "cran.qry"))]
    qrels: dict[str, dict[str, int]] = {}
    for line in (CRANFIELD / "QRelsCorrectedforTRECeval").read_text().splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        qid, _, doc, grade = parts
        if int(grade) > 4:  # the cranqrel code -1 rows: not a judgement
            continue
        qrels.setdefault(qid, {})[doc] = int(grade)
    return docs, queries, qrels
