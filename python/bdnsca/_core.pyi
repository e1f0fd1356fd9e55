"""Type stubs for bdnsca's Rust extension. Every function and class it exports is here."""

from collections.abc import Iterable, Sequence
from os import PathLike
from typing import Literal

import numpy as np
import numpy.typing as npt

STOPWORDS_EN: list[str]
"""Lucene's English stopword list (the one bm25s calls ``en``)."""

INDEX_FORMAT_VERSION: int
"""The version of the index file format this build reads and writes."""

class BdnscaError(ValueError):
    """Base class of bdnsca's errors."""

class IndexFileError(BdnscaError):
    """An index file is truncated, corrupt, foreign or of another format version."""

class Tokenizer:
    r"""Lower-casing, splitting into words by a pattern, optional stopwords and stemmer.

    ``stopwords``: None, ``"en"`` (Lucene's English list, bm25s's ``en``) or a list of words.
    ``stemmer``: None or ``"english"`` (Snowball English, as PyStemmer's ``english``).
    ``pattern``: ``"alnum"`` (default) keeps every run of Unicode alphanumerics, one-character
    tokens included; ``"bm25s"`` is bm25s's ``(?u)\b\w\w+\b`` after Python's ``str.lower()``
    (words of two or more characters; Python's ``\w``, so combining marks split words), so
    ``Tokenizer(pattern="bm25s", stopwords="en")`` yields exactly
    ``bm25s.tokenize(texts, return_ids=False)``'s tokens. With ``"bm25s"`` the stopwords are
    compared with the lower-cased tokens as given, as bm25s does.
    Raises BdnscaError for an unknown stopword list, stemmer or pattern.
    """

    def __init__(
        self,
        lowercase: bool = True,
        stopwords: str | Sequence[str] | None = None,
        stemmer: str | None = None,
        pattern: str = "alnum",
    ) -> None: ...
    def tokenize(self, texts: str | Iterable[str]) -> list[list[str]]:
        """Tokens of each text (a single string counts as a list of one), in parallel."""
    @property
    def lowercase(self) -> bool: ...
    @property
    def stopwords(self) -> list[str]: ...
    @property
    def stemmer(self) -> str | None: ...
    @property
    def pattern(self) -> str:
        """``"alnum"`` or ``"bm25s"``."""

class BM25:
    """Okapi BM25 with bm25s's scoring variants, computed in Rust.

    ``method``: ``lucene`` (default), ``robertson``, ``atire``, ``bm25l`` or ``bm25+``; ``k1``,
    ``b`` and ``delta`` (BM25L / BM25+) as in bm25s. ``tokenizer`` tokenises raw-text corpora
    and string queries (default: ``Tokenizer()``). Raises BdnscaError for bad parameters:
    k1 < 0, b outside [0, 1], delta < 0, any of them not finite, and the combinations that make
    every score NaN (``bm25+`` with k1 = 0; ``bm25l`` with k1 = 0 and delta = 0).

    Ranking (``search``, ``search_batch``, ``search_batch_indices``, mining): score descending,
    then document id descending compared as bytes — trec_eval's order, so trec_eval and
    pytrec_eval score exactly the ranking returned. Default ids "0".."n-1" compare as strings
    ("9" before "10").
    """

    def __init__(
        self,
        method: str = "lucene",
        k1: float = 1.5,
        b: float = 0.75,
        delta: float = 0.5,
        tokenizer: Tokenizer | None = None,
    ) -> None: ...
    def index(
        self, corpus: Sequence[str] | Sequence[Sequence[str]], ids: Sequence[str] | None = None
    ) -> BM25:
        """Index raw texts or pre-tokenised documents under ``ids`` ("0".."n-1" by default), as
        one segment; replaces any previous index.

        Raises BdnscaError for an empty corpus, duplicate ids, a length mismatch or parameters
        that overflow a term weight on this corpus; TypeError for mixed or non-string input.
        Returns self.
        """
    def add(self, corpus: Sequence[str] | Sequence[Sequence[str]], ids: Sequence[str]) -> None:
        """Add documents (texts or token lists) under ``ids`` as a new segment, without a rebuild:
        scores afterwards equal a fresh ``index`` of the live documents (the old ones in order,
        then these). Raises BdnscaError naming an id already in the index (use ``update``) or
        repeated in ``ids``; nothing changes then. Raises BdnscaError for an index loaded from
        the single-file format (it cannot change: rebuild it)."""
    def update(self, corpus: Sequence[str] | Sequence[Sequence[str]], ids: Sequence[str]) -> None:
        """Replace the documents with these ids (each must be in the index): the old versions
        are deleted and the new ones appended as a new segment. Raises BdnscaError naming an id
        not in the index."""
    def delete(self, ids: Sequence[str]) -> None:
        """Delete the documents with these ids. Raises BdnscaError naming an id not in the index
        or listed twice (nothing is deleted then). A deleted id may be added again."""
    def merge(self, max_segments: int = 1) -> None:
        """Join adjacent segments until at most ``max_segments`` remain, dropping deleted
        documents; scores and rankings do not change."""
    def add_index(self, other: BM25) -> None:
        """Append ``other``'s segments (an index built separately, e.g. a shard) after this
        index's. Same method, parameters and tokenizer required; an id live in both is a
        BdnscaError naming it, and so is ``other`` being this index itself."""
    def get_scores(self, query: str | Sequence[str]) -> npt.NDArray[np.float32]:
        """The score of every document, in index order. Repeated query tokens count each time."""
    def search(self, query: str | Sequence[str], k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` best documents holding at least one query term, as (id, score), best first.

        Order: score descending, then id descending by bytes (trec_eval's order). A query with
        no known term returns []. Raises BdnscaError when ``k <= 0``.
        """
    def search_batch(
        self, queries: Sequence[str | Sequence[str]], k: int = 10, threads: int | None = None
    ) -> tuple[list[list[str]], npt.NDArray[np.float32]]:
        """Top-k for every query in parallel with the GIL released.

        Returns ``(ids, scores)``: ``ids[i]`` is query i's documents, best first (fewer than k
        when fewer match); ``scores`` has shape (n_queries, min(k, n_docs)), NaN where there is
        no document. Same order as ``search``.
        ``threads=None`` uses every core; pools of the 4 sizes used last are kept for reuse.
        Raises MemoryError, before searching, when the (n_queries, min(k, n_docs)) result
        cannot be allocated.
        """
    def search_batch_indices(
        self, queries: Sequence[str | Sequence[str]], k: int = 10, threads: int | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """As ``search_batch``, with document positions (int64, -1 padded) instead of ids."""
    def save(self, path: str | PathLike[str]) -> None:
        """Write the index as a folder: one file per segment, a deletes file per segment with
        deletes (each with a CRC), and ``manifest.json`` written last, so a crash leaves the old
        index or the new one. Saving back to the folder the index was loaded from writes only
        new segments, new deletes and the manifest. An index loaded from the single-file format
        is written in that format again. Raises BdnscaError when a file is at ``path``.

        Writers of one folder are serialised by an exclusive lock on ``path/.lock`` (a second
        writer waits); readers never lock. Saving back to the folder the index was loaded from
        (or last saved to) raises BdnscaError "changed since it was loaded" when another writer
        changed it meanwhile (load again and redo the change); a folder whose manifest cannot be
        read, or is of a newer version, raises IndexFileError and is left as it is."""
    @staticmethod
    def load(path: str | PathLike[str]) -> BM25:
        """Load an index written by ``save``: a folder, or a file of the older single-file format
        (format versions 1 and 2; weights only, so it searches but cannot change). Raises
        IndexFileError for a truncated, corrupt or foreign index, including one whose checksum
        is right but whose structure is not (unsorted or repeated postings, duplicate ids,
        non-finite or negative weights, an unknown method code, counts out of bounds) or whose
        manifest names a missing file ("the index is damaged"); FileNotFoundError when the
        index itself is missing."""
    @staticmethod
    def read_ids(path: str | PathLike[str]) -> list[str]:
        """The live document ids of a saved index in index order, read without its postings
        (a folder index; a single file is loaded whole)."""
    @staticmethod
    def append_to(
        path: str | PathLike[str],
        corpus: Sequence[str] | Sequence[Sequence[str]],
        ids: Sequence[str],
        mode: Literal["add", "update", "upsert"] = "add",
    ) -> dict[str, int]:
        """Add ``corpus`` (texts, tokenised with the saved tokenizer, or token lists) under
        ``ids`` to the index saved in the folder ``path`` as one new segment, without loading
        it: only the manifest, the ids sections and the deletes files are read; the new
        segment, a deletes file per segment losing documents and the manifest are written
        (nothing already there is rewritten). ``mode``: ``"add"`` (an id already in the index
        is a BdnscaError naming it), ``"update"`` (every id must be in it) or ``"upsert"``.
        The folder ends as ``load`` + ``add``/``update`` + ``save`` would leave it; nothing is
        written when an input is refused. Texts are tokenised with the settings of the index
        the append commits to (read under the folder's writer lock). Returns ``added``,
        ``updated``, ``deleted``, ``live_docs``, ``segments`` (after the change; all counted
        under the lock, so a concurrent writer cannot skew them), ``segments_written``,
        ``deletes_written`` and ``bytes_written``. IndexFileError for a damaged folder,
        FileNotFoundError for a missing one, BdnscaError for a single-file index (it cannot
        change)."""
    @staticmethod
    def delete_from(path: str | PathLike[str], ids: Sequence[str]) -> dict[str, int]:
        """Delete the documents with these ids from the index saved in the folder ``path``
        without loading it (an id not in the index, or listed twice, is a BdnscaError naming
        it, and nothing is written). Returns the counts of ``append_to``."""
    def __reduce__(self) -> tuple[object, tuple[bytes]]:
        """Pickle support (e.g. shipping an index to Ray workers): the index as one checksummed
        blob with its tokenizer."""
    def doc_index(self, doc_id: str) -> int | None:
        """The position of ``doc_id`` among the live documents in index order, or None."""
    @property
    def ids(self) -> list[str]: ...
    @property
    def method(self) -> str: ...
    @property
    def k1(self) -> float: ...
    @property
    def b(self) -> float: ...
    @property
    def delta(self) -> float: ...
    @property
    def tokenizer(self) -> Tokenizer: ...
    @property
    def n_docs(self) -> int:
        """Live documents (deleted ones are not counted)."""
    @property
    def n_segments(self) -> int:
        """Segments (1 for an index loaded from the single-file format)."""
    @property
    def vocab_size(self) -> int: ...
    @property
    def n_postings(self) -> int: ...
    @property
    def memory_bytes(self) -> int:
        """Bytes held: the flat search index compiled from the segments (postings, weights,
        vocabulary) plus the segments themselves (forward lists of (term, tf), lengths, ids,
        deletes)."""
    def __len__(self) -> int: ...

def evaluate_matrix(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], metrics: list[str]
) -> tuple[list[str], list[str], npt.NDArray[np.float64], int, int]:
    """Per-query metric values with trec_eval's semantics.

    Returns (query ids of qrels, metric names, values (n_queries, n_metrics), number of qrels
    queries the run lacks, number of run queries qrels lack). Raises BdnscaError for an unknown
    metric name, TypeError for values of the wrong type.
    """

class DocTexts:
    """Document texts copied once into Rust, for repeated mining calls over one corpus."""

    def __init__(self, texts: Iterable[str]) -> None: ...
    def __len__(self) -> int: ...

class MiningParams:
    """The Rust miner's settings (see ``bdnsca.MiningSettings``), checked when built: BdnscaError
    for depth 0, an empty rank window, a ratio <= 0, a threshold outside (0, 1] or an unknown
    sampling.

    ``depth``: how deep in the BM25 ranking to look; ``rank_min``..``rank_max``: the 1-based
    rank window of negatives; ``same_domain`` / ``cross_domain``: negatives per query;
    ``max_score_ratio``: drop candidates scoring above this times the lowest non-zero positive
    score (a query whose positives all score 0 is skipped); ``near_dup_threshold``: character
    5-gram Jaccard at which a candidate is a twin of a relevant document (None: exact duplicates
    only); ``sampling``: "top" or "random"; ``max_pairs``: pairs per query.
    """

    def __init__(
        self,
        *,
        depth: int,
        rank_min: int,
        rank_max: int,
        same_domain: int,
        cross_domain: int,
        max_score_ratio: float | None = None,
        near_dup_threshold: float | None = None,
        sampling: str = "top",
        seed: int = 0,
        max_pairs: int | None = None,
    ) -> None: ...
    @property
    def depth(self) -> int: ...
    @property
    def rank_min(self) -> int: ...
    @property
    def rank_max(self) -> int: ...
    @property
    def same_domain(self) -> int: ...
    @property
    def cross_domain(self) -> int: ...
    @property
    def max_score_ratio(self) -> float | None: ...
    @property
    def near_dup_threshold(self) -> float | None: ...
    @property
    def sampling(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def max_pairs(self) -> int | None: ...

class MiningOutput:
    """What ``mine`` found, as numpy columns; documents are index positions.

    Per-item columns are concatenated over the queries: query i's items are rows
    ``offsets[i]:offsets[i + 1]`` of the matching ``*_offsets`` column (int64, n_queries + 1).
    Per-query columns (``dropped_by_*``, ``available_*``, ``skipped_no_positive_scored``) have
    one row per query. ``len()`` is the number of queries.
    """

    negative_offsets: npt.NDArray[np.int64]
    negative_doc: npt.NDArray[np.int64]
    negative_score: npt.NDArray[np.float32]
    negative_rank: npt.NDArray[np.int64]
    """1-based rank in the BM25 ranking."""
    negative_same_domain: npt.NDArray[np.bool_]
    """Same-domain negatives come first within each query, then cross-domain ones."""
    suspect_offsets: npt.NDArray[np.int64]
    suspect_doc: npt.NDArray[np.int64]
    suspect_duplicate_of: npt.NDArray[np.int64]
    suspect_similarity: npt.NDArray[np.float64]
    suspect_score: npt.NDArray[np.float32]
    suspect_rank: npt.NDArray[np.int64]
    positive_offsets: npt.NDArray[np.int64]
    positive_score: npt.NDArray[np.float32]
    """Each positive's score, in the order the positives were given."""
    pair_offsets: npt.NDArray[np.int64]
    pair_positive: npt.NDArray[np.int64]
    pair_negative: npt.NDArray[np.int64]
    dropped_by_rank: npt.NDArray[np.int64]
    dropped_by_score: npt.NDArray[np.int64]
    available_same: npt.NDArray[np.int64]
    available_cross: npt.NDArray[np.int64]
    skipped_no_positive_scored: npt.NDArray[np.bool_]
    """True where a score ceiling was asked for and every positive scores 0: the query was not
    mined (no negatives, suspects or pairs)."""
    n_queries: int
    def __len__(self) -> int: ...

def mine(
    bm25: BM25,
    texts: DocTexts,
    *,
    domains: Sequence[int],
    queries: Sequence[str | Sequence[str]],
    positives: Sequence[Sequence[int]],
    relevant: Sequence[Sequence[int]],
    query_domains: Sequence[int],
    query_ids: Sequence[str],
    params: MiningParams,
) -> MiningOutput:
    """Mine hard negatives for every query in parallel with the GIL released.

    ``texts`` and ``domains`` (integer codes) are aligned with the index's positions; per query,
    ``positives`` (positions to pair with, best first), ``relevant`` (every position judged > 0:
    never a negative), its domain code and id (which seeds its sampling). Raises BdnscaError for
    inconsistent inputs.
    """

def lexical_stats(
    texts: str | Iterable[str], *, mtld_threshold: float = 0.72, threads: int | None = None
) -> dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]]:
    """Lexical statistics of each text (a single string counts as a list of one), computed in
    parallel: ``tokens`` and ``types`` (int64), ``distinct1``, ``distinct2``, ``repetition``
    (rep-3: 1 - distinct trigrams / trigrams) and ``mtld`` (McCarthy & Jarvis, the mean of the
    forward and backward passes) as float64 arrays. Tokens are ``Tokenizer()``'s. A text with
    fewer than n tokens has distinct-n 0; an empty text is all zeros. Raises BdnscaError unless
    0 < mtld_threshold < 1."""

def pareto_frontier(points: npt.NDArray[np.float64], maximize: list[bool]) -> npt.NDArray[np.int64]:
    """Indices (ascending) of the non-dominated rows of a C-contiguous float64 (n, d) array;
    ``maximize[j]`` says whether column j is maximised. NaN rows are never on the frontier;
    identical non-dominated rows are all returned. O(n log n) for d = 2."""

def frontier_ratio(
    latency: npt.NDArray[np.float64], quality: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """latency / the lowest latency among configurations whose quality is at least as high
    (1.0 on the frontier), NaN where latency or quality is NaN."""

# ----------------------------------------------------------------------------- paired statistics
# Score matrices are C-contiguous float64 (n_rows, n_columns); every resample is shared by all
# columns, so comparisons of any two columns are paired.

def compare_pairs(
    values: npt.NDArray[np.float64],
    pairs: list[tuple[int, int]],
    *,
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
    test: str = "randomization",
) -> list[dict[str, float]]:
    """Per pair (a, b): ``a, b, mean_a, mean_b, delta`` (mean_a - mean_b), ``ci_low, ci_high``
    (percentile bootstrap at ``confidence``) and a two-sided ``p_value`` from ``test``
    (randomization | t-test | bootstrap; NaN with fewer than two rows). Raises BdnscaError for a
    non-finite value, a pair outside the columns, or an unknown test; MemoryError when the
    resamples do not fit."""

def bootstrap_means(
    values: npt.NDArray[np.float64], *, resamples: int = 10_000, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Column means over bootstrap resamples of the rows: (resamples, n_columns)."""

def sign_flip_means(
    values: npt.NDArray[np.float64], *, resamples: int = 10_000, seed: int = 0, exact: bool = False
) -> npt.NDArray[np.float64]:
    """Column means with random sign flips of the rows (all 2^n sign vectors with ``exact``,
    n <= 20): (draws, n_columns)."""

def adjust_p_values(p_values: list[float], method: str = "holm") -> list[float]:
    """Holm / Bonferroni / none adjusted p-values, capped at 1; NaN stays NaN."""

def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN for n = 0)."""

def student_t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""

def fuse(
    runs: Sequence[dict[str, dict[str, float]]],
    method: str = "rrf",
    k: int = 60,
    norm: str | None = "min-max",
    threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """Fuse runs ``{query_id: {doc_id: score}}`` (see ``bdnsca.fuse``): ``method`` rrf, combsum,
    combmnz, combanz, combmax, combmin, combmed (or ranx's sum, mnz, ...); ``norm`` min-max,
    zmuv (z-score), max, sum or none. Scores equal ranx's ``fuse``. In parallel over queries
    with the GIL released. Raises BdnscaError for a non-finite score (naming run index, query
    and document), an unknown method or norm, k < 0 or no runs; TypeError for malformed runs."""

class DenseIndex:
    """Exact dense retrieval over document embeddings: one float32 row per document, copied
    into Rust (MemoryError when it does not fit); ``normalize`` scales rows to unit length, so
    scores are cosines. Ranking: score descending (float32), ties by document id descending
    (UTF-8 bytes). Raises BdnscaError for no rows, a non-finite value (naming the document),
    duplicate ids or a row/id count mismatch."""

    def __init__(
        self, embeddings: npt.NDArray[np.float32], ids: Sequence[str], *, normalize: bool = True
    ) -> None: ...
    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        *,
        normalize: bool = True,
        threads: int | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Top-k document positions and dot-product scores, each ``(n_queries, min(k, n_docs))``,
        rows best first; the GIL released, tiles in parallel. BdnscaError for k < 1, a
        dimension mismatch or a non-finite query value."""
    @property
    def ids(self) -> list[str]: ...
    @property
    def n_docs(self) -> int: ...
    @property
    def dim(self) -> int: ...
    def __len__(self) -> int: ...
