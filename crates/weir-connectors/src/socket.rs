//! Lines from a TCP socket (Flink's `socketTextStream`).

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;
use weir_api::functions::UserError;
use weir_api::source::{Boundedness, Source, SourceContext};
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_runtime::{Result, RuntimeError};

/// Reads `\n`-separated lines from `host:port` until the peer closes the connection. Not
/// parallel. The socket is read with a short timeout so the task stays responsive to
/// cancellation while no data arrives.
#[derive(Clone, Debug)]
pub struct SocketTextSource {
    host: String,
    port: u16,
}

impl SocketTextSource {
    /// A source reading from `host:port`.
    pub fn new(host: &str, port: u16) -> Self {
        SocketTextSource {
            host: host.to_string(),
            port,
        }
    }
}

struct SocketReader {
    addr: String,
    stream: TcpStream,
    pending: Vec<u8>,
    buf: Box<[u8]>,
}

impl Source<String> for SocketTextSource {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }

    fn is_parallel(&self) -> bool {
        false
    }

    fn create_reader(&self, _: &SourceContext) -> Result<Box<dyn SourceReader<String>>, UserError> {
        let addr = format!("{}:{}", self.host, self.port);
        let stream = TcpStream::connect(&addr)
            .map_err(|e| RuntimeError::io(format!("cannot connect to socket {addr}"), e))?;
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| RuntimeError::io(format!("cannot configure socket {addr}"), e))?;
        Ok(Box::new(SocketReader {
            addr,
            stream,
            pending: Vec::new(),
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
        }))
    }
}

impl SocketReader {
    fn emit_lines(&mut self, out: &mut SourceOutput<'_, String>) -> Result<()> {
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.pending[start..start + i];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            out.collect(String::from_utf8_lossy(line).into_owned())?;
            start += i + 1;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

impl SourceReader<String> for SocketReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, String>) -> Result<PollStatus> {
        match self.stream.read(&mut self.buf) {
            Ok(0) => {
                if !self.pending.is_empty() {
                    let last = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    out.collect(last)?;
                }
                Ok(PollStatus::Finished)
            }
            Ok(n) => {
                self.pending.extend_from_slice(&self.buf[..n]);
                self.emit_lines(out)?;
                Ok(PollStatus::MoreAvailable)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(PollStatus::NothingAvailable)
            }
            Err(e) => Err(RuntimeError::io(
                format!("cannot read from socket {}", self.addr),
                e,
            )),
        }
    }

    /// A socket cannot be re-read: it has no position to store, and a restored job reads
    /// on from a new connection (at-most-once for this source, as Flink's socket source).
    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
}
