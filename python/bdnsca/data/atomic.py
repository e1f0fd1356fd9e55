"""Atomic writes: a temporary file beside the target, fsynced and renamed over it, the folder
fsynced; the process umask read, never changed. Every bdnsca writer goes through here."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import math
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_TEMP_COUNTER = itertools.count()
_CREATE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


def current_umask() -> int:
    """The process umask, read without changing it.

    ``os.umask`` can only be read by setting it, and the umask is process-wide: any thread
    creating a file in between gets the wrong mode. Linux reports it in /proc/self/status;
    elsewhere a probe file created with mode 0o777 shows what the kernel masks off.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    probe = os.path.join(tempfile.gettempdir(), f".bdnsca-umask-{os.getpid()}-{secrets.token_hex(8)}")
    fd = os.open(probe, _CREATE_FLAGS, 0o777)
    try:
        return 0o777 & ~os.fstat(fd).st_mode
    finally:
        os.close(fd)
        os.unlink(probe)


def umask_mode(base: int) -> int:
    """``base`` as the process umask leaves it: the mode open() or mkdir() would give.
    Reads the umask without changing it (see :func:`current_umask`)."""
    return base & ~current_umask()


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new empty file beside ``path``, named uniquely for this process, thread and call, and
    created with O_EXCL (never an existing file) and mode 0o666, so the kernel applies the umask
    exactly as for a plain open(); the process umask is never touched."""
    stem = path.name.encode("utf-8", "surrogateescape")[:100].decode("utf-8", "ignore")
    for _ in range(100):
        name = (
            f".{stem}.{os.getpid()}-{threading.get_ident()}-{next(_TEMP_COUNTER)}-{secrets.token_hex(4)}.tmp"
        )
        tmp = path.parent / name
        try:
            return os.open(tmp, _CREATE_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a unique temporary file")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename in it) to disk. A no-op where folders cannot be
    opened (Windows) or the file system does not support it."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; when the block succeeds, flush and fsync it, rename
    it over ``path`` and fsync the folder, all before returning. When anything fails the
    temporary file is removed and ``path`` keeps its old content (or stays absent).

    The temporary name is unique per process, thread and call, so threads writing one path
    never share a temporary file (the last rename wins, each file complete). The file gets the
    mode a plain open() gives (0o666 less the umask); the process umask is never changed.
    ``mode`` is "w" (UTF-8 text) or "wb".
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def index_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 identifying a BM25 index: of its ``manifest.json`` for an index folder (the
    manifest names every segment and deletes file with its length and CRC, and changes with any
    append, delete or merge), of the file itself for an older single-file index (or any file)."""
    p = Path(path)
    return file_sha256(p / "manifest.json" if p.is_dir() else p)


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-inf) replaced by ``None``, through dicts, lists
    and tuples: JSON has no NaN, and a missing value must read as missing, not as a number."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_or_none(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, allow_nan=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike[str], rows: Any) -> int:
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, allow_nan=False))
            f.write("\n")
            n += 1
    return n
