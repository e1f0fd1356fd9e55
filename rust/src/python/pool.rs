//! Rayon pools for a caller-chosen thread count: the core's bounded cache
//! (`crate::pool`), and running a closure in one.

use std::sync::Arc;

use pyo3::PyResult;

pub fn thread_pool(threads: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    Ok(threads.map(crate::pool::thread_pool).transpose()?)
}

/// Runs `f` in `pool`, or in rayon's global pool when there is none.
pub fn run_in<T: Send>(pool: &Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
