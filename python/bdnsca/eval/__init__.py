"""Evaluation: IR metrics, bootstrap and paired statistics, text-quality scores (chrF,
ROUGE-L, embeddings) and Pareto frontiers (the gate joins here)."""
