//! The SQL layer's error type.

use thiserror::Error;

/// What can go wrong with a script, a statement or a SQL job.
#[derive(Debug, Error)]
pub enum SqlError {
    /// The script cannot be read or split (an unknown include, an unclosed quote).
    #[error("{0}")]
    Script(String),
    /// A statement is not valid SQL, or names what does not exist.
    #[error("{0}")]
    Invalid(String),
    /// Valid SQL that Weir does not run (yet): says what.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A table's data cannot be read (a missing file, a bad field).
    #[error("{0}")]
    Input(String),
    /// The statement's job failed.
    #[error("the job failed: {0}")]
    Job(#[from] weir_api::ApiError),
    /// Writing results failed.
    #[error("cannot write {what}: {source}")]
    Output {
        /// Which file.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A statement failed: which one, where, and why.
    #[error("statement {number} (line {line}): {source}")]
    Statement {
        /// The statement's number in the script.
        number: usize,
        /// The line it starts on.
        line: usize,
        /// What went wrong.
        source: Box<SqlError>,
    },
}

impl From<datafusion_common::DataFusionError> for SqlError {
    fn from(e: datafusion_common::DataFusionError) -> Self {
        match e {
            datafusion_common::DataFusionError::NotImplemented(m) => SqlError::Unsupported(m),
            e => SqlError::Invalid(e.strip_backtrace()),
        }
    }
}

impl From<arrow_schema::ArrowError> for SqlError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        SqlError::Invalid(e.to_string())
    }
}

/// The SQL layer's result type.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
