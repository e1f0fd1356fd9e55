"""Speculative drafters: they propose tokens that the target then verifies in one batch.

A drafter answers ``propose(tokens, k)`` with at most ``k`` token ids that should follow
``tokens`` (the prompt and every token accepted so far), and ``reset()`` before each request so
that no state from an earlier request (a KV cache, a cached prompt) makes the next one cheaper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from bdnsca.serve.llama import LlamaModel


class Drafter(Protocol):
    def reset(self) -> None: ...

    def propose(self, tokens: np.ndarray, k: int) -> list[int]: ...

    def close(self) -> None: ...


class PromptLookupDrafter:
    """llama-cpp-python's prompt-lookup drafting: up to ``n`` tokens copied from what followed an
    earlier occurrence of the last n-gram (n-grams of 2, then 1 token). Stateless."""

    def __init__(self, n: int, max_ngram_size: int = 2) -> None:
        self.n = n
        self.max_ngram_size = max_ngram_size

    def reset(self) -> None:
        return None

    def propose(self, tokens: np.ndarray, k: int) -> list[int]:
        from bdnsca.serve.llama import prompt_lookup

        n = min(self.n, k)
        return prompt_lookup(tokens, n, self.max_ngram_size) if n > 0 else []

    def close(self) -> None:
        return None


class DraftModelDrafter:
    """Greedy drafting with a second, smaller model that shares the target's vocabulary.

    Within a request its KV cache is kept across steps: each call rolls the draft back to the
    longest prefix it shares with ``tokens`` (what the target accepted), evaluates only the new
    tokens, then drafts one token at a time. :meth:`reset` empties the cache between requests,
    as the runner does for the target."""

    def __init__(self, model: LlamaModel, n: int) -> None:
        self.model = model
        self.n = n

    def reset(self) -> None:
        self.model.reset()

    def propose(self, tokens: np.ndarray, k: int) -> list[int]:
        model = self.model
        ids = np.asarray(tokens, dtype=np.intc)
        n = len(ids)
        # ``want`` tokens: the last one needs no evaluation, each before it one more position.
        want = min(self.n, k, model.n_ctx - n + 1)
        if n == 0 or want <= 0:
            return []
        have = model.tokens
        m = min(len(have), n)
        diff = np.flatnonzero(have[:m] != ids[:m])
        common = int(diff[0]) if len(diff) else m
        common = min(common, n - 1)  # the last token is always re-evaluated: its logits are needed
        model.truncate(common)
        model.decode(ids[common:].tolist())
        out: list[int] = []
        while True:
            tok = model.argmax()
            out.append(tok)
            if len(out) == want or model.is_eog(tok):
                return out
            model.decode([tok])

    def close(self) -> None:
        self.model.close()
