"""The requests of a generation run: planned up front (every prompt rendered, retrieval
done), then run one at a time on a loaded model through :mod:`bdnsca.serve`'s request runner.

A request's row keeps the old runs' field names (``request_index`` counts from 1 per arm,
``repeat_index`` from 0) and adds ``raw_response`` (the decoded text), ``response`` (the spoken
reply: :func:`clean_response`), ``stop``, ``seed``, ``speculative`` and ``error`` (None, or why
an ``ok: false`` request failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bdnsca.errors import BdnscaError
from bdnsca.eval.arms import ArmSpec, check_arm_inputs
from bdnsca.eval.scenarios import PromptTemplate

if TYPE_CHECKING:
    from bdnsca.eval.generate import GenerateSettings

TIMING_FIELDS = ("total_duration_ns", "prompt_eval_duration_ns", "eval_duration_ns")
"""Row fields that measure time and so differ between otherwise identical runs."""
STOP_MARKERS = ("\nPlayer says:", "\nPlayer:", "\nNPC reply:")


@dataclass
class Request:
    arm: ArmSpec
    scenario: dict[str, Any]
    repeat: int
    request_index: int
    prompt: str
    retrieved: list[str] | None
    seed: int


def plan_requests(
    arms: Sequence[ArmSpec], scenarios: Sequence[dict[str, Any]], settings: GenerateSettings
) -> list[Request]:
    """Checks the inputs and renders every prompt (retrieval included), in run order."""
    retrievers = check_arm_inputs(arms, scenarios)
    templates = {a.arm_id: PromptTemplate.load(a.prompt_template) for a in arms}
    requests = []
    n = len(scenarios)
    for a in grouped(arms):
        retriever = retrievers.get(a.arm_id)
        for r in range(settings.repeats):
            for i, s in enumerate(scenarios):
                passages = retriever.search(s["player_input"]) if retriever else []
                requests.append(
                    Request(
                        arm=a,
                        scenario=s,
                        repeat=r,
                        request_index=r * n + i + 1,
                        prompt=templates[a.arm_id].render(s, a.include_dynamic_context, passages),
                        retrieved=[p.doc_id for p in passages] if retriever else None,
                        seed=settings.seed + r * 100_003 + i,
                    )
                )
    return requests


def grouped(arms: Sequence[ArmSpec]) -> list[ArmSpec]:
    """Arms ordered so that arms sharing a model run one after another (first appearance order)."""
    order: dict[str, list[ArmSpec]] = {}
    for a in arms:
        order.setdefault(a.model_path, []).append(a)
    return [a for group in order.values() for a in group]


def make_drafter(arm: ArmSpec, settings: GenerateSettings):
    from bdnsca.serve.bench import parse_speculative
    from bdnsca.serve.drafters import DraftModelDrafter, PromptLookupDrafter

    mode = parse_speculative(arm.speculative)[0]
    if mode.kind == "none":
        return None
    if mode.kind == "prompt-lookup":
        return PromptLookupDrafter(mode.n)
    from bdnsca.serve.llama import LlamaModel

    draft = LlamaModel(
        mode.draft_path,
        n_ctx=settings.n_ctx,
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.n_threads,
        seed=settings.seed,
    )
    return DraftModelDrafter(draft, mode.n)


def run_one(model: Any, drafter: Any, q: Request, settings: GenerateSettings) -> dict[str, Any]:
    from bdnsca.serve.llama import chat_tokens
    from bdnsca.serve.runner import run_request

    row: dict[str, Any] = {
        "request_index": q.request_index,
        "repeat_index": q.repeat,
        "arm_id": q.arm.arm_id,
        "model": q.arm.model,
        "scenario_id": q.scenario["scenario_id"],
        "include_dynamic_context": q.arm.include_dynamic_context,
        "speculative": q.arm.speculative,
        "seed": q.seed,
        "prompt": q.prompt,
        "prompt_chars": len(q.prompt),
        "reference_response": q.scenario.get("reference_response"),
        "retrieved_doc_ids": q.retrieved,
    }
    try:
        tokens = chat_tokens(model, q.prompt) if q.arm.chat else model.tokenize(q.prompt, add_bos=True)
        if len(tokens) + settings.max_tokens + 1 > model.n_ctx:
            raise BdnscaError(
                f"the prompt has {len(tokens)} tokens: with --max-tokens {settings.max_tokens} it does "
                f"not fit --n-ctx {model.n_ctx}"
            )
        res = run_request(model, tokens, settings, drafter, q.seed)  # type: ignore[arg-type]
    except BdnscaError as exc:
        row.update(
            ok=False, error=first_line(exc), response="", raw_response="", stop="error",
            eval_count=0, prompt_eval_count=0,
            total_duration_ns=0, prompt_eval_duration_ns=0, eval_duration_ns=0,
        )  # fmt: skip
        return row
    row.update(
        ok=True,
        error=None,
        response=clean_response(res.text),
        raw_response=res.text,
        stop=res.stop,
        eval_count=len(res.tokens),
        prompt_eval_count=res.n_prompt_tokens,
        total_duration_ns=round(res.total_ms * 1e6),
        prompt_eval_duration_ns=round(res.prompt_ms * 1e6),
        eval_duration_ns=round((res.total_ms - res.prompt_ms) * 1e6),
    )
    return row


def clean_response(raw: str) -> str:
    """The spoken reply: the text before the model starts another turn (``Player says:``,
    ``Player:``, ``NPC reply:`` on a new line), stripped, without one pair of wrapping quotes."""
    text = raw
    for marker in STOP_MARKERS:
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" and text.count(text[0]) == 2:
        text = text[1:-1].strip()
    return text


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
