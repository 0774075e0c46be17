//! Nexmark queries q0, q1, q2, q3, q4, q5, q7 and q8 on the DataStream API, over
//! [`weir_connectors::nexmark`]'s generator (`../shared/bench/NEXMARK.md`).
//!
//! The event-time queries use the suite's watermark (`dateTime - 4 s`) and windows aligned
//! to the epoch, as Flink SQL's `TUMBLE`/`HOP`. Results are typed rows; [`run`] counts them,
//! or collects their `Debug` lines for the tests that compare them with a reference.
//!
//! Where the rows differ from the Flink suite's SQL:
//! - q0 emits whole bids; q1 converts prices with integer arithmetic (`price * 908 / 1000`,
//!   truncated) where SQL computes a DECIMAL.
//! - q4 emits an upsert `(category, auctions, average)` per closed auction: the SQL query's
//!   changelog, with AVG of BIGINT as integer division.
//! - q5 emits `(window start, auction, bids)` for every auction tied at the maximum.
//! - q7 emits `(auction, price, bidder, dateTime)` of the bids at the maximum price of their
//!   10 s window `[start, end)`; the SQL query's `BETWEEN rowtime - 10 s AND rowtime` also
//!   takes a bid at `start - 1 ms` of equal price, and carries `extra`.
//! - q8 emits `(person id, name, window start)`.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_api::functions::UserError;
use weir_api::prelude::*;
use weir_connectors::nexmark::{Auction, Bid, Event, NexmarkConfig, NexmarkSource, Person};

/// Window size of q5 (hop), q7 and q8 (tumble), ms.
pub const WINDOW_MS: i64 = 10_000;
/// Slide of q5's hopping window, ms.
pub const HOP_SLIDE_MS: i64 = 2_000;

/// q1's currency conversion: dollars to euros, as the suite's `0.908 * price`.
pub fn to_euros(price: i64) -> i64 {
    price * 908 / 1000
}

/// q3: a seller from OR, ID or CA and an auction of theirs in category 10.
pub type Q3Row = (String, String, String, i64);
/// q4: (category, auctions closed so far, average winning price): an update per auction
/// that closed with a bid (the SQL query's changelog, as upserts).
pub type Q4Row = (i64, u64, i64);
/// q5: (window start, auction, bids) for the auctions with the most bids in a window.
pub type Q5Row = (i64, i64, u64);
/// q7: (auction, price, bidder, date_time) of the highest bids of each window.
pub type Q7Row = (i64, i64, i64, i64);
/// q8: (person id, name, window start) of people who created an auction in the window
/// they appeared in.
pub type Q8Row = (i64, String, i64);

fn bids(events: &DataStream<Event>) -> DataStream<Bid> {
    events.flat_map(|e: Event, out: &mut Collector<Bid>| {
        if let Event::Bid(b) = e {
            out.collect(b)
        }
    })
}

fn persons(events: &DataStream<Event>) -> DataStream<Person> {
    events.flat_map(|e: Event, out: &mut Collector<Person>| {
        if let Event::Person(p) = e {
            out.collect(p)
        }
    })
}

fn auctions(events: &DataStream<Event>) -> DataStream<Auction> {
    events.flat_map(|e: Event, out: &mut Collector<Auction>| {
        if let Event::Auction(a) = e {
            out.collect(a)
        }
    })
}

/// q3's join state per seller: the person once seen, auctions waiting for them.
#[derive(Clone)]
struct SellerJoin {
    person: ValueState<Person>,
    waiting: ListState<Auction>,
}

impl KeyedProcessFunction<i64, Either<Person, Auction>, Q3Row> for SellerJoin {
    fn process_element(
        &mut self,
        value: Either<Person, Auction>,
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, Q3Row>,
    ) -> Result<(), UserError> {
        match value {
            Either::Left(p) => {
                for a in self.waiting.get(ctx)? {
                    out.collect((p.name.clone(), p.city.clone(), p.state.clone(), a.id));
                }
                self.waiting.clear(ctx)?;
                self.person.update(ctx, p)?;
            }
            Either::Right(a) => match self.person.value(ctx)? {
                Some(p) => out.collect((p.name, p.city, p.state, a.id)),
                None => self.waiting.add(ctx, a)?,
            },
        }
        Ok(())
    }
}

/// q4's first step, per auction: the highest bid between its creation and its expiry,
/// emitted with its category when the watermark passes the expiry.
#[derive(Clone)]
struct WinningBid {
    auction: ValueState<Auction>,
    best: ValueState<i64>,
    early: ListState<Bid>,
}

impl WinningBid {
    fn offer(
        &self,
        a: &Auction,
        b: &Bid,
        ctx: &mut KeyedContext<'_, i64>,
    ) -> Result<(), UserError> {
        if (a.date_time..=a.expires).contains(&b.date_time) {
            let best = self.best.value(ctx)?.map_or(b.price, |p| p.max(b.price));
            self.best.update(ctx, best)?;
        }
        Ok(())
    }
}

impl KeyedProcessFunction<i64, Either<Auction, Bid>, (i64, i64)> for WinningBid {
    fn process_element(
        &mut self,
        value: Either<Auction, Bid>,
        ctx: &mut KeyedContext<'_, i64>,
        _: &mut Collector<'_, (i64, i64)>,
    ) -> Result<(), UserError> {
        match value {
            Either::Left(a) => {
                for b in self.early.get(ctx)? {
                    self.offer(&a, &b, ctx)?;
                }
                self.early.clear(ctx)?;
                ctx.register_event_time_timer(a.expires);
                self.auction.update(ctx, a)?;
            }
            Either::Right(b) => match self.auction.value(ctx)? {
                Some(a) => self.offer(&a, &b, ctx)?,
                // The auction has not arrived yet (ids may run ahead of creation).
                None => self.early.add(ctx, b)?,
            },
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, (i64, i64)>,
    ) -> Result<(), UserError> {
        if let (Some(a), Some(price)) = (self.auction.value(ctx)?, self.best.value(ctx)?) {
            out.collect((a.category, price));
        }
        self.auction.clear(ctx)?;
        self.best.clear(ctx)?;
        Ok(())
    }
}

/// q4's second step: the running average of winning prices per category.
#[derive(Clone)]
struct AveragePerCategory {
    total: ValueState<(i64, u64)>,
}

impl KeyedProcessFunction<i64, (i64, i64), Q4Row> for AveragePerCategory {
    fn process_element(
        &mut self,
        (category, price): (i64, i64),
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, Q4Row>,
    ) -> Result<(), UserError> {
        let (sum, n) = self.total.value(ctx)?.unwrap_or((0, 0));
        let (sum, n) = (sum + price, n + 1);
        self.total.update(ctx, (sum, n))?;
        // AVG of a BIGINT is a BIGINT in Flink SQL: integer division.
        out.collect((category, n, sum / n as i64));
        Ok(())
    }
}

/// Counts a window's elements.
struct Count;

impl<T> AggregateFunction<T, u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: &T, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

/// Adds the window start to a count.
#[derive(Clone)]
struct WithWindow;

impl ProcessWindowFunction<u64, Q5Row, i64, TimeWindow> for WithWindow {
    fn process(
        &mut self,
        auction: &i64,
        ctx: &mut WindowContext<'_, i64, TimeWindow>,
        counts: Vec<u64>,
        out: &mut Collector<'_, Q5Row>,
    ) -> Result<(), UserError> {
        for c in counts {
            out.collect((ctx.window().start, *auction, c));
        }
        Ok(())
    }
}

/// q5's second step: per window, the auctions with the highest count, emitted when the
/// watermark passes the window.
#[derive(Clone)]
struct HottestPerWindow {
    best: ValueState<(u64, Vec<i64>)>,
}

impl KeyedProcessFunction<i64, Q5Row, Q5Row> for HottestPerWindow {
    fn process_element(
        &mut self,
        (start, auction, count): Q5Row,
        ctx: &mut KeyedContext<'_, i64>,
        _: &mut Collector<'_, Q5Row>,
    ) -> Result<(), UserError> {
        let (max, mut ids) = self.best.value(ctx)?.unwrap_or((0, Vec::new()));
        if count > max {
            self.best.update(ctx, (count, vec![auction]))?;
        } else if count == max {
            ids.push(auction);
            self.best.update(ctx, (max, ids))?;
        }
        ctx.register_event_time_timer(start + WINDOW_MS - 1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, Q5Row>,
    ) -> Result<(), UserError> {
        let start = *ctx.current_key();
        if let Some((max, ids)) = self.best.value(ctx)? {
            for id in ids {
                out.collect((start, id, max));
            }
        }
        self.best.clear(ctx)?;
        Ok(())
    }
}

/// q7: the bids with the window's highest price, kept incrementally (only the bids at the
/// current maximum are held, not the window's bids).
struct HighestBids;

impl AggregateFunction<Bid, (i64, Vec<Q7Row>), Vec<Q7Row>> for HighestBids {
    fn create_accumulator(&self) -> (i64, Vec<Q7Row>) {
        (i64::MIN, Vec::new())
    }
    fn add(&self, b: &Bid, acc: &mut (i64, Vec<Q7Row>)) {
        let row = (b.auction, b.price, b.bidder, b.date_time);
        if b.price > acc.0 {
            *acc = (b.price, vec![row]);
        } else if b.price == acc.0 {
            acc.1.push(row);
        }
    }
    fn get_result(&self, acc: &(i64, Vec<Q7Row>)) -> Vec<Q7Row> {
        acc.1.clone()
    }
    fn merge(&self, a: (i64, Vec<Q7Row>), b: (i64, Vec<Q7Row>)) -> (i64, Vec<Q7Row>) {
        match a.0.cmp(&b.0) {
            std::cmp::Ordering::Greater => a,
            std::cmp::Ordering::Less => b,
            std::cmp::Ordering::Equal => (a.0, [a.1, b.1].concat()),
        }
    }
}

/// Tags q7's per-group winners with their window start.
#[derive(Clone)]
struct WindowWinners;

impl ProcessWindowFunction<Vec<Q7Row>, (i64, Vec<Q7Row>), i64, TimeWindow> for WindowWinners {
    fn process(
        &mut self,
        _: &i64,
        ctx: &mut WindowContext<'_, i64, TimeWindow>,
        winners: Vec<Vec<Q7Row>>,
        out: &mut Collector<'_, (i64, Vec<Q7Row>)>,
    ) -> Result<(), UserError> {
        for rows in winners {
            out.collect((ctx.window().start, rows));
        }
        Ok(())
    }
}

/// q7's second phase: merges the groups' winners of a window, emits when it closes.
#[derive(Clone)]
struct MergeWinners {
    best: ValueState<Vec<Q7Row>>,
}

impl KeyedProcessFunction<i64, (i64, Vec<Q7Row>), Q7Row> for MergeWinners {
    fn process_element(
        &mut self,
        (start, rows): (i64, Vec<Q7Row>),
        ctx: &mut KeyedContext<'_, i64>,
        _: &mut Collector<'_, Q7Row>,
    ) -> Result<(), UserError> {
        let best = self.best.value(ctx)?.unwrap_or_default();
        let (price, new) = (rows.first().map(|r| r.1), best.first().map(|r| r.1));
        let merged = match (price, new) {
            (Some(p), Some(q)) if p == q => [best, rows].concat(),
            (Some(p), Some(q)) if p < q => best,
            (Some(_), _) => rows,
            (None, _) => best,
        };
        self.best.update(ctx, merged)?;
        ctx.register_event_time_timer(start + WINDOW_MS - 1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, Q7Row>,
    ) -> Result<(), UserError> {
        for r in self.best.value(ctx)?.unwrap_or_default() {
            out.collect(r);
        }
        self.best.clear(ctx)?;
        Ok(())
    }
}

/// Groups q7's first phase spreads bids over (by auction), so every subtask takes a share.
const Q7_GROUPS: i64 = 64;

/// Builds query `name` over the event stream.
fn build(name: &str, events: &DataStream<Event>, sink: &dyn Fn(Erased)) -> Result<(), String> {
    match name {
        "q0" => sink(Erased::of(bids(events))),
        "q1" => sink(Erased::of(bids(events).map(|mut b: Bid| {
            b.price = to_euros(b.price);
            b
        }))),
        "q2" => sink(Erased::of(
            bids(events)
                .filter(|b: &Bid| b.auction % 123 == 0)
                .map(|b: Bid| (b.auction, b.price)),
        )),
        "q3" => {
            let people = persons(events)
                .filter(|p: &Person| matches!(p.state.as_str(), "OR" | "ID" | "CA"))
                .map(Either::<Person, Auction>::Left);
            let items = auctions(events)
                .filter(|a: &Auction| a.category == 10)
                .map(Either::<Person, Auction>::Right);
            let joined = people
                .union(&[&items])
                .key_by(|e: &Either<Person, Auction>| match e {
                    Either::Left(p) => p.id,
                    Either::Right(a) => a.seller,
                })
                .process(SellerJoin {
                    person: ValueState::new("person"),
                    waiting: ListState::new("waiting"),
                });
            sink(Erased::of(joined))
        }
        "q4" => {
            let items = auctions(events).map(Either::<Auction, Bid>::Left);
            let offers = bids(events).map(Either::<Auction, Bid>::Right);
            let winners = items
                .union(&[&offers])
                .key_by(|e: &Either<Auction, Bid>| match e {
                    Either::Left(a) => a.id,
                    Either::Right(b) => b.auction,
                })
                .process(WinningBid {
                    auction: ValueState::new("auction"),
                    best: ValueState::new("best"),
                    early: ListState::new("early"),
                });
            let averages = winners
                .key_by(|r: &(i64, i64)| r.0)
                .process(AveragePerCategory {
                    total: ValueState::new("total"),
                });
            sink(Erased::of(averages))
        }
        "q5" => {
            let counts = bids(events)
                .key_by(|b: &Bid| b.auction)
                .window(SlidingEventTimeWindows::of(
                    Duration::from_millis(WINDOW_MS as u64),
                    Duration::from_millis(HOP_SLIDE_MS as u64),
                ))
                .aggregate_with_process(Count, WithWindow);
            let hottest = counts.key_by(|r: &Q5Row| r.0).process(HottestPerWindow {
                best: ValueState::new("best"),
            });
            sink(Erased::of(hottest))
        }
        "q7" => {
            // Two phases, as Flink's local/global aggregation: each group's highest bids per
            // window, then the window's highest over the groups.
            let winners = bids(events)
                .key_by(|b: &Bid| b.auction.rem_euclid(Q7_GROUPS))
                .window(TumblingEventTimeWindows::of(Duration::from_millis(
                    WINDOW_MS as u64,
                )))
                .aggregate_with_process(HighestBids, WindowWinners)
                .key_by(|w: &(i64, Vec<Q7Row>)| w.0)
                .process(MergeWinners {
                    best: ValueState::new("best"),
                });
            sink(Erased::of(winners))
        }
        "q8" => {
            let rows = persons(events)
                .join(&auctions(events))
                .keys(|p: &Person| p.id, |a: &Auction| a.seller)
                .window_co_group(
                    TumblingEventTimeWindows::of(Duration::from_millis(WINDOW_MS as u64)),
                    |id: &i64,
                     ps: Vec<Person>,
                     auctions: Vec<Auction>,
                     out: &mut Collector<'_, Q8Row>| {
                        if let (Some(p), false) = (ps.first(), auctions.is_empty()) {
                            let start = p.date_time - p.date_time.rem_euclid(WINDOW_MS);
                            out.collect((*id, p.name.clone(), start));
                        }
                    },
                );
            sink(Erased::of(rows))
        }
        other => {
            return Err(format!(
                "unknown Nexmark query '{other}'; expected q0, q1, q2, q3, q4, q5, q7 or q8"
            ))
        }
    }
    Ok(())
}

/// A query's result stream with its row type erased, so one sink helper serves all.
struct Erased(Box<dyn FnOnce(&Rows)>);

impl Erased {
    fn of<T: Data + Debug>(s: DataStream<T>) -> Self {
        Erased(Box::new(move |rows: &Rows| {
            let rows = rows.clone();
            s.sink_to(RowSink { rows }, "rows");
        }))
    }
}

/// Where a query's rows go: counted, and kept as `Debug` lines when collecting.
#[derive(Clone)]
struct Rows {
    count: Arc<Mutex<u64>>,
    lines: Option<Arc<Mutex<Vec<String>>>>,
}

struct RowSink {
    rows: Rows,
}

struct RowWriter {
    rows: Rows,
    count: u64,
    lines: Vec<String>,
}

impl<T: Debug + Send + 'static> Sink<T> for RowSink {
    fn create_writer(&self, _: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        Ok(Box::new(RowWriter {
            rows: self.rows.clone(),
            count: 0,
            lines: Vec::new(),
        }))
    }
}

impl<T: Debug> SinkWriter<T> for RowWriter {
    fn write(&mut self, value: T, _: Option<i64>) -> Result<(), UserError> {
        self.count += 1;
        if self.rows.lines.is_some() {
            self.lines.push(format!("{value:?}"));
        }
        Ok(())
    }
    fn finish(&mut self) -> Result<(), UserError> {
        *self.rows.count.lock().unwrap_or_else(|p| p.into_inner()) += self.count;
        if let Some(l) = &self.rows.lines {
            l.lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&mut self.lines);
        }
        Ok(())
    }
}

/// What a Nexmark run produced.
pub struct NexmarkOutcome {
    /// Result rows.
    pub rows: u64,
    /// The rows as sorted `Debug` lines, when collected.
    pub lines: Vec<String>,
    /// Wall time of the job.
    pub seconds: f64,
}

/// Runs query `name` over `events` Nexmark events (the suite's benchmark settings) at
/// `parallelism`; with `collect` the rows are returned as sorted `Debug` lines.
pub fn run(
    name: &str,
    events: u64,
    parallelism: i64,
    collect: bool,
) -> Result<NexmarkOutcome, String> {
    run_with(name, NexmarkConfig::new(events), parallelism, collect)
}

/// [`run`] with the generator settings `cfg`, on the state backend of
/// [`crate::state_backend_from_env`].
pub fn run_with(
    name: &str,
    cfg: NexmarkConfig,
    parallelism: i64,
    collect: bool,
) -> Result<NexmarkOutcome, String> {
    let backend = crate::state_backend_from_env()?;
    run_on(name, cfg, parallelism, collect, backend)
}

/// [`run_with`] on the state backend `backend`.
pub fn run_on(
    name: &str,
    cfg: NexmarkConfig,
    parallelism: i64,
    collect: bool,
    backend: StateBackendConfig,
) -> Result<NexmarkOutcome, String> {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.set_state_backend(backend);
    let stream = env.from_source_with_watermarks(
        NexmarkSource::new(cfg),
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(4))
            .with_timestamp_assigner(|e: &Event, _| e.date_time()),
        "nexmark",
    );
    let rows = Rows {
        count: Arc::new(Mutex::new(0)),
        lines: collect.then(|| Arc::new(Mutex::new(Vec::new()))),
    };
    build(name, &stream, &|e: Erased| (e.0)(&rows))?;
    let start = Instant::now();
    env.execute(name).map_err(|e| e.to_string())?;
    let count = *rows.count.lock().unwrap_or_else(|p| p.into_inner());
    let mut lines = match &rows.lines {
        Some(l) => std::mem::take(&mut *l.lock().unwrap_or_else(|p| p.into_inner())),
        None => Vec::new(),
    };
    lines.sort();
    Ok(NexmarkOutcome {
        rows: count,
        lines,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Distinct values, for references.
pub fn distinct<T: std::hash::Hash + Eq + Clone>(v: &[T]) -> Vec<T> {
    let mut seen = HashSet::new();
    v.iter()
        .filter(|x| seen.insert((*x).clone()))
        .cloned()
        .collect()
}
