"""The request runner: one timed generation per request, and the order requests run in.

A request is timed as a server runs it: both KV caches (the target's and a draft model's) are
emptied, the prompt is evaluated once, the first token is sampled from its logits (TTFT), then
each step evaluates the last token with the drafter's proposal in one batch and keeps the
longest prefix the target agrees with. Only accepted tokens count against ``max_tokens`` and the
context, so speculative and plain decoding stop at the same place; a proposal is cut to what can
still be used (the tokens left to generate and the room left in the context), as llama-server does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bdnsca.errors import BdnscaError
from bdnsca.serve.drafters import Drafter, DraftModelDrafter, PromptLookupDrafter

if TYPE_CHECKING:
    from bdnsca.serve.bench import Config, Prompt, ServeBenchSettings
    from bdnsca.serve.llama import LlamaModel


@dataclass
class RequestResult:
    tokens: list[int]
    text: str
    n_prompt_tokens: int
    prompt_ms: float
    ttft_ms: float
    total_ms: float
    decode_tokens_per_s: float | None
    proposed: int | None
    accepted: int | None
    stop: str


def run_request(
    model: LlamaModel,
    prompt_tokens: Sequence[int],
    settings: ServeBenchSettings,
    drafter: Drafter | None,
    seed: int,
) -> RequestResult:
    """One timed generation from empty KV caches. ``proposed`` counts draft tokens the target
    verified, ``accepted`` those it kept (None without a drafter)."""
    prompt = list(prompt_tokens)
    n_prompt = len(prompt)
    max_tokens = settings.max_tokens
    model.reset()
    if drafter is not None:
        drafter.reset()
    model.start_sampling(
        temperature=settings.temperature,
        top_k=settings.top_k,
        top_p=settings.top_p,
        min_p=settings.min_p,
        seed=seed,
    )
    out: list[int] = []
    stop = ""

    def emit(tok: int) -> bool:
        """Appends a token the target chose; False when generation ends with it."""
        nonlocal stop
        if model.is_eog(tok):
            stop = "eos"
            return False
        out.append(tok)
        if len(out) >= max_tokens:
            stop = "length"
            return False
        if n_prompt + len(out) > model.n_ctx:  # the last token could not be evaluated
            stop = "context"
            return False
        return True

    proposed = accepted = 0
    t0 = time.perf_counter()
    model.decode(prompt)
    t_prompt = time.perf_counter()
    going = emit(model.sample())
    t_first = time.perf_counter()
    while going:
        draft: list[int] = []
        if drafter is not None:
            # Drafts past max_tokens would never be emitted; past the context, never evaluated.
            room = min(max_tokens - len(out) - 1, model.n_ctx - n_prompt - len(out), model.n_batch - 1)
            if room > 0:
                draft = drafter.propose(np.asarray(prompt + out, dtype=np.intc), room)[:room]
        # out[-1] is not in the KV cache yet: it goes first, then the proposal.
        model.decode([out[-1], *draft], all_logits=bool(draft))
        proposed += len(draft)
        for j in range(len(draft) + 1):
            tok = model.sample(j if draft else -1)
            if j < len(draft) and tok == draft[j]:
                accepted += 1
                going = emit(tok)
                if not going:
                    break
                continue
            going = emit(tok)  # the target's own token, after a rejection or a fully accepted draft
            break
        if going:
            model.truncate(n_prompt + len(out) - 1)  # drop the rejected draft tokens
    t_end = time.perf_counter()
    decode_s = t_end - t_first
    tps = (len(out) - 1) / decode_s if len(out) > 1 and decode_s > 0 else None
    return RequestResult(
        tokens=out,
        text=model.detokenize(out, prev_tokens=prompt),
        n_prompt_tokens=n_prompt,
        prompt_ms=(t_prompt - t0) * 1e3,
        ttft_ms=(t_first - t0) * 1e3,
        total_ms=(t_end - t0) * 1e3,
        decode_tokens_per_s=tps,
        proposed=proposed if drafter is not None else None,
        accepted=accepted if drafter is not None else None,
        stop=stop,
    )


# ----------------------------------------------------------------------------- loading and order


def load_model(path: str, settings: ServeBenchSettings) -> LlamaModel:
    from bdnsca.serve.llama import LlamaModel

    return LlamaModel(
        path,
        n_ctx=settings.n_ctx,
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.n_threads,
        seed=settings.seed,
    )


def make_drafter(config: Config, settings: ServeBenchSettings) -> Drafter | None:
    spec = config.spec
    if spec.kind == "none":
        return None
    if spec.kind == "prompt-lookup":
        return PromptLookupDrafter(spec.n)
    return DraftModelDrafter(load_model(spec.draft_path, settings), spec.n)


@dataclass
class LoadedConfig:
    """One configuration, ready to serve: the target, its drafter and the tokenised prompts."""

    config: Config
    model: LlamaModel
    drafter: Drafter | None
    tokenized: list[list[int]] = field(default_factory=list)

    def close(self) -> None:
        for obj in (self.model, self.drafter):
            if obj is not None:
                obj.close()


def open_config(c: Config, prompts: Sequence[Prompt], settings: ServeBenchSettings) -> LoadedConfig:
    from bdnsca.serve.llama import chat_tokens

    drafter = make_drafter(c, settings)
    try:
        model = load_model(c.model, settings)
    except BaseException:
        if drafter is not None:
            drafter.close()
        raise
    loaded = LoadedConfig(c, model, drafter)
    try:
        for p in prompts:
            if settings.chat:
                toks = chat_tokens(model, p.prompt)
            else:
                toks = model.tokenize(p.prompt, add_bos=True, special=False)
            if len(toks) + settings.max_tokens + 1 > settings.n_ctx:
                raise BdnscaError(
                    f"prompt {p.prompt_id!r} has {len(toks)} tokens: with --max-tokens "
                    f"{settings.max_tokens} it does not fit --n-ctx {settings.n_ctx}"
                )
            loaded.tokenized.append(toks)
    except BaseException:
        loaded.close()
        raise
    return loaded


def _row(c: Config, p: Prompt, r: int, res: RequestResult) -> dict[str, Any]:
    return {
        "config": c.name,
        "model": c.model_label,
        "speculative": c.speculative,
        "prompt_id": p.prompt_id,
        "domain": p.domain,
        "repeat": r,
        "n_prompt_tokens": res.n_prompt_tokens,
        "n_generated_tokens": len(res.tokens),
        "prompt_ms": res.prompt_ms,
        "ttft_ms": res.ttft_ms,
        "total_ms": res.total_ms,
        "decode_tokens_per_s": res.decode_tokens_per_s,
        "draft_tokens_proposed": res.proposed,
        "draft_tokens_accepted": res.accepted,
        "stop": res.stop,
        "text": res.text,
    }


def planned_requests(n_configs: int, n_prompts: int, repeats: int) -> int:
    """Requests a run makes, warm-ups included (one per configuration)."""
    return n_configs * (1 + n_prompts * repeats)


def run_all(
    configs: Sequence[Config],
    prompts: Sequence[Prompt],
    settings: ServeBenchSettings,
    progress: Callable[[int, int, str], None] | None = None,
    done_rows: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Runs every request and returns the rows grouped by configuration. Each finished row is
    also appended to ``done_rows`` at once (in the order requests ran, with its ``sequence``),
    so that a caller still has them when a later request fails.

    ``interleaved`` (the default) keeps every configuration loaded and runs each prompt x repeat
    across all of them in a rotating order, so that drift in the machine's speed falls on every
    configuration alike; ``sequential`` loads one at a time (for models that do not fit in
    memory together)."""
    total = planned_requests(len(configs), len(prompts), settings.repeats)
    done = 0
    per_config: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    order: list[dict[str, Any]] = done_rows if done_rows is not None else []

    def tick(name: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, name)

    def request(lo: LoadedConfig, i: int, r: int) -> None:
        seed = settings.seed + r * 100_003 + i
        res = run_request(lo.model, lo.tokenized[i], settings, lo.drafter, seed)
        row = _row(lo.config, prompts[i], r, res)
        row["sequence"] = len(order)  # the order the requests ran in
        per_config[lo.config.name].append(row)
        order.append(row)
        tick(lo.config.name)

    def warm_up(lo: LoadedConfig) -> None:
        run_request(lo.model, lo.tokenized[0], settings, lo.drafter, settings.seed)  # not measured
        tick(lo.config.name)

    cells = [(i, r) for r in range(settings.repeats) for i in range(len(prompts))]
    if settings.order == "sequential":
        for c in configs:
            lo = open_config(c, prompts, settings)
            try:
                warm_up(lo)
                for i, r in cells:
                    request(lo, i, r)
            finally:
                lo.close()
    else:
        loaded: list[LoadedConfig] = []
        try:
            for c in configs:
                loaded.append(open_config(c, prompts, settings))
            for lo in loaded:
                warm_up(lo)
            for k, (i, r) in enumerate(cells):
                for j in range(len(loaded)):
                    request(loaded[(k + j) % len(loaded)], i, r)
        finally:
            for lo in loaded:
                lo.close()
    return [row for c in configs for row in per_config[c.name]]
