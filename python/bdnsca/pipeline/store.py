"""Where nodes live and the record of a run.

``OUTPUT/nodes/<name>-<key[:12]>/`` holds one node's outputs; ``.bdnsca-node.json`` in it (the
key, the step's returned outputs, the time it took, the versions that computed it) is written
last, atomically, and only a folder whose marker carries the node's current key is reused. A
folder without one (a step that was interrupted or failed) is cleared before the node runs again.
``OUTPUT/pipeline.json`` is the manifest: nodes, keys, input hashes, outputs, timings, versions
and status, rewritten atomically after every node."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Any

from bdnsca.data.io import write_json

MARKER = ".bdnsca-node.json"
MANIFEST = "pipeline.json"


def nodes_dir(output_dir: Path) -> Path:
    return output_dir / "nodes"


def logs_dir(output_dir: Path) -> Path:
    return output_dir / "logs"


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The completion marker of a node folder, or None (absent or unreadable: not finished)."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(folder: Path, key: str) -> bool:
    marker = read_marker(folder)
    return marker is not None and marker.get("key") == key


def clear(folder: Path) -> None:
    """Removes a half-written node folder (no marker, or another key's)."""
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)


def write_marker(folder: Path, record: dict[str, Any]) -> None:
    write_json(folder / MARKER, record)


def versions() -> dict[str, str | None]:
    """bdnsca's version and code fingerprint, Python's and the main libraries' versions (None
    where not installed)."""
    from importlib import metadata

    from bdnsca import __version__
    from bdnsca.pipeline.graph import code_fingerprint

    out: dict[str, str | None] = {
        "bdnsca": __version__,
        "bdnsca_code": code_fingerprint(),
        "python": platform.python_version(),
    }
    for dist in ("torch", "transformers", "trl", "peft", "llama_cpp_python", "sentence-transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def read_manifest(output_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((output_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_manifest(output_dir: Path, manifest: dict[str, Any]) -> Path:
    path = output_dir / MANIFEST
    write_json(path, manifest)
    return path
