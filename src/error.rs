//! The crate's error type: every failure on user input is a value that says what was wrong
//! and where (file, offset or field, expected vs found).

use std::path::{Path, PathBuf};

/// Everything that can go wrong on user input, configuration or numerics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what its format requires.
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    /// A file's checksum differs from the recorded one.
    #[error("{}: SHA-256 mismatch: expected {expected}, found {found}", path.display())]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// A run directory is held by another process (one writer per run directory).
    #[error("{}: in use by {holder}; a run directory has one writer at a time: wait for it to end, or use another directory", path.display())]
    Locked { path: PathBuf, holder: String },
    /// A configuration value is impossible or inconsistent.
    #[error("invalid configuration: {field}: {message}")]
    Config { field: String, message: String },
    /// Tensor shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A loss or parameter became NaN or infinite.
    #[error("non-finite value: {0}")]
    NonFinite(String),
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A format error in `path`.
    pub fn format(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Format {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }

    /// An invalid configuration value.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}
