//! `fuse`: runs (dicts of dicts) copied into Rust, fused per query by the core
//! (`crate::fusion`) in parallel with the GIL released, and returned as a dict of
//! dicts whose keys are the input's own string objects (no new strings, hashes cached).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::convert::{extract_str, type_name};
use super::errors::invalid;
use super::pool::{run_in, thread_pool};
use crate::fusion::{self, FuseParams, Method, Norm};

/// One run copied out of Python: doc ids packed in `buf` (entry i ends at `ends[i]`),
/// scores beside them, the id objects kept for the output, and per query of the
/// run its global query index and its entry range.
#[derive(Default)]
struct RunCopy {
    buf: String,
    ends: Vec<usize>,
    scores: Vec<f64>,
    keys: Vec<Py<PyAny>>,
    queries: Vec<(usize, usize, usize)>,
}

impl RunCopy {
    fn doc(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
}

fn score_of(v: &Bound<'_, PyAny>) -> Option<f64> {
    if let Ok(f) = v.cast::<PyFloat>() {
        return Some(f.value());
    }
    v.extract::<f64>().ok()
}

/// Fuse `runs` (a list of `{query_id: {doc_id: score}}`); see `crate::fusion`.
#[pyfunction]
#[pyo3(signature = (runs, method = "rrf", k = 60, norm = "min-max", threads = None))]
pub fn fuse<'py>(
    py: Python<'py>,
    runs: &Bound<'py, PyAny>,
    method: &str,
    k: i64,
    norm: Option<&str>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let params = FuseParams {
        method: Method::parse(method)?,
        norm: Norm::parse(norm.unwrap_or("none"))?,
        k: u64::try_from(k).map_err(|_| invalid(format!("k must be >= 0, got {k}")))?,
    };
    let pool = thread_pool(threads)?;
    let mut qindex: FxHashMap<String, usize> = FxHashMap::default();
    let mut qkeys: Vec<Bound<'py, PyAny>> = Vec::new();
    let mut qnames: Vec<String> = Vec::new();
    let mut copies: Vec<RunCopy> = Vec::new();
    for (r, run) in runs.try_iter()?.enumerate() {
        let run = run?;
        let run = run.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!(
                "runs[{r}] must be a dict {{query_id: {{doc_id: score}}}}, got {}",
                type_name(&run)
            ))
        })?;
        let mut copy = RunCopy::default();
        for (qid, docs) in run.iter() {
            let q = extract_str(&qid, || format!("each query id of runs[{r}]"))?;
            let docs = docs.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!(
                    "runs[{r}][{q:?}] must be a dict {{doc_id: score}}, got {}",
                    type_name(&docs)
                ))
            })?;
            let qi = match qindex.get(q) {
                Some(&i) => i,
                None => {
                    let i = qnames.len();
                    qindex.insert(q.to_owned(), i);
                    qnames.push(q.to_owned());
                    qkeys.push(qid.clone());
                    i
                }
            };
            let start = copy.scores.len();
            for (d, v) in docs.iter() {
                let ds = d.cast::<PyString>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "each doc id of runs[{r}][{q:?}] must be a str, got {}",
                        type_name(&d)
                    ))
                })?;
                let s = score_of(&v).ok_or_else(|| {
                    PyTypeError::new_err(format!(
                        "runs[{r}][{q:?}][{:?}] must be a number, got {}",
                        ds.to_string_lossy(),
                        type_name(&v)
                    ))
                })?;
                copy.buf.push_str(ds.to_str()?);
                copy.ends.push(copy.buf.len());
                copy.scores.push(s);
                copy.keys.push(d.unbind());
            }
            copy.queries.push((qi, start, copy.scores.len()));
        }
        copies.push(copy);
    }
    if copies.is_empty() {
        return Err(invalid("fuse needs at least one run"));
    }
    let n_runs = copies.len();
    let nq = qnames.len();
    // spans[q * n_runs + r]: run r's entry range for query q (empty when it lacks q).
    let mut spans = vec![(0usize, 0usize); nq * n_runs];
    for (r, c) in copies.iter().enumerate() {
        for &(qi, start, end) in &c.queries {
            spans[qi * n_runs + r] = (start, end);
        }
    }
    let fused = py.detach(|| {
        run_in(&pool, || {
            let results: Vec<crate::Result<Vec<(usize, usize, f64)>>> = (0..nq)
                .into_par_iter()
                .map(|q| {
                    let owned: Vec<Vec<(&str, f64)>> = (0..n_runs)
                        .map(|r| {
                            let (s, e) = spans[q * n_runs + r];
                            let c = &copies[r];
                            (s..e).map(|i| (c.doc(i), c.scores[i])).collect()
                        })
                        .collect();
                    let lists: Vec<&[(&str, f64)]> = owned.iter().map(Vec::as_slice).collect();
                    let out = fusion::fuse_query(&qnames[q], &lists, &params)?;
                    Ok(out
                        .into_iter()
                        .map(|f| (f.run, spans[q * n_runs + f.run].0 + f.pos, f.score))
                        .collect())
                })
                .collect();
            results.into_iter().collect::<crate::Result<Vec<_>>>()
        })
    })?;
    let out = PyDict::new(py);
    for (qkey, docs) in qkeys.iter().zip(fused) {
        let inner = PyDict::new(py);
        for (r, i, s) in docs {
            inner.set_item(copies[r].keys[i].bind(py), s)?;
        }
        out.set_item(qkey, inner)?;
    }
    Ok(out)
}
