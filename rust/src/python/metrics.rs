//! `evaluate_matrix`: qrels and run dicts copied into Rust, then the core's
//! join and metrics (`crate::metrics::evaluate_run`) with the GIL released.

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::{extract_str, type_name, Arena};
use crate::metrics::{self, Judged, Metric, Ranked};

/// (query ids of qrels, metric names, values, qrels queries the run lacks, run queries qrels lack)
type EvalMatrix<'py> = (
    Vec<String>,
    Vec<String>,
    Bound<'py, PyArray2<f64>>,
    usize,
    usize,
);

/// A dict of dicts `{query id: {doc id: value}}` copied out of Python: query ids
/// and doc ids in arenas, values beside the doc ids, query i's entries ending at `ends[i]`.
struct Nested<V> {
    queries: Arena,
    docs: Arena,
    values: Vec<V>,
    ends: Vec<usize>,
}

impl<V: Copy> Nested<V> {
    /// `name` ("qrels" or "run") and `inner` (what each inner dict maps to) name the
    /// input in errors; `value` converts one value or says what it must be.
    fn extract(
        outer: &Bound<'_, PyDict>,
        name: &str,
        inner: &str,
        value: impl Fn(&Bound<'_, PyAny>) -> Result<V, &'static str>,
    ) -> PyResult<Self> {
        let mut out = Nested {
            queries: Arena::default(),
            docs: Arena::default(),
            values: Vec::new(),
            ends: Vec::with_capacity(outer.len()),
        };
        for (qid, qdict) in outer.iter() {
            let q = extract_str(&qid, || format!("each {name} query id"))?;
            let qdict = qdict.cast::<PyDict>().map_err(|_| {
                PyTypeError::new_err(format!("{name}[{q:?}] must be a dict of {inner}"))
            })?;
            for (d, v) in qdict.iter() {
                let ds = extract_str(&d, || format!("each doc id in {name}[{q:?}]"))?;
                let v = value(&v).map_err(|must| {
                    PyTypeError::new_err(format!(
                        "{name}[{q:?}][{ds:?}] must be {must}, got {}",
                        type_name(&v)
                    ))
                })?;
                out.docs.push(ds);
                out.values.push(v);
            }
            out.queries.push(q);
            out.ends.push(out.docs.len());
        }
        Ok(out)
    }

    /// (doc id, value) of every entry, in order.
    fn entries(&self) -> Vec<(&str, V)> {
        (0..self.docs.len())
            .map(|i| (self.docs.get(i), self.values[i]))
            .collect()
    }

    /// (query id, its entries) per query, slicing `entries`.
    fn per_query<'a>(&'a self, entries: &'a [(&'a str, V)]) -> Vec<(&'a str, &'a [(&'a str, V)])> {
        (0..self.queries.len())
            .map(|i| {
                let start = if i == 0 { 0 } else { self.ends[i - 1] };
                (self.queries.get(i), &entries[start..self.ends[i]])
            })
            .collect()
    }
}

/// Per-query metric values for `qrels` and `run` (dicts of dicts). Returns the
/// query ids of qrels in order, the metric names, a float64 array
/// (n_queries, n_metrics), and how many qrels queries the run lacks and how
/// many run queries qrels lacks.
#[pyfunction]
pub fn evaluate_matrix<'py>(
    py: Python<'py>,
    qrels: &Bound<'py, PyDict>,
    run: &Bound<'py, PyDict>,
    metrics: Vec<String>,
) -> PyResult<EvalMatrix<'py>> {
    let parsed: Vec<Metric> = metrics
        .iter()
        .map(|m| Metric::parse(m))
        .collect::<Result<_, _>>()?;
    let judged = Nested::<i32>::extract(qrels, "qrels", "doc id -> int", |v| {
        v.extract().map_err(|_| "an int")
    })?;
    let ranked = Nested::<f64>::extract(run, "run", "doc id -> score", |v| {
        v.extract().map_err(|_| "a number")
    })?;
    let eval = py.detach(|| {
        let (je, re) = (judged.entries(), ranked.entries());
        let q: Vec<Judged> = judged.per_query(&je);
        let r: Vec<Ranked> = ranked.per_query(&re);
        metrics::evaluate_run(&q, &r, &parsed)
    })?;
    let qids: Vec<String> = (0..judged.queries.len())
        .map(|i| judged.queries.get(i).to_string())
        .collect();
    let arr = PyArray1::from_vec(py, eval.values).reshape([qids.len(), eval.n_metrics])?;
    Ok((qids, metrics, arr, eval.missing_in_run, eval.run_only))
}
