"""Retrieval: the BM25 wrapper over the Rust index, hard-negative mining and reranker pair
assembly (the reranker and fusion join here)."""
