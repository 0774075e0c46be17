//! Every stateful operator survives a stop-with-savepoint and a restore, at the same and at
//! another parallelism: session windows (merging window state and timers), an interval join
//! (both buffers and cleanup timers), a keyed process function (value state and event-time
//! timers) and a keyed reduce. The output of an interrupted and restored run, committed by
//! the exactly-once file sink, equals an uninterrupted run's.

use std::path::Path;
use std::time::Duration;
use weir::prelude::*;

const EVENTS: i64 = 60_000;

/// Event time of number `i`: 1 ms apart, with a 50 ms pause after every 1000 (sessions).
fn ts(i: i64) -> i64 {
    i + (i / 1000) * 50
}

#[derive(Clone)]
struct Pairs;

impl ProcessJoinFunction<i64, i64, String> for Pairs {
    fn process_element(
        &mut self,
        a: i64,
        b: i64,
        _: &JoinContext,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        out.collect(format!("join,{a},{b}"));
        Ok(())
    }
}

/// Counts per key (emitted with each record: the order per key is fixed) and reports each
/// record again 100 ms of event time later, by a timer.
#[derive(Clone)]
struct DelayedCounts {
    count: ValueState<u64>,
}

impl KeyedProcessFunction<i64, i64, String> for DelayedCounts {
    fn process_element(
        &mut self,
        _: i64,
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let n = self.count.value(ctx)?.unwrap_or(0) + 1;
        self.count.update(ctx, n)?;
        out.collect(format!("count,{},{n}", ctx.current_key()));
        if let Some(t) = ctx.timestamp() {
            ctx.register_event_time_timer(t + 100);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        t: i64,
        ctx: &mut KeyedContext<'_, i64>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        out.collect(format!("timer,{},{t}", ctx.current_key()));
        Ok(())
    }
}

#[derive(Clone)]
struct SessionLine;

impl ProcessWindowFunction<i64, String, i64, TimeWindow> for SessionLine {
    fn process(
        &mut self,
        key: &i64,
        ctx: &mut WindowContext<'_, i64, TimeWindow>,
        elements: Vec<i64>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        out.collect(format!(
            "session,{key},{},{},{}",
            w.start,
            w.end,
            elements.len()
        ));
        Ok(())
    }
}

/// The job; `pause` throttles the (single, replayable) source so a savepoint lands midway.
fn job(parallelism: i64, out: &Path, ck: &Path, restore: Option<String>, pause: bool) -> JobClient {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(parallelism);
    env.enable_checkpointing(Duration::from_millis(30));
    env.set_checkpoint_storage(ck.display().to_string());
    if let Some(sp) = restore {
        env.restore_from_savepoint(sp, false);
    }
    let numbers = env
        .from_iter_fn(
            move || {
                (0..EVENTS).inspect(move |i| {
                    if pause && i % 100 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            },
            Boundedness::Bounded,
        )
        .uid("numbers")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|i: &i64, _| ts(*i)),
        )
        .uid("timestamps")
        // One subtask: every key's records keep their order (a running sum depends on it).
        .set_parallelism(1);
    let sessions = numbers
        .key_by(|i: &i64| i % 7)
        .window(EventTimeSessionWindows::with_gap_millis(20))
        .process(SessionLine)
        .uid("sessions");
    let evens = numbers
        .filter(|i: &i64| i % 2 == 0)
        .uid("evens")
        .key_by(|i: &i64| i % 5);
    let odds = numbers
        .filter(|i: &i64| i % 2 == 1)
        .uid("odds")
        .key_by(|i: &i64| i % 5);
    let joined = evens
        .interval_join(&odds)
        .between(-6, 6)
        .process(Pairs)
        .uid("join");
    let timers = numbers
        .key_by(|i: &i64| i % 11)
        .process(DelayedCounts {
            count: ValueState::new("count"),
        })
        .uid("timers");
    let sums = numbers
        .key_by(|i: &i64| i % 13)
        .reduce(|a, b| a + b)
        .uid("sums")
        .map(|s: i64| format!("sum,{s}"))
        .uid("sum-lines");
    sessions
        .union(&[&joined, &timers, &sums])
        .sink_to(FileSink::for_row_format(out), "files")
        .uid("files");
    env.execute_async("Operators").unwrap()
}

fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if !e.file_name().to_string_lossy().starts_with('.') {
            lines.extend(
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
    }
    lines.sort();
    lines
}

#[test]
fn operators_restore_from_a_savepoint_at_any_parallelism() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    job(2, &reference, &tmp.path().join("ck0"), None, false)
        .wait()
        .unwrap();
    let want = committed(&reference);
    assert!(want.iter().any(|l| l.starts_with("session,")));
    assert!(want.iter().any(|l| l.starts_with("join,")));
    assert!(want.iter().any(|l| l.starts_with("timer,")));

    for (first, second) in [(2, 2), (2, 3), (3, 1)] {
        let out = tmp.path().join(format!("out-{first}-{second}"));
        let client = job(first, &out, &tmp.path().join("ck1"), None, true);
        while client.checkpoint_stats().unwrap().completed < 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let sp = client
            .stop_with_savepoint(tmp.path().join("sp").display().to_string())
            .unwrap();
        client.wait().unwrap();
        let meta = std::fs::read_to_string(Path::new(&sp).join("_metadata")).unwrap();
        for uid in ["\"sessions\"", "\"join\"", "\"timers\"", "\"sums\""] {
            assert!(meta.contains(uid), "{uid} has no state in the savepoint");
        }
        let partial = committed(&out).len();
        assert!(partial < want.len(), "the savepoint came too late");
        job(second, &out, &tmp.path().join("ck2"), Some(sp), false)
            .wait()
            .unwrap();
        let got = committed(&out);
        assert_eq!(
            got.len(),
            want.len(),
            "{first} -> {second}: {} lines, want {}",
            got.len(),
            want.len()
        );
        let missing: Vec<_> = want
            .iter()
            .filter(|l| got.binary_search(l).is_err())
            .take(6)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|l| want.binary_search(l).is_err())
            .take(6)
            .collect();
        assert!(
            got == want,
            "{first} -> {second}: missing {missing:?}, not in the reference {extra:?}"
        );
    }
}
