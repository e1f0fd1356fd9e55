//! Rayon pools for a caller-chosen thread count, built once per count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::PyResult;

use super::errors::invalid;

pub fn thread_pool(threads: Option<usize>) -> PyResult<Option<Arc<rayon::ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let Some(n) = threads else { return Ok(None) };
    if n == 0 {
        return Err(invalid("threads must be >= 1 (or None for all cores)"));
    }
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = pools
        .lock()
        .map_err(|_| invalid("thread pool registry poisoned"))?;
    if let Some(p) = guard.get(&n) {
        return Ok(Some(p.clone()));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| invalid(format!("cannot start {n} threads: {e}")))?;
    let pool = Arc::new(pool);
    guard.insert(n, pool.clone());
    Ok(Some(pool))
}

/// Runs `f` in `pool`, or in rayon's global pool when there is none.
pub fn run_in<T: Send>(pool: &Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
