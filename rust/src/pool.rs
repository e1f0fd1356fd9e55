//! Rayon thread pools of a requested size, kept for reuse. Only the few sizes
//! used most recently are kept (`KEPT`), so a caller that asks for many
//! different sizes does not accumulate idle threads without bound.

use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

/// How many pool sizes are kept alive at once.
pub const KEPT: usize = 4;

type Pools = Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>>;

fn pools() -> &'static Pools {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(Vec::new()))
}

/// A pool of `threads` threads, reused when one of that size is kept. The
/// least recently used size is dropped when more than `KEPT` are asked for
/// (its threads end once the last user lets go of it).
pub fn thread_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    if threads == 0 {
        return Err(Error::invalid(
            "threads must be >= 1 (or None for all cores)",
        ));
    }
    // A poisoned lock only means another thread panicked while holding it;
    // the list itself is always left consistent.
    let mut kept = pools().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = kept.iter().position(|(n, _)| *n == threads) {
        let entry = kept.remove(i);
        let pool = entry.1.clone();
        kept.push(entry);
        return Ok(pool);
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid(format!("cannot start {threads} threads: {e}")))?;
    let pool = Arc::new(pool);
    kept.push((threads, pool.clone()));
    if kept.len() > KEPT {
        kept.remove(0);
    }
    Ok(pool)
}

/// The sizes kept now, least recently used first.
pub fn kept_sizes() -> Vec<usize> {
    let kept = pools().lock().unwrap_or_else(|e| e.into_inner());
    kept.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_a_few_sizes_and_reuses_them() {
        let a = thread_pool(2).unwrap();
        let again = thread_pool(2).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
        for n in 3..20 {
            assert_eq!(thread_pool(n).unwrap().current_num_threads(), n);
            assert!(kept_sizes().len() <= KEPT);
        }
        assert_eq!(kept_sizes(), vec![16, 17, 18, 19]);
        assert!(!kept_sizes().contains(&2));
        assert!(thread_pool(0).is_err());
    }
}
