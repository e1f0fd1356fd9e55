"""Serving: the llama.cpp adapter (the only place private llama-cpp-python attributes are
touched), speculative drafters, the request runner, summaries and reports of serve-bench."""
