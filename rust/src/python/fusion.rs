//! `fuse`: runs (dicts of dicts) fused by the core (`crate::fusion`) a batch of
//! queries at a time, in a pipeline: while a worker thread fuses one batch (rayon,
//! no GIL), the calling thread copies the next batch out of Python and turns the
//! previous one's results into dicts, whose keys are the input's own string objects
//! (no new strings, hashes cached). Memory holds a few batches, never a whole copy.

use std::collections::VecDeque;
use std::sync::mpsc;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyString};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::convert::{extract_str, type_name};
use super::errors::invalid;
use super::pool::{run_in, thread_pool};
use crate::fusion::{self, FuseParams, Method, Norm};

/// Queries per batch handed to the worker.
const BATCH: usize = 256;
/// How many entries ahead the copy and output loops prefetch Python objects.
const PREFETCH: usize = 8;

/// A hint to load the object at `p` into cache (its header and the next line).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch(p.cast::<i8>(), _MM_HINT_T0);
        _mm_prefetch(p.cast::<i8>().wrapping_add(64), _MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One batch of queries copied out of Python: doc ids packed in `buf` (entry i ends
/// at `ends[i]`) with their scores, and per (query of the batch, run) the entry range.
#[derive(Default)]
struct Batch {
    first_query: usize,
    n_queries: usize,
    buf: String,
    ends: Vec<usize>,
    scores: Vec<f64>,
    spans: Vec<(usize, usize)>,
}

impl Batch {
    fn doc(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    fn push(&mut self, keys: &mut Vec<Py<PyAny>>, doc: &str, score: f64, key: Py<PyAny>) {
        self.buf.push_str(doc);
        self.ends.push(self.buf.len());
        self.scores.push(score);
        keys.push(key);
    }

    /// Drops the entries from `entry` on.
    fn truncate(&mut self, keys: &mut Vec<Py<PyAny>>, entry: usize) {
        let start = if entry == 0 { 0 } else { self.ends[entry - 1] };
        self.buf.truncate(start);
        self.ends.truncate(entry);
        self.scores.truncate(entry);
        keys.truncate(entry);
    }

    /// Copies `docs` when every key is exactly a `str` and every value exactly a `float`
    /// (what runs hold), from `PyDict_Next`'s borrowed pointers, prefetching the objects
    /// ahead; Ok(false), with nothing kept, on any other type (the general path follows).
    fn push_exact(
        &mut self,
        py: Python<'_>,
        keys: &mut Vec<Py<PyAny>>,
        docs: &Bound<'_, PyDict>,
    ) -> PyResult<bool> {
        let first = self.scores.len();
        let mut pos: ffi::Py_ssize_t = 0;
        let mut k: *mut ffi::PyObject = std::ptr::null_mut();
        let mut v: *mut ffi::PyObject = std::ptr::null_mut();
        let mut items: Vec<(*mut ffi::PyObject, *mut ffi::PyObject)> =
            Vec::with_capacity(docs.len());
        // SAFETY: the GIL is held; PyDict_Next yields borrowed pointers that stay valid
        // while the dict is unchanged, and nothing from here to the end of this function
        // runs Python code (exact str and float only: PyUnicode_AsUTF8AndSize and
        // PyFloat_AsDouble call no Python for them), so nothing can change it.
        while unsafe { ffi::PyDict_Next(docs.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
            items.push((k, v));
        }
        for (i, &(k, v)) in items.iter().enumerate() {
            if let Some(&(k2, v2)) = items.get(i + PREFETCH) {
                prefetch(k2);
                prefetch(v2);
            }
            let exact =
                unsafe { ffi::PyUnicode_CheckExact(k) != 0 && ffi::PyFloat_CheckExact(v) != 0 };
            if !exact {
                self.truncate(keys, first);
                return Ok(false);
            }
            let mut len: ffi::Py_ssize_t = 0;
            let p = unsafe { ffi::PyUnicode_AsUTF8AndSize(k, &mut len) };
            if p.is_null() {
                self.truncate(keys, first);
                return Err(PyErr::fetch(py));
            }
            let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) };
            let doc = std::str::from_utf8(bytes)
                .map_err(|_| invalid("a document id is not valid UTF-8"))?;
            let score = unsafe { ffi::PyFloat_AsDouble(v) };
            let key = unsafe { Bound::from_borrowed_ptr(py, k) }.unbind();
            self.push(keys, doc, score, key);
        }
        Ok(true)
    }

    /// Copies `docs` (any str keys, any numbers), naming what is wrong.
    fn push_general(
        &mut self,
        keys: &mut Vec<Py<PyAny>>,
        docs: &Bound<'_, PyDict>,
        r: usize,
        q: &str,
    ) -> PyResult<()> {
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
            let doc = ds.to_str()?.to_owned();
            self.push(keys, &doc, s, d.unbind());
        }
        Ok(())
    }
}

fn score_of(v: &Bound<'_, PyAny>) -> Option<f64> {
    if let Ok(f) = v.cast::<PyFloat>() {
        return Some(f.value());
    }
    v.extract::<f64>().ok()
}

/// Per query of a batch, its fused documents as (run, entry in the batch, score).
type Fused = Vec<Vec<(usize, usize, f64)>>;

/// Fuses every query of `batch` in parallel; the first error by query order wins.
fn fuse_batch(
    batch: &Batch,
    n_runs: usize,
    qnames: &[String],
    p: &FuseParams,
) -> crate::Result<Fused> {
    let results: Vec<crate::Result<Vec<(usize, usize, f64)>>> = (0..batch.n_queries)
        .into_par_iter()
        .map(|j| {
            let spans = &batch.spans[j * n_runs..(j + 1) * n_runs];
            let owned: Vec<Vec<(&str, f64)>> = spans
                .iter()
                .map(|&(s, e)| (s..e).map(|i| (batch.doc(i), batch.scores[i])).collect())
                .collect();
            let lists: Vec<&[(&str, f64)]> = owned.iter().map(Vec::as_slice).collect();
            let out = fusion::fuse_query(&qnames[batch.first_query + j], &lists, p)?;
            Ok(out
                .into_iter()
                .map(|f| (f.run, spans[f.run].0 + f.pos, f.score))
                .collect())
        })
        .collect();
    results.into_iter().collect()
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
    let mut dicts: Vec<Bound<'py, PyDict>> = Vec::new();
    for (r, run) in runs.try_iter()?.enumerate() {
        let run = run?;
        let run = run.cast_into::<PyDict>().map_err(|e| {
            PyTypeError::new_err(format!(
                "runs[{r}] must be a dict {{query_id: {{doc_id: score}}}}, got {}",
                type_name(e.into_inner().as_any())
            ))
        })?;
        dicts.push(run);
    }
    if dicts.is_empty() {
        return Err(invalid("fuse needs at least one run"));
    }
    // Every query id, in order of first appearance across the runs.
    let mut qindex: FxHashMap<String, ()> = FxHashMap::default();
    let mut qkeys: Vec<Bound<'py, PyAny>> = Vec::new();
    let mut qnames: Vec<String> = Vec::new();
    for (r, run) in dicts.iter().enumerate() {
        for qid in run.keys() {
            let q = extract_str(&qid, || format!("each query id of runs[{r}]"))?;
            if !qindex.contains_key(q) {
                qindex.insert(q.to_owned(), ());
                qnames.push(q.to_owned());
                qkeys.push(qid.clone());
            }
        }
    }
    drop(qindex);
    let n_runs = dicts.len();
    let nq = qnames.len();
    let extract = |first: usize| -> PyResult<(Batch, Vec<Py<PyAny>>)> {
        let n = BATCH.min(nq - first);
        let mut batch = Batch {
            first_query: first,
            n_queries: n,
            spans: Vec::with_capacity(n * n_runs),
            ..Batch::default()
        };
        let mut keys: Vec<Py<PyAny>> = Vec::new();
        for (q, qkey) in qkeys.iter().enumerate().skip(first).take(n) {
            for (r, run) in dicts.iter().enumerate() {
                let start = batch.scores.len();
                if let Some(docs) = run.get_item(qkey)? {
                    let docs = docs.cast_into::<PyDict>().map_err(|e| {
                        PyTypeError::new_err(format!(
                            "runs[{r}][{:?}] must be a dict {{doc_id: score}}, got {}",
                            qnames[q],
                            type_name(e.into_inner().as_any())
                        ))
                    })?;
                    if !batch.push_exact(py, &mut keys, &docs)? {
                        batch.push_general(&mut keys, &docs, r, &qnames[q])?;
                    }
                }
                batch.spans.push((start, batch.scores.len()));
            }
        }
        Ok((batch, keys))
    };
    let out = PyDict::new(py);
    let qnames_ref = &qnames;
    let params_ref = &params;
    let pool_ref = &pool;
    std::thread::scope(|scope| -> PyResult<()> {
        let (job_tx, job_rx) = mpsc::channel::<Batch>();
        let (res_tx, res_rx) = mpsc::channel::<(Batch, crate::Result<Fused>)>();
        scope.spawn(move || {
            for batch in job_rx {
                let fused = run_in(pool_ref, || {
                    fuse_batch(&batch, n_runs, qnames_ref, params_ref)
                });
                if res_tx.send((batch, fused)).is_err() {
                    return;
                }
            }
        });
        let mut rx = Some(res_rx);
        let mut pending: VecDeque<Vec<Py<PyAny>>> = VecDeque::new();
        let mut next = 0;
        loop {
            // Keep two batches with the worker: one it fuses, one waiting.
            while next < nq && pending.len() < 2 {
                let (batch, keys) = extract(next)?;
                next += batch.n_queries;
                job_tx
                    .send(batch)
                    .map_err(|_| invalid("the fusion worker stopped"))?;
                pending.push_back(keys);
            }
            let Some(keys) = pending.pop_front() else {
                break;
            };
            let receiver = rx.take().ok_or_else(|| invalid("fusion channel lost"))?;
            let (receiver, got) = py.detach(move || {
                let got = receiver.recv();
                (receiver, got)
            });
            rx = Some(receiver);
            let (batch, fused) = got.map_err(|_| invalid("the fusion worker stopped"))?;
            for (j, docs) in fused?.into_iter().enumerate() {
                let inner = PyDict::new(py);
                for (i, &(_, e, s)) in docs.iter().enumerate() {
                    if let Some(&(_, e2, _)) = docs.get(i + PREFETCH) {
                        prefetch(keys[e2].as_ptr());
                    }
                    inner.set_item(keys[e].bind(py), s)?;
                }
                out.set_item(&qkeys[batch.first_query + j], inner)?;
            }
        }
        Ok(())
    })?;
    Ok(out)
}
