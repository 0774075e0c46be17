//! Event time end to end: watermark strategies and idleness, keyed state and timers, window
//! triggers, evictors and functions, state cleanup.

use std::time::Duration;
use weir::prelude::*;

fn env(p: i64) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env
}

/// A watermark after every event: `max timestamp - out_of_orderness - 1`.
struct Punctuated {
    max: i64,
    ooo: i64,
}

impl WatermarkGenerator<(String, i64, i64)> for Punctuated {
    fn on_event(&mut self, _: &(String, i64, i64), ts: i64, out: &mut WatermarkOutput) {
        self.max = self.max.max(ts);
        out.emit_watermark(self.max - self.ooo - 1);
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

/// (key, timestamp, value) events from one subtask, with timestamps from the tuple and a
/// watermark after every event.
fn events(
    env: &StreamExecutionEnvironment,
    data: Vec<(String, i64, i64)>,
    ooo_ms: i64,
) -> DataStream<(String, i64, i64)> {
    env.from_source_with_watermarks(
        weir::api::source::CollectionSource::new(data),
        WatermarkStrategy::for_generator(move || Punctuated {
            max: i64::MIN,
            ooo: ooo_ms,
        })
        .with_timestamp_assigner(|e: &(String, i64, i64), _| e.1),
        "events",
    )
}

fn ev(k: &str, ts: i64, v: i64) -> (String, i64, i64) {
    (k.to_string(), ts, v)
}

/// Counts per key with a value state; at each event registers an event-time timer 10 ms
/// later; the timer emits the count and registers one more timer (once) from on_timer.
#[derive(Clone)]
struct CountWithTimers {
    count: ValueState<i64>,
    rearmed: ValueState<bool>,
}

impl KeyedProcessFunction<String, (String, i64, i64), String> for CountWithTimers {
    fn process_element(
        &mut self,
        e: (String, i64, i64),
        ctx: &mut KeyedContext<'_, String>,
        _: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let n = self.count.value(ctx)?.unwrap_or(0) + 1;
        self.count.update(ctx, n)?;
        ctx.register_event_time_timer(e.1 + 10);
        // Registered twice for the same time: fires once.
        ctx.register_event_time_timer(e.1 + 10);
        // Registered and deleted: never fires.
        ctx.register_event_time_timer(e.1 + 5);
        ctx.delete_event_time_timer(e.1 + 5);
        Ok(())
    }

    fn on_timer(
        &mut self,
        ts: i64,
        ctx: &mut KeyedContext<'_, String>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        assert_eq!(ctx.time_domain(), Some(TimeDomain::EventTime));
        let n = self.count.value(ctx)?.unwrap_or(0);
        out.collect(format!("{}@{ts}={n}", ctx.current_key()));
        if !self.rearmed.value(ctx)?.unwrap_or(false) {
            self.rearmed.update(ctx, true)?;
            ctx.register_event_time_timer(ts + 1000);
        }
        Ok(())
    }
}

#[test]
fn keyed_timers_fire_in_order_deduplicated_and_from_on_timer() {
    for p in [1, 3] {
        let e = env(p);
        let data = vec![
            ev("a", 1, 0),
            ev("b", 2, 0),
            ev("a", 3, 0),
            ev("a", 50, 0),
            ev("b", 100, 0),
        ];
        let out = events(&e, data, 0)
            .key_by(|t: &(String, i64, i64)| t.0.clone())
            .process(CountWithTimers {
                count: ValueState::new("count"),
                rearmed: ValueState::new("rearmed"),
            })
            .collect_values();
        e.execute("timers").unwrap();
        let mut got = out.take();
        got.sort();
        let mut want = vec![
            // The watermark passes 11 and 13 only with a@50 (watermark 49), after its count.
            "a@11=3", "a@13=3", "a@60=3", "a@1011=3", "b@12=1", "b@110=2", "b@1012=2",
        ];
        want.sort();
        assert_eq!(got, want, "parallelism {p}");
    }
}

/// Emits the timestamps of processing-time timers.
#[derive(Clone)]
struct ProcessingTimer;

impl KeyedProcessFunction<i64, i64, i64> for ProcessingTimer {
    fn process_element(
        &mut self,
        v: i64,
        ctx: &mut KeyedContext<'_, i64>,
        _: &mut Collector<'_, i64>,
    ) -> Result<(), UserError> {
        let now = ctx.current_processing_time();
        ctx.register_processing_time_timer(now + 20 + v);
        Ok(())
    }
    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, i64>,
    ) -> Result<(), UserError> {
        assert_eq!(ctx.time_domain(), Some(TimeDomain::ProcessingTime));
        out.collect(*ctx.current_key());
        Ok(())
    }
}

#[test]
fn processing_time_timers_fire() {
    // An unbounded source that emits 0..4 and then waits: the timers fire while it runs.
    let e = env(2);
    let out = e
        .from_source(Upto(4), "four then nothing")
        .key_by(|v: &i64| *v)
        .process(ProcessingTimer)
        .collect_values();
    let client = e.execute_async("processing timers").unwrap();
    let start = std::time::Instant::now();
    while out.len() < 4 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    client.cancel().unwrap();
    let _ = client.wait();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![0, 1, 2, 3]);
}

/// Emits `0..n` from subtask 0, then keeps running without data.
struct Upto(i64);

impl Source<i64> for Upto {
    fn boundedness(&self) -> Boundedness {
        Boundedness::Unbounded
    }
    fn create_reader(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<i64>>, UserError> {
        Ok(Box::new(UptoReader {
            next: 0,
            end: if ctx.subtask == 0 { self.0 } else { 0 },
        }))
    }
}

struct UptoReader {
    next: i64,
    end: i64,
}

impl SourceReader<i64> for UptoReader {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, i64>) -> weir::runtime::Result<PollStatus> {
        if self.next < self.end {
            out.collect(self.next)?;
            self.next += 1;
            return Ok(PollStatus::MoreAvailable);
        }
        Ok(PollStatus::NothingAvailable)
    }
}

#[derive(Clone)]
struct WindowSummary;

impl ProcessWindowFunction<(String, i64, i64), String, String, TimeWindow> for WindowSummary {
    fn process(
        &mut self,
        key: &String,
        ctx: &mut WindowContext<'_, String, TimeWindow>,
        elements: Vec<(String, i64, i64)>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        // Per-window state: how often this window fired.
        let fired = ValueState::<i64>::new("fired");
        let n = fired.value(&mut ctx.window_state())?.unwrap_or(0) + 1;
        fired.update(&mut ctx.window_state(), n)?;
        let vals: Vec<i64> = elements.iter().map(|e| e.2).collect();
        out.collect(format!(
            "{key}[{},{})#{n}:{vals:?}",
            ctx.window().start,
            ctx.window().end
        ));
        Ok(())
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, String, TimeWindow>) -> Result<(), UserError> {
        Ok(ValueState::<i64>::new("fired").clear(&mut ctx.window_state())?)
    }
}

fn run_windows(
    data: Vec<(String, i64, i64)>,
    build: impl Fn(KeyedStream<(String, i64, i64), String>) -> DataStream<String>,
) -> (Vec<String>, JobExecutionResult) {
    let e = env(2);
    let keyed = events(&e, data, 0).key_by(|t: &(String, i64, i64)| t.0.clone());
    let out = build(keyed).collect_values();
    let r = e.execute("windows").unwrap();
    let mut v = out.take();
    v.sort();
    (v, r)
}

#[test]
fn count_trigger_purging_and_evictors() {
    let data: Vec<_> = (0..7).map(|i| ev("a", i, i)).collect();
    // Count trigger on a global window: fires every 3 elements with everything so far.
    let (got, _) = run_windows(data.clone(), |k| {
        k.window(GlobalWindows::create())
            .trigger(CountTrigger::of(3))
            .process(GlobalCounts)
    });
    assert_eq!(got, vec!["a:[0, 1, 2, 3, 4, 5]", "a:[0, 1, 2]"]);
    // Purging: each firing starts afresh.
    let (got, _) = run_windows(data.clone(), |k| {
        k.window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(3)))
            .process(GlobalCounts)
    });
    assert_eq!(got, vec!["a:[0, 1, 2]", "a:[3, 4, 5]"]);
    // Count evictor keeps the last 2 before each firing.
    let (got, _) = run_windows(data.clone(), |k| {
        k.window(GlobalWindows::create())
            .trigger(CountTrigger::of(3))
            .evictor(CountEvictor::of(2))
            .process(GlobalCounts)
    });
    // First firing: [0,1,2] -> [1,2]; second: [1,2,3,4,5] -> [4,5].
    assert_eq!(got, vec!["a:[1, 2]", "a:[4, 5]"]);
    // Time evictor keeps elements newer than 2 ms before the newest: with reduce at firing time.
    let (got, _) = run_windows(data, |k| {
        k.window(GlobalWindows::create())
            .trigger(CountTrigger::of(7))
            .evictor(TimeEvictor::of(Duration::from_millis(2)))
            .reduce(|a, b| (a.0, a.1.max(b.1), a.2 + b.2))
            .map(|t: (String, i64, i64)| format!("{}:{}", t.0, t.2))
    });
    assert_eq!(got, vec!["a:11"], "only timestamps 5 and 6 remain");
}

#[derive(Clone)]
struct GlobalCounts;

impl ProcessWindowFunction<(String, i64, i64), String, String, GlobalWindow> for GlobalCounts {
    fn process(
        &mut self,
        key: &String,
        _: &mut WindowContext<'_, String, GlobalWindow>,
        elements: Vec<(String, i64, i64)>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let vals: Vec<i64> = elements.iter().map(|e| e.2).collect();
        out.collect(format!("{key}:{vals:?}"));
        Ok(())
    }
}

#[test]
fn process_window_function_sees_window_metadata_and_state_is_cleared() {
    let data = vec![
        ev("a", 1, 1),
        ev("a", 4, 2),
        ev("b", 12, 3),
        ev("a", 3, 4),
        ev("a", 25, 5),
    ];
    let (got, result) = run_windows(data, |k| {
        k.window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
            .allowed_lateness(Duration::from_millis(100))
            .process(WindowSummary)
    });
    // b@12 moves the watermark to 11: a's first window fires; a@3 is late but within the
    // allowed lateness, so the window fires again (per-window state counts the firings).
    assert_eq!(
        got,
        vec![
            "a[0,10)#1:[1, 2]",
            "a[0,10)#2:[1, 2, 4]",
            "a[20,30)#1:[5]",
            "b[10,20)#1:[3]"
        ]
    );
    let w = result
        .operators
        .iter()
        .find(|o| o.name == "Window(Process)")
        .unwrap();
    assert_eq!(
        w.state_entries, 0,
        "window contents, timers and per-window state are gone at the end"
    );
}

#[test]
fn continuous_event_time_trigger_fires_periodically() {
    let data: Vec<_> = (0..30).map(|i| ev("a", i, 1)).collect();
    let (got, _) = run_windows(data, |k| {
        k.window(TumblingEventTimeWindows::of(Duration::from_millis(30)))
            .trigger(ContinuousEventTimeTrigger::of(Duration::from_millis(10)))
            .aggregate(CountAgg)
            .map(|n: i64| n.to_string())
    });
    // Fires at 10, 20 and at the window's end (29) with the counts so far.
    let mut got: Vec<i64> = got.iter().map(|s| s.parse().unwrap()).collect();
    got.sort();
    assert_eq!(got.last(), Some(&30));
    assert!(got.len() >= 3, "{got:?}");
}

struct CountAgg;

impl AggregateFunction<(String, i64, i64), i64, i64> for CountAgg {
    fn create_accumulator(&self) -> i64 {
        0
    }
    fn add(&self, _: &(String, i64, i64), acc: &mut i64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &i64) -> i64 {
        *acc
    }
    fn merge(&self, a: i64, b: i64) -> i64 {
        a + b
    }
}

#[test]
fn session_windows_with_dynamic_gap_and_reduce() {
    // The gap is the value: key a's sessions are [1,4)+[3,6) merged, [20,21).
    let data = vec![ev("a", 1, 3), ev("a", 3, 3), ev("a", 20, 1)];
    let (got, _) = run_windows(data, |k| {
        k.window(EventTimeSessionWindows::with_dynamic_gap(
            |e: &(String, i64, i64)| e.2,
        ))
        .reduce_with_process(|a, b| (a.0, a.1, a.2 + b.2), SessionBounds)
    });
    assert_eq!(got, vec!["a[1,6)=6", "a[20,21)=1"]);
}

#[derive(Clone)]
struct SessionBounds;

impl ProcessWindowFunction<(String, i64, i64), String, String, TimeWindow> for SessionBounds {
    fn process(
        &mut self,
        key: &String,
        ctx: &mut WindowContext<'_, String, TimeWindow>,
        elements: Vec<(String, i64, i64)>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        out.collect(format!("{key}[{},{})={}", w.start, w.end, elements[0].2));
        Ok(())
    }
}

#[test]
fn idle_inputs_do_not_stall_watermarks() {
    // Two source subtasks: one emits events, the other nothing at all. Without idleness the
    // empty one would hold the watermark at its minimum until the end of input; with
    // idleness the window fires while the job is still running.
    let e = env(2);
    e.set_auto_watermark_interval(Duration::from_millis(10));
    let strategy = WatermarkStrategy::for_monotonous_timestamps()
        .with_timestamp_assigner(|v: &i64, _| *v)
        .with_idleness(Duration::from_millis(50));
    let fired = e
        .from_source_with_watermarks(Upto(200), strategy, "one busy subtask")
        .key_by(|_: &i64| 0u8)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .reduce(|a, b| a.max(b))
        .collect_values();
    let client = e.execute_async("idleness").unwrap();
    let start = std::time::Instant::now();
    while fired.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let running = client.status().unwrap() == JobStatus::Running;
    client.cancel().unwrap();
    let _ = client.wait();
    assert!(
        running,
        "the window fired while the sources were still running"
    );
    assert_eq!(fired.take().first(), Some(&99));
}

#[test]
fn state_ttl_and_list_map_state_in_a_keyed_function() {
    #[derive(Clone)]
    struct Track {
        seen: ListState<i64>,
        last: MapState<String, i64>,
    }
    impl KeyedProcessFunction<String, (String, i64, i64), String> for Track {
        fn process_element(
            &mut self,
            e: (String, i64, i64),
            ctx: &mut KeyedContext<'_, String>,
            out: &mut Collector<'_, String>,
        ) -> Result<(), UserError> {
            self.seen.add(ctx, e.2)?;
            self.last.put(ctx, "v".into(), e.2)?;
            let all = self.seen.get(ctx)?;
            let last = self.last.get(ctx, &"v".into())?.unwrap_or(-1);
            out.collect(format!("{}:{all:?}:{last}", e.0));
            Ok(())
        }
    }
    let e = env(3);
    let data = vec![ev("a", 1, 1), ev("b", 2, 2), ev("a", 3, 3)];
    let out = events(&e, data, 0)
        .key_by(|t: &(String, i64, i64)| t.0.clone())
        .process(Track {
            seen: ListState::new("seen"),
            last: MapState::new("last"),
        })
        .collect_values();
    e.execute("state").unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec!["a:[1, 3]:3", "a:[1]:1", "b:[2]:2"]);
}

#[test]
fn late_data_goes_to_the_side_output_and_counts_match_a_reference() {
    let data = vec![
        ev("a", 10, 1),
        ev("a", 30, 1),
        ev("a", 5, 1),
        ev("b", 31, 1),
        ev("b", 2, 1),
    ];
    let e = env(2);
    let late = OutputTag::<(String, i64, i64)>::new("late");
    let counts = events(&e, data, 0)
        .key_by(|t: &(String, i64, i64)| t.0.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
        .side_output_late_data(&late)
        .aggregate(CountAgg);
    let late_values = counts.get_side_output(&late).collect_values();
    let c = counts.collect_values();
    e.execute("late").unwrap();
    let mut l = late_values.take();
    l.sort();
    assert_eq!(l, vec![ev("a", 5, 1), ev("b", 2, 1)]);
    let mut c = c.take();
    c.sort();
    assert_eq!(c, vec![1, 1, 1]);
}

#[test]
fn processing_time_windows_fire_while_the_job_runs() {
    let e = env(2);
    let counts = e
        .from_source(Upto(50), "fifty then nothing")
        .key_by(|v: &i64| v % 2)
        .window(TumblingProcessingTimeWindows::of(Duration::from_millis(50)))
        .reduce(|a, b| a + b)
        .collect_values();
    let client = e.execute_async("processing-time windows").unwrap();
    let start = std::time::Instant::now();
    // Each key's elements land in one or two windows (the source may straddle a boundary):
    // wait until the window sums add up to the total.
    while counts.len() < 2 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    client.cancel().unwrap();
    let _ = client.wait();
    let sums = counts.take();
    assert!(sums.len() >= 2, "{sums:?}");
    assert_eq!(sums.iter().sum::<i64>(), (0..50).sum::<i64>());
}

#[test]
fn a_non_positive_dynamic_session_gap_fails_the_job() {
    let e = env(1);
    e.from_source_with_watermarks(
        weir::api::source::CollectionSource::new(vec![ev("a", 5, 0)]),
        WatermarkStrategy::for_monotonous_timestamps()
            .with_timestamp_assigner(|t: &(String, i64, i64), _| t.1),
        "events",
    )
    .key_by(|t: &(String, i64, i64)| t.0.clone())
    .window(EventTimeSessionWindows::with_dynamic_gap(
        |t: &(String, i64, i64)| t.2,
    ))
    .reduce(|a, _| a)
    .discard();
    let msg = e.execute("bad gap").unwrap_err().to_string();
    assert!(msg.contains("session gaps must be positive"), "{msg}");
}

/// The newest timestamp each of two sources has emitted, and the largest lead of the fast
/// one over the slow one seen so far.
static SLOW_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
static MAX_LEAD: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Runs a fast source (about 100 000 per second) and a slow one (20 000 per second) over
/// the same timestamps, with or without watermark alignment; returns the fast one's largest
/// lead in event time and how many records arrived. (Alignment works on watermarks, which
/// are periodic: a source that read everything before its first watermark would not be
/// held back, so the fast one is not instantaneous.)
fn race(aligned: bool) -> (i64, usize) {
    use std::sync::atomic::Ordering;
    use weir::connectors::datagen::DataGeneratorSource;
    SLOW_AT.store(0, Ordering::SeqCst);
    MAX_LEAD.store(0, Ordering::SeqCst);
    let n = 20_000u64;
    let e = env(1);
    e.set_auto_watermark_interval(Duration::from_millis(5));
    let strategy = || {
        let s =
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|t: &i64, _| *t);
        if aligned {
            s.with_watermark_alignment("race", Duration::from_millis(100))
        } else {
            s
        }
    };
    let slow = e
        .from_source_with_watermarks(
            DataGeneratorSource::new(n, |i| i as i64).with_rate_limit(20_000.0),
            strategy(),
            "slow",
        )
        .map(|t: i64| {
            SLOW_AT.fetch_max(t, Ordering::SeqCst);
            t
        });
    let fast = e
        .from_source_with_watermarks(
            DataGeneratorSource::new(n, |i| i as i64),
            strategy(),
            "fast",
        )
        .map(|t: i64| {
            if t % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            MAX_LEAD.fetch_max(t - SLOW_AT.load(Ordering::SeqCst), Ordering::SeqCst);
            t
        });
    let all = slow.union(&[&fast]).collect_values();
    e.execute("race").unwrap();
    (MAX_LEAD.load(Ordering::SeqCst), all.len())
}

#[test]
fn watermark_alignment_holds_a_fast_source_back() {
    // One test, run in turn: the statics are shared.
    let (lead, n) = race(false);
    assert_eq!(n, 40_000);
    assert!(
        lead > 10_000,
        "without alignment the fast source runs ahead: {lead}"
    );
    let (lead, n) = race(true);
    assert_eq!(n, 40_000, "nothing is lost while a source waits");
    // The drift (100 ms of event time), a poll's batch and the watermark interval's lag.
    assert!(
        lead < 4_000,
        "with alignment the fast source stays close: {lead}"
    );
}

#[test]
fn an_idle_source_does_not_hold_its_alignment_group_back() {
    use weir::connectors::datagen::DataGeneratorSource;
    let e = env(1);
    e.set_auto_watermark_interval(Duration::from_millis(5));
    let strategy = || {
        WatermarkStrategy::for_monotonous_timestamps()
            .with_timestamp_assigner(|t: &i64, _| *t)
            .with_idleness(Duration::from_millis(50))
            .with_watermark_alignment("idle", Duration::from_millis(100))
    };
    // Ten events at timestamps 0..10, then nothing, without ending: it goes idle.
    let quiet = e.from_source_with_watermarks(Upto(10), strategy(), "quiet");
    // Twenty thousand events over 20 s of event time, far beyond the drift.
    let busy = e.from_source_with_watermarks(
        DataGeneratorSource::new(20_000, |i| i as i64),
        strategy(),
        "busy",
    );
    let all = quiet.union(&[&busy]).collect_values();
    let client = e.execute_async("idle member").unwrap();
    let start = std::time::Instant::now();
    while all.len() < 20_010 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = all.len();
    client.cancel().unwrap();
    let _ = client.wait();
    assert_eq!(
        n, 20_010,
        "the busy source must not wait for an idle member of its group"
    );
}
