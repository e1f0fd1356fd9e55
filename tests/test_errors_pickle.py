"""Every exception class bdnsca exports pickles round-trip (same class, same message): what
multiprocessing and Ray need to carry an error from a worker back to the caller, where
``except bdnsca.IndexFileError`` must still catch it. The Rust classes used to name their
module ``_core`` (not importable as such), so pickling them failed."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest

import bdnsca

EXPORTED = sorted(
    n
    for n in bdnsca.__all__
    if isinstance(getattr(bdnsca, n), type) and issubclass(getattr(bdnsca, n), BaseException)
)


def _make(cls: type[BaseException]) -> BaseException:
    if cls is bdnsca.DataError:
        return cls("corpus.jsonl", 7, "missing field 'text'")
    return cls("index.bm25: checksum mismatch (corrupt file)")


def test_the_exported_exceptions_are_the_known_ones():
    # A new exported exception joins the round-trip below automatically; this pins that the
    # list is not empty by mistake.
    assert {"BdnscaError", "IndexFileError", "DataError"} <= set(EXPORTED)


@pytest.mark.parametrize("name", EXPORTED)
def test_exception_pickles_round_trip_with_its_message(name):
    cls = getattr(bdnsca, name)
    assert cls.__module__.startswith("bdnsca")
    e = _make(cls)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls
    assert str(back) == str(e) and back.args == e.args
    if cls is bdnsca.DataError:
        assert (back.path, back.line) == ("corpus.jsonl", 7)


def _raise_index_file_error(_: int) -> None:
    raise bdnsca.IndexFileError("seg-1.bseg: checksum mismatch")


def test_a_worker_process_error_reaches_the_parent_as_the_same_class():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        with pytest.raises(bdnsca.IndexFileError, match="seg-1.bseg: checksum mismatch"):
            pool.map(_raise_index_file_error, [0])
