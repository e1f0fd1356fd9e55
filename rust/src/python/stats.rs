//! Paired resampling statistics over numpy score matrices.

use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::invalid;
use crate::stats::{self, CompareConfig, Correction, PairedTest};

fn matrix<'a>(values: &'a PyReadonlyArray2<'_, f64>) -> PyResult<(&'a [f64], usize, usize)> {
    let shape = values.shape();
    let flat = values
        .as_slice()
        .map_err(|_| invalid("values must be a C-contiguous float64 (n, columns) array"))?;
    Ok((flat, shape[0], shape[1]))
}

/// Paired comparisons of column pairs of an (n, columns) float64 array: one dict per pair
/// with `a, b, mean_a, mean_b, delta, ci_low, ci_high, p_value`.
#[pyfunction]
#[pyo3(signature = (values, pairs, *, resamples=10_000, seed=0, confidence=0.95, test="randomization"))]
pub fn compare_pairs<'py>(
    py: Python<'py>,
    values: PyReadonlyArray2<'py, f64>,
    pairs: Vec<(usize, usize)>,
    resamples: usize,
    seed: u64,
    confidence: f64,
    test: &str,
) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let (flat, n, cols) = matrix(&values)?;
    let cfg = CompareConfig {
        resamples,
        seed,
        confidence,
        test: PairedTest::parse(test)?,
    };
    let results = py.detach(|| stats::compare_pairs(flat, n, cols, &pairs, &cfg))?;
    results
        .into_iter()
        .map(|r| {
            let d = PyDict::new(py);
            d.set_item("a", r.a)?;
            d.set_item("b", r.b)?;
            d.set_item("mean_a", r.mean_a)?;
            d.set_item("mean_b", r.mean_b)?;
            d.set_item("delta", r.delta)?;
            d.set_item("ci_low", r.ci_low)?;
            d.set_item("ci_high", r.ci_high)?;
            d.set_item("p_value", r.p_value)?;
            Ok(d)
        })
        .collect()
}

/// Column means over bootstrap resamples of the rows (one draw shared by all columns):
/// a (resamples, columns) array.
#[pyfunction]
#[pyo3(signature = (values, *, resamples=10_000, seed=0))]
pub fn bootstrap_means<'py>(
    py: Python<'py>,
    values: PyReadonlyArray2<'py, f64>,
    resamples: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (flat, n, cols) = matrix(&values)?;
    let out = py.detach(|| stats::bootstrap_means(flat, n, cols, resamples, seed))?;
    let arr = numpy::PyArray1::from_vec(py, out);
    arr.reshape([resamples, cols])
}

/// Column means with random sign flips of the rows (one draw shared by all columns), or all
/// 2^n sign vectors with `exact=True`: a (draws, columns) array.
#[pyfunction]
#[pyo3(signature = (values, *, resamples=10_000, seed=0, exact=false))]
pub fn sign_flip_means<'py>(
    py: Python<'py>,
    values: PyReadonlyArray2<'py, f64>,
    resamples: usize,
    seed: u64,
    exact: bool,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (flat, n, cols) = matrix(&values)?;
    let out = py.detach(|| stats::sign_flip_means(flat, n, cols, resamples, seed, exact))?;
    let draws = out.len() / cols.max(1);
    let arr = numpy::PyArray1::from_vec(py, out);
    arr.reshape([draws, cols])
}

/// Multiple-comparison adjusted p-values: `method` is holm, bonferroni or none.
#[pyfunction]
#[pyo3(signature = (p_values, method="holm"))]
pub fn adjust_p_values(p_values: Vec<f64>, method: &str) -> PyResult<Vec<f64>> {
    if let Some(p) = p_values
        .iter()
        .find(|p| !(p.is_nan() || (0.0..=1.0).contains(*p)))
    {
        return Err(invalid(format!("p-values must lie in [0, 1], got {p}")));
    }
    Ok(stats::adjust_p_values(
        &p_values,
        Correction::parse(method)?,
    ))
}

/// Wilson score interval of `successes` out of `n` at normal quantile `z`.
#[pyfunction]
#[pyo3(signature = (successes, n, z=1.959963984540054))]
pub fn wilson_interval(successes: u64, n: u64, z: f64) -> PyResult<(f64, f64)> {
    if successes > n {
        return Err(invalid(format!("successes ({successes}) exceed n ({n})")));
    }
    Ok(stats::wilson_interval(successes, n, z))
}

/// Two-sided p-value of Student's t statistic `t` with `df` degrees of freedom.
#[pyfunction]
pub fn student_t_two_sided(t: f64, df: f64) -> PyResult<f64> {
    if df.is_nan() || df <= 0.0 {
        return Err(invalid(format!("df must be > 0, got {df}")));
    }
    Ok(stats::student_t_two_sided(t, df))
}
