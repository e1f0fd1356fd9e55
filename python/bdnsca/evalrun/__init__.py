"""Evaluation runs made with bdnsca: ``generate`` (responses per arm, on local GGUF models
through llama.cpp) and ``judge`` (a blind LLM-as-judge over a run folder).

- :mod:`~bdnsca.evalrun.scenarios`: scenario files and the generation prompt template;
- :mod:`~bdnsca.evalrun.arms`: the arms TOML and the checks on what it names;
- :mod:`~bdnsca.evalrun.generate`: the run folder, generation, interruption and ``--resume``;
- :mod:`~bdnsca.evalrun.judge_prompts`: the judge's rubric, prompts, JSON schemas and parsing;
- :mod:`~bdnsca.evalrun.judge_llm`: a GGUF judge with JSON-schema-constrained decoding;
- :mod:`~bdnsca.evalrun.judge_stats`: agreement, position consistency, win-rates, verbosity;
- :mod:`~bdnsca.evalrun.judge`: the judging run and what it writes.
"""
