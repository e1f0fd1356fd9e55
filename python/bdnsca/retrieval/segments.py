"""Changing a saved index in place (issue 14 §1): append documents, delete or update them by id,
merge segments, build one index as N shards. What ``bdnsca index --append / --delete / --merge /
--upsert / --shards`` runs.

An index folder (``BM25.save``) holds immutable segment files, deletes files and a manifest
written last: an append writes one new segment file and the manifest; a delete writes a deletes
file and the manifest; the segments already there are not rewritten (only ``merge`` rewrites).
Scores after any change equal those of a fresh index of the live documents.

The ids file of ``--delete``: one document id per line, exactly as written in the corpus (only the
line ending is stripped; empty lines are skipped). A file ending in ``.jsonl`` is read as a corpus
of ids instead: each line a JSON object with ``doc_id`` (or ``_id`` / ``id``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bdnsca._core import BM25, Tokenizer
from bdnsca.data.io import Corpus
from bdnsca.errors import BdnscaError


@dataclass
class ChangeSummary:
    """What one change did, for the CLI's one-line summary."""

    added: int = 0
    updated: int = 0
    deleted: int = 0
    segments: int = 0
    live_docs: int = 0
    seconds: float = 0.0

    def line(self, path: str | os.PathLike[str]) -> str:
        parts = [f"added {self.added:,}", f"updated {self.updated:,}", f"deleted {self.deleted:,}"]
        return (
            f"{', '.join(parts)} documents -> {path}: {self.live_docs:,} live documents in "
            f"{self.segments} segment{'s' if self.segments != 1 else ''} ({self.seconds:.2f}s)"
        )


def _load_changeable(index: str | os.PathLike[str]) -> BM25:
    """The index at ``index``, refusing the single-file format up front (it cannot change)."""
    _check_changeable(index)
    return BM25.load(index)


def _check_changeable(index: str | os.PathLike[str]) -> None:
    """Refuses a missing index and the single-file format (it cannot change), with the fix."""
    if not Path(index).exists():
        raise BdnscaError(
            f"{index}: no index there (build one with bdnsca index --corpus C --output {index})"
        )
    if not Path(index).is_dir():
        raise BdnscaError(
            f"{index}: this index was saved in the single-file format (weights only), which cannot "
            "change; rebuild it with `bdnsca index --corpus ... --output DIR` of this version"
        )


def save_new_index(bm25: BM25, output: str | os.PathLike[str]) -> bool:
    """Saves a newly built index to the folder ``output``. An older single-file index there is
    replaced: the folder is written beside it, the old file is renamed aside, the folder renamed
    in, then the old file removed (if renaming the folder in fails, the old file is put back), so
    no step leaves the old index lost. Returns whether one was replaced. An existing index
    folder is overwritten by the save (its unused files are removed)."""
    import shutil

    out = Path(output)
    if not out.is_file():
        bm25.save(out)
        return False
    tmp = out.with_name(f".{out.name}.new-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        bm25.save(tmp)
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        old.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return True


def read_id_list(path: str | os.PathLike[str]) -> list[str]:
    """Document ids to delete: one per line (``.jsonl``: objects with ``doc_id``/``_id``/``id``).
    An id listed twice is an error naming it and its lines."""
    from bdnsca.data.lines import id_field, iter_jsonl, iter_lines

    seen: dict[str, int] = {}
    ids: list[str] = []
    if str(path).endswith(".jsonl"):
        rows = ((n, id_field(obj, ("doc_id", "_id", "id"), path, n)) for n, obj in iter_jsonl(path))
    else:
        rows = ((n, line.rstrip("\r\n")) for n, line in iter_lines(path))
    for lineno, doc_id in rows:
        if not doc_id:
            continue
        if doc_id in seen:
            raise BdnscaError(
                f"{path}:{lineno}: id {doc_id!r} is listed twice (first on line {seen[doc_id]})"
            )
        seen[doc_id] = lineno
        ids.append(doc_id)
    return ids


def append_to_index(
    index: str | os.PathLike[str], corpus: Corpus, *, upsert: bool = False, include_title: bool = True
) -> ChangeSummary:
    """Adds ``corpus``'s documents to the saved index as one new segment. A document whose id is
    already live is an error naming it, unless ``upsert`` (then it replaces the old version).

    The index is not loaded (``BM25.append_to``): only its manifest, ids and deletes files are
    read, and the new segment, deletes files for replaced documents and the manifest written."""
    t0 = time.perf_counter()
    _check_changeable(index)
    texts = corpus.texts(include_title)
    try:
        stats = BM25.append_to(index, texts, corpus.ids, mode="upsert" if upsert else "add")
    except BdnscaError as e:
        if upsert or "is already in the index" not in str(e):
            raise
        # Nothing was written; name the first clash and how many there are, and the fix.
        present = set(BM25.read_ids(index))
        old = [d for d in corpus.ids if d in present]
        raise BdnscaError(
            f"document id {old[0]!r} is already in the index {index} "
            f"({len(old):,} of the {len(corpus):,} documents are): pass --upsert to replace them"
        ) from None
    return _summary(stats, t0)


def delete_from_index(index: str | os.PathLike[str], ids: list[str]) -> ChangeSummary:
    """Deletes the documents with these ids from the saved index; an id not in it is an error
    naming it, and then nothing changes. The index is not loaded (``BM25.delete_from``)."""
    t0 = time.perf_counter()
    _check_changeable(index)
    return _summary(BM25.delete_from(index, ids), t0)


def _summary(stats: dict[str, int], t0: float) -> ChangeSummary:
    return ChangeSummary(
        added=stats["added"], updated=stats["updated"], deleted=stats["deleted"],
        segments=stats["segments"], live_docs=stats["live_docs"], seconds=time.perf_counter() - t0,
    )  # fmt: skip


def merge_index(index: str | os.PathLike[str], max_segments: int = 1) -> ChangeSummary:
    """Merges the saved index's segments down to at most ``max_segments`` (deleted documents are
    dropped); scores do not change."""
    t0 = time.perf_counter()
    bm25 = _load_changeable(index)
    bm25.merge(max_segments=max_segments)
    bm25.save(index)
    return ChangeSummary(segments=bm25.n_segments, live_docs=bm25.n_docs, seconds=time.perf_counter() - t0)


def build_sharded(
    corpus: Corpus,
    shards: int,
    *,
    method: str = "lucene",
    k1: float = 1.5,
    b: float = 0.75,
    delta: float = 0.5,
    tokenizer: Tokenizer | None = None,
    include_title: bool = True,
    progress: Callable[[int], None] | None = None,
    ray_address: str | None = None,
) -> BM25:
    """One index of ``shards`` segments, built from as many contiguous slices of the corpus (each
    shard built on its own, then joined in order with ``BM25.add_index``): the same scores as one
    build. ``ray_address``: each shard is built by a Ray task there (``local``, ``auto`` or an
    address; :func:`bdnsca.retrieval.distributed.build_shards_ray`), the same index as without.
    ``progress(n)`` is called after each shard of n documents."""
    if shards < 1:
        raise BdnscaError(f"--shards must be >= 1, got {shards}")
    n = len(corpus)
    shards = min(shards, n)
    texts = corpus.texts(include_title)
    cuts = [n * i // shards for i in range(shards + 1)]
    bounds = list(zip(cuts, cuts[1:], strict=False))
    if ray_address is None:
        parts = (
            BM25(method=method, k1=k1, b=b, delta=delta, tokenizer=tokenizer).index(
                texts[lo:hi], ids=corpus.ids[lo:hi]
            )
            for lo, hi in bounds
        )
        return _join(parts, bounds, progress)
    from bdnsca.retrieval import distributed

    tok = tokenizer if tokenizer is not None else Tokenizer()
    settings = {
        "method": method, "k1": k1, "b": b, "delta": delta, "lowercase": tok.lowercase,
        "stopwords": tok.stopwords or None, "stemmer": tok.stemmer, "pattern": tok.pattern,
    }  # fmt: skip
    with distributed.session(ray_address):
        return _join(distributed.build_shards_ray(texts, corpus.ids, bounds, settings), bounds, progress)


def _join(
    parts: Iterable[BM25], bounds: list[tuple[int, int]], progress: Callable[[int], None] | None
) -> BM25:
    out: BM25 | None = None
    for (lo, hi), part in zip(bounds, parts, strict=False):
        if out is None:
            out = part
        else:
            out.add_index(part)
        if progress is not None:
            progress(hi - lo)
    assert out is not None  # read_corpus refuses an empty corpus
    return out
