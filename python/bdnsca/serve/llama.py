"""The llama.cpp adapter: the only module that imports llama-cpp-python or touches its internals.

bdnsca drives llama.cpp's own batch, memory (KV cache) and sampler API through llama-cpp-python's
ctypes bindings instead of ``Llama.generate()``, so that a request is timed as a server runs it
(the prompt evaluated once, the first token sampled from its logits) and speculative verification
counts only accepted tokens against the context. Those bindings change between releases, so the
supported range is pinned (pyproject's ``serve`` extra says the same) and checked at import.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from bdnsca.errors import BdnscaError

SUPPORTED_RANGE = ">=0.3.36,<0.4"
SUPPORTED_MIN = (0, 3, 36)
SUPPORTED_BELOW = (0, 4, 0)


def check_version(version: str) -> None:
    """Raises a clear error unless ``version`` (llama-cpp-python's) is in :data:`SUPPORTED_RANGE`."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    v = tuple(int(x or 0) for x in m.groups()) if m else None
    if v is None or not (SUPPORTED_MIN <= v < SUPPORTED_BELOW):
        raise BdnscaError(
            f"llama-cpp-python {version} is installed, bdnsca's serving needs llama-cpp-python"
            f"{SUPPORTED_RANGE} (it drives llama.cpp's batch, KV-cache and sampler bindings, which "
            f"change between releases): pip install 'llama-cpp-python{SUPPORTED_RANGE}'"
        )


try:
    import llama_cpp
except ImportError:
    raise BdnscaError("serve-bench needs llama-cpp-python: pip install 'bdnsca[serve]'") from None

VERSION: str = getattr(llama_cpp, "__version__", "unknown")
check_version(VERSION)


class LlamaModel:
    """One GGUF loaded for generation: its context (KV cache), one batch and one sampler chain.

    ``n_past`` tokens are in the KV cache (``tokens`` lists them); :meth:`decode` appends after
    them, :meth:`truncate` rolls back. ``evaluated`` and ``decode_calls`` count the work done
    since loading (tests and diagnostics read them)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        n_ctx: int,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        kwargs: dict[str, Any] = dict(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=min(512, n_ctx),
            n_gpu_layers=n_gpu_layers,
            seed=seed,
            verbose=False,
        )
        if n_threads:
            kwargs["n_threads"] = kwargs["n_threads_batch"] = n_threads
        try:
            self.llm = llama_cpp.Llama(**kwargs)
        except ValueError as exc:
            raise BdnscaError(f"llama.cpp could not load {path}: {exc}") from None
        self.path = str(path)
        # llama.cpp may round the context up; the bench holds itself to the size asked for.
        self.n_ctx: int = min(n_ctx, self.llm.n_ctx())
        self.n_batch: int = self.llm.n_batch
        self.n_vocab: int = self.llm.n_vocab()
        self.bos: int = self.llm.token_bos()
        self.eos: int = self.llm.token_eos()
        self._ctx = self.llm.ctx
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._batch_live = True
        self._sampler: Any = None
        self._ids = np.zeros(self.n_ctx, dtype=np.intc)
        self.n_past = 0
        self.evaluated = 0
        self.decode_calls = 0

    # --- tokens
    def tokenize(self, text: str, *, add_bos: bool = True, special: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def detokenize(self, tokens: Sequence[int], prev_tokens: Sequence[int] | None = None) -> str:
        raw = self.llm.detokenize(
            list(tokens), prev_tokens=None if prev_tokens is None else list(prev_tokens)
        )
        return raw.decode("utf-8", errors="replace")

    def token_text(self, token: int) -> str:
        return _token_text(self._vocab, token)

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    @property
    def metadata(self) -> dict[str, str]:
        return self.llm.metadata

    # --- KV cache
    @property
    def tokens(self) -> np.ndarray:
        """The tokens in the KV cache, in order."""
        return self._ids[: self.n_past]

    def reset(self) -> None:
        """Empties the KV cache."""
        llama_cpp.llama_memory_clear(self._mem, True)
        self.n_past = 0

    def truncate(self, n: int) -> None:
        """Keeps the first ``n`` tokens of the KV cache, drops the rest."""
        if n >= self.n_past:
            return
        if not llama_cpp.llama_memory_seq_rm(self._mem, 0, n, -1):
            raise BdnscaError(
                f"{self.path}: llama.cpp cannot roll back this model's cache (speculative decoding)"
            )
        self.n_past = n

    def decode(self, tokens: Sequence[int], *, all_logits: bool = False) -> None:
        """Evaluates ``tokens`` after the cached ones. Logits are kept for the last token only,
        or for every token with ``all_logits`` (one batch at most: verification of a draft)."""
        n = len(tokens)
        if n == 0:
            return
        if self.n_past + n > self.n_ctx:
            raise BdnscaError(
                f"{self.path}: {self.n_past} + {n} tokens do not fit the context of {self.n_ctx}"
            )
        if all_logits and n > self.n_batch:
            raise BdnscaError(f"{self.path}: {n} tokens with logits do not fit one batch of {self.n_batch}")
        b = self._batch
        for start in range(0, n, self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            m = len(chunk)
            for i, tok in enumerate(chunk):
                b.token[i] = tok
                b.pos[i] = self.n_past + i
                b.n_seq_id[i] = 1
                b.seq_id[i][0] = 0
                b.logits[i] = all_logits
            b.logits[m - 1] = True  # as llama-cpp-python's eval(): every chunk outputs its last token
            b.n_tokens = m
            rc = llama_cpp.llama_decode(self._ctx, b)
            if rc != 0:
                raise BdnscaError(f"{self.path}: llama_decode failed with code {rc}")
            self._ids[self.n_past : self.n_past + m] = chunk
            self.n_past += m
        self.evaluated += n
        self.decode_calls += 1

    # --- choosing tokens
    def start_sampling(
        self, *, temperature: float, top_k: int, top_p: float, min_p: float, seed: int
    ) -> None:
        """A fresh sampler chain: greedy at temperature 0, else top-k, top-p, min-p, temperature
        and a seeded draw."""
        self._free_sampler()
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if temperature == 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            for s in (
                llama_cpp.llama_sampler_init_top_k(top_k),
                llama_cpp.llama_sampler_init_top_p(top_p, 1),
                llama_cpp.llama_sampler_init_min_p(min_p, 1),
                llama_cpp.llama_sampler_init_temp(temperature),
                llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF),
            ):
                llama_cpp.llama_sampler_chain_add(chain, s)
        self._sampler = chain

    def sample(self, i: int = -1) -> int:
        """A token drawn from the logits of the last batch's ``i``-th token (-1: the last)."""
        if self._sampler is None:
            raise BdnscaError("start_sampling() was not called")
        return int(llama_cpp.llama_sampler_sample(self._sampler, self._ctx, i))

    def argmax(self, i: int = -1) -> int:
        """The most likely token after the last batch's ``i``-th token."""
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, i)
        return int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())

    def _free_sampler(self) -> None:
        if self._sampler is not None:
            llama_cpp.llama_sampler_free(self._sampler)
            self._sampler = None

    def close(self) -> None:
        self._free_sampler()
        if self._batch_live:
            llama_cpp.llama_batch_free(self._batch)
            self._batch_live = False
        with contextlib.suppress(Exception):
            self.llm.close()


def prompt_lookup(tokens: np.ndarray, n: int, max_ngram_size: int = 2) -> list[int]:
    """llama-cpp-python's prompt-lookup proposal: up to ``n`` tokens that followed an earlier
    occurrence of the last n-gram (longest n-gram first, earliest occurrence first)."""
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    found = LlamaPromptLookupDecoding.find_candidate_pred_tokens(
        np.asarray(tokens, dtype=np.intc), max_ngram_size=max_ngram_size, num_pred_tokens=n
    )
    return [int(t) for t in found]


def _token_text(vocab: Any, token: int) -> str:
    return llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", errors="replace")


@contextlib.contextmanager
def _vocab_only(path: str | os.PathLike[str]) -> Iterator[Any]:
    """A vocabulary-only ``Llama`` for ``path`` (no weights), closed afterwards. llama.cpp's log
    is muted while it loads: it warns about a context it never uses."""
    from llama_cpp import _logger

    @llama_cpp.llama_log_callback
    def quiet(level, text, user_data):  # pragma: no cover - called from C
        return None

    llama_cpp.llama_log_set(quiet, ctypes.c_void_p(0))
    try:
        llm = llama_cpp.Llama(str(path), vocab_only=True, n_ctx=16, verbose=False)
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    try:
        yield llm
    finally:
        with contextlib.suppress(Exception):
            llm.close()


def chat_template(path: str | os.PathLike[str]) -> str:
    """The chat template a GGUF carries (``tokenizer.chat_template``), or a clear error."""
    with _vocab_only(path) as llm:
        template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        raise BdnscaError(
            f"model {path} has no chat template in its GGUF (tokenizer.chat_template): drop --chat"
        )
    return template


def chat_tokens(model: LlamaModel, text: str) -> list[int]:
    """``text`` as one user turn in the model's own chat template, with the generation prompt
    appended, tokenised with special tokens parsed (BOS added only if the template does not)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = model.metadata.get("tokenizer.chat_template")
    if not template:
        raise BdnscaError(f"model {model.path} has no chat template: drop --chat")
    bos, eos = model.token_text(model.bos), model.token_text(model.eos)
    rendered = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)(
        messages=[{"role": "user", "content": text}]
    ).prompt
    return model.tokenize(rendered, add_bos=not rendered.startswith(bos), special=True)


def check_same_vocabulary(target: str | os.PathLike[str], draft: str | os.PathLike[str]) -> None:
    """Raises when ``draft`` does not tokenise exactly as ``target`` (size, special ids, every
    token's text): drafts from another vocabulary are meaningless to the target."""

    def vocab(path):
        with _vocab_only(path) as llm:
            v = llama_cpp.llama_model_get_vocab(llm.model)
            texts = [_token_text(v, i) for i in range(llm.n_vocab())]
            return llm.n_vocab(), llm.token_bos(), llm.token_eos(), texts

    t, d = vocab(target), vocab(draft)
    if t[0] != d[0]:
        raise BdnscaError(
            f"draft model {draft} has a vocabulary of {d[0]} tokens, the target {target} has {t[0]}: "
            "a draft must share the target's tokenizer (build it with tiny-model --tokenizer-from)"
        )
    if t[1:3] != d[1:3]:
        raise BdnscaError(f"draft model {draft} has BOS/EOS ids {d[1:3]}, the target {target} has {t[1:3]}")
    for i, (a, b) in enumerate(zip(t[3], d[3], strict=True)):
        if a != b:
            raise BdnscaError(
                f"draft model {draft} has another vocabulary than the target {target}: "
                f"token {i} is {b!r} in the draft and {a!r} in the target"
            )
