//! Keyed two-input functions: two keyed streams connected with a KeyedCoProcessFunction
//! (keyed state shared by both sides, event-time timers that fire per key once both inputs'
//! watermarks pass, processing-time timers), and a KeyedBroadcastProcessFunction with
//! processing-time timers and `apply_to_keyed_state`; results compared with references
//! computed here.

use std::collections::BTreeMap;
use std::time::Duration;
use weir::api::broadcast::BroadcastState;
use weir::api::timers::TimeDomain;
use weir::prelude::*;
use weir::state::{ListState, ValueState};

/// An order: (id, symbol, event time).
type Order = (u32, u8, i64);
/// A quote: (symbol, event time, price).
type Quote = (u8, i64, i64);

fn orders() -> Vec<Order> {
    (0..400u32)
        .map(|i| (i, (i % 5) as u8, i64::from(i) * 7 + 3))
        .collect()
}

fn quotes() -> Vec<Quote> {
    (0..300i64)
        .map(|k| ((k % 5) as u8, k * 9, k * 100 + k % 5))
        .collect()
}

/// Prices each order with the latest quote of its symbol at or before the order's time,
/// once the watermark says no earlier quote can still arrive.
#[derive(Clone)]
struct PriceAtOrderTime {
    /// The symbol's quotes seen so far: (time, price), by time.
    quotes: ValueState<Vec<(i64, i64)>>,
    /// The symbol's orders waiting for their timer.
    waiting: ListState<Order>,
}

impl KeyedCoProcessFunction<u8, Order, Quote, (u32, Option<i64>)> for PriceAtOrderTime {
    fn process_element1(
        &mut self,
        order: Order,
        ctx: &mut KeyedContext<'_, u8>,
        _: &mut Collector<'_, (u32, Option<i64>)>,
    ) -> Result<(), UserError> {
        assert_eq!(*ctx.current_key(), order.1);
        self.waiting.add(ctx, order)?;
        ctx.register_event_time_timer(order.2);
        Ok(())
    }

    fn process_element2(
        &mut self,
        quote: Quote,
        ctx: &mut KeyedContext<'_, u8>,
        _: &mut Collector<'_, (u32, Option<i64>)>,
    ) -> Result<(), UserError> {
        let mut all = self.quotes.value(ctx)?.unwrap_or_default();
        all.push((quote.1, quote.2));
        all.sort();
        self.quotes.update(ctx, all)?;
        Ok(())
    }

    fn on_timer(
        &mut self,
        time: i64,
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, (u32, Option<i64>)>,
    ) -> Result<(), UserError> {
        let quotes = self.quotes.value(ctx)?.unwrap_or_default();
        let (due, rest): (Vec<Order>, Vec<Order>) = self
            .waiting
            .get(ctx)?
            .into_iter()
            .partition(|o| o.2 <= time);
        for o in due {
            let price = quotes.iter().rev().find(|q| q.0 <= o.2).map(|q| q.1);
            out.collect((o.0, price));
        }
        self.waiting.update(ctx, rest)?;
        Ok(())
    }
}

fn reference() -> BTreeMap<u32, Option<i64>> {
    let quotes = quotes();
    orders()
        .into_iter()
        .map(|(id, sym, t)| {
            let price = quotes
                .iter()
                .filter(|q| q.0 == sym && q.1 <= t)
                .max_by_key(|q| q.1)
                .map(|q| q.2);
            (id, price)
        })
        .collect()
}

#[test]
fn keyed_state_and_event_time_timers_across_both_inputs() {
    for p in [1, 3] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(p);
        let orders = env
            .from_collection(orders())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps()
                    .with_timestamp_assigner(|o: &Order, _| o.2),
            );
        let quotes = env
            .from_collection(quotes())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps()
                    .with_timestamp_assigner(|q: &Quote, _| q.1),
            );
        let priced = orders
            .key_by(|o: &Order| o.1)
            .connect(&quotes.key_by(|q: &Quote| q.0))
            .process(PriceAtOrderTime {
                quotes: ValueState::new("quotes"),
                waiting: ListState::new("waiting"),
            })
            .collect_values();
        env.execute("price orders").unwrap();
        let got: BTreeMap<u32, Option<i64>> = priced.take().into_iter().collect();
        assert_eq!(got, reference(), "parallelism {p}");
    }
}

/// Counts each key's elements from both sides and reports the count on a processing-time
/// timer a little after the key's first element.
#[derive(Clone)]
struct CountThenReport {
    count: ValueState<u64>,
}

impl CountThenReport {
    fn bump(&self, ctx: &mut KeyedContext<'_, String>) -> Result<(), UserError> {
        let n = self.count.value(ctx)?.unwrap_or(0);
        if n == 0 {
            let at = ctx.current_processing_time() + 20;
            ctx.register_processing_time_timer(at);
        }
        self.count.update(ctx, n + 1)?;
        Ok(())
    }
}

impl KeyedCoProcessFunction<String, String, (String, u32), (String, u64)> for CountThenReport {
    fn process_element1(
        &mut self,
        _: String,
        ctx: &mut KeyedContext<'_, String>,
        _: &mut Collector<'_, (String, u64)>,
    ) -> Result<(), UserError> {
        self.bump(ctx)
    }

    fn process_element2(
        &mut self,
        _: (String, u32),
        ctx: &mut KeyedContext<'_, String>,
        _: &mut Collector<'_, (String, u64)>,
    ) -> Result<(), UserError> {
        self.bump(ctx)
    }

    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedContext<'_, String>,
        out: &mut Collector<'_, (String, u64)>,
    ) -> Result<(), UserError> {
        assert_eq!(ctx.time_domain(), Some(TimeDomain::ProcessingTime));
        let n = self.count.value(ctx)?.unwrap_or(0);
        out.collect((ctx.current_key().clone(), n));
        Ok(())
    }
}

#[test]
fn processing_time_timers_fire_per_key_with_state_from_both_sides() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    // Each input is joined by a marker stream that holds it open for a while (a stream of
    // its own, so that no element waits behind the marker), so the timers (20 ms after a
    // key's first element) fire while the job runs; every element has arrived by then.
    let hold = |end: bool| {
        if end {
            std::thread::sleep(Duration::from_millis(400));
        }
        !end
    };
    let words = ["a", "b", "c", "a", "a", "b"].map(String::from).to_vec();
    let tagged = vec![
        ("a".to_string(), 1u32),
        ("c".to_string(), 2),
        ("d".to_string(), 3),
    ];
    let left_end = env
        .from_collection(vec!["END".to_string()])
        .filter(move |w: &String| hold(w == "END"));
    let right_end = env
        .from_collection(vec![("END".to_string(), 0u32)])
        .filter(move |t: &(String, u32)| hold(t.0 == "END"));
    let left = env.from_collection(words).union(&[&left_end]);
    let right = env.from_collection(tagged).union(&[&right_end]);
    let reports = left
        .key_by(|w: &String| w.clone())
        .connect(&right.key_by(|t: &(String, u32)| t.0.clone()))
        .process(CountThenReport {
            count: ValueState::new("count"),
        })
        .collect_values();
    env.execute("counts").unwrap();
    let got: BTreeMap<String, u64> = reports.take().into_iter().collect();
    let want: BTreeMap<String, u64> = [("a", 4), ("b", 2), ("c", 2), ("d", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(got, want);
}

/// Counts words per key; a processing-time timer reports each key once, shortly after its
/// first word; a broadcast `report` emits and clears every key's count over all keys.
#[derive(Clone)]
struct CountAndReport {
    count: ValueState<u64>,
}

type Out = (String, String, u64);

impl KeyedBroadcastProcessFunction<String, String, String, Out, String, u64> for CountAndReport {
    fn process_element(
        &mut self,
        word: String,
        ctx: &mut KeyedReadOnlyContext<'_, String, String, u64>,
        _: &mut Collector<'_, Out>,
    ) -> Result<(), UserError> {
        let n = self.count.value(ctx)?.unwrap_or(0);
        if n == 0 {
            let at = ctx.current_processing_time() + 10;
            ctx.register_processing_time_timer(at);
        }
        assert_eq!(ctx.current_key(), &word);
        self.count.update(ctx, n + 1)?;
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        command: String,
        ctx: &mut KeyedBroadcastContext<'_, String, String, u64>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), UserError> {
        let reports = ctx.broadcast_state().entry("reports".into()).or_insert(0);
        *reports += 1;
        let count = &self.count;
        ctx.apply_to_keyed_state(count, |key_state| {
            let n = count.value(key_state)?.unwrap_or(0);
            out.collect((command.clone(), key_state.current_key().clone(), n));
            count.clear(key_state)?;
            Ok(())
        })
    }

    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedReadOnlyContext<'_, String, String, u64>,
        out: &mut Collector<'_, Out>,
    ) -> Result<(), UserError> {
        assert_eq!(ctx.time_domain(), Some(TimeDomain::ProcessingTime));
        assert_eq!(ctx.timestamp(), None);
        let _: &BroadcastState<String, u64> = ctx.broadcast_state();
        out.collect(("timer".into(), ctx.current_key().clone(), 0));
        Ok(())
    }
}

#[test]
fn keyed_broadcast_processing_time_timers_and_apply_to_keyed_state() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let words: Vec<String> = (0..300).map(|i| format!("w{}", i % 7)).collect();
    // The commands come after the words have been counted (the first waits), and the
    // second finds every count cleared by the first.
    let commands = env
        .from_collection(vec!["report".to_string(), "again".to_string()])
        .map(|c: String| {
            if c == "report" {
                std::thread::sleep(Duration::from_millis(400));
            }
            c
        })
        .set_parallelism(1)
        .broadcast_with(&BroadcastStateDescriptor::<String, u64>::new("commands"));
    let out = env
        .from_collection(words)
        .key_by(|w: &String| w.clone())
        .connect_broadcast(&commands)
        .process(CountAndReport {
            count: ValueState::new("count"),
        })
        .collect_values();
    env.execute("keyed broadcast").unwrap();
    let mut got = out.take();
    got.sort();
    let mut want: Vec<Out> = Vec::new();
    for k in 0..7u64 {
        let key = format!("w{k}");
        let n = (0..300u64).filter(|i| i % 7 == k).count() as u64;
        want.push(("report".into(), key.clone(), n));
        want.push(("timer".into(), key, 0));
    }
    want.sort();
    assert_eq!(got, want);
}
