//! `bdnsca._core.lexical_stats`: distinct-n, rep-3 and bidirectional MTLD over a batch of
//! texts, computed in parallel with the GIL released (the logic lives in `crate::lexical`).

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::texts_arena;
use super::pool::{run_in, thread_pool};
use crate::lexical::{self, MTLD_THRESHOLD};

/// Lexical statistics of each text: a dict of equal-length numpy arrays `tokens`, `types`
/// (int64), `distinct1`, `distinct2`, `repetition`, `mtld` (float64).
#[pyfunction]
#[pyo3(signature = (texts, *, mtld_threshold=MTLD_THRESHOLD, threads=None))]
pub fn lexical_stats<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    mtld_threshold: f64,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let arena = texts_arena(texts)?;
    let pool = thread_pool(threads)?;
    let stats = py.detach(|| {
        let all = arena.all();
        run_in(&pool, || lexical::batch_stats(&all, mtld_threshold))
    })?;
    let d = PyDict::new(py);
    let int_col = |f: fn(&lexical::LexicalStats) -> usize| -> Vec<i64> {
        stats.iter().map(|s| f(s) as i64).collect()
    };
    let float_col =
        |f: fn(&lexical::LexicalStats) -> f64| -> Vec<f64> { stats.iter().map(f).collect() };
    d.set_item("tokens", PyArray1::from_vec(py, int_col(|s| s.tokens)))?;
    d.set_item("types", PyArray1::from_vec(py, int_col(|s| s.types)))?;
    d.set_item(
        "distinct1",
        PyArray1::from_vec(py, float_col(|s| s.distinct1)),
    )?;
    d.set_item(
        "distinct2",
        PyArray1::from_vec(py, float_col(|s| s.distinct2)),
    )?;
    d.set_item(
        "repetition",
        PyArray1::from_vec(py, float_col(|s| s.repetition)),
    )?;
    d.set_item("mtld", PyArray1::from_vec(py, float_col(|s| s.mtld)))?;
    Ok(d)
}
