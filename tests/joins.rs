//! Interval joins, window joins, co-groups and broadcast state, against references computed
//! here.

use std::collections::BTreeMap;
use std::time::Duration;
use weir::api::broadcast::BroadcastState;
use weir::prelude::*;

/// A watermark after every event: the largest timestamp so far minus 1.
struct EveryEvent(i64);

impl WatermarkGenerator<(i64, i64)> for EveryEvent {
    fn on_event(&mut self, _: &(i64, i64), ts: i64, out: &mut WatermarkOutput) {
        self.0 = self.0.max(ts);
        out.emit_watermark(self.0 - 1);
    }
    fn on_periodic_emit(&mut self, _: &mut WatermarkOutput) {}
}

/// (key, timestamp) events in timestamp order.
fn side(
    env: &StreamExecutionEnvironment,
    data: Vec<(i64, i64)>,
    name: &str,
) -> DataStream<(i64, i64)> {
    env.from_source_with_watermarks(
        weir::api::source::CollectionSource::new(data),
        WatermarkStrategy::for_generator(|| EveryEvent(i64::MIN))
            .with_timestamp_assigner(|e: &(i64, i64), _| e.1),
        name,
    )
}

fn data(seed: u64, n: usize) -> Vec<(i64, i64)> {
    let mut x = seed | 1;
    let mut t = 0;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += (x % 4) as i64;
            ((x >> 8) as i64 % 5, t)
        })
        .collect()
}

#[derive(Clone)]
struct Pair;

impl ProcessJoinFunction<(i64, i64), (i64, i64), (i64, i64, i64, i64)> for Pair {
    fn process_element(
        &mut self,
        a: (i64, i64),
        b: (i64, i64),
        ctx: &JoinContext,
        out: &mut Collector<'_, (i64, i64, i64, i64)>,
    ) -> Result<(), UserError> {
        assert_eq!(ctx.timestamp(), a.1.max(b.1));
        out.collect((a.0, a.1, b.0, b.1));
        Ok(())
    }
}

#[test]
fn interval_join_matches_all_pairs_in_range() {
    let (left, right) = (data(7, 300), data(11, 300));
    for (lower, upper) in [(-5i64, 10i64), (0, 0), (2, 6), (-8, -3)] {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(3);
        let l = side(&env, left.clone(), "left").key_by(|e: &(i64, i64)| e.0);
        let r = side(&env, right.clone(), "right").key_by(|e: &(i64, i64)| e.0);
        let out = l
            .interval_join(&r)
            .between(lower, upper)
            .process(Pair)
            .collect_values();
        let result = env.execute("interval join").unwrap();
        let mut got = out.take();
        got.sort();
        let mut want = Vec::new();
        for a in &left {
            for b in &right {
                if a.0 == b.0 && a.1 + lower <= b.1 && b.1 <= a.1 + upper {
                    want.push((a.0, a.1, b.0, b.1));
                }
            }
        }
        want.sort();
        assert_eq!(got.len(), want.len(), "bounds [{lower}, {upper}]");
        assert_eq!(got, want, "bounds [{lower}, {upper}]");
        let join = result.operator("IntervalJoin").unwrap();
        assert_eq!(
            join.state_entries, 0,
            "buffers are cleaned once the watermark passes them"
        );
    }
}

#[test]
fn exclusive_bounds_exclude_the_edges() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(1);
    let l = side(&env, vec![(1, 10)], "left").key_by(|e: &(i64, i64)| e.0);
    let r = side(
        &env,
        vec![(1, 5), (1, 6), (1, 10), (1, 14), (1, 15)],
        "right",
    )
    .key_by(|e: &(i64, i64)| e.0);
    let out = l
        .interval_join(&r)
        .between(-5, 5)
        .lower_bound_exclusive()
        .upper_bound_exclusive()
        .process(Pair)
        .collect_values();
    env.execute("exclusive").unwrap();
    let mut got: Vec<i64> = out.take().into_iter().map(|p| p.3).collect();
    got.sort();
    assert_eq!(got, vec![6, 10, 14]);
}

#[test]
fn window_join_and_co_group_match_a_reference() {
    let (left, right) = (data(3, 200), data(5, 200));
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    let l = side(&env, left.clone(), "left");
    let r = side(&env, right.clone(), "right");
    let joined = l
        .join(&r)
        .keys(|a: &(i64, i64)| a.0, |b: &(i64, i64)| b.0)
        .window_apply(
            TumblingEventTimeWindows::of(Duration::from_millis(20)),
            |a: (i64, i64), b: (i64, i64)| (a.0, a.1, b.1),
        )
        .collect_values();
    let grouped = l
        .join(&r)
        .keys(|a: &(i64, i64)| a.0, |b: &(i64, i64)| b.0)
        .window_co_group(
            TumblingEventTimeWindows::of(Duration::from_millis(20)),
            |k: &i64,
             a: Vec<(i64, i64)>,
             b: Vec<(i64, i64)>,
             out: &mut Collector<'_, (i64, i64, usize, usize)>| {
                let w = a
                    .iter()
                    .chain(&b)
                    .map(|e| e.1 - e.1.rem_euclid(20))
                    .next()
                    .unwrap_or(0);
                out.collect((*k, w, a.len(), b.len()));
            },
        )
        .collect_values();
    env.execute("window join").unwrap();
    let win = |t: i64| t - t.rem_euclid(20);
    let mut want = Vec::new();
    for a in &left {
        for b in &right {
            if a.0 == b.0 && win(a.1) == win(b.1) {
                want.push((a.0, a.1, b.1));
            }
        }
    }
    want.sort();
    let mut got = joined.take();
    got.sort();
    assert_eq!(got, want);

    let mut want_groups: BTreeMap<(i64, i64), (usize, usize)> = BTreeMap::new();
    for a in &left {
        want_groups.entry((a.0, win(a.1))).or_default().0 += 1;
    }
    for b in &right {
        want_groups.entry((b.0, win(b.1))).or_default().1 += 1;
    }
    let got_groups: BTreeMap<(i64, i64), (usize, usize)> = grouped
        .take()
        .into_iter()
        .map(|(k, w, a, b)| ((k, w), (a, b)))
        .collect();
    assert_eq!(got_groups, want_groups);
}

/// Counts main elements per key (keyed state) and reports every broadcast rule it stores.
#[derive(Clone, Default)]
struct Rules {
    subtask: u32,
    count: Option<ValueState<i64>>,
}

impl KeyedBroadcastProcessFunction<i64, i64, (String, i64), String, String, i64> for Rules {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask;
        self.count = Some(ValueState::new("count"));
        Ok(())
    }
    fn process_element(
        &mut self,
        v: i64,
        ctx: &mut KeyedReadOnlyContext<'_, i64, String, i64>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        let count = self.count.as_ref().ok_or("not opened")?;
        let n = count.value(ctx)?.unwrap_or(0) + 1;
        count.update(ctx, n)?;
        let rules: &BroadcastState<String, i64> = ctx.broadcast_state();
        if rules.len() > 2 {
            return Err("more rules than were broadcast".into());
        }
        out.collect(format!("key {}: {n}", v % 4));
        Ok(())
    }
    fn process_broadcast_element(
        &mut self,
        rule: (String, i64),
        ctx: &mut KeyedBroadcastContext<'_, i64, String, i64>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        ctx.broadcast_state().insert(rule.0.clone(), rule.1);
        out.collect(format!("subtask {} got {}", self.subtask, rule.0));
        Ok(())
    }
}

#[test]
fn broadcast_state_reaches_every_subtask_and_keyed_state_works_beside_it() {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    let rules = env
        .from_collection(vec![("min".to_string(), 10i64), ("max".to_string(), 90)])
        .broadcast_with(&BroadcastStateDescriptor::<String, i64>::new("rules"));
    let out = env
        .from_sequence(0, 99)
        .key_by(|v: &i64| v % 4)
        .connect_broadcast(&rules)
        .process(Rules::default())
        .collect_values();
    env.execute("broadcast").unwrap();
    let got = out.take();
    let mut rule_lines: Vec<&String> = got.iter().filter(|l| l.starts_with("subtask")).collect();
    rule_lines.sort();
    assert_eq!(
        rule_lines,
        vec![
            "subtask 0 got max",
            "subtask 0 got min",
            "subtask 1 got max",
            "subtask 1 got min",
            "subtask 2 got max",
            "subtask 2 got min"
        ]
    );
    // Each of the 4 keys saw 25 elements: its largest count is 25.
    let mut finals: BTreeMap<String, i64> = BTreeMap::new();
    for l in got.iter().filter(|l| l.starts_with("key")) {
        let (k, n) = l.split_once(": ").unwrap();
        let e = finals.entry(k.to_string()).or_default();
        *e = (*e).max(n.parse().unwrap());
    }
    assert_eq!(
        finals.values().copied().collect::<Vec<_>>(),
        vec![25, 25, 25, 25]
    );
}
