"""``BM25.append_to`` / ``BM25.delete_from`` and the CLI's ``index --append / --upsert / --delete``
over them change a saved index folder without loading it (issue 14 §1: appending 1% must cost a
small part of a rebuild). Evidence that the old segments' postings are not read: the CLI
succeeds on a folder whose old segment has a corrupt forward section (which ``BM25.load``
refuses), and no old segment file changes. The reference for the result: a fresh ``BM25.index``
of the live documents, bit for bit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bdnsca
from bdnsca import BM25, BdnscaError

WORDS = ["ash", "bolt", "crow", "dusk", "ember", "fang"] + [f"w{i}" for i in range(30)]
QUERIES = ["ash", "bolt crow", "dusk ember fang ash", "w3 w7 w11", "zebra"]


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 10))) for _ in range(n)]


def _same_as_fresh(index: Path, live: dict[str, str], method: str) -> None:
    back = BM25.load(index)
    assert back.ids == list(live)
    fresh = BM25(method=method).index(list(live.values()), ids=list(live))
    for q in QUERIES:
        assert back.get_scores(q).tobytes() == fresh.get_scores(q).tobytes(), q
        assert back.search(q, k=7) == fresh.search(q, k=7), q


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", *map(str, args)], capture_output=True, text=True
    )


def _corpus(path: Path, rows: list[tuple[str, str]]) -> Path:
    import json

    path.write_text("".join(json.dumps({"doc_id": i, "title": "", "text": t}) + "\n" for i, t in rows))
    return path


@pytest.mark.parametrize("method", ["robertson", "bm25+", "lucene"])
def test_append_to_and_delete_from_equal_load_change_save(tmp_path, method):
    texts = _texts(60, 1)
    ids = [f"d{i}" for i in range(60)]
    BM25(method=method).index(texts[:40], ids=ids[:40]).save(tmp_path / "i")
    mem = BM25.load(tmp_path / "i")
    live = dict(zip(ids[:40], texts[:40], strict=True))

    s = BM25.append_to(tmp_path / "i", texts[40:50], ids[40:50])
    mem.add(texts[40:50], ids[40:50])
    live.update(zip(ids[40:50], texts[40:50], strict=True))
    assert s == {
        "added": 10, "updated": 0, "deleted": 0, "live_docs": 50, "segments": 2,
        "segments_written": 1, "deletes_written": 0, "bytes_written": s["bytes_written"],
    }  # fmt: skip
    _same_as_fresh(tmp_path / "i", live, method)

    # Upsert: d3 and d45 replaced (moved to the end, in corpus order), d50 added.
    new = {"d3": "ash ash zebra", "d50": texts[50], "d45": "crow"}
    s = BM25.append_to(tmp_path / "i", list(new.values()), list(new), mode="upsert")
    assert (s["added"], s["updated"], s["live_docs"], s["segments"]) == (1, 2, 51, 3)
    assert s["deletes_written"] == 2  # one per old segment losing a document
    mem.update(["ash ash zebra", "crow"], ["d3", "d45"])  # same documents, as two steps
    del live["d3"], live["d45"]
    live.update(new)
    _same_as_fresh(tmp_path / "i", live, method)

    s = BM25.delete_from(tmp_path / "i", ["d0", "d50", "d41"])
    assert (s["deleted"], s["live_docs"], s["segments_written"]) == (3, 48, 0)
    for d in ("d0", "d50", "d41"):
        del live[d]
    _same_as_fresh(tmp_path / "i", live, method)

    # Token lists go in as given; update needs every id present.
    s = BM25.append_to(tmp_path / "i", [["fang", "fang"]], ["d7"], mode="update")
    assert (s["added"], s["updated"]) == (0, 1)
    del live["d7"]
    live["d7"] = "fang fang"
    _same_as_fresh(tmp_path / "i", live, method)


def test_append_to_refuses_bad_input_and_writes_nothing(tmp_path):
    BM25().index(["ash bolt", "crow"], ids=["a", "b"]).save(tmp_path / "i")
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "i").iterdir())
    with pytest.raises(BdnscaError, match='"a" is already in the index'):
        BM25.append_to(tmp_path / "i", ["x", "y"], ["c", "a"])
    with pytest.raises(BdnscaError, match='"z" is not in the index'):
        BM25.append_to(tmp_path / "i", ["x"], ["z"], mode="update")
    with pytest.raises(BdnscaError, match="mode must be"):
        BM25.append_to(tmp_path / "i", ["x"], ["z"], mode="replace")
    with pytest.raises(BdnscaError, match="2 ids for 1 documents"):
        BM25.append_to(tmp_path / "i", ["x"], ["z", "w"])
    with pytest.raises(BdnscaError, match='"q" is not in the index'):
        BM25.delete_from(tmp_path / "i", ["b", "q"])
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "i").iterdir()) == before
    with pytest.raises(bdnsca.IndexFileError, match="manifest.json"):
        BM25.append_to(tmp_path, ["x"], ["z"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        BM25.delete_from(tmp_path / "nowhere", ["a"])
    BM25().index(["ash"], ids=["a"])._save_single_file(tmp_path / "old.idx")
    for change in (lambda p: BM25.append_to(p, ["x"], ["z"]), lambda p: BM25.delete_from(p, ["a"])):
        with pytest.raises(BdnscaError, match="single-file format"):
            change(tmp_path / "old.idx")


def test_cli_append_upsert_delete_do_not_read_the_old_postings(tmp_path):
    """The old segment's forward section (its postings' source) is corrupted, its ids section
    left intact: a load refuses the folder, the no-load CLI changes succeed and rewrite no old
    segment; with the bytes restored, the index equals a fresh index of the live documents."""
    texts = _texts(50, 2)
    rows = [(f"d{i}", t) for i, t in enumerate(texts)]
    idx = tmp_path / "idx"
    r = _cli("index", "--corpus", _corpus(tmp_path / "a.jsonl", rows[:30]), "-o", idx, "--method", "atire")
    assert r.returncode == 0, r.stderr
    (seg,) = idx.glob("seg-*.bseg")
    good = seg.read_bytes()
    bad = bytearray(good)
    bad[-1] ^= 0x5A  # the last tf of the forward section (the file's last section)
    seg.write_bytes(bytes(bad))
    with pytest.raises(bdnsca.IndexFileError, match=seg.name):
        BM25.load(idx)

    r = _cli("index", "--append", _corpus(tmp_path / "b.jsonl", rows[30:40]), "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "added 10, updated 0, deleted 0 documents" in r.stderr
    assert "40 live documents in 2 segments" in r.stderr
    up = _corpus(tmp_path / "c.jsonl", [("d4", "dusk dusk"), ("d49", texts[49])])
    r = _cli("index", "--append", up, "--upsert", "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "added 1, updated 1" in r.stderr and "41 live documents in 3 segments" in r.stderr
    gone = tmp_path / "gone.txt"
    gone.write_text("d1\nd35\n")
    r = _cli("index", "--delete", gone, "-o", idx)
    assert r.returncode == 0, r.stderr
    assert "deleted 2 documents" in r.stderr and "39 live documents" in r.stderr

    assert seg.read_bytes() == bytes(bad)  # never rewritten (nor removed)
    seg.write_bytes(good)
    live = dict(rows[:40])
    del live["d4"], live["d1"], live["d35"]
    live.update({"d4": "dusk dusk", "d49": texts[49]})
    _same_as_fresh(idx, live, "atire")
