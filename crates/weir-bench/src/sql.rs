//! The shared workloads as SQL (`W0-sql` .. `W3-sql`), run by Weir's SQL layer as the Flink
//! anchor runs them: a `bidgen` table over the benchmark's generator, an `INSERT INTO` a
//! `counting` sink, the statements of `../shared/bench/WORKLOADS.md` §3.
//!
//! The two connectors are registered with the session as an application registers its
//! own ([`weir_sql::connector`]):
//! - `bidgen` (option `'events'`): the bids of [`crate::bid`], generated in parallel
//!   (subtask `k` of `P` emits `i = k, k+P, ...`), only the columns the query reads, with the
//!   table's watermark;
//! - `counting` (option `'checksum-columns'`): counts rows and adds the named BIGINT, INT
//!   and TIMESTAMP (epoch milliseconds) columns into the run's wrapping checksum; it takes
//!   inserts only, as the anchor's.

use crate::{splitmix64, Outcome, Strings, Tally, BASE_TIME_MS};
use crate::{CHANNELS, SEED_BIDDER, SEED_CHANNEL, SEED_PRICE, SEED_URL};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::SchemaRef;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use weir_api::arrow_batch::Batch;
use weir_api::sink::{Sink, SinkContext, SinkWriter};
use weir_api::source::{decode_split, encode_split, Boundedness, Source, SourceContext};
use weir_api::UserError;
use weir_runtime::checkpoint::CheckpointNotice;
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_sql::catalog::TableDef;
use weir_sql::connector::{RowWatermarks, ScanRequest, SinkFactory, SinkRequest, SourceFactory};
use weir_sql::types::Kind;
use weir_sql::SqlError;

/// Rows per generated batch.
const BATCH_ROWS: u64 = 1024;

/// The bid table of the SQL workloads.
const BID_TABLE: &str = "CREATE TEMPORARY TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
  date_time TIMESTAMP(3), extra STRING,
  WATERMARK FOR date_time AS date_time{delay}
) WITH ('connector' = 'bidgen', 'events' = '{events})";

const BID_COLUMNS: &str = "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, date_time TIMESTAMP(3), extra STRING";

/// The sink table's columns, its checksum columns, and the INSERT of workload `w`.
fn statements(w: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match w {
        "W0" => (
            BID_COLUMNS,
            "price",
            "INSERT INTO sink_out SELECT auction, bidder, price, channel, url, date_time, extra FROM bid",
        ),
        "W1" => (
            BID_COLUMNS,
            "price",
            "INSERT INTO sink_out
SELECT auction, bidder, price * 908 / 1000 AS price, channel, url, date_time, extra
FROM bid WHERE MOD(auction, 123) = 0",
        ),
        "W2" => (
            "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT, max_price BIGINT",
            "auction,window_end,cnt,max_price",
            "INSERT INTO sink_out
SELECT auction, window_start, window_end, COUNT(*) AS cnt, MAX(price) AS max_price
FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end",
        ),
        "W3" => (
            "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), cnt BIGINT",
            "auction,window_end,cnt",
            "INSERT INTO sink_out
SELECT auction, window_start, window_end, COUNT(*) AS cnt
FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
GROUP BY auction, window_start, window_end",
        ),
        _ => return None,
    })
}

/// Runs workload `W0-sql` .. `W3-sql` (`workload` without the suffix) over `events` bids
/// at `parallelism`, on the state backend `WEIR_BENCH_STATE_BACKEND` names (`heap`, the
/// default, or `rocksdb`). `seconds` is the job's run time, without planning (as the anchor
/// measures it).
pub fn run(workload: &str, events: u64, parallelism: i64) -> Result<Outcome, String> {
    let backend = std::env::var("WEIR_BENCH_STATE_BACKEND").unwrap_or_else(|_| "hashmap".into());
    run_on(workload, events, parallelism, &backend)
}

/// [`run`] on the state backend `backend` (`hashmap` or `rocksdb`).
pub fn run_on(
    workload: &str,
    events: u64,
    parallelism: i64,
    backend: &str,
) -> Result<Outcome, String> {
    run_with(workload, events, parallelism, backend, &Recovery::default())
}

/// Checkpoints and an injected failure for a SQL workload run.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Exactly-once checkpoints this often (milliseconds).
    pub checkpoint_ms: Option<u64>,
    /// The generator's subtask 0 fails once at this event, after its first checkpoint; the
    /// job restarts from the checkpoint (Flink's restart strategy with checkpoints).
    pub fail_at: Option<u64>,
}

/// [`run_on`] with checkpoints and a failure: the counting sink's result must still be
/// the reference (exactly once).
pub fn run_with(
    workload: &str,
    events: u64,
    parallelism: i64,
    backend: &str,
    recovery: &Recovery,
) -> Result<Outcome, String> {
    let (sink_columns, checksum_columns, insert) =
        statements(workload).ok_or_else(|| format!("no SQL workload '{workload}'"))?;
    let query = SqlQuery {
        updating: false,
        watermark_delay_ms: 0,
        sink_columns,
        checksum_columns,
        insert,
    };
    run_query(&query, events, parallelism, backend, recovery)
}

/// A SQL job over the `bid` table of the `bidgen` connector into the counting sink
/// `sink_out`, for workloads and for tests of other queries.
#[derive(Clone, Copy, Debug)]
pub struct SqlQuery<'a> {
    /// The bid table's watermark: `date_time` minus this.
    pub watermark_delay_ms: u64,
    /// The sink table's columns (`name TYPE, ...`).
    pub sink_columns: &'a str,
    /// The sink columns the checksum adds up (comma-separated).
    pub checksum_columns: &'a str,
    /// The sink takes an updating result (`counting-changelog`).
    pub updating: bool,
    /// The `INSERT INTO sink_out ...` statement.
    pub insert: &'a str,
}

/// Runs `query` over `events` bids at `parallelism` on `backend`, with `recovery`'s
/// checkpoints and failure.
pub fn run_query(
    query: &SqlQuery<'_>,
    events: u64,
    parallelism: i64,
    backend: &str,
    recovery: &Recovery,
) -> Result<Outcome, String> {
    let checkpoints = recovery
        .checkpoint_ms
        .map(|ms| format!("SET 'execution.checkpointing.interval' = '{ms} ms';\n"))
        .unwrap_or_default();
    let fail = recovery
        .fail_at
        .map(|at| format!(", 'fail-once-after' = '{at}'"))
        .unwrap_or_default();
    let delay = match query.watermark_delay_ms {
        0 => String::new(),
        ms => format!(" - INTERVAL '{}' SECOND", ms as f64 / 1000.0),
    };
    let tally = Tally::default();
    let mut session = session(parallelism, &tally);
    let ddl = format!(
        "{checkpoints}SET 'state.backend.type' = '{backend}';\n{};\nCREATE TEMPORARY TABLE sink_out ({}) WITH ('connector' = '{}', 'checksum-columns' = '{}');",
        BID_TABLE
            .replace("{delay}", &delay)
            .replace("{events}", &format!("{events}'{fail}")),
        query.sink_columns,
        if query.updating {
            "counting-changelog"
        } else {
            "counting"
        },
        query.checksum_columns,
    );
    session
        .run_text(&ddl, &mut std::io::sink())
        .map_err(|e| e.to_string())?;
    let (env, name) = session
        .insert_job(query.insert)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let result = env.execute(&name).map_err(|e| e.to_string())?;
    Ok(Outcome {
        out_rows: tally.rows(),
        checksum: tally.checksum(),
        seconds: start.elapsed().as_secs_f64(),
        checkpoints: result.checkpoints.completed,
        restarts: result.restarts,
        checkpoint_sync_ms: 0,
        checkpoint_bytes: 0,
    })
}

/// A SQL session with the `bidgen` and `counting` connectors; the counting sinks add into
/// `tally`.
pub fn session(parallelism: i64, tally: &Tally) -> weir_sql::client::Session {
    let mut session = weir_sql::client::Session::new(".", parallelism.max(1) as u32);
    session
        .connectors_mut()
        .register_source("bidgen", Arc::new(BidGenFactory));
    session.connectors_mut().register_sink(
        "counting",
        Arc::new(CountingFactory {
            tally: tally.clone(),
            updates: false,
        }),
    );
    session.connectors_mut().register_sink(
        "counting-changelog",
        Arc::new(CountingFactory {
            tally: tally.clone(),
            updates: true,
        }),
    );
    session
}

/// One column of the bid table.
#[derive(Clone, Copy, Debug)]
enum BidColumn {
    Auction,
    Bidder,
    Price,
    Channel,
    Url,
    DateTime,
    Extra,
}

impl BidColumn {
    fn of(name: &str, kind: Kind) -> Result<Self, SqlError> {
        let column = match name {
            "auction" => BidColumn::Auction,
            "bidder" => BidColumn::Bidder,
            "price" => BidColumn::Price,
            "channel" => BidColumn::Channel,
            "url" => BidColumn::Url,
            "date_time" => BidColumn::DateTime,
            "extra" => BidColumn::Extra,
            other => {
                return Err(SqlError::Invalid(format!(
                    "bidgen has no column '{other}' (it has auction, bidder, price, channel, url, date_time, extra)"
                )))
            }
        };
        let fits = match column {
            BidColumn::Auction | BidColumn::Bidder | BidColumn::Price => kind == Kind::BigInt,
            BidColumn::DateTime => kind == Kind::Timestamp(3),
            _ => matches!(kind, Kind::Varchar(_)),
        };
        if !fits {
            return Err(SqlError::Invalid(format!(
                "bidgen's column '{name}' is {}",
                match column {
                    BidColumn::DateTime => "TIMESTAMP(3)",
                    BidColumn::Auction | BidColumn::Bidder | BidColumn::Price => "BIGINT",
                    _ => "STRING",
                }
            )));
        }
        Ok(column)
    }

    /// The column's values for events `first, first + step, ...` (`rows` of them).
    fn generate(self, s: &Strings, first: u64, step: u64, rows: usize) -> ArrayRef {
        let ids = (0..rows as u64).map(|r| first + r * step);
        match self {
            BidColumn::Auction => Arc::new(Int64Array::from_iter_values(
                ids.map(|i| 1000 + (splitmix64(i) % 10_000) as i64),
            )),
            BidColumn::Bidder => Arc::new(Int64Array::from_iter_values(
                ids.map(|i| (splitmix64(i ^ SEED_BIDDER) % 100_000) as i64),
            )),
            BidColumn::Price => Arc::new(Int64Array::from_iter_values(
                ids.map(|i| 100 + (splitmix64(i ^ SEED_PRICE) % 10_000_000) as i64),
            )),
            BidColumn::DateTime => Arc::new(TimestampMillisecondArray::from_iter_values(
                ids.map(|i| BASE_TIME_MS + i as i64),
            )),
            BidColumn::Channel => Padded::channels().column(
                ids.map(|i| (splitmix64(i ^ SEED_CHANNEL) % 4) as usize),
                rows,
            ),
            BidColumn::Url => Padded::urls(s).column(
                ids.map(|i| (splitmix64(i ^ SEED_URL) % 1000) as usize),
                rows,
            ),
            // Every extra is empty: all offsets 0, no bytes.
            BidColumn::Extra => Arc::new(StringArray::new(
                OffsetBuffer::new_zeroed(rows),
                Buffer::from_vec(Vec::<u8>::new()),
                None,
            )),
        }
    }
}

/// The generator's strings, each padded with zeros to [`PAD`] bytes, so a row's string is
/// one fixed-size copy (a few vector moves) instead of a `memcpy` call of its length.
struct Padded {
    bytes: Vec<[u8; PAD]>,
    lens: Vec<usize>,
}

/// The longest generated string: `https://www.nexmark.com/item/999` (32 bytes).
const PAD: usize = 32;

impl Padded {
    fn of<'a>(strings: impl Iterator<Item = &'a str>) -> Padded {
        let mut p = Padded {
            bytes: Vec::new(),
            lens: Vec::new(),
        };
        for s in strings {
            let mut b = [0u8; PAD];
            b[..s.len()].copy_from_slice(s.as_bytes());
            p.bytes.push(b);
            p.lens.push(s.len());
        }
        p
    }

    /// The channel strings.
    fn channels() -> &'static Padded {
        static P: OnceLock<Padded> = OnceLock::new();
        P.get_or_init(|| Padded::of(CHANNELS.iter().copied()))
    }

    /// The url strings.
    fn urls(s: &Strings) -> &'static Padded {
        static P: OnceLock<Padded> = OnceLock::new();
        P.get_or_init(|| Padded::of((0..1000).map(|k| s.url(k))))
    }

    /// A string column of the strings at `indices` (`rows` of them).
    fn column(&self, indices: impl Iterator<Item = usize>, rows: usize) -> ArrayRef {
        debug_assert!(rows as u64 <= BATCH_ROWS);
        // Room for every string at full padding, so each copy writes inside the vector.
        let mut bytes = vec![0u8; rows * PAD];
        let mut offsets: Vec<i32> = Vec::with_capacity(rows + 1);
        offsets.push(0);
        let mut at = 0;
        for k in indices.take(rows) {
            bytes[at..at + PAD].copy_from_slice(&self.bytes[k]);
            at += self.lens[k];
            offsets.push(at as i32);
        }
        bytes.truncate(at);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        // SAFETY: `new_unchecked` needs offsets that start at 0, never decrease and stay
        // within the bytes, each range being valid UTF-8 (and no null buffer to match).
        // `offsets` starts with 0 and each later entry adds one string's length, so they
        // never decrease, and the last one is `at`, the byte count after the truncation.
        // The range between two consecutive offsets is exactly the first `lens[k]` bytes of
        // a padded string, which are the bytes of the `&str` it was built from (valid
        // UTF-8): the copy of the next string starts right there and overwrites only the
        // padding zeros after it. The byte count stays below `i32::MAX`: at most
        // `BATCH_ROWS` strings of at most `PAD` bytes.
        Arc::new(unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(bytes), None) })
    }
}

/// The `bidgen` connector.
struct BidGenFactory;

impl SourceFactory for BidGenFactory {
    fn create_source(&self, request: &ScanRequest<'_>) -> weir_sql::Result<Arc<dyn Source<Batch>>> {
        let table = request.table;
        let events = table.required("events")?;
        let events: u64 = events.parse().map_err(|_| {
            SqlError::Invalid(format!(
                "'events' of table '{}' must be a number, not '{events}'",
                table.name
            ))
        })?;
        let columns = request
            .projection
            .iter()
            .map(|&i| BidColumn::of(&table.columns[i].name, table.columns[i].ty.kind))
            .collect::<weir_sql::Result<Vec<_>>>()?;
        let delay = match &table.watermark {
            Some(w) if table.columns[w.column].name == "date_time" => Some(w.delay_ms),
            Some(_) => {
                return Err(SqlError::Invalid(format!(
                    "table '{}': bidgen's time attribute is date_time",
                    table.name
                )))
            }
            None => None,
        };
        let fail_once_after = table
            .option("fail-once-after")
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    SqlError::Invalid(format!(
                        "'fail-once-after' of table '{}' must be a number of events, not '{v}'",
                        table.name
                    ))
                })
            })
            .transpose()?;
        Ok(Arc::new(BidGen {
            events,
            columns,
            delay,
            schema: request.schema(),
            fail_once_after,
            failed: Arc::new(AtomicBool::new(false)),
        }))
    }
}

struct BidGen {
    events: u64,
    columns: Vec<BidColumn>,
    delay: Option<i64>,
    schema: SchemaRef,
    /// `'fail-once-after' = 'N'` (for recovery tests): subtask 0 fails once when it reaches
    /// event N, after a checkpoint completed (waiting up to [`FAIL_WAIT`] for one).
    fail_once_after: Option<u64>,
    /// The failure happened (it stays so across the job's restarts).
    failed: Arc<AtomicBool>,
}

/// How long a reader due to fail waits for its first checkpoint.
const FAIL_WAIT: Duration = Duration::from_secs(5);

impl Source<Batch> for BidGen {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create_reader(
        &self,
        ctx: &SourceContext,
    ) -> Result<Box<dyn SourceReader<Batch>>, UserError> {
        let (next, step, end) = crate::stride(ctx, self.events)?;
        let fail = match self.fail_once_after {
            Some(at) if ctx.subtask == 0 && !self.failed.load(Ordering::SeqCst) => Some(Failure {
                at,
                flag: self.failed.clone(),
                checkpointed: false,
                waiting_since: None,
            }),
            _ => None,
        };
        Ok(Box::new(BidGenReader {
            fail,
            strings: Strings::default(),
            columns: self.columns.clone(),
            watermarks: self.delay.map(RowWatermarks::new),
            schema: self.schema.clone(),
            next,
            step,
            end,
        }))
    }
}

/// A failure a reader is to inject once (see `'fail-once-after'`).
struct Failure {
    at: u64,
    flag: Arc<AtomicBool>,
    /// A checkpoint completed since this reader started.
    checkpointed: bool,
    waiting_since: Option<Instant>,
}

struct BidGenReader {
    fail: Option<Failure>,
    strings: Strings,
    columns: Vec<BidColumn>,
    watermarks: Option<RowWatermarks>,
    schema: SchemaRef,
    next: u64,
    step: u64,
    end: u64,
}

impl SourceReader<Batch> for BidGenReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, Batch>) -> weir_runtime::Result<PollStatus> {
        if self.next >= self.end {
            return Ok(PollStatus::Finished);
        }
        if let Some(f) = self.fail.as_mut().filter(|f| self.next >= f.at) {
            let since = *f.waiting_since.get_or_insert_with(Instant::now);
            if !f.checkpointed && since.elapsed() < FAIL_WAIT {
                return Ok(PollStatus::NothingAvailable);
            }
            f.flag.store(true, Ordering::SeqCst);
            self.fail = None;
            return Err(weir_runtime::RuntimeError::Other(format!(
                "bidgen: the failure 'fail-once-after' = '{}' asked for",
                self.next
            )));
        }
        let rows = (self.end - self.next).div_ceil(self.step).min(BATCH_ROWS) as usize;
        let (first, step) = (self.next, self.step);
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|c| c.generate(&self.strings, first, step, rows))
            .collect();
        if let Some(w) = &mut self.watermarks {
            arrays.push(
                w.before_each((0..rows as u64).map(|r| BASE_TIME_MS + (first + r * step) as i64)),
            );
        }
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| weir_runtime::RuntimeError::Other(format!("bidgen: {e}")))?;
        out.collect(Batch(batch))?;
        if let Some(w) = self.watermarks.as_mut().and_then(RowWatermarks::advance) {
            out.emit_watermark(w)?;
        }
        self.next = first + rows as u64 * step;
        Ok(PollStatus::MoreAvailable)
    }

    fn snapshot_state(&mut self, _: u64) -> weir_runtime::Result<Vec<Vec<u8>>> {
        Ok(vec![encode_split(&(self.next, self.step, self.end))?])
    }

    fn notify_checkpoint(&mut self, notice: CheckpointNotice) -> weir_runtime::Result<()> {
        if let (Some(f), CheckpointNotice::Complete(_)) = (&mut self.fail, notice) {
            f.checkpointed = true;
        }
        Ok(())
    }
}

/// The `counting` connector: its sinks add into one [`Tally`]. As `counting-changelog` it
/// takes updating results: a `+I`/`+U` row adds itself, a `-U`/`-D` row takes itself away,
/// so the tally is the one of the materialised result (for recovery tests of updating
/// queries; the insert-only form is the benchmarks' vectorised one).
struct CountingFactory {
    tally: Tally,
    updates: bool,
}

/// How a checksum column adds to a row's value.
#[derive(Clone, Copy)]
enum ChecksumColumn {
    BigInt(usize),
    Int(usize),
    Millis(usize),
}

impl SinkFactory for CountingFactory {
    fn create_sink(&self, request: &SinkRequest<'_>) -> weir_sql::Result<Arc<dyn Sink<Batch>>> {
        let table: &TableDef = request.table;
        let mut columns = Vec::new();
        for name in table.option("checksum-columns").unwrap_or("").split(',') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let i = table
                .columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| SqlError::Invalid(format!("counting: no column {name}")))?;
            columns.push(match table.columns[i].ty.kind {
                Kind::BigInt => ChecksumColumn::BigInt(i),
                Kind::Int => ChecksumColumn::Int(i),
                Kind::Timestamp(p) if p <= 3 => ChecksumColumn::Millis(i),
                _ => {
                    return Err(SqlError::Invalid(format!(
                        "counting: unsupported checksum column type {}",
                        table.columns[i].ty.display()
                    )))
                }
            });
        }
        Ok(Arc::new(CountingSink {
            tally: self.tally.clone(),
            columns,
            updates: self.updates,
        }))
    }

    fn accepts_updates(&self) -> bool {
        self.updates
    }
}

struct CountingSink {
    tally: Tally,
    columns: Vec<ChecksumColumn>,
    updates: bool,
}

impl Sink<Batch> for CountingSink {
    /// A restored writer starts from the counts of the checkpoint (exactly once: the rows
    /// replayed after it are counted again, those before it are not).
    fn create_writer(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<Batch>>, UserError> {
        let (mut rows, mut sum) = (0u64, 0i64);
        for bytes in ctx.restored_state.iter().flatten() {
            let (r, s): (u64, i64) = decode_split(bytes)?;
            rows += r;
            sum = sum.wrapping_add(s);
        }
        Ok(Box::new(CountingWriter {
            tally: self.tally.clone(),
            columns: self.columns.clone(),
            updates: self.updates,
            rows,
            sum,
        }))
    }
}

struct CountingWriter {
    tally: Tally,
    columns: Vec<ChecksumColumn>,
    updates: bool,
    rows: u64,
    sum: i64,
}

impl CountingWriter {
    /// Adds (or, for a retraction, takes away) each row of an updating result.
    fn write_changes(&mut self, batch: &arrow_array::RecordBatch) -> Result<(), UserError> {
        let row_kinds = weir_sql::changelog::kinds(batch);
        for r in 0..batch.num_rows() {
            let sign: i64 = if weir_sql::changelog::kind_at(row_kinds.as_ref(), r).adds() {
                1
            } else {
                -1
            };
            let mut value = 0i64;
            for c in &self.columns {
                let (i, v) = match *c {
                    ChecksumColumn::BigInt(i) => {
                        (i, batch.column(i).as_primitive::<Int64Type>().value(r))
                    }
                    ChecksumColumn::Millis(i) => (
                        i,
                        batch
                            .column(i)
                            .as_primitive::<TimestampMillisecondType>()
                            .value(r),
                    ),
                    ChecksumColumn::Int(i) => (
                        i,
                        batch.column(i).as_primitive::<Int32Type>().value(r) as i64,
                    ),
                };
                if batch.column(i).is_null(r) {
                    return Err("counting: a checksum column is NULL".into());
                }
                value = value.wrapping_add(v);
            }
            self.rows = self.rows.wrapping_add(sign as u64);
            self.sum = self.sum.wrapping_add(value.wrapping_mul(sign));
        }
        Ok(())
    }
}

impl SinkWriter<Batch> for CountingWriter {
    fn write(&mut self, value: Batch, _: Option<i64>) -> Result<(), UserError> {
        let batch = &value.0;
        if self.updates {
            return self.write_changes(batch);
        }
        self.rows += batch.num_rows() as u64;
        for c in &self.columns {
            let add = match *c {
                ChecksumColumn::BigInt(i) => {
                    wrapping_sum(batch.column(i).as_primitive::<Int64Type>().values())
                }
                ChecksumColumn::Millis(i) => wrapping_sum(
                    batch
                        .column(i)
                        .as_primitive::<TimestampMillisecondType>()
                        .values(),
                ),
                ChecksumColumn::Int(i) => batch
                    .column(i)
                    .as_primitive::<Int32Type>()
                    .values()
                    .iter()
                    .fold(0i64, |s, v| s.wrapping_add(*v as i64)),
            };
            if batch
                .column(match *c {
                    ChecksumColumn::BigInt(i)
                    | ChecksumColumn::Int(i)
                    | ChecksumColumn::Millis(i) => i,
                })
                .null_count()
                > 0
            {
                return Err("counting: a checksum column is NULL".into());
            }
            self.sum = self.sum.wrapping_add(add);
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _: u64) -> Result<Vec<Vec<u8>>, UserError> {
        Ok(vec![encode_split(&(self.rows, self.sum))?])
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.tally.add(self.rows, self.sum);
        Ok(())
    }
}

fn wrapping_sum(values: &[i64]) -> i64 {
    values.iter().fold(0i64, |s, v| s.wrapping_add(*v))
}
