//! Pareto frontier functions over numpy arrays.

use numpy::{PyArray1, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::errors::invalid;
use crate::pareto;

/// Indices (ascending, int64) of the non-dominated rows of a C-contiguous float64
/// (n, d) array; `maximize[j]` says whether column j is maximised.
#[pyfunction]
pub fn pareto_frontier<'py>(
    py: Python<'py>,
    points: PyReadonlyArray2<'py, f64>,
    maximize: Vec<bool>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let d = points.shape()[1];
    let flat = points
        .as_slice()
        .map_err(|_| invalid("points must be C-contiguous"))?;
    let idx = py.detach(|| pareto::pareto_frontier(flat, d, &maximize))?;
    Ok(PyArray1::from_vec(
        py,
        idx.into_iter().map(|i| i as i64).collect(),
    ))
}

/// latency / the lowest latency among configurations at least as good in quality.
#[pyfunction]
pub fn frontier_ratio<'py>(
    py: Python<'py>,
    latency: PyReadonlyArray1<'py, f64>,
    quality: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let l = latency
        .as_slice()
        .map_err(|_| invalid("latency must be contiguous"))?
        .to_vec();
    let q = quality
        .as_slice()
        .map_err(|_| invalid("quality must be contiguous"))?
        .to_vec();
    let r = py.detach(|| pareto::frontier_ratio(&l, &q))?;
    Ok(PyArray1::from_vec(py, r))
}
