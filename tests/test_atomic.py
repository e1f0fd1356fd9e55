"""Atomic writes: unique temporary files per thread and call, fsync of the file and its folder
before returning, the process umask never touched, and under a failure injected at any point
the target holds its old content or the new one, never a partial file, and no temporary file
is left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bdnsca.data import atomic, io


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_umask_is_never_changed(tmp_path, monkeypatch):
    # os.umask can only be read by setting it process-wide, which races every other thread
    # creating a file; the writer must not call it at all.
    def forbidden(*_):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(os, "umask", forbidden)
    io.write_json(tmp_path / "a.json", {"x": 1})
    io.write_run(tmp_path / "r.trec", {"q": {"d": 1.0}})
    assert io.umask_mode(0o777) == 0o777 & ~io.current_umask()
    assert listing(tmp_path) == ["a.json", "r.trec"]


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_written_file_gets_the_mode_a_plain_open_gives(tmp_path, umask):
    code = (
        "import os, sys; os.umask(int(sys.argv[1], 8)); from bdnsca.data import io; "
        "io.write_json(sys.argv[2], {}); open(sys.argv[3], 'w').close(); "
        "print(oct(io.current_umask()), oct(io.umask_mode(0o777)))"
    )
    a, b = tmp_path / "atomic.json", tmp_path / "plain.txt"
    r = subprocess.run(
        [sys.executable, "-c", code, oct(umask), str(a), str(b)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [oct(umask), oct(0o777 & ~umask)]
    assert stat.S_IMODE(a.stat().st_mode) == stat.S_IMODE(b.stat().st_mode) == 0o666 & ~umask


def test_file_and_folder_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(f"fsync {kind}")
        real_fsync(fd)

    def replace(a, b):
        events.append("replace")
        real_replace(a, b)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    io.write_json(tmp_path / "a.json", [1, 2])
    assert events == ["fsync file", "replace", "fsync dir"]
    assert (tmp_path / "a.json").read_text() == "[\n  1,\n  2\n]\n"


def test_threads_saving_one_path_never_share_a_temporary_file(tmp_path, monkeypatch):
    created: list[str] = []
    lock = threading.Lock()
    real_open = os.open

    def recording_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            with lock:
                created.append(os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", recording_open)
    target = tmp_path / "shared.txt"
    # every content is distinct and large enough that writes overlap in time
    contents = {
        f"{t}-{i}": f"{t}-{i}:" + "x" * (20_000 + 997 * t + i) + "\n" for t in range(6) for i in range(15)
    }
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def worker(t):
        try:
            barrier.wait()
            for i in range(15):
                with io.atomic_write(target) as f:
                    f.write(contents[f"{t}-{i}"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    temps = [p for p in created if p.endswith(".tmp")]
    assert len(temps) == 90 and len(set(temps)) == 90
    assert target.read_text() in set(contents.values())
    assert listing(tmp_path) == ["shared.txt"]


class Injected(Exception):
    pass


STEPS = ["before-write", "mid-write", "flush", "fsync-file", "replace", "fsync-dir", "none"]


@settings(max_examples=120, deadline=None)
@given(
    old=st.one_of(st.none(), st.binary(max_size=3000)),
    chunks=st.lists(st.binary(min_size=1, max_size=5000), min_size=1, max_size=6),
    step=st.sampled_from(STEPS),
    where=st.integers(min_value=0, max_value=5),
    interrupt=st.booleans(),
)
def test_a_failure_anywhere_leaves_old_or_new_content_and_no_temporary_file(
    tmp_path_factory, old, chunks, step, where, interrupt
):
    folder = tmp_path_factory.mktemp("atomic")
    target = folder / "out.bin"
    if old is not None:
        target.write_bytes(old)
    new = b"".join(chunks)
    exc_type = KeyboardInterrupt if interrupt else Injected
    real_fsync, real_replace = os.fsync, os.replace
    fsyncs = []

    def fsync(fd):
        fsyncs.append(fd)
        if (step == "fsync-file" and len(fsyncs) == 1) or (step == "fsync-dir" and len(fsyncs) == 2):
            raise exc_type("fsync")
        real_fsync(fd)

    def replace(a, b):
        if step == "replace":
            raise exc_type("replace")
        real_replace(a, b)

    patch = pytest.MonkeyPatch()
    patch.setattr(atomic.os, "fsync", fsync)
    patch.setattr(atomic.os, "replace", replace)
    raised = None
    try:
        with atomic.atomic_write(target, "wb") as f:
            if step == "before-write":
                raise exc_type("before")
            for i, chunk in enumerate(chunks):
                if step == "mid-write" and i == min(where, len(chunks) - 1):
                    f.write(chunk[: len(chunk) // 2])
                    f.flush()  # the partial content reaches the temporary file
                    raise exc_type("mid")
                f.write(chunk)
            if step == "flush":
                f.flush = lambda: (_ for _ in ()).throw(exc_type("flush"))
    except (Injected, KeyboardInterrupt) as exc:
        raised = exc
    finally:
        patch.undo()
    assert (raised is None) == (step == "none")
    if step in ("none", "fsync-dir"):
        # the rename happened: the new content, complete (a failed folder fsync is reported)
        assert target.read_bytes() == new
    elif old is None:
        assert not target.exists()
    else:
        assert target.read_bytes() == old
    assert listing(folder) == (["out.bin"] if target.exists() else [])


def test_write_jsonl_failure_keeps_old_file(tmp_path):
    target = tmp_path / "out.jsonl"
    io.write_jsonl(target, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.write_jsonl(target, rows())
    assert target.read_text() == '{"a": 1}\n'
    assert listing(tmp_path) == ["out.jsonl"]


def test_long_file_names_still_get_a_temporary_file(tmp_path):
    name = "é" * 120 + ".json"  # 245 bytes: a temporary name built by appending would exceed 255
    io.write_json(tmp_path / name, {"ok": True})
    assert listing(tmp_path) == [name]
