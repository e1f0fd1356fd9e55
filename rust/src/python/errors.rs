//! The one place where core errors become Python exceptions: `BdnscaError`
//! (a `ValueError`) for anything a caller can fix, `IndexFileError` for a bad
//! index file, `FileNotFoundError` / `OSError` for I/O.

use pyo3::create_exception;
use pyo3::exceptions::{PyFileNotFoundError, PyMemoryError, PyOSError, PyValueError};
use pyo3::PyErr;

use crate::error::Error;

create_exception!(
    bdnsca._core,
    BdnscaError,
    PyValueError,
    "Base class of bdnsca's errors (a ValueError)."
);
create_exception!(
    bdnsca._core,
    IndexFileError,
    BdnscaError,
    "An index file is truncated, corrupt or foreign."
);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::InvalidArgument(msg) => BdnscaError::new_err(msg),
            e @ Error::IndexFile { .. } => IndexFileError::new_err(e.to_string()),
            e @ Error::OutOfMemory(_) => PyMemoryError::new_err(e.to_string()),
            Error::Io { path, source } => {
                let msg = format!("{}: {}", path.display(), source);
                if source.kind() == std::io::ErrorKind::NotFound {
                    PyFileNotFoundError::new_err(msg)
                } else {
                    PyOSError::new_err(msg)
                }
            }
        }
    }
}

/// A `BdnscaError` for an argument the binding itself checks.
pub fn invalid(msg: impl Into<String>) -> PyErr {
    Error::invalid(msg).into()
}
