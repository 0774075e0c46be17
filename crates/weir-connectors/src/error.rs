//! The connectors' error type.

use thiserror::Error;

/// What went wrong in a connector, with where it happened.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The sink or source is configured in a way that cannot work.
    #[error("{connector}: {message}")]
    Config {
        /// Which connector (`postgres sink`, ...).
        connector: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A PostgreSQL call failed.
    #[error("postgres sink (table {table}): cannot {action}: {message}")]
    Postgres {
        /// The sink's table.
        table: String,
        /// What the sink was doing.
        action: String,
        /// The server's or the client's message.
        message: String,
        /// Retrying on a new connection may succeed (connection lost, serialisation
        /// failure, server shutting down).
        transient: bool,
    },
}

impl ConnectorError {
    /// True if retrying on a new connection may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectorError::Postgres {
                transient: true,
                ..
            }
        )
    }
}
