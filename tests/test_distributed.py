"""search / mine-negatives --ray: the files a Ray run writes are the local run's byte for byte
(bundled data and a generated 50k-document Zipf corpus; uneven and empty chunkings), and
nothing imports Ray unless asked."""

from __future__ import annotations

import filecmp
import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import bdnsca
from bdnsca.cli._common import cli
from bdnsca.data.io import Query, read_queries
from bdnsca.retrieval import distributed
from bdnsca.retrieval.bm25 import search_to_file
from conftest import DATA, ROOT

CORPUS = DATA / "retrieval_corpus_wide.jsonl"
GOLD = DATA / "retrieval_gold_wide.jsonl"
PARAPHRASE = DATA / "retrieval_gold_paraphrase.jsonl"


@pytest.fixture(scope="module")
def ray_cluster():
    """One local 2-CPU Ray cluster for the module; each test using it skips, with the reason,
    when Ray is missing or cannot start here."""
    try:
        import ray
    except ImportError:
        yield "Ray is not installed (pip install 'bdnsca[ray]')"
        return
    try:
        # address="local": a private cluster even with RAY_ADDRESS set or `ray start` running
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as e:  # pragma: no cover - depends on the machine
        yield f"Ray is installed but a local Ray cluster cannot start here: {type(e).__name__}: {e}"
        return
    try:
        yield None
    finally:
        ray.shutdown()


@pytest.fixture
def ray_up(ray_cluster):
    if ray_cluster is not None:
        pytest.skip(ray_cluster)


def invoke(*args) -> None:
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def same_files(a: Path, b: Path) -> None:
    assert a.read_bytes() == b.read_bytes(), f"{a} and {b} differ"
    assert filecmp.cmp(a, b, shallow=False)


def summary_without_timings(path: Path) -> dict:
    s = json.loads(path.read_text())
    s.pop("timings_s")
    s["outputs"] = {k: Path(v).name for k, v in s["outputs"].items()}
    return s


# ----------------------------------------------------------------------------- no Ray, no import


def test_cli_and_local_search_do_not_import_ray(tmp_path):
    """A top-level ``import ray`` anywhere on the CLI's path (or an eager import of the Ray
    module) would put it in sys.modules."""
    code = f"""
import sys
from click.testing import CliRunner
import bdnsca.cli
from bdnsca.cli._common import cli
r = CliRunner().invoke(cli, ["search", "--help"])
assert r.exit_code == 0 and "--ray" in r.output, r.output
r = CliRunner().invoke(cli, ["index", "--corpus", {str(CORPUS)!r}, "-o", {str(tmp_path / "i.bm25")!r}])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(cli, ["index", "--corpus", {str(CORPUS)!r}, "--shards", "3",
                            "-o", {str(tmp_path / "s")!r}])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(cli, ["index", "--merge", "--ray", "local", "-o", {str(tmp_path / "s")!r}])
assert r.exit_code == 2 and "--ray builds shards of a new index" in r.output, r.output
r = CliRunner().invoke(cli, ["search", "--index", {str(tmp_path / "i.bm25")!r}, "--queries",
                            {str(GOLD)!r}, "-o", {str(tmp_path / "r.trec")!r}])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(cli, ["mine-negatives", "--help"])
assert r.exit_code == 0 and "--ray" in r.output, r.output
r = CliRunner().invoke(cli, ["mine-negatives", "--retrieval-gold", {str(GOLD)!r}, "--retrieval-corpus",
                            {str(CORPUS)!r}, "--index", {str(tmp_path / "s")!r},
                            "--output-hard-negatives", {str(tmp_path / "hn.jsonl")!r},
                            "--output-reranker-pairs", {str(tmp_path / "p.jsonl")!r},
                            "--output-summary", {str(tmp_path / "sum.json")!r}])
assert r.exit_code == 0, r.output
print("ray" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_ray_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(bdnsca.BdnscaError, match=r"pip install 'bdnsca\[ray\]'"):
        distributed.connect("local")


def test_unreachable_cluster_is_one_line_and_fast(bundled_index, tmp_path):
    """Ray alone retries a dead address for minutes; the user gets one line at once (a
    subprocess: this module's cluster would otherwise be reused)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'bdnsca[ray]')")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["search", "--index", bundled_index, "--queries", GOLD, "-o", tmp_path / "r.trec"]
    out = subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args), "--ray", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: cannot connect to the Ray cluster") and len(lines) == 1, out.stderr
    assert not (tmp_path / "r.trec").exists()


_PROCS_UNDER = """
def procs_under(root, me):
    import os
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(pid) != me and root in cmd:
            found.append(f"{pid}: {cmd[:120]}")
    return found
"""


@pytest.mark.slow
def test_search_ray_local_in_a_fresh_process_starts_and_stops_its_own_cluster(bundled_index, tmp_path):
    """``search --ray local`` as a user runs it: a fresh interpreter with no cluster (RAY_*
    unset, its own TMPDIR, so Ray's session directory and every process it starts name that
    directory): the run file equals the local one; the child started a cluster of its own (a
    session directory appeared under its TMPDIR: it did not join this module's cluster); by the
    time the command returns (the child still alive, so Ray's atexit has not run) no process
    naming that directory is left and Ray is not initialised; no unpacked index copy remains."""
    import os
    import tempfile
    import textwrap

    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'bdnsca[ray]')")
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc to list the processes Ray started")
    local, remote = tmp_path / "local.trec", tmp_path / "ray.trec"
    common = ["search", "--index", str(bundled_index), "--queries", str(PARAPHRASE), "-k", "20"]
    invoke(*common, "-o", local)
    ray_args = ["--ray", "local", "--ray-object-store", "--ray-tasks", "3"]
    tmp = tempfile.mkdtemp(prefix="bx", dir="/tmp")  # short: Ray's socket paths live under it
    try:
        code = _PROCS_UNDER + textwrap.dedent(f"""
            import os, sys, time
            import ray
            from bdnsca.cli._common import cli
            args = {[*common, "-o", str(remote), *ray_args]!r}
            try:
                cli.main(args, standalone_mode=False)
            finally:
                root = os.environ["TMPDIR"]
                deadline = time.monotonic() + 15
                while procs_under(root, os.getpid()) and time.monotonic() < deadline:
                    time.sleep(0.2)
                print("LEFT", procs_under(root, os.getpid()))
                print("INIT", ray.is_initialized())
        """)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env["TMPDIR"] = tmp
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240, cwd=ROOT
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert "LEFT []" in out.stdout and "INIT False" in out.stdout, out.stdout + out.stderr[-2000:]
        same_files(local, remote)
        assert list(Path(tmp, "ray").glob("session_*")), "the child did not start a cluster of its own"
        assert not list(Path(tmp).glob("bdnsca-ray-index-*"))
        check = _PROCS_UNDER + f"\nprint(procs_under({tmp!r}, __import__('os').getpid()))"
        after = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
        assert after.stdout.strip() == "[]", after.stdout
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def test_ray_flags_need_ray(tmp_path):
    args = ["search", "--index", CORPUS, "--queries", GOLD, "-o", tmp_path / "r", "--ray-tasks", "3"]
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code != 0 and "need --ray" in res.output


@given(st.integers(0, 300), st.integers(1, 40))
def test_chunk_bounds_cover_every_query_once_in_order(n, chunks):
    """Against a brute force: concatenating the chunks gives 0..n-1 exactly (no query lost or
    repeated at a boundary), no chunk is empty, sizes differ by at most one."""
    bounds = distributed.chunk_bounds(n, chunks)
    assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
    assert len(bounds) == min(n, chunks)
    sizes = [b - a for a, b in bounds]
    assert all(s >= 1 for s in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1


def _folder_index(path: Path, n: int = 40) -> Path:
    docs = [f"doc {i} words w{i % 7} w{i % 3} shared" for i in range(n)]
    bdnsca.BM25().index(docs, ids=[f"d{i}" for i in range(n)]).save(path)
    assert path.is_dir()
    return path


def _manifest_files(root: Path) -> set[str]:
    m = json.loads((root / "manifest.json").read_text())
    names = {s["file"] for s in m["segments"]} | {s["deletes"]["file"] for s in m["segments"] if s["deletes"]}
    return names | {"manifest.json"}


def test_pack_ships_exactly_the_manifests_files_after_append_and_merge(tmp_path):
    """After append + delete + merge the folder still holds the previous generation's
    segments and deletes files (and may hold temporary manifests): the pack is the manifest's
    files only, checked against the manifest read independently, and loads to the same index."""
    root = _folder_index(tmp_path / "idx")
    bdnsca.BM25.append_to(root, ["new doc one", "new doc two"], ["n1", "n2"])
    bdnsca.BM25.delete_from(root, ["d3"])
    b = bdnsca.BM25.load(root)
    b.merge()
    b.save(root)
    (root / ".manifest.json.tmp-123").write_bytes(b"partial")
    on_disk = {p.name for p in root.iterdir()}
    wanted = _manifest_files(root)
    assert on_disk > wanted  # the old generation is still there (else this test shows nothing)
    packed = distributed.pack_index(root)
    assert set(packed) == wanted
    assert sum(map(len, packed.values())) == sum((root / n).stat().st_size for n in wanted)
    assert distributed.packed_version(packed) == distributed.index_version(root)
    back = distributed.unpack_index(packed, "idx")
    assert bdnsca.BM25.load(back).ids == bdnsca.BM25.load(root).ids


def test_pack_of_a_manifest_naming_a_vanished_file_says_the_index_changed(tmp_path):
    root = _folder_index(tmp_path / "idx")
    (seg,) = root.glob("seg-*")
    seg.unlink()
    with pytest.raises(bdnsca.BdnscaError, match="changed while it was packed"):
        distributed.pack_index(root)


def test_cache_key_changes_when_the_index_is_rewritten(tmp_path):
    """A worker keeps loaded indexes by key: an index rebuilt or appended to at the same path
    must not be served from the cache."""
    p = tmp_path / "i.bm25"
    bdnsca.BM25().index(["a b", "c d"]).save(p)
    k1 = distributed.IndexSource.from_path(p).key
    bdnsca.BM25().index(["a b", "c d", "e f g"]).save(p)
    k2 = distributed.IndexSource.from_path(p).key
    bdnsca.BM25.append_to(p, ["h i"], ["x"])
    assert len({k1, k2, distributed.IndexSource.from_path(p).key}) == 3


def test_a_worker_refuses_an_index_changed_since_the_driver_pinned_it(tmp_path):
    """The race of a Ray run (no Ray needed: IndexSource.load is what a worker runs): the
    driver pins the version, another process appends, the worker's load must raise, not
    search another version of the index."""
    root = _folder_index(tmp_path / "idx")
    source = distributed.IndexSource.from_path(root)
    assert source.load().ids == bdnsca.BM25.load(root).ids  # unchanged: loads
    bdnsca.BM25.append_to(root, ["late doc"], ["late"])
    with pytest.raises(bdnsca.BdnscaError, match=r"index at .* changed during the run .*expected .*rerun"):
        source.load()
    with pytest.raises(bdnsca.BdnscaError, match="changed during the run"):
        distributed.load_pinned(root, source.version)
    bm25, version = distributed.load_pinned(root)
    assert version == distributed.index_version(root) != source.version and "late" in bm25.ids


def test_unreadable_index_on_a_worker_names_the_node(tmp_path):
    """Not only a missing index: any OSError reading it on a worker names the node (and keeps
    its class, so the driver raises it as locally)."""
    (tmp_path / "file").write_text("x")
    source = distributed.IndexSource(key="k", path=str(tmp_path / "file" / "idx"))
    with pytest.raises(NotADirectoryError, match=f"on Ray node {socket.gethostname()}"):
        source.load()


def test_plan_chunks_keeps_the_per_chunk_cap():
    """--ray-tasks N asks for N chunks, but never chunks above MAX_CHUNK_QUERIES."""
    cap = distributed.MAX_CHUNK_QUERIES
    for n, tasks in ((10 * cap + 1, 2), (cap, 1), (cap + 1, 1), (50, 7), (0, 3)):
        bounds = distributed.plan_chunks(n, tasks)
        assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
        assert all(b - a <= cap for a, b in bounds)
        assert len(bounds) == min(n, max(tasks, -(-n // cap)))


@pytest.mark.parametrize("cmd", ["search", "mine-negatives"])
@pytest.mark.parametrize("threads", ["0", "-2"])
def test_bad_threads_with_ray_is_a_usage_error_before_any_cluster(monkeypatch, tmp_path, cmd, threads):
    def no_cluster(*a, **k):
        raise AssertionError("a cluster was started before --threads was checked")

    monkeypatch.setattr(distributed, "connect", no_cluster)
    if cmd == "search":
        args = ["search", "--index", CORPUS, "--queries", GOLD, "-o", tmp_path / "r.trec"]
    else:
        args = ["mine-negatives", "--retrieval-gold", GOLD, "--retrieval-corpus", CORPUS]
    res = CliRunner().invoke(cli, [*map(str, args), "--ray", "local", "--threads", threads])
    assert res.exit_code == 2 and "--threads must be >= 1" in res.output, res.output


# ----------------------------------------------------------------------------- bundled data


@pytest.fixture(scope="module")
def bundled_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundled") / "wide.bm25"
    invoke("index", "--corpus", CORPUS, "-o", path)
    return path


@pytest.mark.parametrize("suffix", ["jsonl", "trec"])
@pytest.mark.parametrize("extra", [[], ["--ray-tasks", "7"], ["--ray-tasks", "3", "--ray-object-store"]])
def test_search_ray_equals_local_bundled(ray_up, bundled_index, tmp_path, suffix, extra):
    """Chunks written out of order, a chunk lost or doubled, or scores rounded in transit
    would change the bytes."""
    local, remote = tmp_path / f"local.{suffix}", tmp_path / f"ray.{suffix}"
    common = ["search", "--index", bundled_index, "--queries", PARAPHRASE, "-k", 50]
    invoke(*common, "-o", local)
    invoke(*common, "-o", remote, "--ray", "local", *extra)
    same_files(local, remote)
    import ray

    assert ray.is_initialized()  # --ray local joined the running cluster and left it running


def test_search_ray_uneven_and_empty(ray_up, bundled_index, tmp_path):
    """More tasks than queries (1 query, 16 tasks), 5 queries over 2 tasks, and no query."""
    bm25 = bdnsca.BM25.load(bundled_index)
    qs = read_queries(PARAPHRASE)
    for queries, tasks in ((qs[:1], 16), (qs[3:8], 2), ([], 4), ([Query("none", "zzqx unknownword", {})], 3)):
        local, remote = tmp_path / "l.trec", tmp_path / "r.trec"
        a = search_to_file(bm25, queries, local, k=10)
        b = distributed.search_to_file_ray(bundled_index, queries, remote, k=10, chunks=tasks)
        same_files(local, remote)
        assert (a.queries, a.empty, a.rows) == (b.queries, b.empty, b.rows)


MINING_CASES = [
    [],
    ["--sampling", "random", "--seed", "7", "--rank-range", "2:60", "--max-score-ratio", "0.95"],
    ["--pair-format", "triplet", "--near-duplicate-threshold", "off", "--ray-object-store"],
]


@pytest.mark.parametrize("extra", MINING_CASES)
@pytest.mark.parametrize("reuse_index", [False, True])
def test_mine_ray_equals_local_bundled(ray_up, bundled_index, tmp_path, extra, reuse_index):
    """Per-query seeding, twin detection and the score ceiling must not depend on the chunk a
    query lands in; the index built on the driver (no --index) must reach the workers intact."""
    local_extra = [a for a in extra if a != "--ray-object-store"]
    index = ["--index", bundled_index] if reuse_index else []
    outs = {}
    for name, more in (("local", local_extra), ("ray", [*extra, "--ray", "local", "--ray-tasks", "5"])):
        d = tmp_path / name
        d.mkdir()
        outs[name] = (d / "hn.jsonl", d / "pairs.jsonl", d / "summary.json")
        invoke(
            "mine-negatives", "--retrieval-gold", GOLD, "--retrieval-corpus", CORPUS, *index,
            "--output-hard-negatives", outs[name][0], "--output-reranker-pairs", outs[name][1],
            "--output-summary", outs[name][2], *more,
        )  # fmt: skip
    same_files(outs["local"][0], outs["ray"][0])
    same_files(outs["local"][1], outs["ray"][1])
    assert summary_without_timings(outs["local"][2]) == summary_without_timings(outs["ray"][2])
    assert outs["local"][0].stat().st_size > 0


# ----------------------------------------------------------------------------- generated 50k corpus


@pytest.fixture(scope="module")
def zipf_data(tmp_path_factory):
    """50k documents over a Zipf vocabulary in 5 domains, 2% of them near-twins of another
    (one word changed: mining must keep them out as suspects); 1500 gold queries drawn from
    their relevant document's words, 6000 search queries."""
    rng = np.random.default_rng(14)
    n_docs, vocab = 50_000, 20_000
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    lens = rng.poisson(30, size=n_docs).clip(3)
    tokens = rng.choice(vocab, size=int(lens.sum()), p=p)
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    cuts = np.cumsum(lens)[:-1]
    texts = [" ".join(ws) for ws in np.split(words[tokens], cuts)]
    twins = rng.choice(n_docs, size=n_docs // 50, replace=False)
    for i in twins:
        src = texts[(int(i) + 1) % n_docs].split()
        src[len(src) // 2] = "twinword"
        texts[int(i)] = " ".join(src)
    root = tmp_path_factory.mktemp("zipf")
    corpus = root / "corpus.jsonl"
    with corpus.open("w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"doc_id": f"d{i}", "title": "", "text": t, "domain": f"dom{i % 5}"}) + "\n")
    gold = root / "gold.jsonl"
    with gold.open("w") as f:
        for j, i in enumerate(rng.choice(n_docs, size=1500, replace=False)):
            ws = texts[int(i)].split()
            q = " ".join(rng.choice(ws, size=min(4, len(ws)), replace=False))
            f.write(json.dumps({"query_id": f"q{j}", "query": q, "relevant_doc_ids": [f"d{i}"]}) + "\n")
    queries = root / "queries.jsonl"
    with queries.open("w") as f:
        for j in range(6000):
            q = " ".join(words[rng.choice(vocab, size=int(rng.integers(1, 6)), p=p)])
            f.write(json.dumps({"query_id": f"s{j}", "query": q}) + "\n")
    index = root / "index.bm25"
    invoke("index", "--corpus", corpus, "-o", index)
    return corpus, gold, queries, index


@pytest.mark.slow
def test_search_and_mine_ray_equal_local_on_50k_zipf(ray_up, zipf_data, tmp_path):
    corpus, gold, queries, index = zipf_data
    for suffix in ("jsonl", "trec"):
        local, remote = tmp_path / f"l.{suffix}", tmp_path / f"r.{suffix}"
        invoke("search", "--index", index, "--queries", queries, "-k", 100, "-o", local)
        invoke("search", "--index", index, "--queries", queries, "-k", 100, "-o", remote, "--ray", "local")
        same_files(local, remote)
    outs = {}
    for name, more in (("local", []), ("ray", ["--ray", "local", "--ray-tasks", "6"])):
        d = tmp_path / name
        d.mkdir()
        outs[name] = (d / "hn.jsonl", d / "pairs.jsonl", d / "summary.json")
        invoke(
            "mine-negatives", "--retrieval-gold", gold, "--retrieval-corpus", corpus, "--index", index,
            "--sampling", "random", "--seed", "3", "--output-hard-negatives", outs[name][0],
            "--output-reranker-pairs", outs[name][1], "--output-summary", outs[name][2], *more,
        )  # fmt: skip
    same_files(outs["local"][0], outs["ray"][0])
    same_files(outs["local"][1], outs["ray"][1])
    summary = summary_without_timings(outs["ray"][2])
    assert summary == summary_without_timings(outs["local"][2])
    assert summary["suspected_false_negatives"]["count"] > 0  # the twins were exercised


def test_task_errors_read_as_local_errors(ray_up, bundled_index, tmp_path):
    """A corrupt index is found by the workers (the driver does not load it): the user gets
    IndexFileError as locally, not a Ray traceback; a task asking for more CPUs than any node
    has is refused instead of waiting forever."""
    import shutil

    bad = tmp_path / "bad.bm25"
    shutil.copytree(bundled_index, bad)
    (seg,) = bad.glob("seg-*.bseg")
    seg.write_bytes(seg.read_bytes()[:100])
    qs = read_queries(GOLD)[:3]
    with pytest.raises(bdnsca.IndexFileError):
        bdnsca.BM25.load(bad)
    with pytest.raises(bdnsca.IndexFileError):
        distributed.search_to_file_ray(bad, qs, tmp_path / "r.trec", k=5, chunks=2)
    assert not (tmp_path / "r.trec").exists()
    with pytest.raises(bdnsca.BdnscaError, match="largest node"):
        distributed.search_to_file_ray(bundled_index, qs, tmp_path / "r.trec", k=5, cpus_per_task=64)


def test_build_shard_in_a_ray_task_equals_a_local_build(ray_up):
    """The hook for ``index --shards N --ray``: the shard a task builds is the index of its
    slice with every setting carried (a dropped stopword list or method would change scores)."""
    import ray

    from bdnsca.data.io import read_corpus
    from bdnsca.retrieval.mining import retrieval_settings

    docs = read_corpus(CORPUS)
    texts, ids = docs.texts()[100:220], docs.ids[100:220]
    settings = {"method": "bm25+", "k1": 1.2, "b": 0.6, "delta": 0.7, "stopwords": "en", "stemmer": "english"}
    shard = ray.get(ray.remote(distributed.build_shard).remote(texts, ids, settings))
    tok = bdnsca.Tokenizer(stopwords="en", stemmer="english")
    local = bdnsca.BM25(method="bm25+", k1=1.2, b=0.6, delta=0.7, tokenizer=tok).index(texts, ids=ids)
    assert shard.ids == ids
    assert retrieval_settings(shard) == retrieval_settings(local)
    for q in ("the orchard harvest", "trace a bloodline", "smith forging a blade"):
        assert shard.get_scores(q).tobytes() == local.get_scores(q).tobytes()


@pytest.mark.parametrize("shards", [3, 7])
def test_index_shards_ray_equals_the_local_shards_and_one_build(ray_up, tmp_path, shards):
    """``index --shards N --ray``: shards built by Ray tasks and joined on the driver give the
    local ``--shards N`` index (a shard out of order, lost, doubled or built with other settings
    would change the ids, the rankings or the run file's bytes) and one build's scores."""
    from bdnsca.data.io import read_corpus

    common = ["index", "--corpus", CORPUS, "--shards", shards, "--method", "bm25l", "--stopwords", "en"]
    invoke(*common, "-o", tmp_path / "local")
    invoke(*common, "-o", tmp_path / "ray", "--ray", "local")
    invoke("index", "--corpus", CORPUS, "--method", "bm25l", "--stopwords", "en", "-o", tmp_path / "one")
    local, remote, one = (bdnsca.BM25.load(tmp_path / n) for n in ("local", "ray", "one"))
    assert remote.n_segments == local.n_segments == shards
    assert remote.ids == local.ids == one.ids == read_corpus(CORPUS).ids
    qs = [q.text for q in read_queries(PARAPHRASE)]
    ids_l, sc_l = local.search_batch(qs, k=20)
    ids_r, sc_r = remote.search_batch(qs, k=20)
    ids_1, sc_1 = one.search_batch(qs, k=20)
    assert ids_r == ids_l == ids_1
    assert sc_r.tobytes() == sc_l.tobytes() == sc_1.tobytes()
    for q in qs[:5]:
        assert remote.get_scores(q).tobytes() == one.get_scores(q).tobytes()
    for name in ("local", "ray"):
        invoke(
            "search",
            "--index",
            tmp_path / name,
            "--queries",
            PARAPHRASE,
            "-k",
            50,
            "-o",
            tmp_path / f"{name}.trec",
        )
    same_files(tmp_path / "local.trec", tmp_path / "ray.trec")


def test_index_missing_on_a_worker_node_says_what_to_do(ray_up, tmp_path):
    """On a real cluster the path may exist on the driver's node only: the worker's error names
    the node and the two fixes, and reaches the driver as FileNotFoundError."""
    import ray

    source = distributed.IndexSource(key="gone", path=str(tmp_path / "gone.bm25"))
    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(ray.remote(distributed._search_chunk).remote(source, ["a"], 5, 1))
    err = distributed._local_error(info.value.cause)
    assert isinstance(err, FileNotFoundError)
    assert "not found on Ray node" in str(err) and "--ray-object-store" in str(err)


def test_mine_ray_uneven_and_empty(ray_up, bundled_index):
    """One query over 16 tasks, 7 queries over 3, and a gold set with no usable query (the
    miner gets no rows): the rows and summary equal the local miner's."""
    from bdnsca.retrieval.mining import mine_hard_negatives

    bm25 = bdnsca.BM25.load(bundled_index)
    gold = read_queries(GOLD)
    nowhere = [Query("lost", "anything", {"no_such_doc": 1})]
    for queries, tasks in ((gold[:1], 16), (gold[10:17], 3), (nowhere, 4)):
        results = []
        for miner in (None, distributed.ray_miner(bundled_index, chunks=tasks)):
            r = mine_hard_negatives(CORPUS, queries, bm25=bm25, miner=miner, sampling="random", seed=5)
            r.summary.pop("timings_s")
            results.append(r)
        local, remote = results
        assert (local.hard_negatives, local.pairs, local.summary) == (
            remote.hard_negatives,
            remote.pairs,
            remote.summary,
        )
        assert local.summary["queries"]["used"] == (0 if queries is nowhere else len(queries))


# ----------------------------------------------------------------------------- pinned index version


def test_search_ray_refuses_an_index_appended_to_after_the_driver_pinned_it(ray_up, tmp_path):
    """Deterministic race: the version is pinned, then another process appends before the
    first task loads: the run must fail with the changed-index error and write no run file
    (before: the workers searched the new version silently)."""
    root = _folder_index(tmp_path / "idx")
    qs = [Query(f"q{i}", f"w{i % 7} shared", {}) for i in range(6)]
    version = distributed.index_version(root)
    bdnsca.BM25.append_to(root, ["w1 shared shared"], ["late"])
    with pytest.raises(bdnsca.BdnscaError, match="changed during the run"):
        distributed.search_to_file_ray(root, qs, tmp_path / "r.trec", k=5, chunks=2, version=version)
    assert not (tmp_path / "r.trec").exists()
    for object_store in (False, True):  # unchanged since pinned: runs, equal to local
        out = tmp_path / f"ok{object_store}.trec"
        distributed.search_to_file_ray(root, qs, out, k=5, chunks=2, object_store=object_store)
        search_to_file(bdnsca.BM25.load(root), qs, tmp_path / "l.trec", k=5)
        same_files(tmp_path / "l.trec", out)


def test_mine_ray_refuses_an_index_changed_under_the_driver(ray_up, bundled_index, tmp_path):
    """The reviewer's race: the driver mines with the index it loaded; another process upserts
    3 documents (texts unchanged, so their positions move) before the tasks run. Before the
    fix the workers mined the new numbering and the driver mapped positions to wrong ids with
    no error."""
    import shutil

    from bdnsca.retrieval.mining import mine_hard_negatives

    root = tmp_path / "idx"
    shutil.copytree(bundled_index, root)
    bm25 = bdnsca.BM25.load(root)
    gold = read_queries(GOLD)[:20]
    first = [json.loads(line) for line in CORPUS.read_text().splitlines()[:3]]
    inner = distributed.ray_miner(root, chunks=3)

    def miner(job, texts, progress=None):
        bdnsca.BM25.append_to(root, [d["text"] for d in first], [d["doc_id"] for d in first], mode="upsert")
        return inner(job, texts, progress)

    with pytest.raises(bdnsca.BdnscaError, match="changed during the run"):
        mine_hard_negatives(CORPUS, gold, bm25=bm25, sampling="random", seed=5, miner=miner)
    # pinned by the CLI's load_pinned: a change after the driver's load is refused as well
    # (a fresh copy: workers still hold the pinned version of `root`, which they may reuse)
    root2 = tmp_path / "idx2"
    shutil.copytree(bundled_index, root2)
    bm25, version = distributed.load_pinned(root2)
    bdnsca.BM25.delete_from(root2, [first[0]["doc_id"]])
    with pytest.raises(bdnsca.BdnscaError, match="changed during the run"):
        mine_hard_negatives(
            CORPUS, gold, bm25=bm25, miner=distributed.ray_miner(root2, chunks=2, version=version)
        )


def test_ray_tasks_still_respect_the_per_chunk_cap(ray_up, bundled_index, tmp_path, monkeypatch):
    """--ray-tasks 1 over 10 queries with a cap of 3 queries per chunk: 4 chunks (the
    progress callback runs once per chunk), and the file is the local one."""
    monkeypatch.setattr(distributed, "MAX_CHUNK_QUERIES", 3)
    qs = read_queries(PARAPHRASE)[:10]
    sizes: list[int] = []
    distributed.search_to_file_ray(
        bundled_index, qs, tmp_path / "r.trec", k=5, chunks=1, progress=sizes.append
    )
    assert sizes == [3, 3, 2, 2]
    search_to_file(bdnsca.BM25.load(bundled_index), qs, tmp_path / "l.trec", k=5)
    same_files(tmp_path / "l.trec", tmp_path / "r.trec")
