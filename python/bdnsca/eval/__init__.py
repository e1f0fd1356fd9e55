"""Evaluation: everything that measures a retriever or a dialogue model and decides on it.

IR metrics, bootstrap and paired statistics, text-quality scores (chrF, ROUGE-L, embeddings)
and Pareto frontiers (:mod:`~bdnsca.eval.metrics`, :mod:`~bdnsca.eval.compare`,
:mod:`~bdnsca.eval.quality`, :mod:`~bdnsca.eval.frontier`), and the evaluation runs:

- generation: :mod:`~bdnsca.eval.scenarios` (scenario files, the prompt template),
  :mod:`~bdnsca.eval.arms` (the arms TOML and its checks), :mod:`~bdnsca.eval.requests` and
  :mod:`~bdnsca.eval.generate` (the run folder, generation, interruption and ``--resume``);
- scoring: :mod:`~bdnsca.eval.scoring` (per-response scores), :mod:`~bdnsca.eval.lexical`
  (lexical richness, counted in Rust) and :mod:`~bdnsca.eval.score_summary` (bootstrap CIs);
- judging: :mod:`~bdnsca.eval.judge_prompts` (rubric, prompts, JSON schemas, parsing),
  :mod:`~bdnsca.eval.judge_llm` (GGUF judges with JSON-schema-constrained decoding),
  :mod:`~bdnsca.eval.judge_stats` (agreement, position consistency, win-rates, verbosity) and
  :mod:`~bdnsca.eval.judge` (the judging run and what it writes);
- the gate: :mod:`~bdnsca.eval.gate` and :mod:`~bdnsca.eval.gate_checks`.
"""
