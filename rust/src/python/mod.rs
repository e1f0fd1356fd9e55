//! The Python binding, `bdnsca._core`: one file per concept (tokenizer, BM25,
//! mining, metrics, Pareto), conversions at the boundary in `convert.rs`, the
//! one mapping of core errors onto Python exceptions in `errors.rs`. Each
//! wrapper converts its arguments, releases the GIL around the core call and
//! converts the result back; the logic lives in the core modules.

mod bm25;
mod bm25_state;
mod convert;
mod dense;
mod errors;
mod fusion;
mod lexical;
mod metrics;
mod mining;
mod pareto;
mod pool;
mod stats;
mod tokenizer;

use pyo3::prelude::*;

use crate::{persist, tokenizer as core_tokenizer};

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<tokenizer::Tokenizer>()?;
    m.add_class::<bm25::Bm25>()?;
    m.add_class::<dense::DenseIndex>()?;
    m.add_class::<mining::DocTexts>()?;
    m.add_class::<mining::MiningParams>()?;
    m.add_class::<mining::MiningOutput>()?;
    m.add_function(wrap_pyfunction!(fusion::fuse, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::evaluate_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(mining::mine, m)?)?;
    m.add_function(wrap_pyfunction!(lexical::lexical_stats, m)?)?;
    m.add_function(wrap_pyfunction!(pareto::pareto_frontier, m)?)?;
    m.add_function(wrap_pyfunction!(pareto::frontier_ratio, m)?)?;
    m.add_function(wrap_pyfunction!(stats::compare_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(stats::bootstrap_means, m)?)?;
    m.add_function(wrap_pyfunction!(stats::sign_flip_means, m)?)?;
    m.add_function(wrap_pyfunction!(stats::adjust_p_values, m)?)?;
    m.add_function(wrap_pyfunction!(stats::wilson_interval, m)?)?;
    m.add_function(wrap_pyfunction!(stats::student_t_two_sided, m)?)?;
    m.add("BdnscaError", m.py().get_type::<errors::BdnscaError>())?;
    m.add(
        "IndexFileError",
        m.py().get_type::<errors::IndexFileError>(),
    )?;
    m.add("STOPWORDS_EN", core_tokenizer::STOPWORDS_EN.to_vec())?;
    m.add("INDEX_FORMAT_VERSION", persist::FORMAT_VERSION)?;
    Ok(())
}
