//! Rich functions: `open` with the restored operator state, `snapshot_state` at every
//! checkpoint, `close` at the end; list state split over the subtasks and union state given
//! whole to each, across a stop with a savepoint and a restore at another parallelism; an
//! error in `open` fails the job with the operator's name.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use weir::connectors::datagen::DataGeneratorSource;
use weir::prelude::*;

/// What the subtasks reported when they closed: (run, subtask, sum).
static CLOSED: Mutex<Vec<(u32, u32, u64)>> = Mutex::new(Vec::new());
/// What the subtasks found in the union state when they opened: (run, subtask, indexes).
static OPENED: Mutex<Vec<(u32, u32, Vec<u32>)>> = Mutex::new(Vec::new());

/// Sums the values its subtask sees; the sum survives failures and rescaling (list state),
/// and every subtask also writes its index as union state.
#[derive(Clone)]
struct RunningSum {
    run: u32,
    subtask: u32,
    sum: u64,
}

impl RichFunction for RunningSum {
    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<(), UserError> {
        self.subtask = ctx.runtime().subtask;
        // A subtask may get several sums after a rescale, or none.
        self.sum = ctx.restored_list::<u64>("sum")?.into_iter().sum();
        let mut seen: Vec<u32> = ctx.restored_union("subtasks")?;
        seen.sort();
        OPENED.lock().unwrap().push((self.run, self.subtask, seen));
        Ok(())
    }
    fn snapshot_state(&mut self, ctx: &mut SnapshotContext<'_>) -> Result<(), UserError> {
        ctx.add_list("sum", &[self.sum])?;
        ctx.add_union("subtasks", &[self.subtask])
    }
    fn close(&mut self) -> Result<(), UserError> {
        CLOSED
            .lock()
            .unwrap()
            .push((self.run, self.subtask, self.sum));
        Ok(())
    }
}

impl RichMapFunction<u64, u64> for RunningSum {
    fn map(&mut self, v: u64) -> Result<u64, UserError> {
        self.sum += v;
        Ok(v)
    }
}

fn job(run: u32, p: i64, n: u64, ckpt: &std::path::Path) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env.enable_checkpointing(Duration::from_millis(20));
    env.set_checkpoint_storage(ckpt.display().to_string());
    env.from_source(
        DataGeneratorSource::new(n, |i| i + 1).with_rate_limit(3_000.0),
        "numbers",
    )
    .uid("numbers")
    .rich_map(RunningSum {
        run,
        subtask: 0,
        sum: 0,
    })
    .uid("sum")
    .discard();
    env
}

#[test]
fn list_and_union_state_across_a_savepoint_and_a_rescale() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 3_000u64;
    let client = job(1, 2, n, &tmp.path().join("ckpt"))
        .execute_async("first")
        .unwrap();
    let start = Instant::now();
    while client.checkpoint_stats().unwrap().completed < 3 {
        assert!(start.elapsed() < Duration::from_secs(30), "no checkpoints");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sp = client
        .stop_with_savepoint(tmp.path().join("sp").display().to_string())
        .unwrap();
    let env = job(2, 3, n, &tmp.path().join("ckpt"));
    env.restore_from_savepoint(sp, false);
    env.execute("second").unwrap();

    let closed = CLOSED.lock().unwrap().clone();
    let first: u64 = closed.iter().filter(|c| c.0 == 1).map(|c| c.2).sum();
    let second: Vec<&(u32, u32, u64)> = closed.iter().filter(|c| c.0 == 2).collect();
    assert!(
        first > 0 && first < n * (n + 1) / 2,
        "stopped midway: {first}"
    );
    // Every subtask closed once, and the sums carried over add up to all the values.
    assert_eq!(closed.iter().filter(|c| c.0 == 1).count(), 2);
    assert_eq!(second.len(), 3, "{second:?}");
    assert_eq!(second.iter().map(|c| c.2).sum::<u64>(), n * (n + 1) / 2);
    // Union state: every new subtask saw both old subtasks' entries.
    let opened = OPENED.lock().unwrap().clone();
    for (run, subtask, seen) in opened {
        match run {
            1 => assert!(seen.is_empty(), "fresh start: {seen:?}"),
            _ => assert_eq!(seen, vec![0, 1], "subtask {subtask}"),
        }
    }
}

#[derive(Clone)]
struct Refuses;

impl RichFunction for Refuses {
    fn open(&mut self, _: &OpenContext<'_>) -> Result<(), UserError> {
        Err("no configuration".into())
    }
}

impl RichFilterFunction<i64> for Refuses {
    fn filter(&mut self, _: &i64) -> Result<bool, UserError> {
        Ok(true)
    }
}

/// Splits words and counts what it emitted; fails on a bad word.
#[derive(Clone, Default)]
struct Words;

impl RichFunction for Words {}

impl RichFlatMapFunction<String, String> for Words {
    fn flat_map(&mut self, line: String, out: &mut Collector<'_, String>) -> Result<(), UserError> {
        for w in line.split_whitespace() {
            if w == "bad" {
                return Err(format!("bad word in '{line}'").into());
            }
            out.collect(w.to_string());
        }
        Ok(())
    }
}

#[test]
fn errors_in_open_and_in_the_function_fail_the_job_with_the_operator_name() {
    let env = StreamExecutionEnvironment::new();
    env.from_sequence(1, 10)
        .rich_filter(Refuses)
        .name("needs config")
        .discard();
    let err = format!("{:?}", env.execute("refuses").unwrap_err());
    assert!(
        err.contains("needs config") && err.contains("no configuration"),
        "{err}"
    );

    let env = StreamExecutionEnvironment::new();
    let words = env
        .from_collection(vec!["a b".to_string(), "c d e".to_string()])
        .rich_flat_map(Words)
        .collect_values();
    env.execute("words").unwrap();
    let mut got = words.take();
    got.sort();
    assert_eq!(got, ["a", "b", "c", "d", "e"]);

    let env = StreamExecutionEnvironment::new();
    env.from_collection(vec!["ok".to_string(), "a bad one".to_string()])
        .rich_flat_map(Words)
        .name("splitter")
        .discard();
    let err = format!("{:?}", env.execute("bad").unwrap_err());
    assert!(
        err.contains("splitter") && err.contains("bad word in 'a bad one'"),
        "{err}"
    );
}

/// Keeps the numbers below a limit, with a counter of what it kept, a gauge of the last
/// number seen, a histogram of the kept values and a meter of every number seen.
#[derive(Clone)]
struct KeepBelow {
    limit: u64,
    kept: Option<weir::runtime::user_metrics::Counter>,
    last: Option<weir::runtime::user_metrics::Gauge>,
    values: Option<weir::runtime::user_metrics::Histogram>,
    seen: Option<weir::runtime::user_metrics::Meter>,
}

impl RichFunction for KeepBelow {
    fn open(&mut self, ctx: &OpenContext<'_>) -> Result<(), UserError> {
        let m = &ctx.runtime().metrics;
        self.kept = Some(m.counter("kept")?);
        self.last = Some(m.gauge("last_seen")?);
        self.values = Some(m.histogram("kept_values", &[100.0, 200.0, 1000.0])?);
        self.seen = Some(m.meter("seen")?);
        Ok(())
    }
}

impl RichFilterFunction<u64> for KeepBelow {
    fn filter(&mut self, v: &u64) -> Result<bool, UserError> {
        if let Some(m) = &self.seen {
            m.mark_event();
        }
        if let Some(g) = &self.last {
            g.set(*v as i64);
        }
        if *v >= self.limit {
            return Ok(false);
        }
        if let (Some(c), Some(h)) = (&self.kept, &self.values) {
            c.inc();
            h.observe(*v as f64);
        }
        Ok(true)
    }
}

/// The sum over subtasks of the series `name` in a Prometheus text scrape.
fn scraped(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{");
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[test]
fn user_metrics_are_exported_with_the_cluster_metrics_while_the_job_runs() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.from_source(
        DataGeneratorSource::new(u64::MAX, |i| i).with_rate_limit(5_000.0),
        "numbers",
    )
    .rich_filter(KeepBelow {
        limit: 300,
        kept: None,
        last: None,
        values: None,
        seen: None,
    })
    .name("keep below")
    .discard();
    let client = env.execute_async("metrics").unwrap();
    let cluster = client.cluster().clone();
    let start = Instant::now();
    let text = loop {
        let text = cluster.metrics().render();
        if scraped(&text, "weir_user_kept") == Some(300.0) {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{text}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        text.contains(r#"operator_name="keep below",subtask="1""#),
        "labelled by operator and subtask: {text}"
    );
    assert_eq!(scraped(&text, "weir_user_kept_values_count"), Some(300.0));
    assert_eq!(
        scraped(&text, "weir_user_kept_values_sum"),
        Some((0..300).sum::<u64>() as f64)
    );
    assert!(
        scraped(&text, "weir_user_seen_total").unwrap_or(0.0) >= 300.0,
        "{text}"
    );
    assert!(
        scraped(&text, "weir_user_seen_rate").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    // The generator gives subtask 0 the numbers from 0 (subtask 1 starts halfway up).
    let last_of_first: f64 = text
        .lines()
        .find(|l| l.starts_with("weir_user_last_seen{") && l.contains(r#"subtask="0""#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(last_of_first >= 299.0, "{text}");
    client.cancel().unwrap();
    let _ = client.wait();
    // A task's series go with it.
    let start = Instant::now();
    while scraped(&cluster.metrics().render(), "weir_user_kept").is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "series left behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
