"""Writers of one index folder (review 14a): concurrent CLI appends are serialised by the folder lock
and lose nothing; a save of a loaded index over a folder changed since is refused; build settings that
--append/--delete/--merge cannot honour are a usage error; a missing segment file reads as a damaged
index; joining an index with itself is a clear error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bdnsca import BM25, BdnscaError
from bdnsca.errors import IndexFileError


def _corpus(path: Path, prefix: str, n: int) -> Path:
    words = ["ash", "bolt", "crow", "dusk", "ember", "fang", "gale", "hush"]
    path.write_text(
        "".join(
            json.dumps(
                {
                    "doc_id": f"{prefix}{i}",
                    "title": "",
                    "text": f"{words[i % 8]} {words[i * 7 % 8]} w{i % 97}",
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    return path


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "bdnsca.cli", *map(str, args)]


def test_two_cli_appends_started_together_keep_both(tmp_path):
    """Without the lock, one run's cleanup deleted the other's segment or the last manifest won:
    documents lost or an index that no longer loads, both runs reporting success."""
    n = 30_000
    a, b = _corpus(tmp_path / "a.jsonl", "a", n), _corpus(tmp_path / "b.jsonl", "b", n)
    seed = _corpus(tmp_path / "seed.jsonl", "s", 50)
    for trial in range(2):
        idx = tmp_path / f"idx{trial}"
        assert subprocess.run(_cli("index", "--corpus", seed, "-o", idx), capture_output=True).returncode == 0
        procs = [
            subprocess.Popen(_cli("index", "--append", c, "-o", idx), stderr=subprocess.PIPE) for c in (a, b)
        ]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        ids = BM25.read_ids(idx)
        assert sorted(ids) == sorted(
            [f"s{i}" for i in range(50)] + [f"a{i}" for i in range(n)] + [f"b{i}" for i in range(n)]
        )
        assert BM25.load(idx).n_docs == 50 + 2 * n


def test_save_over_a_folder_changed_since_the_load_is_refused(tmp_path):
    d = tmp_path / "i"
    BM25().index(["alpha", "beta"], ids=["a", "b"]).save(d)
    svc = BM25.load(d)
    BM25.append_to(d, ["zebra"], ["z"])
    BM25.delete_from(d, ["a"])
    svc.add(["horse"], ids=["h"])
    with pytest.raises(BdnscaError, match="changed since it was loaded"):
        svc.save(d)
    assert BM25.read_ids(d) == ["b", "z"]
    again = BM25.load(d)
    again.add(["horse"], ids=["h"])
    again.save(d)
    again.add(["crow"], ids=["c"])
    again.save(d)  # its own save does not count as a change by another writer
    assert BM25.read_ids(d) == ["b", "z", "h", "c"]


@pytest.mark.parametrize(
    ("mode", "extra", "named"),
    [
        ("--append", ["--stemmer", "english", "--method", "bm25l"], "--method, --stemmer"),
        ("--append", ["--k1", "1.5"], "--k1"),  # explicit, even at the default value
        ("--append", ["--shards", "4"], "--shards"),
        ("--delete", ["--no-title"], "--no-title"),
        (
            "--merge",
            ["--stopwords", "en", "--pattern", "bm25s", "--b", "0.5", "--delta", "1"],
            "--b, --delta",
        ),
        ("--delete", ["--max-segments", "2"], "--max-segments"),
    ],
)
def test_change_refuses_build_settings_it_cannot_honour(tmp_path, mode, extra, named):
    idx = tmp_path / "idx"
    assert (
        subprocess.run(_cli("index", "--corpus", _corpus(tmp_path / "s.jsonl", "s", 5), "-o", idx)).returncode
        == 0
    )
    before = sorted((p.name, p.read_bytes()) for p in idx.iterdir())
    arg = {
        "--append": [_corpus(tmp_path / "q.jsonl", "q", 2)],
        "--delete": [tmp_path / "del.txt"],
        "--merge": [],
    }[mode]
    (tmp_path / "del.txt").write_text("s1\n")
    r = subprocess.run(_cli("index", mode, *arg, "-o", idx, *extra), capture_output=True, text=True)
    assert r.returncode == 2, r.stdout + r.stderr
    assert named in r.stderr and "rebuild the index with --corpus" in r.stderr, r.stderr
    assert sorted((p.name, p.read_bytes()) for p in idx.iterdir()) == before


def test_append_honours_no_title(tmp_path):
    idx = tmp_path / "idx"
    assert (
        subprocess.run(_cli("index", "--corpus", _corpus(tmp_path / "s.jsonl", "s", 5), "-o", idx)).returncode
        == 0
    )
    (tmp_path / "t.jsonl").write_text(json.dumps({"doc_id": "t", "title": "zebra", "text": "ash"}) + "\n")
    r = subprocess.run(
        _cli("index", "--append", tmp_path / "t.jsonl", "-o", idx, "--no-title"),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert BM25.load(idx).search("zebra", k=3) == []


def test_a_missing_segment_file_is_a_damaged_index(tmp_path):
    d = tmp_path / "i"
    BM25().index(["alpha"], ids=["a"]).save(d)
    seg = next(p for p in d.iterdir() if p.suffix == ".bseg")
    seg.unlink()
    for call in (BM25.load, BM25.read_ids, lambda x: BM25.append_to(x, ["b"], ["b"])):
        with pytest.raises(IndexFileError, match=f"damaged.*|{seg.name}") as e:
            call(d)
        assert "damaged" in str(e.value) and seg.name in str(e.value)


def test_add_index_of_itself_is_a_clear_error():
    b = BM25().index(["alpha"], ids=["a"])
    with pytest.raises(BdnscaError, match="itself"):
        b.add_index(b)
    assert b.ids == ["a"]


def test_replacing_a_single_file_index_never_loses_it(tmp_path, monkeypatch):
    """The old code unlinked the single file before renaming the new folder in: a failure (or a
    crash) between the two left no index at all."""
    from bdnsca.retrieval.segments import save_new_index

    out = tmp_path / "npc.index"
    BM25().index(["stale"], ids=["zz"])._save_single_file(out)
    before = out.read_bytes()
    real_rename = Path.rename

    def failing_rename(self, target):
        if Path(self).name.startswith(f".{out.name}.new-"):
            raise OSError("simulated failure renaming the new folder in")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="simulated"):
        save_new_index(BM25().index(["fresh"], ids=["a"]), out)
    assert out.is_file() and out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    monkeypatch.setattr(Path, "rename", real_rename)
    assert save_new_index(BM25().index(["fresh"], ids=["a"]), out)
    assert BM25.read_ids(out) == ["a"] and [p.name for p in tmp_path.iterdir()] == [out.name]


def _swap_in(idx: Path, other: Path) -> None:
    """Makes `idx` hold the index saved in `other`, as another writer's commit would (the caller
    holds `idx`'s lock, so a writer waiting for it then runs on the changed folder)."""
    for f in idx.iterdir():
        if f.name.startswith(("seg-", "del-")) or f.name == "manifest.json":
            f.unlink()
    names = [f.name for f in other.iterdir() if f.name.startswith(("seg-", "del-"))]
    for name in [*names, "manifest.json"]:  # the manifest last, as a commit
        shutil.copy(other / name, idx / name)


@pytest.mark.skipif(sys.platform == "win32", reason="holds the folder lock with fcntl.flock")
def test_append_counts_are_those_of_the_folder_it_committed_to(tmp_path, capfd):
    """Review 14c finding 2: the counts were a before/after diff of the folder read outside the lock,
    so another writer's delete landing while the append waited gave "added" 2**64 - 40."""
    import fcntl

    idx, other = tmp_path / "idx", tmp_path / "other"
    BM25().index([f"w{i} x" for i in range(100)], ids=[f"d{i}" for i in range(100)]).save(idx)
    shutil.copytree(idx, other)
    assert BM25.delete_from(other, [f"d{i}" for i in range(50)])["live_docs"] == 50
    ids = ["d5", "d60"] + [f"n{i}" for i in range(8)]  # d5 is deleted by the other writer
    out: dict = {}
    with open(idx / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: out.setdefault("r", BM25.append_to(idx, ids, ids, mode="upsert")))
        t.start()
        err, deadline = "", time.monotonic() + 30
        while "waiting" not in err and time.monotonic() < deadline:
            time.sleep(0.02)
            err += capfd.readouterr().err
        assert "waiting" in err  # the append is waiting for the lock
        _swap_in(idx, other)
        fcntl.flock(lock, fcntl.LOCK_UN)
        t.join(60)
    got = out["r"]
    assert {k: got[k] for k in ("added", "updated", "deleted", "live_docs", "segments")} == {
        "added": 9,
        "updated": 1,
        "deleted": 0,
        "live_docs": 59,
        "segments": 2,
    }
    assert len(BM25.read_ids(idx)) == 59


def test_append_and_delete_counts_are_exact(tmp_path):
    idx = tmp_path / "idx"
    BM25().index(["a x", "b x", "c x"], ids=["a", "b", "c"]).save(idx)
    keys = ("added", "updated", "deleted", "live_docs", "segments")

    def counts(r: dict) -> tuple:
        return tuple(r[k] for k in keys)

    assert counts(BM25.append_to(idx, ["d x", "e x"], ["d", "e"])) == (2, 0, 0, 5, 2)
    assert counts(BM25.append_to(idx, ["a y", "f y"], ["a", "f"], mode="upsert")) == (1, 1, 0, 6, 3)
    assert counts(BM25.append_to(idx, ["b z"], ["b"], mode="update")) == (0, 1, 0, 6, 4)
    assert counts(BM25.delete_from(idx, ["c", "d"])) == (0, 0, 2, 4, 4)
    assert counts(BM25.append_to(idx, [], [])) == (0, 0, 0, 4, 4)
    assert counts(BM25.delete_from(idx, [])) == (0, 0, 0, 4, 4)
    assert sorted(BM25.read_ids(idx)) == ["a", "b", "e", "f"]
