"""Batch search and hard-negative mining fanned out over a Ray cluster (``--ray ADDRESS``).

This module owns everything Ray-specific: connecting (:func:`connect`, :func:`session`),
splitting the queries into contiguous chunks (:func:`chunk_bounds`), shipping the index to the
workers (:class:`IndexSource`: a path on storage every node reads, or the index files' bytes
placed once in the object store), the per-worker index cache, and gathering the results back in
query order. Writing stays with the local code: the driver writes every chunk through
:func:`bdnsca.retrieval.bm25.write_search_batch` and the mining outputs through
:func:`bdnsca.retrieval.mining.mine_hard_negatives`' own assembly, so a run file, the hard
negatives, the pairs and the summary (minus its wall-clock ``timings_s``) are byte-for-byte
the local run's.

Global statistics: every task holds the full index, so N, df and avgdl are the whole corpus's
and each query's scores and top-k are exactly the single-machine ones; only the queries are
split. Mining needs nothing more: each query's sampling is seeded by (seed, query id) in the
Rust miner, so a query's negatives, twins and pairs do not depend on which chunk it lands in.

Sharding the index itself (documents split over tasks, for corpora one node cannot hold)
would need, per query: the global statistics (N, avgdl and df of each query term summed over
the shards) passed to every shard so each scores with them (weights cannot be precomputed per
shard), then each shard's top-k merged by (score descending, id descending bytes), the tie
rule of ``BM25.search``; mining would also need the twins of positives that live on other
shards. :func:`build_shards_ray` does the building half (``index --shards N --ray``: each shard built
by a task, joined in order on the driver).

Ray is imported only inside functions: without ``--ray`` nothing imports it.

Longer than our ~450-line guide: connecting, chunking, index shipping with its version pin, the
worker cache and the ordered gather are one protocol that search and mining share; split, each
half would import the other's internals.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import math
import os
import shutil
import socket
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bdnsca.errors import BdnscaError

TASKS_PER_CPU = 4
"""Default chunks per CPU of the cluster: enough to balance uneven queries, few enough that
the per-task overhead stays small."""
MAX_CHUNK_QUERIES = 4096
"""No chunk holds more queries than this (bounds a task's result in the object store)."""
IN_FLIGHT_PER_CPU = 2
"""Tasks submitted ahead of the chunk being written, per cluster CPU (back-pressure)."""

PROBE_TIMEOUT_S = 10.0
"""How long :func:`connect` waits for a cluster address's port to answer."""


# ----------------------------------------------------------------------------- connecting


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BdnscaError("--ray needs Ray, which is not installed: pip install 'bdnsca[ray]'") from None
    return ray


def connect(address: str, *, num_cpus: int | None = None) -> bool:
    """Connects this process to Ray: ``local`` starts a private local cluster (``num_cpus``,
    default all cores; no dashboard, warnings only), ``auto`` joins the cluster running on this
    node (``ray start --head``), anything else is the address (``ray://host:10001`` or
    ``host:6379``). Returns True when this call connected (the caller shuts down), False when
    Ray was already initialised (then it is left alone). Raises BdnscaError with one line when
    Ray is missing or the cluster cannot be reached."""
    ray = _ray()
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address == "local":
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
        else:
            if num_cpus is not None:
                raise BdnscaError("num_cpus applies to --ray local only (a running cluster has its own)")
            _probe(address)
            ray.init(address=address, **quiet)
    except BdnscaError:
        raise
    except Exception as e:  # ConnectionError, RuntimeError, ValueError, TimeoutError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BdnscaError(f"cannot connect to the Ray cluster at {address!r}: {first}") from None
    return True


def _probe(address: str) -> None:
    """Fails fast when nothing listens at ``host:port`` (Ray itself retries for minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if address == "auto" or not sep or not port.isdigit():
        return  # "auto" and odd forms: Ray's own resolution and errors
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as e:
        raise BdnscaError(
            f"cannot connect to the Ray cluster at {address!r}: nothing answers at {host}:{port} ({e}); "
            "start it with `ray start --head` or check the address"
        ) from None


@contextlib.contextmanager
def session(address: str, *, num_cpus: int | None = None) -> Iterator[None]:
    """:func:`connect` for a block; shuts Ray down at the end if this block connected it."""
    started = connect(address, num_cpus=num_cpus)
    try:
        yield
    finally:
        if started:
            _ray().shutdown()


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(_ray().cluster_resources().get("CPU", 1)))


# ----------------------------------------------------------------------------- chunks


def chunk_bounds(n: int, chunks: int) -> list[tuple[int, int]]:
    """``chunks`` contiguous ``(start, stop)`` ranges covering ``range(n)`` in order, sizes
    differing by at most one; never an empty range (fewer ranges when n < chunks; none when
    n == 0)."""
    if chunks <= 0:
        raise BdnscaError(f"the number of Ray tasks must be >= 1, got {chunks}")
    chunks = min(chunks, n)
    if chunks == 0:
        return []
    size, extra = divmod(n, chunks)
    bounds, start = [], 0
    for i in range(chunks):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def min_chunks(n: int) -> int:
    """The fewest chunks that keep every chunk within :data:`MAX_CHUNK_QUERIES` queries."""
    return math.ceil(n / MAX_CHUNK_QUERIES)


def plan_chunks(n: int, tasks: int | None) -> list[tuple[int, int]]:
    """The chunks of ``n`` queries: ``tasks`` of them (default :func:`default_chunks`), but
    never fewer than :func:`min_chunks` (a chunk's result comes back through the object store
    whole, so ``--ray-tasks 2`` over 10M queries still gets chunks of at most 4096)."""
    if tasks is not None and tasks <= 0:
        raise BdnscaError(f"the number of Ray tasks must be >= 1, got {tasks}")
    return chunk_bounds(n, max(tasks if tasks is not None else default_chunks(n), min_chunks(n), 1))


def default_chunks(n: int) -> int:
    """:data:`TASKS_PER_CPU` per cluster CPU, more when that would exceed
    :data:`MAX_CHUNK_QUERIES` queries per chunk."""
    return max(TASKS_PER_CPU * cluster_cpus(), min_chunks(n), 1)


def _ordered(submit: Callable[[int], Any], n_chunks: int) -> Iterator[tuple[int, Any]]:
    """``(i, ray.get(submit(i)))`` for i in 0..n_chunks in order, keeping at most
    :data:`IN_FLIGHT_PER_CPU` x CPUs tasks submitted ahead of the one being consumed."""
    ray = _ray()
    window = max(2, IN_FLIGHT_PER_CPU * cluster_cpus())
    refs: dict[int, Any] = {}
    ahead = 0
    for i in range(n_chunks):
        while ahead < n_chunks and ahead < i + window:
            refs[ahead] = submit(ahead)
            ahead += 1
        try:
            value = ray.get(refs.pop(i))
        except ray.exceptions.RayTaskError as e:
            user_error = _local_error(getattr(e, "cause", None))
            if user_error is None:
                raise
            raise user_error from None
        yield i, value


def _local_error(cause: BaseException | None) -> BaseException | None:
    """A user error raised in a task (bdnsca's errors, a missing file, memory) to raise as the
    driver would have raised it locally, or None for anything else (the Ray error then). bdnsca's
    exceptions name their module ``bdnsca._core`` and pickle by reference, so the cause is of
    the very class ``except bdnsca.IndexFileError`` catches."""
    if isinstance(cause, BdnscaError | OSError | MemoryError):
        return cause
    return None


def _task(fn: Callable[..., Any], cpus_per_task: int) -> Any:
    """``fn`` as a Ray task reserving ``cpus_per_task`` CPUs, its Rust thread pool that size.
    Refused when no node has that many CPUs (Ray would wait for one forever)."""
    ray = _ray()
    if cpus_per_task <= 0:
        raise BdnscaError(f"CPUs per task must be >= 1, got {cpus_per_task}")
    biggest = max((n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    if cpus_per_task > biggest:
        raise BdnscaError(
            f"a task asks for {cpus_per_task} CPUs; the largest node of the cluster has {biggest:g}"
        )
    return ray.remote(fn).options(
        num_cpus=cpus_per_task, runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(cpus_per_task)}}
    )


# ----------------------------------------------------------------------------- index shipping


def index_version(path: str | os.PathLike[str]) -> str:
    """The version of the index at ``path``: the SHA-256 of its ``manifest.json`` for an index
    folder (the manifest names every segment and deletes file with its length and CRC, and its
    generation changes with any append, delete or merge), of its bytes for a single-file index.
    A run pins it on the driver; every worker checks the index it loaded has it."""
    from bdnsca.data.io import index_sha256

    return index_sha256(path)


def _changed(path: Any, got: str, expected: str) -> BdnscaError:
    return BdnscaError(
        f"index at {path} changed during the run (manifest hash {got[:16]}, expected {expected[:16]}); rerun"
    )


def load_pinned(path: str | os.PathLike[str], expected: str | None = None) -> tuple[Any, str]:
    """``(BM25.load(path), version)``, where ``version`` (:func:`index_version`) is read before
    and after the load and must not change in between (a concurrent append, delete or merge
    would give an index of unknown version). With ``expected``, the version must be that one:
    anything else raises BdnscaError ("index at PATH changed during the run ...; rerun")."""
    from bdnsca._core import BM25

    before = index_version(path)
    if expected is not None and before != expected:
        raise _changed(path, before, expected)
    try:
        bm25 = BM25.load(path)
    except Exception:
        # A file named by the manifest read at the start may have been collected since.
        after = index_version(path)
        if after != before:
            raise _changed(path, after, expected or before) from None
        raise
    after = index_version(path)
    if after != before:
        raise _changed(path, after, expected or before)
    return bm25, before


def _manifest_files(manifest: bytes, root: Path) -> list[str]:
    """The files an index folder's manifest names (segments and their deletes files)."""
    import json

    try:
        segments = json.loads(manifest)["segments"]
        files = [seg["file"] for seg in segments]
        files += [seg["deletes"]["file"] for seg in segments if seg.get("deletes")]
    except (ValueError, KeyError, TypeError) as e:
        raise BdnscaError(f"{root / 'manifest.json'}: not a bdnsca index manifest ({e})") from None
    for f in files:
        if not isinstance(f, str) or Path(f).name != f or f in ("", ".", ".."):
            raise BdnscaError(f"{root / 'manifest.json'}: bad file name {f!r}")
    return files


def pack_index(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """The bytes of one version of the index saved at ``path``, by path relative to ``path``
    ("" for a single file); :func:`unpack_index` restores them. For a folder: its
    ``manifest.json`` as read once, then exactly the files that manifest names (not the
    previous generation's files or temporary files that may lie beside them), so the pack is
    one consistent version; a named file gone meanwhile (the folder changed) raises
    BdnscaError."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"index not found: {root}")
    if root.is_file():
        return {"": root.read_bytes()}
    manifest = (root / "manifest.json").read_bytes()
    packed = {"manifest.json": manifest}
    for name in _manifest_files(manifest, root):
        try:
            packed[name] = (root / name).read_bytes()
        except FileNotFoundError:
            gone = f"index at {root} changed while it was packed ({name} is gone); rerun"
            raise BdnscaError(gone) from None
    return packed


def packed_version(packed: dict[str, bytes]) -> str:
    """:func:`index_version` of what :func:`pack_index` packed."""
    return hashlib.sha256(packed["manifest.json"] if "manifest.json" in packed else packed[""]).hexdigest()


def unpack_index(packed: dict[str, bytes], name: str = "index") -> Path:
    """Writes :func:`pack_index`'s bytes under a fresh temporary directory (removed when this
    process exits) and returns the path to load."""
    tmp = Path(tempfile.mkdtemp(prefix="bdnsca-ray-index-"))
    atexit.register(shutil.rmtree, tmp, True)
    target = tmp / name
    for rel, data in packed.items():
        dest = target if rel == "" else target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return target


@dataclass(frozen=True)
class IndexSource:
    """How workers get the index: ``path`` on storage every node can read, or ``packed`` (a
    one-element list holding the object ref of :func:`pack_index`'s bytes, wrapped so Ray does
    not fetch it for tasks whose worker already holds the index). ``version`` is the
    :func:`index_version` the driver pinned: a worker loading another version raises
    BdnscaError instead of using it. ``key`` names the index in the per-worker cache (it
    includes the version)."""

    key: str
    version: str = ""
    path: str | None = None
    packed: list[Any] | None = None
    name: str = "index"

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, object_store: bool = False, version: str | None = None
    ) -> IndexSource:
        """The index at ``path`` pinned at ``version`` (default: its version now)."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"index not found: {p}")
        if object_store:
            packed = pack_index(p)
            got = packed_version(packed)
            if version is not None and got != version:
                raise _changed(p, got, version)
            return cls(key=f"packed:{got}", version=got, packed=[_ray().put(packed)], name=p.name)
        version = version if version is not None else index_version(p)
        resolved = str(p.resolve())
        return cls(key=f"{resolved}@{version}", version=version, path=resolved)

    def load(self) -> Any:
        """The index, loaded in this process (a worker), checked to be ``version``."""
        from bdnsca._core import BM25

        if self.path is not None:
            try:
                return load_pinned(self.path, self.version or None)[0]
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"index {self.path} not found on Ray node {socket.gethostname()}: put it on storage "
                    "every node reads, or ship it with --ray-object-store"
                ) from None
            except OSError as e:
                msg = (
                    f"cannot read index {self.path} on Ray node {socket.gethostname()}: {e.strerror or e} "
                    "(put it on storage every node reads, or ship it with --ray-object-store)"
                )
                if e.errno is None:
                    raise BdnscaError(msg) from None
                raise OSError(e.errno, msg) from None  # OSError(errno, ...) is the errno's subclass
        assert self.packed is not None
        path = unpack_index(_ray().get(self.packed[0]), self.name)
        try:
            # BM25.load reads the files into memory (no mapping), so they can go at once.
            return BM25.load(path)
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)


_CACHE: OrderedDict[str, Any] = OrderedDict()
"""Per worker process: what :func:`_cached` loaded, by key; the last few only."""
_CACHE_SIZE = 4


def _cached(key: str, load: Callable[[], Any]) -> Any:
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = load()
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


# ----------------------------------------------------------------------------- search


def _search_chunk(source: IndexSource, texts: list[str], k: int, threads: int) -> tuple[list, Any]:
    """Ray task: one chunk's ``search_batch`` over the worker's copy of the index."""
    bm25 = _cached(source.key, source.load)
    return bm25.search_batch(texts, k=k, threads=threads)


def search_to_file_ray(
    index_path: str | os.PathLike[str],
    queries: Sequence[Any],
    path: str | os.PathLike[str],
    *,
    k: int = 100,
    tag: str = "bdnsca",
    chunks: int | None = None,
    cpus_per_task: int = 1,
    object_store: bool = False,
    progress: Callable[[int], None] | None = None,
    version: str | None = None,
) -> Any:
    """:func:`bdnsca.retrieval.bm25.search_to_file` over the connected Ray cluster: the
    queries in contiguous chunks (default :func:`default_chunks`), each searched by a task
    (``cpus_per_task`` CPUs and search threads) whose worker loads the index at ``index_path``
    once (or from the object store with ``object_store=True``); the driver writes the chunks in
    query order, so the file equals the local one byte for byte. The run is pinned on the
    index's version (``version``, default :func:`index_version` when the run starts): a worker
    finding another version at ``index_path`` (the folder was appended to meanwhile) raises
    BdnscaError rather than mix two versions in one run file. Returns a SearchSummary."""
    from bdnsca.data.io import open_run_writer
    from bdnsca.retrieval.bm25 import SearchSummary, write_search_batch

    if k <= 0:
        raise BdnscaError(f"k must be >= 1, got {k}")
    source = IndexSource.from_path(index_path, object_store=object_store, version=version)
    bounds = plan_chunks(len(queries), chunks)
    task = _task(_search_chunk, cpus_per_task)

    def submit(i: int) -> Any:
        start, stop = bounds[i]
        return task.remote(source, [q.text for q in queries[start:stop]], k, cpus_per_task)

    with open_run_writer(path, tag) as writer:
        for i, (ids, scores) in _ordered(submit, len(bounds)):
            start, stop = bounds[i]
            write_search_batch(writer, queries[start:stop], ids, scores)
            if progress is not None:
                progress(stop - start)
    return SearchSummary(writer.queries, writer.empty, writer.rows)


# ----------------------------------------------------------------------------- mining

_MINING_COLUMNS = (
    "negative_offsets negative_doc negative_score negative_rank negative_same_domain suspect_offsets "
    "suspect_doc suspect_duplicate_of suspect_similarity suspect_score suspect_rank positive_offsets "
    "positive_score pair_offsets pair_positive pair_negative dropped_by_rank dropped_by_score "
    "available_same available_cross skipped_no_positive_scored"
).split()
_PARAM_FIELDS = (
    "depth rank_min rank_max same_domain cross_domain max_score_ratio near_dup_threshold sampling seed "
    "max_pairs"
).split()


def ids_digest(bm25: Any) -> str:
    """SHA-256 of an index's document count and ids in order: the numbering the driver maps
    mined positions back through, which a worker's index must share."""
    h = hashlib.sha256(f"{bm25.n_docs}\n".encode())
    for i in bm25.ids:
        h.update(i.encode())
        h.update(b"\0")
    return h.hexdigest()


def _mine_chunk(
    source: IndexSource,
    corpus_key: str,
    corpus_ref: list[Any],
    rows: dict[str, list],
    params: dict,
    driver_ids: str = "",
) -> dict[str, Any]:
    """Ray task: ``_core.mine`` over one chunk of queries with the worker's index and texts;
    returns the output's numpy columns (cut per query on the driver). ``driver_ids`` is
    :func:`ids_digest` of the driver's index: a worker index numbering its documents otherwise
    would map every mined position to the wrong id, so it raises instead."""
    from bdnsca import _core
    from bdnsca.retrieval.mining import MiningJob

    bm25 = _cached(source.key, source.load)
    if driver_ids and _cached(f"{source.key}:ids", lambda: ids_digest(bm25)) != driver_ids:
        raise BdnscaError(
            f"index at {source.path or source.name} changed during the run (manifest hash "
            f"{source.version[:16]} holds other documents than the index mining started with); rerun"
        )

    def load_corpus() -> tuple[Any, list[int]]:
        texts, domains = _ray().get(corpus_ref[0])
        return _core.DocTexts(texts), domains

    doc_texts, domains = _cached(corpus_key, load_corpus)
    job = MiningJob(bm25=bm25, domains=domains, params=_core.MiningParams(**params), **rows)
    out = job.mine(doc_texts, 0, len(job.queries))
    return {name: getattr(out, name) for name in _MINING_COLUMNS}


def ray_miner(
    index_path: str | os.PathLike[str] | None = None,
    *,
    chunks: int | None = None,
    cpus_per_task: int = 1,
    object_store: bool = False,
    version: str | None = None,
) -> Callable[..., list[Any]]:
    """A ``miner`` for :func:`bdnsca.retrieval.mining.mine_hard_negatives` running on the
    connected Ray cluster: contiguous query chunks, one task each, results in query order.
    Workers load the index at ``index_path`` (the one mined with, on shared storage), or from
    the object store with ``object_store=True`` or when the miner built the index itself
    (``index_path=None``: it is saved to a temporary file and its bytes shipped). The documents'
    texts and domains go through the object store once.

    Workers use exactly the index the driver mines with: the run is pinned on ``version``
    (:func:`index_version`; pass the one :func:`load_pinned` returned with the driver's index,
    default the version when mining starts), and each worker checks its index has that version;
    without ``version`` the workers also check they hold the driver's document ids in order
    (:func:`ids_digest`), as the driver's index may predate the pin. Otherwise the task raises
    BdnscaError ("index at PATH changed during the run ...; rerun")."""
    if cpus_per_task <= 0:
        raise BdnscaError(f"CPUs per task must be >= 1, got {cpus_per_task}")

    def run(job: Any, texts: list[str], progress: Callable[[int, int], None] | None = None) -> list[Any]:
        from bdnsca.retrieval.pairs import mined_per_query

        ray = _ray()
        n = len(job.queries)
        bounds = plan_chunks(n, chunks)
        if not bounds:
            return []
        with tempfile.TemporaryDirectory(prefix="bdnsca-ray-mine-") as tmp:
            if index_path is None:
                saved = Path(tmp) / "index.bm25"
                job.bm25.save(saved)
                source = IndexSource.from_path(saved, object_store=True)
            else:
                source = IndexSource.from_path(index_path, object_store=object_store, version=version)
        # With no version from load_pinned, the driver's index may be an older load than the
        # version pinned now: the workers also check its ids (a transient list of every id).
        driver_ids = ids_digest(job.bm25) if index_path is not None and version is None else ""
        corpus_key = f"corpus-{uuid.uuid4().hex}"  # this run's texts; workers drop them later
        corpus_ref = [ray.put((texts, job.domains))]
        params = {f: getattr(job.params, f) for f in _PARAM_FIELDS}
        task = _task(_mine_chunk, cpus_per_task)

        def submit(i: int) -> Any:
            a, b = bounds[i]
            rows = {
                name: getattr(job, name)[a:b]
                for name in ("queries", "query_ids", "positives", "relevant", "query_domains")
            }
            return task.remote(source, corpus_key, corpus_ref, rows, params, driver_ids)

        mined: list[Any] = []
        for i, cols in _ordered(submit, len(bounds)):
            a, b = bounds[i]
            mined.extend(mined_per_query(SimpleNamespace(**cols, n_queries=b - a)))
            if progress:
                progress(b, n)
        return mined

    return run


# ----------------------------------------------------------------------------- index shards


def build_shard(texts: Sequence[str], ids: Sequence[str], settings: dict[str, Any]) -> Any:
    """Builds one shard's index over a slice of the corpus (``texts`` with their ``ids``;
    ``settings``: method, k1, b, delta and the Tokenizer's lowercase, stopwords, stemmer,
    pattern) and returns the ``BM25`` (it pickles as one checksummed blob). The Ray task of
    ``bdnsca index --shards N --ray`` (:func:`build_shards_ray`), one per shard."""
    from bdnsca._core import BM25, Tokenizer

    tok_keys = ("lowercase", "stopwords", "stemmer", "pattern")
    tokenizer = Tokenizer(**{k: settings[k] for k in tok_keys if k in settings})
    bm25 = BM25(
        **{k: settings[k] for k in ("method", "k1", "b", "delta") if k in settings}, tokenizer=tokenizer
    )
    return bm25.index(list(texts), ids=list(ids))


def build_shards_ray(
    texts: Sequence[str], ids: Sequence[str], bounds: Sequence[tuple[int, int]], settings: dict[str, Any]
) -> Iterator[Any]:
    """The shards ``texts[lo:hi]`` for each ``(lo, hi)`` of ``bounds``, each built by
    :func:`build_shard` in a Ray task (one CPU), yielded in order as they are needed (at most
    :data:`IN_FLIGHT_PER_CPU` x CPUs tasks ahead, so the driver holds few shards at once)."""
    task = _task(build_shard, 1)

    def submit(i: int) -> Any:
        lo, hi = bounds[i]
        return task.remote(list(texts[lo:hi]), list(ids[lo:hi]), settings)

    for _, shard in _ordered(submit, len(bounds)):
        yield shard


__all__ = [
    "IndexSource",
    "build_shard",
    "build_shards_ray",
    "chunk_bounds",
    "cluster_cpus",
    "connect",
    "default_chunks",
    "ids_digest",
    "index_version",
    "load_pinned",
    "pack_index",
    "packed_version",
    "plan_chunks",
    "ray_miner",
    "search_to_file_ray",
    "session",
    "unpack_index",
]
