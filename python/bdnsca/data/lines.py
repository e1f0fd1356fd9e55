"""Line readers shared by every text format: UTF-8 checked lines and JSONL objects, each bad
line a DataError naming the file, line and what is wrong."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bdnsca.errors import DataError


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """Yields (line number, text) for each line of a UTF-8 file (line ends kept). A line that is
    not UTF-8 raises DataError naming the file, line and column, like any other bad line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
                raise DataError(
                    path,
                    lineno,
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column}); "
                    "convert the file to UTF-8",
                ) from None
            yield lineno, line


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields (line number, object) for each non-blank line; a bad line raises DataError."""
    path = Path(path)
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def id_field(obj: dict[str, Any], names: tuple[str, ...], path: Path, lineno: int) -> str:
    for name in names:
        if name in obj and obj[name] is not None:
            value = obj[name]
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise DataError(path, lineno, f"field {name!r} must be a string, got {type(value).__name__}")
            value = str(value)
            if not value:
                raise DataError(path, lineno, f"field {name!r} is empty")
            return value
    raise DataError(path, lineno, f"missing field {' or '.join(repr(n) for n in names)}")
