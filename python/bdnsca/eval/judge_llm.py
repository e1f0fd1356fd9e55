"""Judges: what answers a judge request. A GGUF model through llama.cpp with the answer
constrained to the request's JSON schema (llama.cpp's JSON-schema-to-grammar conversion, so even
a tiny random model returns parseable JSON), or any object with a ``name`` and a ``complete``
method (tests inject deterministic fake judges that way)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bdnsca.errors import BdnscaError


@dataclass(frozen=True)
class JudgeRequest:
    """One question to a judge. ``responses`` are the texts shown, in the order shown (one for
    pointwise, A then B for pairwise), for judges that do not read the prompt; they carry no
    arm id. ``max_tokens`` may be cut to fit the judge's context, but never below
    ``min_tokens`` (a retry asks for more room than the first attempt needed)."""

    kind: str
    prompt: str
    schema: dict[str, Any]
    temperature: float
    seed: int
    max_tokens: int
    responses: tuple[str, ...] = field(default_factory=tuple)
    min_tokens: int = 0


@runtime_checkable
class Judge(Protocol):
    name: str

    def complete(self, request: JudgeRequest) -> str: ...


class FunctionJudge:
    """A judge from a function ``request -> raw answer text``."""

    def __init__(self, name: str, fn: Callable[[JudgeRequest], str]) -> None:
        self.name = name
        self.fn = fn

    def complete(self, request: JudgeRequest) -> str:
        return self.fn(request)

    def close(self) -> None:
        return None


class LlamaJudge:
    """A GGUF judge. The prompt goes through the model's chat template when it has one (or as
    plain text with ``chat=False``); each request starts from an empty cache and is seeded."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        chat: bool | None = None,
    ) -> None:
        from bdnsca.serve.llama import LlamaModel

        self.name = name
        self.path = str(path)
        self.model = LlamaModel(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads, seed=0)
        has_template = bool(self.model.metadata.get("tokenizer.chat_template"))
        if chat and not has_template:
            self.model.close()
            raise BdnscaError(f"judge model {path} has no chat template in its GGUF: drop --judge-chat")
        self.chat = has_template if chat is None else chat
        self._grammars: dict[str, Any] = {}

    def _grammar(self, schema: dict[str, Any]) -> Any:
        import llama_cpp

        key = json.dumps(schema)  # property order kept: the grammar follows it (rationale first)
        if key not in self._grammars:
            self._grammars[key] = llama_cpp.LlamaGrammar.from_json_schema(key, verbose=False)
        return self._grammars[key]

    def complete(self, request: JudgeRequest) -> str:
        from bdnsca.serve.llama import chat_tokens

        m = self.model
        tokens = chat_tokens(m, request.prompt) if self.chat else m.tokenize(request.prompt, add_bos=True)
        need = max(1, min(request.min_tokens or request.max_tokens, request.max_tokens))
        if len(tokens) + need > m.n_ctx:
            raise BdnscaError(
                f"the judge prompt has {len(tokens)} tokens: with {need} to answer it does "
                f"not fit the judge's context of {m.n_ctx} (raise --n-ctx)"
            )
        max_tokens = min(request.max_tokens, m.n_ctx - len(tokens))
        m.llm.reset()  # no prefix reuse between requests: each is judged from an empty cache
        out = m.llm.create_completion(
            tokens,
            max_tokens=max_tokens,
            temperature=request.temperature,
            top_k=40,
            top_p=0.95,
            min_p=0.05,
            seed=request.seed,
            grammar=self._grammar(request.schema),
        )
        return str(out["choices"][0]["text"])  # type: ignore[index]

    def close(self) -> None:
        self.model.close()


def judge_labels(paths: list[str]) -> dict[str, str]:
    """Short unique names for judge model files: the stem, or folder_stem where stems collide."""
    stems = [Path(p).stem for p in paths]
    out = {}
    for p, s in zip(paths, stems, strict=True):
        out[p] = s if stems.count(s) == 1 else f"{Path(p).parent.name}_{s}"
    if len(set(out.values())) != len(out):
        raise BdnscaError(f"judge models {paths} cannot be told apart by name: give each its own file name")
    return out


def check_judge_model(path: str, n_ctx: int, n_threads: int | None, n_gpu_layers: int) -> None:
    """Loads ``path`` once (and closes it) so that a judge that cannot load fails before any
    judging: present, GGUF, and loadable by llama.cpp."""
    from bdnsca.serve.bench import check_gguf
    from bdnsca.serve.llama import LlamaModel

    check_gguf(path, "judge model")
    try:
        LlamaModel(path, n_ctx=min(n_ctx, 256), n_gpu_layers=n_gpu_layers, n_threads=n_threads).close()
    except BdnscaError as exc:
        raise BdnscaError(f"judge model {path} cannot be loaded: {exc}") from None
