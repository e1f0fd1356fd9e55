"""bdnsca: a Rust-accelerated toolkit for the loop that improves a retrieval-augmented
dialogue model. The hot paths (BM25, IR metrics) live in the Rust extension ``bdnsca._core``;
this package re-exports them with typed Python around them."""

from bdnsca._core import BM25, INDEX_FORMAT_VERSION, STOPWORDS_EN, Tokenizer
from bdnsca.data.io import (
    Corpus,
    Document,
    Query,
    read_corpus,
    read_qrels,
    read_queries,
    read_run,
    write_run,
)
from bdnsca.errors import BdnscaError, DataError, IndexFileError
from bdnsca.eval.compare import CompareResult, compare
from bdnsca.eval.frontier import frontier_ratio, pareto_frontier
from bdnsca.eval.generate import GenerateResult, GenerateSettings, generate_run
from bdnsca.eval.judge import JudgeResult, JudgeSettings, judge_run
from bdnsca.eval.metrics import bootstrap_ci, evaluate
from bdnsca.eval.scoring import ScoreRunResult, ScoringConfig, score_run
from bdnsca.retrieval.bm25 import build_index, search_run
from bdnsca.retrieval.fusion import fuse
from bdnsca.retrieval.mining import MiningResult, MiningSettings, mine_hard_negatives
from bdnsca.retrieval.reranker import Reranker

__version__ = "0.1.0"

__all__ = [
    "BM25",
    "INDEX_FORMAT_VERSION",
    "STOPWORDS_EN",
    "Tokenizer",
    "BdnscaError",
    "DataError",
    "IndexFileError",
    "Corpus",
    "Document",
    "Query",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "read_run",
    "write_run",
    "bootstrap_ci",
    "evaluate",
    "compare",
    "CompareResult",
    "frontier_ratio",
    "pareto_frontier",
    "ScoreRunResult",
    "ScoringConfig",
    "score_run",
    "MiningResult",
    "MiningSettings",
    "mine_hard_negatives",
    "Reranker",
    "fuse",
    "build_index",
    "search_run",
    "GenerateResult",
    "GenerateSettings",
    "generate_run",
    "JudgeResult",
    "JudgeSettings",
    "judge_run",
]
