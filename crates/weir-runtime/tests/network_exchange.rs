//! Channels between two network environments over real TCP on 127.0.0.1 (as between two
//! processes): every record arrives once and in order, credit-based flow control bounds
//! both sides' memory and carries backpressure to the producer, and bad frames close only
//! the connection that sent them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::{BarrierAlignment, CheckpointingMode};
use weir_runtime::buffer::BufferPool;
use weir_runtime::checkpoint::{CheckpointBarrier, CheckpointNotice};
use weir_runtime::exchange::{ChannelKey, CreditConfig, NetworkEnvironment};
use weir_runtime::head::{InputChainHead, OneInputHead};
use weir_runtime::inbox::{ChannelMessage, Drained, TaskInbox};
use weir_runtime::operator::{Output, OutputControl};
use weir_runtime::partitioner::ChannelSelector;
use weir_runtime::serializer::BincodeSerializer;
use weir_runtime::writer::{ChannelBuffers, RecordWriter};
use weir_runtime::{Result, StreamRecord, Watermark, WatermarkStatus};
use weir_state::TaskStateSnapshot;

type Rec = (u64, String);

/// Records in arrival order, and whether the chain finished.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<(Vec<Rec>, bool)>>);

impl OutputControl for Log {
    fn emit_watermark(&mut self, _: Watermark) -> Result<()> {
        Ok(())
    }
    fn emit_watermark_status(&mut self, _: WatermarkStatus) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.0.lock().unwrap().1 = true;
        Ok(())
    }
    fn stop(&mut self) -> Result<()> {
        Ok(())
    }
    fn checkpoint(&mut self, _: &CheckpointBarrier, _: &mut TaskStateSnapshot) -> Result<()> {
        Ok(())
    }
    fn notify_checkpoint(&mut self, _: CheckpointNotice) -> Result<()> {
        Ok(())
    }
}

impl Output<Rec> for Log {
    fn collect(&mut self, r: StreamRecord<Rec>) -> Result<()> {
        self.0.lock().unwrap().0.push(r.value);
        Ok(())
    }
}

/// Record `i` goes to consumer `i % n`.
#[derive(Clone)]
struct ByIndex;

impl ChannelSelector<Rec> for ByIndex {
    fn select(&mut self, r: &Rec, channels: usize) -> usize {
        (r.0 % channels as u64) as usize
    }
}

fn key(consumer: u32) -> ChannelKey {
    ChannelKey {
        job: 7,
        attempt: 0,
        producer_vertex: 1,
        producer_subtask: 0,
        consumer_vertex: 2,
        consumer_subtask: consumer,
    }
}

fn record(i: u64) -> StreamRecord<Rec> {
    StreamRecord::new((i, format!("value-{i}-{}", "x".repeat((i % 50) as usize))))
}

fn local() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config() -> CreditConfig {
    CreditConfig {
        exclusive_buffers: 2,
        floating_buffers: 3,
        buffer_size: 4096,
    }
}

/// Drains `inbox` into `head` until its input ended or `limit` passes; returns whether it
/// ended.
fn consume(inbox: &TaskInbox, head: &mut dyn InputChainHead, limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    let mut drained = Drained::default();
    while !head.input_ended() {
        if Instant::now() > deadline {
            return Ok(false);
        }
        inbox.drain(
            Some(Instant::now() + Duration::from_millis(20)),
            &mut drained,
        );
        while let Some((ch, msg)) = drained.inputs.pop_front() {
            head.on_message(ch as usize, msg)?;
        }
    }
    head.end_of_input()?;
    Ok(true)
}

fn consumer_head(log: &Log) -> OneInputHead<Rec, BincodeSerializer<Rec>> {
    OneInputHead::new(
        1,
        BarrierAlignment::from(CheckpointingMode::ExactlyOnce),
        BincodeSerializer::new(),
        Box::new(log.clone()),
        "consumer".into(),
    )
}

type Writer = RecordWriter<Rec, BincodeSerializer<Rec>, ByIndex>;

/// A producer's writer into the network channels `keys`, with buffers from `pool`.
fn writer(env: &NetworkEnvironment, keys: &[ChannelKey], pool: &BufferPool) -> Writer {
    let senders = keys.iter().map(|k| env.register_subpartition(*k)).collect();
    RecordWriter::new(
        ChannelBuffers::new(senders, pool.clone(), false),
        BincodeSerializer::<Rec>::new(),
        ByIndex,
    )
}

/// A producer's writer into the network channel `key`, with a pool of its own.
fn single_writer(env: &NetworkEnvironment, key: ChannelKey) -> Writer {
    writer(env, &[key], &BufferPool::new(4, 4096))
}

#[test]
fn records_cross_the_network_once_and_in_order() {
    const N: u64 = 30_000;
    let producer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let consumer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let pool = BufferPool::new(6, 4096);
    let mut writer = writer(&producer_env, &[key(0), key(1)], &pool);
    let producer = std::thread::spawn(move || -> Result<()> {
        for i in 0..N {
            writer.collect(record(i))?;
        }
        writer.finish()
    });
    let consumers: Vec<_> = (0..2u32)
        .map(|c| {
            let inbox = TaskInbox::new();
            let gate = consumer_env.input_gate(inbox.clone());
            consumer_env
                .connect_input(&gate, producer_env.local_addr(), key(c), 0)
                .unwrap();
            let log = Log::default();
            let mut head = consumer_head(&log);
            std::thread::spawn(move || {
                let _gate = gate;
                let ended = consume(&inbox, &mut head, Duration::from_secs(60)).unwrap();
                (ended, log)
            })
        })
        .collect();
    producer.join().unwrap().unwrap();
    for (c, t) in consumers.into_iter().enumerate() {
        let (ended, log) = t.join().unwrap();
        assert!(ended, "consumer {c} did not see the end of its channel");
        let (got, finished) = log.0.lock().unwrap().clone();
        let want: Vec<Rec> = (0..N)
            .filter(|i| i % 2 == c as u64)
            .map(|i| record(i).value)
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(
            got == want,
            "consumer {c}: records lost, duplicated or reordered"
        );
        assert!(finished);
    }
    assert!(pool.max_in_use() <= 6);
}

#[test]
fn a_slow_consumer_blocks_the_producer_and_both_sides_stay_bounded() {
    const N: u64 = 20_000;
    let cfg = config();
    let producer_env = NetworkEnvironment::start(local(), cfg).unwrap();
    let consumer_env = NetworkEnvironment::start(local(), cfg).unwrap();
    let pool = BufferPool::new(4, 4096);
    let mut writer = writer(&producer_env, &[key(0)], &pool);
    let producer = std::thread::spawn(move || -> Result<()> {
        for i in 0..N {
            writer.collect(record(i))?;
        }
        writer.finish()
    });
    let inbox = TaskInbox::new();
    let gate = consumer_env.input_gate(inbox.clone());
    consumer_env
        .connect_input(&gate, producer_env.local_addr(), key(0), 0)
        .unwrap();
    // Read nothing for a while: the receiver holds at most its exclusive and floating
    // buffers, the sender at most its pool, and the producer waits.
    std::thread::sleep(Duration::from_millis(500));
    let mut held = Drained::default();
    inbox.drain(Some(Instant::now()), &mut held);
    let buffers = held
        .inputs
        .iter()
        .filter(|(_, m)| matches!(m, ChannelMessage::Buffer(_)))
        .count();
    assert!(
        buffers <= cfg.exclusive_buffers + cfg.floating_buffers,
        "{buffers} buffers arrived without credit for them"
    );
    assert!(
        buffers >= cfg.exclusive_buffers,
        "credit was granted, data must flow"
    );
    assert!(
        !producer.is_finished(),
        "the producer must be backpressured"
    );
    assert_eq!(
        pool.in_use(),
        pool.capacity(),
        "the producer's pool is used up"
    );
    // Now consume everything: the held buffers first, then the rest.
    let log = Log::default();
    let mut head = consumer_head(&log);
    for (ch, msg) in held.inputs.drain(..) {
        head.on_message(ch as usize, msg).unwrap();
    }
    assert!(consume(&inbox, &mut head, Duration::from_secs(60)).unwrap());
    producer.join().unwrap().unwrap();
    let got = log.0.lock().unwrap().0.clone();
    assert!(got == (0..N).map(|i| record(i).value).collect::<Vec<_>>());
    assert!(pool.max_in_use() <= pool.capacity());
}

#[test]
fn bad_frames_close_only_their_connection() {
    let producer_env = NetworkEnvironment::start(local(), config()).unwrap();
    for garbage in [
        vec![0xff; 64],                              // an oversized length prefix
        vec![3, 0, 0, 0, 99, 1, 2],                  // an unknown tag
        vec![9, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], // a buffer for a stream never requested
        vec![20, 0, 0, 0, 1, 0],                     // truncated: the peer hangs up mid-frame
    ] {
        let mut s = TcpStream::connect(producer_env.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&garbage).unwrap();
        if garbage.len() == 6 {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let mut rest = Vec::new();
        // The environment closes the connection: the read ends (EOF or reset), not times out.
        let r = s.read_to_end(&mut rest);
        assert!(
            r.is_ok()
                || r.as_ref()
                    .is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock),
            "{r:?}"
        );
    }
    // The data port still serves well-formed channels.
    let consumer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let mut writer = single_writer(&producer_env, key(0));
    let inbox = TaskInbox::new();
    let gate = consumer_env.input_gate(inbox.clone());
    consumer_env
        .connect_input(&gate, producer_env.local_addr(), key(0), 0)
        .unwrap();
    for i in 0..100 {
        writer.collect(record(i)).unwrap();
    }
    writer.finish().unwrap();
    let log = Log::default();
    let mut head = consumer_head(&log);
    assert!(consume(&inbox, &mut head, Duration::from_secs(30)).unwrap());
    assert_eq!(log.0.lock().unwrap().0.len(), 100);
}

#[test]
fn a_lost_consumer_fails_the_producer_and_a_lost_producer_fails_the_consumer() {
    // The consumer's process goes away while the producer is blocked on it.
    let producer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let consumer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let mut writer = writer(&producer_env, &[key(0)], &BufferPool::new(2, 4096));
    let inbox = TaskInbox::new();
    let gate = consumer_env.input_gate(inbox.clone());
    consumer_env
        .connect_input(&gate, producer_env.local_addr(), key(0), 0)
        .unwrap();
    let producer = std::thread::spawn(move || -> Result<()> {
        for i in 0.. {
            writer.collect(record(i))?;
        }
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(gate);
    drop(consumer_env);
    let err = producer.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("is gone"), "{err}");

    // The producer's process goes away: the consumer's channel fails, it does not hang.
    let producer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let consumer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let _sender = producer_env.register_subpartition(key(1));
    let inbox = TaskInbox::new();
    let gate = consumer_env.input_gate(inbox.clone());
    consumer_env
        .connect_input(&gate, producer_env.local_addr(), key(1), 0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(producer_env);
    let log = Log::default();
    let mut head = consumer_head(&log);
    let err = consume(&inbox, &mut head, Duration::from_secs(30)).unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");
}

#[test]
fn a_request_before_the_producer_registers_is_served_when_it_does() {
    let producer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let consumer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let inbox = TaskInbox::new();
    let gate = consumer_env.input_gate(inbox.clone());
    consumer_env
        .connect_input(&gate, producer_env.local_addr(), key(0), 0)
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut writer = single_writer(&producer_env, key(0));
    let producer = std::thread::spawn(move || -> Result<()> {
        for i in 0..5_000 {
            writer.collect(record(i))?;
        }
        writer.finish()
    });
    let log = Log::default();
    let mut head = consumer_head(&log);
    assert!(consume(&inbox, &mut head, Duration::from_secs(30)).unwrap());
    producer.join().unwrap().unwrap();
    assert!(log.0.lock().unwrap().0 == (0..5_000).map(|i| record(i).value).collect::<Vec<_>>());
}

#[test]
fn a_cancelled_consumer_fails_only_its_own_channel() {
    // Two channels from one producer process to one consumer process share a connection;
    // cancelling one consumer task fails its producer and leaves the other channel running.
    const N: u64 = 20_000;
    let producer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let consumer_env = NetworkEnvironment::start(local(), config()).unwrap();
    let writers: Vec<_> = (0..2)
        .map(|c| single_writer(&producer_env, key(c)))
        .collect();
    let inboxes: Vec<_> = (0..2).map(|_| TaskInbox::new()).collect();
    let gates: Vec<_> = (0..2)
        .map(|c| {
            let gate = consumer_env.input_gate(inboxes[c].clone());
            consumer_env
                .connect_input(&gate, producer_env.local_addr(), key(c as u32), 0)
                .unwrap();
            gate
        })
        .collect();
    let producers: Vec<_> = writers
        .into_iter()
        .map(|mut w| {
            std::thread::spawn(move || -> Result<()> {
                for i in 0..N {
                    w.collect(record(i))?;
                }
                w.finish()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    inboxes[0].cancel();
    let log = Log::default();
    let mut head = consumer_head(&log);
    assert!(consume(&inboxes[1], &mut head, Duration::from_secs(60)).unwrap());
    let mut results = producers.into_iter().map(|p| p.join().unwrap());
    let first = results.next().unwrap();
    assert!(
        first
            .as_ref()
            .is_err_and(|e| e.to_string().contains("is gone")),
        "{first:?}"
    );
    assert!(results.next().unwrap().is_ok());
    assert!(log.0.lock().unwrap().0 == (0..N).map(|i| record(i).value).collect::<Vec<_>>());
    drop(gates);
}

/// An unaligned checkpoint's barrier does not wait behind queued data: it overtakes the
/// buffers queued at the sender (no credit for them) and in the consumer's inbox, the
/// consumer snapshots before processing them, and exactly those buffers become the
/// checkpoint's in-flight data, which replays to the records written before the barrier.
#[test]
fn an_unaligned_barrier_overtakes_queued_buffers_on_both_sides() {
    const BEFORE: u64 = 1_500;
    const AFTER: u64 = 300;
    let cfg = config();
    let producer_env = NetworkEnvironment::start(local(), cfg).unwrap();
    let consumer_env = NetworkEnvironment::start(local(), cfg).unwrap();
    // Room for everything written before the barrier: the producer never blocks there.
    let pool = BufferPool::new(64, 4096);
    let mut writer = writer(&producer_env, &[key(0)], &pool);
    let barrier = CheckpointBarrier {
        id: 1,
        timestamp: 0,
        kind: weir_state::SnapshotKind::Checkpoint,
        target: String::new(),
        unaligned: true,
    };
    let inbox = TaskInbox::new();
    let gate = consumer_env.input_gate(inbox.clone());
    consumer_env
        .connect_input(&gate, producer_env.local_addr(), key(0), 0)
        .unwrap();
    for i in 0..BEFORE {
        writer.collect(record(i)).unwrap();
    }
    writer
        .checkpoint(&barrier, &mut TaskStateSnapshot::default())
        .unwrap();
    // The consumer reads nothing until the barrier is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !inbox.has_priority() {
        assert!(Instant::now() < deadline, "the barrier did not arrive");
        std::thread::sleep(Duration::from_millis(5));
    }
    let producer = std::thread::spawn(move || -> Result<()> {
        for i in BEFORE..BEFORE + AFTER {
            writer.collect(record(i))?;
        }
        writer.finish()
    });
    let mut drained = Drained::default();
    inbox.drain(Some(Instant::now()), &mut drained);
    let p = drained.priority.pop_front().expect("a priority barrier");
    let queued_here = drained.inputs.len() as u32;
    assert!(
        queued_here as usize <= cfg.exclusive_buffers + cfg.floating_buffers,
        "only buffers with credit crossed"
    );
    assert!(
        p.overtaken > queued_here,
        "the barrier overtook buffers still queued at the sender: {} in all, {queued_here} here",
        p.overtaken
    );
    let log = Log::default();
    let mut head = OneInputHead::new(
        1,
        BarrierAlignment {
            mode: CheckpointingMode::ExactlyOnce,
            unaligned: true,
            aligned_timeout_ms: 0,
        },
        BincodeSerializer::<Rec>::new(),
        Box::new(log.clone()),
        "consumer".into(),
    );
    assert_eq!(
        head.on_priority_barrier(0, p.barrier, p.overtaken),
        Some(weir_runtime::checkpoint::BarrierAction::SnapshotUnaligned(
            barrier.clone()
        ))
    );
    assert!(
        log.0.lock().unwrap().0.is_empty(),
        "snapshot before any data"
    );
    // Process until the in-flight data is complete; count the messages it took.
    let mut processed = 0;
    let in_flight = loop {
        if drained.inputs.is_empty() {
            inbox.drain(
                Some(Instant::now() + Duration::from_millis(20)),
                &mut drained,
            );
        }
        let Some((ch, msg)) = drained.inputs.pop_front() else {
            assert!(
                Instant::now() < deadline,
                "the in-flight data never completed"
            );
            continue;
        };
        processed += 1;
        if let Some(action) = head.on_message(ch as usize, msg).unwrap() {
            match action {
                weir_runtime::checkpoint::BarrierAction::InFlightComplete(1, data) => break data,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    assert_eq!(processed, p.overtaken, "the overtaken messages, no more");
    assert_eq!(
        log.0.lock().unwrap().0.len() as u64,
        BEFORE,
        "the overtaken messages hold exactly the records before the barrier"
    );
    // The recorded bytes replay to the same records.
    let replayed = Log::default();
    let mut restored = consumer_head(&replayed);
    restored.preload_in_flight(in_flight);
    assert_eq!(restored.resume().unwrap(), None);
    assert!(
        replayed.0.lock().unwrap().0 == (0..BEFORE).map(|i| record(i).value).collect::<Vec<_>>()
    );
    // The rest flows on, unrecorded.
    for (ch, msg) in drained.inputs.drain(..) {
        head.on_message(ch as usize, msg).unwrap();
    }
    assert!(consume(&inbox, &mut head, Duration::from_secs(60)).unwrap());
    producer.join().unwrap().unwrap();
    let got = log.0.lock().unwrap().0.clone();
    assert!(
        got == (0..BEFORE + AFTER)
            .map(|i| record(i).value)
            .collect::<Vec<_>>()
    );
}
