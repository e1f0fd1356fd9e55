"""The arms of an evaluation run: a TOML file with one table per arm, keyed by arm id.

.. code-block:: toml

    target_arm = "proposed_contextual"          # optional; recorded in run_config.json
    baseline_arms = ["baseline_no_context"]     # optional; default: every other arm
    [arms.proposed_contextual]
    model = "runs/tiny/model.gguf"              # GGUF (relative to this file, or absolute)
    include_dynamic_context = true              # default true
    retrieval = { index = "runs/npc.index", corpus = "data/retrieval_corpus_wide.jsonl", k = 3 }
    # optional in retrieval: reranker = "runs/reranker", rerank_depth = 100
    speculative = "prompt-lookup:10"            # none (default), prompt-lookup:N, draft:PATH:N
    chat = false                                # wrap the prompt in the GGUF's chat template
    prompt_template = "prompts/npc.txt"         # default: the old runs' template

``retrieval.corpus`` supplies the passages' text (an index file holds ids and term statistics
only); every id of the index must be a document of the corpus. ``retrieval.reranker`` (a
cross-encoder folder, e.g. from ``bdnsca train-reranker``, or a model id in the local Hugging Face
cache) re-scores BM25's top ``rerank_depth`` (default 100, at least ``k``) with
:class:`~bdnsca.retrieval.reranker.Reranker` and keeps its top ``k``. Unknown keys are errors, so
a misspelt option never silently falls back to its default.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.errors import BdnscaError
from bdnsca.eval.scenarios import Passage

ARM_KEYS = {"model", "include_dynamic_context", "retrieval", "speculative", "chat", "prompt_template"}
RETRIEVAL_KEYS = {"index", "corpus", "k", "reranker", "rerank_depth"}
DEFAULT_RERANK_DEPTH = 100
TOP_KEYS = {"arms", "target_arm", "baseline_arms"}
_ARM_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass
class RetrievalSpec:
    index: str
    corpus: str
    k: int = 3
    reranker: str | None = None
    """The reranker as a loadable name: a folder made absolute, or a Hugging Face cache id."""
    rerank_depth: int | None = None
    """How many BM25 candidates the reranker re-scores (None without a reranker)."""


@dataclass
class ArmSpec:
    arm_id: str
    model: str
    """The model as the arms file names it (what response rows record)."""
    model_path: str
    """The model's absolute path."""
    include_dynamic_context: bool = True
    retrieval: RetrievalSpec | None = None
    speculative: str = "none"
    """The mode, with a draft model's path made absolute."""
    chat: bool = False
    prompt_template: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArmSpec:
        d = dict(d)
        for extra in ("model_sha256", "draft_sha256", "prompt_template_sha256"):
            d.pop(extra, None)
        r = d.get("retrieval")
        if r:
            fields = ("index", "corpus", "k", "reranker", "rerank_depth")
            d["retrieval"] = RetrievalSpec(**{k: v for k, v in r.items() if k in fields})
        return cls(**d)


@dataclass
class ArmsFile:
    arms: list[ArmSpec]
    target_arm: str | None = None
    baseline_arms: list[str] = field(default_factory=list)
    path: str | None = None


def read_arms(path: str | os.PathLike[str]) -> ArmsFile:
    """Reads and checks an arms TOML file (the file itself; what it names is checked by
    :func:`check_arm_inputs`)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BdnscaError(f"arms file {p} does not exist") from None
    except UnicodeDecodeError as exc:
        raise BdnscaError(f"arms file {p} is not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BdnscaError(f"arms file {p}: malformed TOML ({exc})") from None
    base = p.resolve().parent
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise BdnscaError(
            f"arms file {p}: unknown top-level key {unknown[0]!r} (arms go in [arms.ID] tables; "
            f"top-level keys: {', '.join(sorted(TOP_KEYS))})"
        )
    tables = data.get("arms")
    if not isinstance(tables, dict) or not tables:
        raise BdnscaError(f"arms file {p}: no arms (add tables such as [arms.baseline] with a model)")
    arms = [_arm(p, base, arm_id, t) for arm_id, t in tables.items()]
    ids = [a.arm_id for a in arms]
    target = data.get("target_arm")
    if target is not None and (not isinstance(target, str) or target not in ids):
        raise BdnscaError(f"arms file {p}: target_arm {target!r} is not one of the arms {ids}")
    baselines = data.get("baseline_arms")
    if baselines is None:
        baselines = [a for a in ids if a != target] if target else []
    elif not isinstance(baselines, list) or any(b not in ids or b == target for b in baselines):
        raise BdnscaError(
            f"arms file {p}: baseline_arms must list arms other than the target, got {baselines!r}"
        )
    return ArmsFile(arms, target, list(baselines), str(p))


def _arm(p: Path, base: Path, arm_id: str, t: Any) -> ArmSpec:
    where = f"arms file {p}, arm {arm_id!r}"
    if not _ARM_ID.fullmatch(arm_id):
        raise BdnscaError(
            f"{where}: an arm id names its responses file, so it may hold only letters, digits, "
            "'_', '.', '-' and not start with '.' or '-'"
        )
    if not isinstance(t, dict):
        raise BdnscaError(f"{where}: expected a table ([arms.{arm_id}])")
    unknown = sorted(set(t) - ARM_KEYS)
    if unknown:
        raise BdnscaError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(ARM_KEYS))})")
    model = t.get("model")
    if not isinstance(model, str) or not model:
        raise BdnscaError(f"{where}: missing 'model' (a GGUF file)")
    for name in ("include_dynamic_context", "chat"):
        if name in t and not isinstance(t[name], bool):
            raise BdnscaError(f"{where}: {name!r} must be true or false, got {t[name]!r}")
    arm = ArmSpec(
        arm_id=arm_id,
        model=model,
        model_path=_resolve(base, model),
        include_dynamic_context=t.get("include_dynamic_context", True),
        chat=t.get("chat", False),
    )
    if "prompt_template" in t:
        if not isinstance(t["prompt_template"], str):
            raise BdnscaError(f"{where}: 'prompt_template' must be a file path")
        arm.prompt_template = _resolve(base, t["prompt_template"])
    if "speculative" in t:
        arm.speculative = _speculative(where, base, t["speculative"])
    if "retrieval" in t:
        arm.retrieval = _retrieval(where, base, t["retrieval"])
    return arm


def _speculative(where: str, base: Path, value: Any) -> str:
    from bdnsca.serve.bench import SpecMode, parse_speculative

    if not isinstance(value, str):
        raise BdnscaError(f"{where}: 'speculative' must be text such as \"draft:PATH:4\"")
    modes = parse_speculative(value)
    if len(modes) != 1:
        raise BdnscaError(f"{where}: 'speculative' names {len(modes)} modes; an arm has one")
    mode = modes[0]
    if mode.kind == "draft":
        mode = SpecMode("draft", mode.n, _resolve(base, mode.draft_path))
    return mode.name


def _retrieval(where: str, base: Path, r: Any) -> RetrievalSpec:
    if not isinstance(r, dict):
        raise BdnscaError(
            f"{where}: 'retrieval' must be a table such as {{ index = ..., corpus = ..., k = 3 }}"
        )
    unknown = sorted(set(r) - RETRIEVAL_KEYS)
    if unknown:
        raise BdnscaError(
            f"{where}: unknown retrieval key {unknown[0]!r} (keys: {', '.join(sorted(RETRIEVAL_KEYS))})"
        )
    for name in ("index", "corpus"):
        if not isinstance(r.get(name), str) or not r[name]:
            hint = " (the passages' text: an index holds ids only)" if name == "corpus" else ""
            raise BdnscaError(f"{where}: retrieval needs {name!r}{hint}")
    k = r.get("k", 3)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise BdnscaError(f"{where}: retrieval.k must be a whole number >= 1, got {k!r}")
    spec = RetrievalSpec(_resolve(base, r["index"]), _resolve(base, r["corpus"]), k)
    if "reranker" not in r:
        if "rerank_depth" in r:
            raise BdnscaError(f"{where}: retrieval.rerank_depth needs a retrieval.reranker")
        return spec
    if not isinstance(r["reranker"], str) or not r["reranker"]:
        raise BdnscaError(f"{where}: retrieval.reranker must be a model folder (or a cached model id)")
    depth = r.get("rerank_depth", max(DEFAULT_RERANK_DEPTH, k))
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < k:
        raise BdnscaError(f"{where}: retrieval.rerank_depth must be a whole number >= k ({k}), got {depth!r}")
    # A path relative to this file when it names one; otherwise a Hugging Face cache id as given.
    local = _resolve(base, r["reranker"])
    spec.reranker = local if Path(local).exists() else r["reranker"]
    spec.rerank_depth = depth
    return spec


def _resolve(base: Path, path: str) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


# ----------------------------------------------------------------------------- input checks


class Retriever:
    """BM25 over an index file, with the passages' text from its corpus; with a reranker, BM25's
    top ``rerank_depth`` re-scored by it (documents as title + text, as ``train-reranker``
    trains them) and its top ``k`` kept, ranked by the project's tie rule."""

    def __init__(self, spec: RetrievalSpec) -> None:
        from bdnsca._core import BM25
        from bdnsca.data.io import read_corpus

        if not Path(spec.index).exists():
            raise BdnscaError(f"retrieval index {spec.index} does not exist")
        self.bm25 = BM25.load(spec.index)
        corpus = read_corpus(spec.corpus)
        docs = corpus.by_id()
        unknown = [i for i in self.bm25.ids if i not in docs]
        if unknown:
            raise BdnscaError(
                f"retrieval index {spec.index}: {len(unknown)} of its {len(self.bm25.ids)} document "
                f"ids are not in the corpus {spec.corpus} (first: {unknown[0]!r}); "
                "was it built from another corpus?"
            )
        self.docs = docs
        self.k = spec.k
        self.depth = spec.rerank_depth or spec.k
        self.reranker = None
        if spec.reranker is not None:
            from bdnsca.retrieval.reranker import Reranker

            try:
                self.reranker = Reranker(spec.reranker, corpus)
            except BdnscaError as exc:
                raise BdnscaError(f"retrieval reranker {spec.reranker}: {exc}") from None

    def search(self, query: str) -> list[Passage]:
        hits = [doc_id for doc_id, _ in self.bm25.search(query, self.depth)]
        if self.reranker is not None and hits:
            hits = [str(doc_id) for doc_id, _ in self.reranker.rerank(query, hits, top_k=self.k)]
        return [
            Passage(doc_id, self.docs[doc_id].title or "", self.docs[doc_id].text)
            for doc_id in hits[: self.k]
        ]


def check_arm_inputs(arms: Sequence[ArmSpec], scenarios: Sequence[dict[str, Any]]) -> dict[str, Retriever]:
    """Everything an arm names, checked before the first token: models (present, GGUF, a chat
    template when ``chat``), draft models (present, GGUF, the target's vocabulary), templates,
    game state for arms that include it, retrieval indexes (every id known to the corpus) and
    rerankers (loaded).
    Returns the retrievers by arm id."""
    from bdnsca.serve.bench import check_gguf, parse_speculative

    for a in arms:
        check_gguf(a.model_path, f"arm {a.arm_id!r}: model")
        mode = parse_speculative(a.speculative)[0]
        if mode.kind == "draft":
            check_gguf(mode.draft_path, f"arm {a.arm_id!r}: draft model")
        if a.include_dynamic_context:
            bare = [s["scenario_id"] for s in scenarios if not (s.get("dynamic_context") or "").strip()]
            if bare:
                raise BdnscaError(
                    f"arm {a.arm_id!r} includes the dynamic context, but {len(bare)} scenario(s) have none "
                    f"(first: {bare[0]!r})"
                )
    retrievers = {}
    cache: dict[tuple[str, str, int, str | None, int | None], Retriever] = {}
    for a in arms:
        if a.retrieval is not None:
            r = a.retrieval
            key = (r.index, r.corpus, r.k, r.reranker, r.rerank_depth)
            if key not in cache:
                cache[key] = Retriever(a.retrieval)
            retrievers[a.arm_id] = cache[key]
    from bdnsca.serve.llama import chat_template, check_same_vocabulary

    for a in arms:
        mode = parse_speculative(a.speculative)[0]
        if mode.kind == "draft":
            check_same_vocabulary(a.model_path, mode.draft_path)
        if a.chat:
            chat_template(a.model_path)
    return retrievers


def reranker_sha256(reranker: str) -> str:
    """SHA-256 of a reranker's model folder (a folder, or a model id in the local Hugging Face
    cache), as :func:`bdnsca.retrieval.dense.model_sha256` hashes model folders."""
    from bdnsca.retrieval.dense import model_sha256, resolve_model

    return model_sha256(resolve_model(reranker))
