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
    /// A Kafka call failed.
    #[error("kafka: cannot {action}: {source}")]
    Kafka {
        /// What the connector was doing, with the topic or partition it concerned.
        action: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl ConnectorError {
    /// A Kafka error while doing `action`.
    pub fn kafka(action: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        ConnectorError::Kafka {
            action: action.into(),
            source,
        }
    }

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
