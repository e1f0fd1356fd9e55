"""Argument and input checks from the issue #12 review: bdnsca.fuse's error types for malformed
runs and out-of-range k / threads, an embeddings file checked against an edited corpus given
beside it, and Reranker.rerank given the same document id twice."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import bdnsca
from bdnsca.errors import BdnscaError
from conftest import DATA

RUN = {"q1": {"a": 1.0, "b": 0.5}}


@pytest.mark.parametrize(
    "runs, kw, error, message",
    [
        ("abc", {}, TypeError, "runs must be a list of runs"),
        ({"q1": {"a": 1.0}}, {}, TypeError, "runs must be a list of runs"),  # one run, not a list
        ([RUN, None], {}, TypeError, r"runs\[1\] must be a dict"),
        ([RUN, ["q1"]], {}, TypeError, r"runs\[1\] must be a dict"),
        ([RUN], {"k": True}, TypeError, "k must be an int"),
        ([RUN], {"k": 60.0}, TypeError, "k must be an int"),
        ([RUN], {"k": 2**64}, BdnscaError, r"k must be >= 0 and <= 2\*\*63 - 1, got"),
        ([RUN], {"k": -1}, BdnscaError, "k must be >= 0"),
        ([RUN], {"threads": -1}, BdnscaError, "threads must be >= 1"),
        ([RUN], {"threads": 2**64}, BdnscaError, "threads must be >= 1"),
        ([RUN], {"threads": False}, TypeError, "threads must be an int"),
    ],
)
def test_fuse_rejects_bad_arguments_with_the_documented_errors(runs, kw, error, message):
    with pytest.raises(error, match=message):
        bdnsca.fuse(runs, **kw)


def test_fuse_still_takes_any_sequence_of_mappings():
    from types import MappingProxyType

    expect = bdnsca.fuse([RUN, RUN], k=1)
    assert bdnsca.fuse((MappingProxyType(RUN), RUN), k=1) == expect
    assert bdnsca.fuse(iter([RUN, RUN]), k=1) == expect
    assert expect["q1"] == {"a": pytest.approx(1.0), "b": pytest.approx(2 / 3)}  # 2 * 1/(1+1), 2 * 1/(1+2)


# ----------------------------------------------------------------------------- embeddings vs corpus


def _embeddings_of(corpus_path, out):
    from bdnsca.data.atomic import file_sha256
    from bdnsca.data.io import read_corpus
    from bdnsca.retrieval.dense import Embeddings, write_embeddings

    docs = read_corpus(corpus_path)
    rng = np.random.default_rng(0)
    m = rng.standard_normal((len(docs.ids), 8)).astype(np.float32)
    meta = {"model": "x", "model_sha256": "0" * 64, "corpus": str(corpus_path)}
    meta["corpus_sha256"] = file_sha256(corpus_path)
    write_embeddings(out, Embeddings(m, list(docs.ids), meta))
    return out


def test_embeddings_from_an_edited_corpus_are_refused(tmp_path):
    from bdnsca.retrieval.dense import check_corpus, read_embeddings

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text((DATA / "retrieval_corpus_wide.jsonl").read_text())
    emb_path = _embeddings_of(corpus, tmp_path / "emb.npz")
    check_corpus(read_embeddings(emb_path), corpus)  # the same file: fine
    check_corpus(read_embeddings(emb_path), tmp_path)  # a BEIR folder holding it: fine
    edited = tmp_path / "edited.jsonl"
    edited.write_text(corpus.read_text().replace("Key fact", "Main fact", 1))  # same ids
    with pytest.raises(BdnscaError, match=r"emb.npz was encoded from a corpus with sha256"):
        check_corpus(read_embeddings(emb_path), edited, emb_path)
    # search --dense with --corpus checks it before loading any model
    r = subprocess.run(
        [sys.executable, "-m", "bdnsca.cli", "search", "--dense", emb_path, "--queries",
         DATA / "retrieval_gold_wide.jsonl", "-o", tmp_path / "run.jsonl", "--corpus", edited],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode != 0 and "was encoded from a corpus with sha256" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- Reranker ids


class _LenCE:
    def predict(self, pairs, **kwargs):
        return np.array([len(d) for _, d in pairs], dtype=np.float32)


def test_rerank_refuses_a_document_id_given_twice():
    rr = bdnsca.Reranker(_LenCE(), {"a": "xx", "b": "x"})
    with pytest.raises(BdnscaError, match="document 'a' is given twice"):
        rr.rerank("q", ["a", "b", "a"])
    assert rr.rerank("q", ["a", "b"]) == [("a", 2.0), ("b", 1.0)]
