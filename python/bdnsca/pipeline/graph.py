"""The pipeline as a graph: nodes, their content keys and a topological order.

A node's key is the SHA-256 of everything that decides its output: its step, its settings, the
content of its input files (folders hashed file by file), the keys of the nodes it depends on,
bdnsca's version and a fingerprint of bdnsca's own code (:func:`code_fingerprint`: an edited step
or a rebuilt extension recomputes what it computed, although the version number stays). Two nodes
with one key compute the same thing; a node whose key is unchanged since it finished is reused."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError


class GraphError(BdnscaError):
    """A cycle, or a dependency on a node that does not exist; one line."""


@dataclass
class Node:
    name: str
    step: str
    """The step function's name (:data:`bdnsca.pipeline.steps.STEP_FUNCTIONS`)."""
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Path] = field(default_factory=dict)
    """role -> an input file or folder (hashed by content)."""
    deps: dict[str, str] = field(default_factory=dict)
    """role -> the name of the node whose output folder this one reads."""
    key: str = ""
    input_hashes: dict[str, str] = field(default_factory=dict)

    @property
    def folder_name(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)
        return f"{safe}-{self.key[:12]}"


def hash_path(path: Path, cache: dict[Path, str] | None = None) -> str:
    """SHA-256 of a file's bytes, or of a folder's sorted (relative path, file hash) list."""
    from bdnsca.data.io import file_sha256

    if cache is not None and path in cache:
        return cache[path]
    if path.is_dir():
        h = hashlib.sha256()
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                h.update(str(p.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
                h.update(file_sha256(p).encode() + b"\n")
        digest = h.hexdigest()
    else:
        digest = file_sha256(path)
    if cache is not None:
        cache[path] = digest
    return digest


def package_fingerprint(root: Path) -> str:
    """SHA-256 of a package's code: every ``.py`` file under ``root`` (relative path and bytes,
    caches left out) and its compiled extension (``_core.*.so`` / ``.pyd``) beside them."""
    from bdnsca.data.io import file_sha256

    files = sorted(
        p
        for p in root.rglob("*.py")
        # caches, and editors' lock files (.#x.py, often dangling links) are not code
        if "__pycache__" not in p.parts and not p.name.startswith(".") and p.is_file()
    )
    files += sorted(p for p in root.glob("_core*") if p.suffix in (".so", ".pyd", ".dylib"))
    h = hashlib.sha256()
    for p in files:
        h.update(str(p.relative_to(root)).encode("utf-8", "surrogateescape") + b"\0")
        h.update(file_sha256(p).encode() + b"\n")
    return h.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """:func:`package_fingerprint` of the installed bdnsca, computed once per process."""
    import bdnsca

    return package_fingerprint(Path(bdnsca.__file__).resolve().parent)


def topological_order(nodes: dict[str, Node]) -> list[Node]:
    """Nodes ordered so each comes after everything it depends on (ties by insertion order);
    a dependency cycle or an unknown dependency is a :class:`GraphError` naming it."""
    for n in nodes.values():
        for role, dep in n.deps.items():
            if dep not in nodes:
                raise GraphError(f"node {n.name!r} ({role}) depends on {dep!r}, which no step produces")
    order: list[Node] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise GraphError(f"dependency cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for dep in nodes[name].deps.values():
            visit(dep, [*path, name])
        state[name] = 2
        order.append(nodes[name])

    for name in nodes:
        visit(name, [])
    return order


def compute_keys(order: list[Node], version: str, code: str = "") -> None:
    """Fills each node's ``input_hashes`` and ``key`` (``order`` topological; ``code``: the
    :func:`code_fingerprint`). A missing input file is a one-line error naming the node and the file."""
    cache: dict[Path, str] = {}
    keys: dict[str, str] = {}
    for n in order:
        for role, p in n.inputs.items():
            if not p.exists():
                raise GraphError(f"node {n.name!r}: input {role} {p} does not exist")
        n.input_hashes = {role: hash_path(p, cache) for role, p in sorted(n.inputs.items())}
        payload = {
            "step": n.step,
            "settings": n.settings,
            "inputs": n.input_hashes,
            "deps": {role: keys[dep] for role, dep in sorted(n.deps.items())},
            "bdnsca": version,
            "code": code,
        }
        blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
        n.key = hashlib.sha256(blob.encode()).hexdigest()
        keys[n.name] = n.key


def dependents(nodes: dict[str, Node], name: str) -> set[str]:
    """Every node that reads ``name``'s output, directly or not."""
    out: set[str] = set()
    frontier = [name]
    while frontier:
        cur = frontier.pop()
        for n in nodes.values():
            if cur in n.deps.values() and n.name not in out:
                out.add(n.name)
                frontier.append(n.name)
    return out
