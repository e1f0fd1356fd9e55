//! `evaluate_matrix`: qrels and run dicts in, per-query metric values out.

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rustc_hash::FxHashMap;

use super::convert::{extract_str, type_name, Arena};
use super::errors::invalid;
use crate::metrics::{self, Metric, QueryInput};

/// (query ids of qrels, metric names, values, qrels queries the run lacks, run queries qrels lack)
type EvalMatrix<'py> = (
    Vec<String>,
    Vec<String>,
    Bound<'py, PyArray2<f64>>,
    usize,
    usize,
);

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
    if parsed.is_empty() {
        return Err(invalid("no metrics asked for"));
    }
    // Copy what the metrics need out of the dicts: doc ids into one arena,
    // (score, arena index, judgement) per ranked document.
    let mut qids = Vec::with_capacity(qrels.len());
    let mut docids = Arena::default();
    let mut entries: Vec<(f64, usize, i32)> = Vec::new();
    let mut judged: Vec<i32> = Vec::new();
    let mut spans: Vec<(usize, usize, usize, usize)> = Vec::with_capacity(qrels.len());
    let mut missing_in_run = 0usize;
    for (qid, qdict) in qrels.iter() {
        let qid_s = extract_str(&qid, || "each qrels query id".into())?.to_string();
        let qdict = qdict.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(format!("qrels[{qid_s:?}] must be a dict of doc id -> int"))
        })?;
        let j0 = judged.len();
        let owned: Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)> = qdict.iter().collect();
        let mut rels: FxHashMap<&str, i32> = FxHashMap::default();
        for (d, r) in &owned {
            let d = extract_str(d, || format!("each doc id in qrels[{qid_s:?}]"))?;
            let r: i32 = r.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "qrels[{qid_s:?}][{d:?}] must be an int, got {}",
                    type_name(r)
                ))
            })?;
            rels.insert(d, r);
            judged.push(r);
        }
        let e0 = entries.len();
        match run.get_item(&qid)? {
            Some(rdict) => {
                let rdict = rdict.cast::<PyDict>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "run[{qid_s:?}] must be a dict of doc id -> score"
                    ))
                })?;
                for (d, s) in rdict.iter() {
                    let ds = extract_str(&d, || format!("each doc id in run[{qid_s:?}]"))?;
                    let score: f64 = s.extract().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "run[{qid_s:?}][{ds:?}] must be a number, got {}",
                            type_name(&s)
                        ))
                    })?;
                    let rel = rels.get(ds).copied().unwrap_or(0);
                    docids.push(ds);
                    entries.push((score, docids.len() - 1, rel));
                }
            }
            None => missing_in_run += 1,
        }
        spans.push((e0, entries.len(), j0, judged.len()));
        qids.push(qid_s);
    }
    let mut run_only = 0usize;
    for qid in run.keys() {
        if !qrels.contains(&qid)? {
            run_only += 1;
        }
    }
    let n_m = parsed.len();
    let values: Vec<f64> = py.detach(|| {
        let mut inputs: Vec<QueryInput> = spans
            .iter()
            .map(|&(e0, e1, j0, j1)| QueryInput {
                ranked: entries[e0..e1]
                    .iter()
                    .map(|&(s, d, r)| (s, docids.get(d), r))
                    .collect(),
                judged: judged[j0..j1].to_vec(),
            })
            .collect();
        metrics::evaluate(&mut inputs, &parsed)
            .into_iter()
            .flatten()
            .collect()
    });
    let n_q = qids.len();
    let arr = PyArray1::from_vec(py, values).reshape([n_q, n_m])?;
    Ok((qids, metrics, arr, missing_in_run, run_only))
}
