//! The DataStream transformations end to end, each compared with a reference computed here.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use weir::prelude::*;

fn env(p: i64) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(p);
    env
}

/// Tags each record with the index of the subtask that saw it.
#[derive(Clone, Default)]
struct TagSubtask {
    subtask: u32,
}

impl ProcessFunction<i64, (u32, i64)> for TagSubtask {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask;
        Ok(())
    }
    fn process_element(
        &mut self,
        v: i64,
        _: &mut ProcessContext<'_>,
        out: &mut Collector<'_, (u32, i64)>,
    ) -> Result<(), UserError> {
        out.collect((self.subtask, v));
        Ok(())
    }
}

fn by_subtask(v: Vec<(u32, i64)>) -> BTreeMap<u32, Vec<i64>> {
    let mut m: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for (s, x) in v {
        m.entry(s).or_default().push(x);
    }
    for xs in m.values_mut() {
        xs.sort();
    }
    m
}

#[test]
fn partitioners_route_as_flink_does() {
    // broadcast: every subtask sees everything.
    let e = env(3);
    let out = e
        .from_sequence(1, 100)
        .set_parallelism(2)
        .broadcast()
        .process(TagSubtask::default())
        .collect_values();
    e.execute("broadcast").unwrap();
    let m = by_subtask(out.take());
    assert_eq!(m.len(), 3);
    assert!(m.values().all(|xs| *xs == (1..=100).collect::<Vec<_>>()));

    // global: everything to subtask 0.
    let e = env(3);
    let out = e
        .from_sequence(1, 100)
        .global()
        .process(TagSubtask::default())
        .collect_values();
    e.execute("global").unwrap();
    let m = by_subtask(out.take());
    assert_eq!(m.keys().copied().collect::<Vec<_>>(), vec![0]);
    assert_eq!(m[&0].len(), 100);

    // rebalance: evenly over all subtasks.
    let e = env(1);
    let out = e
        .from_sequence(1, 300)
        .rebalance()
        .process(TagSubtask::default())
        .set_parallelism(3)
        .collect_values();
    e.execute("rebalance").unwrap();
    let m = by_subtask(out.take());
    assert!(
        m.values().all(|xs| xs.len() == 100),
        "{:?}",
        m.values().map(|x| x.len()).collect::<Vec<_>>()
    );

    // rescale 2 -> 4: producer 0 feeds subtasks 0 and 1, producer 1 feeds 2 and 3.
    let e = env(2);
    let out = e
        .from_sequence(0, 399)
        .rescale()
        .process(TagSubtask::default())
        .set_parallelism(4)
        .collect_values();
    e.execute("rescale").unwrap();
    let m = by_subtask(out.take());
    assert_eq!(m.len(), 4);
    assert!(
        m[&0].iter().chain(&m[&1]).all(|x| *x < 200),
        "first half from producer 0"
    );
    assert!(
        m[&2].iter().chain(&m[&3]).all(|x| *x >= 200),
        "second half from producer 1"
    );

    // custom: by the user's function.
    let e = env(1);
    let out = e
        .from_sequence(0, 99)
        .partition_custom(|k: &i64, n| (*k as usize) % n, |x: &i64| x / 10)
        .process(TagSubtask::default())
        .set_parallelism(4)
        .collect_values();
    e.execute("custom").unwrap();
    for (s, xs) in by_subtask(out.take()) {
        assert!(xs.iter().all(|x| ((x / 10) % 4) as u32 == s));
    }

    // shuffle: everything arrives, spread over subtasks.
    let e = env(1);
    let out = e
        .from_sequence(1, 1000)
        .shuffle()
        .process(TagSubtask::default())
        .set_parallelism(3)
        .collect_values();
    e.execute("shuffle").unwrap();
    let m = by_subtask(out.take());
    assert_eq!(m.values().map(|x| x.len()).sum::<usize>(), 1000);
    assert!(m.values().all(|xs| xs.len() > 200));
}

#[test]
fn key_by_sends_each_key_to_one_subtask() {
    let e = env(3);
    let out = e
        .from_sequence(0, 999)
        .key_by(|x: &i64| x % 17)
        .as_stream()
        .process(TagSubtask::default())
        .collect_values();
    e.execute("keyed").unwrap();
    let mut owner: BTreeMap<i64, BTreeSet<u32>> = BTreeMap::new();
    let v = out.take();
    assert_eq!(v.len(), 1000);
    for (s, x) in v {
        owner.entry(x % 17).or_default().insert(s);
    }
    assert!(owner.values().all(|s| s.len() == 1));
    assert!(
        owner.values().flatten().collect::<BTreeSet<_>>().len() > 1,
        "keys spread over subtasks"
    );
}

#[test]
fn rolling_aggregations_follow_flink_semantics() {
    let data = vec![
        ("a", 3, 10),
        ("b", 1, 5),
        ("a", 1, 20),
        ("a", 5, 30),
        ("b", 1, 40),
    ];
    let data: Vec<(String, i64, i64)> = data
        .into_iter()
        .map(|(k, x, y)| (k.to_string(), x, y))
        .collect();
    type T = (String, i64, i64);
    let run = |f: &dyn Fn(&KeyedStream<T, String>) -> DataStream<T>| -> Vec<T> {
        let e = env(2);
        let keyed = e.from_collection(data.clone()).key_by(|t: &T| t.0.clone());
        let out = f(&keyed).collect_values();
        e.execute("agg").unwrap();
        let mut v = out.take();
        v.sort();
        v
    };
    let s = |k: &str, x: i64, y: i64| (k.to_string(), x, y);
    // sum: other fields from the key's first record.
    assert_eq!(
        run(&|k| k.sum(|t: &mut T| &mut t.1)),
        vec![
            s("a", 3, 10),
            s("a", 4, 10),
            s("a", 9, 10),
            s("b", 1, 5),
            s("b", 2, 5)
        ]
    );
    // min / max: the field only.
    assert_eq!(
        run(&|k| k.min(|t: &mut T| &mut t.1)),
        vec![
            s("a", 1, 10),
            s("a", 1, 10),
            s("a", 3, 10),
            s("b", 1, 5),
            s("b", 1, 5)
        ]
    );
    assert_eq!(
        run(&|k| k.max(|t: &mut T| &mut t.1)),
        vec![
            s("a", 3, 10),
            s("a", 3, 10),
            s("a", 5, 10),
            s("b", 1, 5),
            s("b", 1, 5)
        ]
    );
    // min_by / max_by: whole elements, the earlier one on ties.
    assert_eq!(
        run(&|k| k.min_by(|t: &T| t.1)),
        vec![
            s("a", 1, 20),
            s("a", 1, 20),
            s("a", 3, 10),
            s("b", 1, 5),
            s("b", 1, 5)
        ]
    );
    assert_eq!(
        run(&|k| k.max_by(|t: &T| t.1)),
        vec![
            s("a", 3, 10),
            s("a", 3, 10),
            s("a", 5, 30),
            s("b", 1, 5),
            s("b", 1, 5)
        ]
    );
    assert_eq!(
        run(&|k| k.reduce(|a, b| (a.0, a.1 * b.1, a.2.max(b.2)))),
        vec![
            s("a", 3, 10),
            s("a", 3, 20),
            s("a", 15, 30),
            s("b", 1, 5),
            s("b", 1, 40)
        ]
    );
}

#[derive(Clone)]
struct Join;

impl CoProcessFunction<i64, String, String> for Join {
    fn process_element1(
        &mut self,
        v: i64,
        ctx: &mut ProcessContext<'_>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        if v < 0 {
            ctx.output(&OutputTag::<i64>::new("negative"), v);
        } else {
            out.collect(format!("n{v}"));
        }
        Ok(())
    }
    fn process_element2(
        &mut self,
        v: String,
        _: &mut ProcessContext<'_>,
        out: &mut Collector<'_, String>,
    ) -> Result<(), UserError> {
        out.collect(format!("s{v}"));
        Ok(())
    }
}

#[test]
fn union_connect_and_side_outputs() {
    let e = env(2);
    let a = e.from_sequence(1, 50);
    let b = e.from_sequence(-50, -1);
    let strings = e.from_collection((0..30).map(|i| i.to_string()).collect::<Vec<_>>());
    let unioned = a.union(&[&b]).map(|x: i64| x);
    let co = unioned.connect(&strings).co_process(Join);
    let main = co.collect_values();
    let negatives = co
        .get_side_output(&OutputTag::<i64>::new("negative"))
        .collect_values();
    let mapped = a
        .connect(&strings)
        .co_map(|x: i64| x * 100, |s: String| s.parse::<i64>().unwrap())
        .collect_values();
    let flat = a
        .connect(&strings)
        .co_flat_map(
            |x: i64, out: &mut Collector<i64>| {
                if x % 10 == 0 {
                    out.collect(x);
                    out.collect(-x);
                }
            },
            |_: String, _: &mut Collector<i64>| {},
        )
        .collect_values();
    e.execute("co").unwrap();

    let mut m = main.take();
    m.sort();
    let mut want: Vec<String> = (1..=50)
        .map(|i| format!("n{i}"))
        .chain((0..30).map(|i| format!("s{i}")))
        .collect();
    want.sort();
    assert_eq!(m, want);
    let mut n = negatives.take();
    n.sort();
    assert_eq!(n, (-50..=-1).collect::<Vec<_>>());
    let mut cm = mapped.take();
    cm.sort();
    let mut want: Vec<i64> = (1..=50).map(|x| x * 100).chain(0..30).collect();
    want.sort();
    assert_eq!(cm, want);
    let mut f = flat.take();
    f.sort();
    assert_eq!(f, vec![-50, -40, -30, -20, -10, 10, 20, 30, 40, 50]);
}

#[test]
fn socket_text_stream_reads_lines_until_the_peer_closes() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        for i in 0..1000 {
            write!(s, "line {i}\r\n").unwrap();
        }
        write!(s, "last without newline").unwrap();
    });
    let e = env(2);
    let lines = e
        .socket_text_stream("127.0.0.1", port)
        .map(|l: String| l.len())
        .collect_values();
    e.execute("socket").unwrap();
    server.join().unwrap();
    let got = lines.take();
    assert_eq!(got.len(), 1001);
    let total: usize = got.iter().sum();
    let want: usize =
        (0..1000).map(|i| format!("line {i}").len()).sum::<usize>() + "last without newline".len();
    assert_eq!(total, want);
}

#[test]
fn socket_connection_failure_is_reported() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = env(1);
    e.socket_text_stream("127.0.0.1", port).discard();
    let msg = e.execute("socket").unwrap_err().to_string();
    assert!(
        msg.contains(&format!("cannot connect to socket 127.0.0.1:{port}")),
        "{msg}"
    );
}

#[test]
fn unbounded_job_can_be_cancelled() {
    let e = env(2);
    e.from_iter_fn(|| 0i64.., Boundedness::Unbounded)
        .rebalance()
        .map(|x: i64| x + 1)
        .discard();
    let client = e.execute_async("forever").unwrap();
    let start = std::time::Instant::now();
    while client.status().unwrap() != JobStatus::Running && start.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(client.status().unwrap(), JobStatus::Running);
    std::thread::sleep(std::time::Duration::from_millis(100));
    client.cancel().unwrap();
    let err = client.wait().unwrap_err();
    assert!(err.to_string().contains("was cancelled"), "{err}");
    assert_eq!(client.status().unwrap(), JobStatus::Canceled);
    assert_eq!(client.cluster().running_tasks(), 0);
}
