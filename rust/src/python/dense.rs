//! `bdnsca._core.DenseIndex`: document embeddings copied into Rust once, exact
//! top-k by dot product (`crate::dense`) with the GIL released.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::errors::invalid;
use super::pool::{run_in, thread_pool};
use crate::dense::{self, Hits};
use crate::error::Error;

type PositionsAndScores<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

/// The array's values in C order, copied into a checked allocation.
fn copy_matrix(a: &PyReadonlyArray2<'_, f32>, what: &str) -> PyResult<(Vec<f32>, usize)> {
    let shape = a.shape();
    let (n, dim) = (shape[0], shape[1]);
    let total = n
        .checked_mul(dim)
        .ok_or_else(|| Error::OutOfMemory(format!("{what} ({n} x {dim})")))?;
    let mut out: Vec<f32> = Vec::new();
    out.try_reserve_exact(total)
        .map_err(|_| Error::OutOfMemory(format!("{what} ({n} x {dim} float32)")))?;
    match a.as_slice() {
        Ok(s) => out.extend_from_slice(s),
        Err(_) => out.extend(a.as_array().iter().copied()),
    }
    Ok((out, dim))
}

/// Exact dense retrieval over document embeddings (float32, one row per document).
#[pyclass(module = "bdnsca._core", name = "DenseIndex", frozen)]
pub struct DenseIndex {
    inner: dense::DenseIndex,
    ids: Vec<String>,
}

#[pymethods]
impl DenseIndex {
    #[new]
    #[pyo3(signature = (embeddings, ids, *, normalize = true))]
    fn new(
        py: Python<'_>,
        embeddings: PyReadonlyArray2<'_, f32>,
        ids: Vec<String>,
        normalize: bool,
    ) -> PyResult<Self> {
        let (mut data, dim) = copy_matrix(&embeddings, "document embeddings")?;
        let inner = py.detach(|| {
            if normalize {
                dense::normalize_rows(&mut data, dim);
            }
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            dense::DenseIndex::new(data, dim, &refs)
        })?;
        Ok(DenseIndex { inner, ids })
    }

    /// Top-k document positions (int64) and scores (float32), each `(n_queries, k')`
    /// with `k' = min(k, n_docs)`, rows best first.
    #[pyo3(signature = (queries, k, *, normalize = true, threads = None))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: i64,
        normalize: bool,
        threads: Option<usize>,
    ) -> PyResult<PositionsAndScores<'py>> {
        if k <= 0 {
            return Err(invalid(format!("k must be >= 1, got {k}")));
        }
        let k = (k as u64).min(self.inner.n_docs() as u64) as usize;
        let (mut q, dim) = copy_matrix(&queries, "query embeddings")?;
        if dim != self.inner.dim() {
            return Err(invalid(format!(
                "queries have {dim} dimensions, the index {}",
                self.inner.dim()
            )));
        }
        let nq = q.len() / dim.max(1);
        let pool = thread_pool(threads)?;
        let Hits { k, docs, scores } = py.detach(|| {
            if normalize {
                dense::normalize_rows(&mut q, dim);
            }
            run_in(&pool, || self.inner.search(&q, k))
        })?;
        let docs: Vec<i64> = docs.into_iter().map(i64::from).collect();
        Ok((
            PyArray1::from_vec(py, docs).reshape([nq, k])?,
            PyArray1::from_vec(py, scores).reshape([nq, k])?,
        ))
    }

    #[getter]
    fn ids(&self) -> Vec<String> {
        self.ids.clone()
    }
    #[getter]
    fn n_docs(&self) -> usize {
        self.inner.n_docs()
    }
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn __len__(&self) -> usize {
        self.inner.n_docs()
    }
}
