//! Count windows (tumbling and sliding, keyed and over the whole stream), windows over a
//! non-keyed stream (`window_all`), the delta trigger and evictor, each compared with a
//! simulation of Flink's semantics written here; results read with `execute_and_collect`,
//! whose failure and early-drop paths are checked too.

use std::collections::BTreeMap;
use std::time::Duration;
use weir::api::window::assigners::{GlobalWindows, TumblingEventTimeWindows};
use weir::api::window::evictors::DeltaEvictor;
use weir::api::window::triggers::{CountTrigger, DeltaTrigger};
use weir::prelude::*;

/// (key, sequence number within the key).
type Reading = (u8, i64);

fn readings() -> Vec<Reading> {
    (0..200i64).map(|i| ((i % 3) as u8, i / 3)).collect()
}

fn collect<T: weir::api::Data>(stream: &DataStream<T>) -> Vec<T> {
    stream
        .execute_and_collect("test")
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// Per key: the sums of each full window of `size`, every `slide` elements (the last
/// `size` elements at each firing), as Flink's count windows give them.
fn count_window_reference(size: usize, slide: usize) -> BTreeMap<u8, Vec<i64>> {
    let mut by_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    for (k, v) in readings() {
        by_key.entry(k).or_default().push(v);
    }
    by_key
        .into_iter()
        .map(|(k, vs)| {
            let sums = (1..=vs.len())
                .filter(|n| n % slide == 0)
                .map(|n| vs[n.saturating_sub(size)..n].iter().sum())
                .collect();
            (k, sums)
        })
        .collect()
}

fn per_key(got: Vec<Reading>) -> BTreeMap<u8, Vec<i64>> {
    let mut m: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    for (k, s) in got {
        m.entry(k).or_default().push(s);
    }
    m
}

#[test]
fn keyed_count_windows_tumbling_and_sliding() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let tumbling = env
        .from_collection(readings())
        .key_by(|r: &Reading| r.0)
        .count_window(4)
        .reduce(|a, b| (a.0, a.1 + b.1));
    // Leftovers (fewer than 4 at the end of a key) are never emitted, as in Flink.
    assert_eq!(per_key(collect(&tumbling)), count_window_reference(4, 4));

    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let sliding = env
        .from_collection(readings())
        .key_by(|r: &Reading| r.0)
        .count_window_sliding(5, 2)
        .reduce(|a, b| (a.0, a.1 + b.1));
    assert_eq!(per_key(collect(&sliding)), count_window_reference(5, 2));
}

#[test]
fn count_windows_over_the_whole_stream() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let values: Vec<i64> = (1..=100).collect();
    let sums = env
        .from_collection(values.clone())
        .count_window_all(10)
        .reduce(|a, b| a + b);
    let mut got = collect(&sums);
    got.sort();
    let mut want: Vec<i64> = values.chunks(10).map(|c| c.iter().sum()).collect();
    want.sort();
    assert_eq!(got, want);

    // Sliding over the whole stream needs the elements in order: one source subtask and
    // the all-window subtask, chained by parallelism 1.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let sliding = env
        .from_collection(values.clone())
        .count_window_all_sliding(4, 3)
        .reduce(|a, b| a + b);
    let want: Vec<i64> = (1..=values.len())
        .filter(|n| n % 3 == 0)
        .map(|n| values[n.saturating_sub(4)..n].iter().sum())
        .collect();
    assert_eq!(collect(&sliding), want);
}

#[test]
fn event_time_windows_over_a_non_keyed_stream_run_in_one_subtask() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(4);
    let events: Vec<i64> = (0..1000).map(|i| i * 7 % 1000).collect();
    let counts = env
        .from_collection(events.clone())
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(1000))
                .with_timestamp_assigner(|t: &i64, _| *t),
        )
        .window_all(TumblingEventTimeWindows::of(Duration::from_millis(100)))
        .aggregate(Count);
    let mut got = collect(&counts);
    got.sort();
    let mut by_window: BTreeMap<i64, u64> = BTreeMap::new();
    for t in &events {
        *by_window.entry(t / 100).or_default() += 1;
    }
    let mut want: Vec<u64> = by_window.into_values().collect();
    want.sort();
    assert_eq!(got, want);
    // One window operator subtask: its node runs at parallelism 1.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(4);
    env.from_collection(events)
        .window_all(GlobalWindows::create())
        .trigger(CountTrigger::of(10))
        .reduce(|a, b| a.max(b))
        .print();
    let plan: serde_json::Value = serde_json::from_str(&env.execution_plan().unwrap()).unwrap();
    let nodes = plan["nodes"].as_array().unwrap();
    let window = nodes
        .iter()
        .find(|n| n["contents"].as_str().unwrap_or("").contains("Window"))
        .expect("a window node");
    assert_eq!(window["parallelism"], 1, "{plan}");
}

#[derive(Clone)]
struct Count;

impl weir::state::AggregateFunction<i64, u64, u64> for Count {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: &i64, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, a: u64, b: u64) -> u64 {
        a + b
    }
}

/// (key, speed).
type Speed = (u8, f64);

fn speeds() -> Vec<Speed> {
    (0..120)
        .map(|i| ((i % 2) as u8, ((i * 37) % 50) as f64 + f64::from(i) / 4.0))
        .collect()
}

#[test]
fn delta_trigger_fires_on_a_jump_and_delta_evictor_keeps_what_is_close() {
    // Trigger: fire when a speed is more than 15 above the reference (the first element,
    // then the element of the last firing); the window keeps everything (no purge), so
    // each firing emits the maximum so far.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let maxima = env
        .from_collection(speeds())
        .key_by(|s: &Speed| s.0)
        .window(GlobalWindows::create())
        .trigger(DeltaTrigger::of(15.0, |old: &Speed, new: &Speed| {
            new.1 - old.1
        }))
        .reduce(|a, b| if b.1 > a.1 { b } else { a });
    let got = collect(&maxima);
    let mut want: Vec<Speed> = Vec::new();
    for key in 0..2u8 {
        let (mut reference, mut max): (Option<f64>, Option<f64>) = (None, None);
        for (_, v) in speeds().into_iter().filter(|s| s.0 == key) {
            max = Some(max.map_or(v, |m: f64| m.max(v)));
            match reference {
                None => reference = Some(v),
                Some(r) if v - r > 15.0 => {
                    reference = Some(v);
                    want.push((key, max.unwrap_or(v)));
                }
                Some(_) => {}
            }
        }
    }
    let sort = |mut v: Vec<Speed>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    assert!(!want.is_empty());
    assert_eq!(sort(got), sort(want));

    // Evictor: every 6 elements, drop (for good) the elements more than 10 away from the
    // newest one, then emit how many are left and their sum.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let kept = env
        .from_collection(speeds())
        .key_by(|s: &Speed| s.0)
        .window(GlobalWindows::create())
        .trigger(CountTrigger::of(6))
        .evictor(DeltaEvictor::of(10.0, |e: &Speed, last: &Speed| {
            (last.1 - e.1).abs()
        }))
        .aggregate(CountAndSum);
    let got = collect(&kept);
    let mut want: Vec<(u64, f64)> = Vec::new();
    for key in 0..2u8 {
        let mut contents: Vec<f64> = Vec::new();
        for (n, (_, v)) in speeds().into_iter().filter(|s| s.0 == key).enumerate() {
            contents.push(v);
            if (n + 1) % 6 == 0 {
                let last = v;
                contents.retain(|e| (last - e).abs() < 10.0);
                want.push((contents.len() as u64, contents.iter().sum()));
            }
        }
    }
    let sort = |mut v: Vec<(u64, f64)>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    assert_eq!(sort(got), sort(want));
}

#[derive(Clone)]
struct CountAndSum;

impl weir::state::AggregateFunction<Speed, (u64, f64), (u64, f64)> for CountAndSum {
    fn create_accumulator(&self) -> (u64, f64) {
        (0, 0.0)
    }
    fn add(&self, v: &Speed, acc: &mut (u64, f64)) {
        acc.0 += 1;
        acc.1 += v.1;
    }
    fn get_result(&self, acc: &(u64, f64)) -> (u64, f64) {
        *acc
    }
    fn merge(&self, a: (u64, f64), b: (u64, f64)) -> (u64, f64) {
        (a.0 + b.0, a.1 + b.1)
    }
}

#[test]
fn execute_and_collect_streams_results_and_reports_failure() {
    // Results arrive while the job runs: far more than the iterator buffers.
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let n = 50_000i64;
    let total: i64 = env
        .from_sequence(1, n)
        .map(|i: i64| i * 2)
        .execute_and_collect("many")
        .unwrap()
        .map(|r| r.unwrap())
        .sum();
    assert_eq!(total, n * (n + 1));

    // A failing job: the results before the failure, then its error, then nothing.
    let env = StreamExecutionEnvironment::new();
    let mut it = env
        .from_sequence(1, 100)
        .map(|i: i64| {
            if i == 50 {
                panic!("boom at 50");
            }
            i
        })
        .execute_and_collect("failing")
        .unwrap();
    let mut last_error = None;
    for r in it.by_ref() {
        if let Err(e) = r {
            last_error = Some(format!("{e:?}"));
        }
    }
    let err = last_error.expect("the failure is reported");
    assert!(err.contains("boom at 50"), "{err}");
    assert!(it.next().is_none());

    // Dropping the iterator early cancels an endless job instead of leaving it running.
    let env = StreamExecutionEnvironment::new();
    let mut it = env
        .from_sequence(0, i64::MAX)
        .execute_and_collect("endless")
        .unwrap();
    assert!(it.next().unwrap().is_ok());
    let job = it.job().job_id();
    let cluster = it.job().cluster().clone();
    drop(it);
    let status = cluster.dispatcher().job_status(job).unwrap();
    assert!(status.is_terminal(), "{status:?}");
}
