//! Weir's connectors: sources and sinks that implement the DataStream API's
//! [`Source`](weir_api::source::Source) and [`Sink`](weir_api::sink::Sink) traits.
//!
//! - [`file::TextFileSource`]: lines of text files, split per file and per block, read in
//!   parallel.
//! - [`file::TextFileSink`]: one text file per sink subtask.
//! - [`socket::SocketTextSource`]: lines from a TCP socket.
//! - [`datagen::DataGeneratorSource`]: records as a function of their index, at a bounded
//!   rate, replayed exactly after a restore.
//! - [`postgres::PostgresSink`]: appends or upserts into a PostgreSQL table, up to exactly
//!   once (two-phase commit).
//!
//! [`prelude`] adds Flink's shortcuts (`read_text_file`, `socket_text_stream`,
//! `write_as_text`) to the environment and to streams.

pub mod datagen;
pub mod delivery;
pub mod error;
pub mod file;
pub mod kafka;
pub mod nexmark;
pub mod postgres;
pub mod socket;

pub use delivery::DeliveryGuarantee;
pub use error::ConnectorError;

/// Extension traits with Flink's shortcuts.
pub mod prelude {
    pub use crate::datagen::DataGeneratorSource;
    pub use crate::file::{FileSink, TextFileSink, TextFileSource, WriteMode};
    pub use crate::postgres::{DeliveryGuarantee, PostgresSink};
    pub use crate::socket::SocketTextSource;
    pub use crate::{EnvConnectorsExt, StreamConnectorsExt};
}

use std::fmt::Display;
use std::path::PathBuf;
use weir_api::datastream::DataStreamSink;
use weir_api::{Data, DataStream, StreamExecutionEnvironment};

/// Flink's source shortcuts on the environment.
pub trait EnvConnectorsExt {
    /// Lines of the text file, or of the files in the directory, at `path`.
    fn read_text_file(&self, path: impl Into<PathBuf>) -> DataStream<String>;
    /// Lines received on a TCP connection to `host:port`, until the peer closes it.
    fn socket_text_stream(&self, host: &str, port: u16) -> DataStream<String>;
}

impl EnvConnectorsExt for StreamExecutionEnvironment {
    fn read_text_file(&self, path: impl Into<PathBuf>) -> DataStream<String> {
        let path = path.into();
        let name = format!("File Source ({})", path.display());
        self.from_source(file::TextFileSource::new(vec![path]), &name)
    }

    fn socket_text_stream(&self, host: &str, port: u16) -> DataStream<String> {
        self.from_source(
            socket::SocketTextSource::new(host, port),
            &format!("Socket Stream ({host}:{port})"),
        )
    }
}

/// Flink's sink shortcuts on streams.
pub trait StreamConnectorsExt<T> {
    /// Writes each element's `Display` form as a line: to the file `path` at parallelism 1,
    /// else to files `1`, `2`, ... in the directory `path` (one per subtask).
    fn write_as_text(&self, path: impl Into<PathBuf>, mode: file::WriteMode) -> DataStreamSink;
}

impl<T: Data + Display> StreamConnectorsExt<T> for DataStream<T> {
    fn write_as_text(&self, path: impl Into<PathBuf>, mode: file::WriteMode) -> DataStreamSink {
        let path = path.into();
        let name = format!("Text File Sink ({})", path.display());
        self.sink_to(file::TextFileSink::new(path, mode), &name)
    }
}
