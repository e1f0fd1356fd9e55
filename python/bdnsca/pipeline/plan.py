"""The nodes an experiment file asks for.

Models are nodes that write ``model.json`` (``hf``: a transformers folder, ``gguf``: the GGUF):
``base`` (``tiny-model`` inside the pipeline, or the declared files), ``export:sft`` and
``export:dpo`` (merge + GGUF of the trained adapters). Everything else hangs off them:

- ``sft-data`` (scenarios outside the evaluated ones, reference responses) -> ``sft`` -> ``export:sft``;
- ``eval-train:sft`` (the SFT model's own answers, several per prompt, scored and judged) ->
  ``preferences`` (pairs of those answers) -> ``dpo`` -> ``export:dpo``;
- ``index``; ``mine`` -> ``reranker``; ``retrieval:bm25`` and ``retrieval:reranker`` (gold queries);
- per experiment: ``eval:MODEL`` (generate -> score -> judge; ``eval:MODEL+reranker`` when the
  experiment retrieves through the trained reranker), ``serve:MODEL:MODES`` and ``gate:NAME``.

Nodes are named by what they compute, so experiments that share a step share its node (the
second and third playbook experiments evaluate the DPO model with the reranker once). The anchor
is ``OUTPUT/anchors/current`` when it exists, else the file's ``anchor.run``, else an evaluation
of ``anchor.model`` (bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bdnsca.pipeline.graph import Node
from bdnsca.pipeline.spec import PipelineSpec, SpecError, is_pipeline_draft

MODEL_NODES = {"base": "base", "sft": "export:sft", "dpo": "export:dpo"}


@dataclass
class Plan:
    nodes: dict[str, Node] = field(default_factory=dict)
    gates: dict[str, dict[str, str]] = field(default_factory=dict)
    """experiment -> {"gate", "eval", "serve", "retrieval"} node names."""
    anchor_description: dict[str, Any] = field(default_factory=dict)

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.name, node)
        return node.name


def current_anchor(output_dir: Path) -> Path | None:
    """``OUTPUT/anchors/current`` resolved (a promoted anchor folder), or None when there is no
    such entry. A dangling link or a plain file is returned as it resolves, so the caller's
    "not a run" check refuses it: falling back to the bootstrap anchor would gate candidates
    against the base model instead of the promoted one."""
    link = output_dir / "anchors" / "current"
    if link.is_symlink() or link.exists():
        return link.resolve()
    return None


def _speculative(spec: PipelineSpec, modes: list[str]) -> tuple[list[str], bool]:
    """The modes as the serve step takes them (``draft:N`` stays symbolic) and whether the
    pipeline's draft model is needed."""
    out, needs = [], False
    for m in modes:
        if is_pipeline_draft(m):
            needs = True
            out.append(m if ":" in m else "draft:8")
        else:
            out.append(m)
    return out, needs


def reranker_split(settings: dict[str, Any]) -> dict[str, Any]:
    """The held-out split and depth ``train-reranker`` uses with these settings (its own defaults
    where the file is silent), so the gate's retrieval runs score exactly its held-out queries."""
    from bdnsca.train.reranker import RerankerTrainingConfig

    x = "unused"
    cfg = RerankerTrainingConfig(pairs=x, corpus=x, gold=x, **settings)
    return {
        "depth": int(cfg.eval_depth),
        "heldout_fraction": cfg.heldout_fraction,
        "split_seed": cfg.split_seed,
        "heldout_domains": cfg.heldout_domains,
        "domain_field": cfg.domain_field,
    }


def build_plan(spec: PipelineSpec) -> Plan:
    plan = Plan()
    d = spec.data
    s = spec.settings

    # ---- models
    if spec.tiny is not None:
        plan.add(Node("base", "tiny_model", settings=dict(spec.tiny)))
    else:
        plan.add(Node("base", "declared_model", inputs={"hf": spec.base, "gguf": spec.base_gguf}))  # type: ignore[dict-item]
    judge_deps: dict[str, str] = {}
    judge_inputs: dict[str, Path] = {}
    for i, j in enumerate(spec.judges):
        if j == "tiny":
            tiny = spec.tiny or {}
            plan.add(
                Node(
                    "judge",
                    "tiny_model",
                    settings={**tiny, "seed": int(tiny.get("seed", 0)) + 1},
                    deps={"tokenizer": "base"},
                )
            )
            judge_deps[f"judge{i}"] = "judge"
        else:
            judge_inputs[f"judge{i}"] = Path(j)
    needs_draft = any(_speculative(spec, e.speculative)[1] for e in spec.experiments)
    draft_deps: dict[str, str] = {}
    draft_inputs: dict[str, Path] = {}
    if needs_draft:
        if spec.draft == "distill":
            pass  # one distilled draft per served model: see serve_node
        elif spec.draft == "tiny":
            tiny = dict(spec.tiny or {})
            tiny.update(layers=1, seed=int(tiny.get("seed", 0)) + 2)
            plan.add(Node("draft", "tiny_model", settings=tiny, deps={"tokenizer": "base"}))
            draft_deps["draft"] = "draft"
        elif spec.draft:
            draft_inputs["draft"] = Path(spec.draft)

    eval_settings = s("eval")
    max_scenarios = eval_settings.get("max_scenarios")

    def eval_node(model: str, pool: str = "eval", reranked: bool = False) -> str:
        """``eval:MODEL`` on the evaluation scenarios (what gates compare), ``eval:MODEL+reranker``
        when the experiment's answers are generated from reranked passages (the arms file names
        the trained reranker), or, with ``pool = "train"``, ``eval-train:MODEL`` on scenarios
        outside them (what preferences learn from, so DPO never trains on the prompts its gate is
        judged on). Speculative decoding is a serving setting only: experiments that differ in it
        alone share one evaluation, generated with identical settings."""
        settings = {"eval": eval_settings, "score": s("score"), "judge": s("judge")}
        deps = {"model": model_node_lazy(model), "baseline": "base", "index": index, **judge_deps}
        if pool == "train":  # the model's own answers, several per prompt (pipeline.samples)
            p = s("preferences")
            samples = int(p.get("samples", 2))
            temperature = float(p.get("temperature", 0.8))
            settings.update(
                train_pool=p.get("scenarios", max_scenarios),
                samples=samples,
                eval={**eval_settings, "repeats": samples, "temperature": temperature},
            )
            del deps["baseline"]
        if reranked:
            settings["rerank_depth"] = retrieval_settings["depth"]
            deps["reranker"] = reranker_node()
        name = f"eval:{model}" if pool == "eval" else f"eval-train:{model}"
        return plan.add(
            Node(
                name + ("+reranker" if reranked else ""),
                "evaluate",
                settings=settings,
                inputs={"scenarios": d["scenarios"], "corpus": d["corpus"], **judge_inputs},
                deps=deps,
            )
        )

    def model_node(model: str) -> str:
        if model == "base":
            return "base"
        if model == "sft":
            sft = s("sft")
            src = sft.pop("from")
            sft.pop("rows", None)
            sft_data()
            plan.add(
                Node("sft", "sft", settings=sft, deps={"data": "sft-data", "model": model_node_lazy(src)})
            )
            return plan.add(Node("export:sft", "export", deps={"adapter": "sft", "model": MODEL_NODES[src]}))
        dpo = s("dpo")
        src = dpo.pop("from")
        prefs_settings = s("preferences")
        for own in ("scenarios", "samples", "temperature"):  # the sampling run's settings
            prefs_settings.pop(own, None)
        prefs = plan.add(
            Node("preferences", "preferences", settings=prefs_settings, deps={"run": eval_node(src, "train")})
        )
        plan.add(Node("dpo", "dpo", settings=dpo, deps={"data": prefs, "model": model_node_lazy(src)}))
        return plan.add(Node("export:dpo", "export", deps={"adapter": "dpo", "model": MODEL_NODES[src]}))

    building: set[str] = set()

    def model_node_lazy(model: str) -> str:
        """The model's node, planned on first use; a model reached again while it is being
        planned is a cycle that the graph reports (the name is enough)."""
        if model in building:
            return MODEL_NODES[model]
        building.add(model)
        try:
            return model_node(model)
        finally:
            building.discard(model)

    index = plan.add(Node("index", "index", inputs={"corpus": d["corpus"]}))
    # Both retrieval runs cover the reranker's held-out gold queries only (its split settings).
    retrieval_settings = reranker_split(s("reranker"))
    retrieval_bm25 = plan.add(
        Node(
            "retrieval:bm25",
            "retrieval",
            settings=retrieval_settings,
            inputs={"gold": d["gold"], "corpus": d["corpus"]},
            deps={"index": index},
        )
    )

    def reranker_node() -> str:
        mine = plan.add(
            Node("mine", "mine", settings=s("mine"), inputs={"corpus": d["corpus"], "gold": d["gold"]})
        )
        return plan.add(
            Node(
                "reranker",
                "reranker",
                settings=s("reranker"),
                inputs={"corpus": d["corpus"], "gold": d["gold"]},
                deps={"pairs": mine},
            )
        )

    def reranker_retrieval() -> str:
        rr = reranker_node()
        return plan.add(
            Node(
                "retrieval:reranker",
                "retrieval",
                settings=retrieval_settings,
                inputs={"gold": d["gold"], "corpus": d["corpus"]},
                deps={"index": index, "reranker": rr},
            )
        )

    serve_settings = s("serve")

    def sft_data() -> str:
        sft = s("sft")
        return plan.add(
            Node(
                "sft-data",
                "sft_data",
                settings={"skip": max_scenarios, "rows": sft.get("rows", 64)},
                inputs={"scenarios": d["scenarios"]},
            )
        )

    def distill_node(model: str) -> str:
        """A draft distilled from ``model`` on the SFT prompts (held out from serving)."""
        return plan.add(
            Node(
                f"distill:{model}",
                "distill",
                settings=s("distill"),
                deps={"target": model_node_lazy(model), "prompts": sft_data()},
            )
        )

    def serve_node(model: str, modes: list[str]) -> str:
        modes, draft = _speculative(spec, modes)
        if draft and spec.draft == "distill":
            draft_deps["draft"] = distill_node(model)
        return plan.add(
            Node(
                f"serve:{model}:{','.join(modes)}",
                "serve",
                settings={**serve_settings, "speculative": modes},
                inputs={
                    "prompts": d["serving_prompts"],
                    "references": d["serving_references"],
                    **(draft_inputs if draft else {}),
                },
                deps={"model": model_node_lazy(model), **(draft_deps if draft else {})},
            )
        )

    # ---- the anchor
    gate_inputs: dict[str, Path] = {"gold": d["gold"]}
    gate_deps: dict[str, str] = {}
    anchor = current_anchor(spec.output_dir)
    if anchor is not None and not (anchor / "run_config.json").is_file():
        raise SpecError(
            f"{spec.path}: the current anchor {spec.output_dir / 'anchors' / 'current'} -> {anchor} is not "
            "a run (no run_config.json): point it at a promoted anchor folder or remove the link"
        )
    if anchor is None and spec.anchor_run is not None:
        anchor = spec.anchor_run
    if anchor is not None:
        gate_inputs["anchor"] = anchor
        plan.anchor_description = {"kind": "folder", "path": str(anchor)}
    else:
        model = spec.anchor_model or "base"
        gate_deps.update(
            anchor_run=eval_node(model),
            anchor_serving=serve_node(model, ["none"]),
            anchor_retrieval=retrieval_bm25,
        )
        plan.anchor_description = {"kind": "bootstrap", "model": model, "eval": gate_deps["anchor_run"]}

    # ---- the experiments
    for e in spec.experiments:
        ev = eval_node(e.model, reranked=e.reranker)
        sv = serve_node(e.model, e.speculative)
        rt = reranker_retrieval() if e.reranker else retrieval_bm25
        gate = plan.add(
            Node(
                f"gate:{e.name}",
                "gate",
                settings=s("gate"),
                inputs=dict(gate_inputs),
                deps={**gate_deps, "candidate_run": ev, "candidate_serving": sv, "candidate_retrieval": rt},
            )
        )
        plan.gates[e.name] = {"gate": gate, "eval": ev, "serve": sv, "retrieval": rt, "model": e.model}
    return plan
