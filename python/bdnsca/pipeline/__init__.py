"""``bdnsca pipeline``: the experiment matrix (SFT -> DPO -> reranker -> speculative serving) as one
content-keyed graph of steps, promoted to the anchor only through the gate.

Modules: :mod:`.spec` (the TOML file, checked whole before anything runs), :mod:`.graph` (nodes,
keys, topological order), :mod:`.store` (node folders, completion markers, ``pipeline.json``),
:mod:`.plan` (the nodes a spec asks for), :mod:`.steps` (one plain function per step),
:mod:`.engine` (runs the graph), :mod:`.report` (the matrix) and :mod:`.promote` (the anchor).
"""

from __future__ import annotations

from bdnsca.pipeline.engine import PipelineResult, StepFailed, pipeline_status, run_pipeline
from bdnsca.pipeline.promote import PromotionResult, promote
from bdnsca.pipeline.spec import PipelineSpec, load_spec

__all__ = [
    "PipelineResult",
    "PipelineSpec",
    "PromotionResult",
    "StepFailed",
    "load_spec",
    "pipeline_status",
    "promote",
    "run_pipeline",
]
