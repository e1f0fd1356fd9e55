//! The one error type of the core. The Python binding maps each variant onto one
//! Python exception class, in one place (`python/errors.rs`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller passed a value the core cannot work with (k <= 0, unknown metric, ...).
    #[error("{0}")]
    InvalidArgument(String),
    /// An index file that is truncated, corrupt, from another program or another version.
    #[error("{path}: {reason}")]
    IndexFile { path: PathBuf, reason: String },
    /// An allocation the input asked for cannot be made (mapped onto MemoryError).
    #[error("not enough memory for {0}")]
    OutOfMemory(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
