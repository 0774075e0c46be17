//! Records handed over in memory between tasks of one process: the same stream as the byte
//! path, bounded by the producer's pool, and still bytes where a checkpoint needs bytes.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_core::{BarrierAlignment, CheckpointingMode};
use weir_runtime::buffer::BufferPool;
use weir_runtime::checkpoint::{BarrierAction, CheckpointBarrier, CheckpointNotice};
use weir_runtime::head::{InputChainHead, OneInputHead};
use weir_runtime::inbox::{ChannelMessage, ChannelSender, Drained, TaskInbox};
use weir_runtime::operator::{Output, OutputControl};
use weir_runtime::partitioner::{FirstChannel, KeyGroupSelector};
use weir_runtime::reader::{ChannelDecoder, Frame};
use weir_runtime::serializer::{BincodeSerializer, TypeSerializer};
use weir_runtime::writer::{ChannelBuffers, RecordWriter};
use weir_runtime::{Result, StreamRecord, Watermark, WatermarkStatus};
use weir_state::{SnapshotKind, TaskStateSnapshot};

type Rec = (String, u64);
type Writer = RecordWriter<Rec, BincodeSerializer<Rec>, FirstChannel>;

/// What the end of a chain saw, one entry per record or watermark.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Record(Rec, Option<i64>),
    Watermark(i64),
    Finished,
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

impl OutputControl for Log {
    fn emit_watermark(&mut self, wm: Watermark) -> Result<()> {
        self.0.lock().unwrap().push(Seen::Watermark(wm.0));
        Ok(())
    }
    fn emit_watermark_status(&mut self, _: WatermarkStatus) -> Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.0.lock().unwrap().push(Seen::Finished);
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
        self.0.lock().unwrap().push({
            let (v, ts) = r.into_parts();
            Seen::Record(v, ts)
        });
        Ok(())
    }
}

fn barrier(id: u64) -> CheckpointBarrier {
    CheckpointBarrier {
        id,
        timestamp: 0,
        kind: SnapshotKind::Checkpoint,
        target: String::new(),
        unaligned: false,
    }
}

fn record(i: u64) -> StreamRecord<Rec> {
    let r = (format!("key-{}", i % 37), i);
    if i.is_multiple_of(3) {
        StreamRecord::new(r)
    } else {
        StreamRecord::with_timestamp(r, i as i64)
    }
}

fn drain(inbox: &TaskInbox) -> Vec<(u32, ChannelMessage)> {
    let mut d = Drained::default();
    inbox.drain(Some(std::time::Instant::now()), &mut d);
    d.inputs.into_iter().collect()
}

/// Writes a stream of records (some in batches), watermarks and a barrier through a keyed
/// writer into two consumers, and returns what each consumer's chain saw.
fn run_stream(in_memory: bool) -> (Vec<Vec<Seen>>, usize) {
    let inboxes = [TaskInbox::new(), TaskInbox::new()];
    let senders = inboxes
        .iter()
        .map(|i| ChannelSender::new(i.clone(), 0))
        .collect();
    let pool = BufferPool::new(1000, 512);
    let channels = ChannelBuffers::new(senders, pool, false);
    let selector = KeyGroupSelector::new(|r: &Rec| r.0.clone(), 128);
    let s = BincodeSerializer::<Rec>::new();
    let mut w: Box<dyn Output<Rec>> = if in_memory {
        let w = RecordWriter::in_memory(channels, s, selector);
        assert!(w.is_in_memory());
        Box::new(w)
    } else {
        Box::new(RecordWriter::new(channels, s, selector))
    };
    let mut i = 0;
    for round in 0..20 {
        if round % 2 == 0 {
            for _ in 0..50 {
                w.collect(record(i)).unwrap();
                i += 1;
            }
        } else {
            let mut batch: Vec<_> = (i..i + 70).map(record).collect();
            i += 70;
            w.collect_batch(&mut batch).unwrap();
            assert!(batch.is_empty());
        }
        w.emit_watermark(Watermark(round * 10)).unwrap();
        if round == 10 {
            w.checkpoint(&barrier(1), &mut TaskStateSnapshot::default())
                .unwrap();
        }
    }
    w.finish().unwrap();
    let mut typed_messages = 0;
    let mut out = Vec::new();
    for inbox in &inboxes {
        let log = Log::default();
        let mut head = OneInputHead::new(
            1,
            BarrierAlignment::from(CheckpointingMode::ExactlyOnce),
            BincodeSerializer::<Rec>::new(),
            Box::new(log.clone()),
            "consumer".into(),
        );
        let mut snapshots = 0;
        for (ch, msg) in drain(inbox) {
            if matches!(msg, ChannelMessage::Records(_)) {
                typed_messages += 1;
            }
            if let Some(BarrierAction::Snapshot(b)) = head.on_message(ch as usize, msg).unwrap() {
                assert_eq!(b.id, 1);
                snapshots += 1;
            }
        }
        assert_eq!(snapshots, 1, "the barrier reached every consumer once");
        assert!(head.input_ended());
        head.end_of_input().unwrap();
        out.push(log.seen());
    }
    (out, typed_messages)
}

#[test]
fn in_memory_batches_carry_the_same_stream_as_bytes() {
    let (bytes, typed_in_bytes) = run_stream(false);
    let (memory, typed) = run_stream(true);
    assert_eq!(typed_in_bytes, 0);
    assert!(typed > 0, "no batch went in memory");
    assert_eq!(memory, bytes);
    // Every record arrived once; each consumer saw every watermark, and the end of its
    // input advanced event time to the end.
    let records: usize = memory
        .iter()
        .map(|s| s.iter().filter(|e| matches!(e, Seen::Record(..))).count())
        .sum();
    assert_eq!(records, 10 * 50 + 10 * 70);
    for seen in &memory {
        assert_eq!(
            seen.iter()
                .filter(|e| matches!(e, Seen::Watermark(_)))
                .count(),
            21
        );
        assert_eq!(seen[seen.len() - 2], Seen::Watermark(i64::MAX));
        assert_eq!(seen.last(), Some(&Seen::Finished));
    }
}

#[test]
fn in_memory_batches_are_bounded_by_the_pool() {
    let inbox = TaskInbox::new();
    let pool = BufferPool::new(2, 256);
    let channels = ChannelBuffers::new(
        vec![ChannelSender::new(inbox.clone(), 0)],
        pool.clone(),
        false,
    );
    let mut w = RecordWriter::in_memory(channels, BincodeSerializer::<u64>::new(), FirstChannel);
    let producer = std::thread::spawn(move || {
        // A batch is sent once it holds 256 encoded bytes: 13 records of 8 + 13 frame bytes.
        // Two batches take both permits; the third waits.
        for i in 0..16 * 5u64 {
            w.collect(StreamRecord::new(i))?;
        }
        w.finish()
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !producer.is_finished(),
        "the third batch must wait for a permit"
    );
    assert_eq!(pool.in_use(), 2);
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Until the end of partition arrived, or the producer stopped without sending it (its
    // error is reported by the join below).
    while !got.ends_with(&[u64::MAX]) && std::time::Instant::now() < deadline {
        let messages = drain(&inbox);
        if messages.is_empty() && producer.is_finished() {
            break;
        }
        for (_, msg) in messages {
            match msg {
                ChannelMessage::Records(r) => got.extend(
                    r.into_records()
                        .downcast::<u64>()
                        .unwrap()
                        .iter()
                        .map(|r| r.value),
                ),
                ChannelMessage::Event(_) => got.push(u64::MAX),
                ChannelMessage::Buffer(_) => {}
                ChannelMessage::Error(e) => panic!("the channel failed: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    producer.join().unwrap().unwrap();
    assert_eq!(got.pop(), Some(u64::MAX), "the end of partition arrived");
    assert_eq!(got, (0..80).collect::<Vec<_>>());
    assert_eq!(pool.in_use(), 0, "every permit came back");
}

#[test]
fn in_memory_batches_hold_a_buffers_worth_of_encoded_bytes() {
    let inbox = TaskInbox::new();
    let pool = BufferPool::new(100, 4096);
    let channels = ChannelBuffers::new(vec![ChannelSender::new(inbox.clone(), 0)], pool, false);
    let mut w = RecordWriter::in_memory(channels, BincodeSerializer::<String>::new(), FirstChannel);
    // Large values: the batch is bounded by their encoded size, not by their count.
    for i in 0..20 {
        w.collect(StreamRecord::new(format!("{i:>1000}"))).unwrap();
    }
    let mut batch: Vec<_> = (0..20)
        .map(|i| StreamRecord::new(format!("{i:>1000}")))
        .collect();
    w.collect_batch(&mut batch).unwrap();
    w.flush().unwrap();
    let mut sizes = Vec::new();
    for (_, msg) in drain(&inbox) {
        if let ChannelMessage::Records(r) = msg {
            sizes.push(r.into_records().downcast::<String>().unwrap().len());
        }
    }
    assert_eq!(sizes.iter().sum::<usize>(), 40);
    // 1000 bytes + 8 (length) + 13 (frame) per record: the fourth leaves the batch under
    // 4096 bytes, the fifth fills it.
    assert!(sizes.iter().all(|&n| n <= 5), "{sizes:?}");
}

fn two_channel_head(
    alignment: BarrierAlignment,
    log: &Log,
) -> OneInputHead<Rec, BincodeSerializer<Rec>> {
    OneInputHead::new(
        2,
        alignment,
        BincodeSerializer::<Rec>::new(),
        Box::new(log.clone()),
        "consumer".into(),
    )
}

/// Two producers, each with its own pool and writer, into one consumer's inbox.
fn producers(inbox: &Arc<TaskInbox>) -> Vec<(BufferPool, Writer)> {
    (0..2)
        .map(|ch| {
            let pool = BufferPool::new(8, 4096);
            let channels = ChannelBuffers::new(
                vec![ChannelSender::new(inbox.clone(), ch)],
                pool.clone(),
                false,
            );
            (
                pool,
                RecordWriter::in_memory(channels, BincodeSerializer::new(), FirstChannel),
            )
        })
        .collect()
}

#[test]
fn unaligned_checkpoints_record_in_memory_batches_as_frames() {
    let inbox = TaskInbox::new();
    let mut p = producers(&inbox);
    let log = Log::default();
    let mut head = two_channel_head(
        BarrierAlignment {
            mode: CheckpointingMode::ExactlyOnce,
            unaligned: true,
            aligned_timeout_ms: 0,
        },
        &log,
    );
    let mut snap = TaskStateSnapshot::default();
    // Channel 0 delivers its barrier first; channel 1 still sends records before its own.
    p[0].1.checkpoint(&barrier(1), &mut snap).unwrap();
    for i in 0..5 {
        p[1].1.collect(record(i)).unwrap();
    }
    p[1].1.flush().unwrap();
    p[1].1.checkpoint(&barrier(1), &mut snap).unwrap();
    let mut actions = Vec::new();
    for (ch, msg) in drain(&inbox) {
        if let Some(a) = head.on_message(ch as usize, msg).unwrap() {
            actions.push(a);
        }
    }
    assert!(matches!(actions[0], BarrierAction::SnapshotUnaligned(ref b) if b.id == 1));
    let BarrierAction::InFlightComplete(1, data) = &actions[1] else {
        panic!("no in-flight data: {actions:?}");
    };
    assert_eq!(data.len(), 1);
    assert_eq!(data[0].0, 1, "the data is channel 1's");
    let s = BincodeSerializer::<Rec>::new();
    let mut recorded = Vec::new();
    ChannelDecoder::default()
        .decode(&data[0].1, |f| {
            if let Frame::Record(ts, b) = f {
                recorded.push(StreamRecord::from_parts(s.deserialize(b)?, ts));
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(recorded, (0..5).map(record).collect::<Vec<_>>());
    // The records were processed too (unaligned blocks nothing).
    assert_eq!(log.seen().len(), 5);
}

#[test]
fn alignment_holds_in_memory_batches_with_their_permits() {
    let inbox = TaskInbox::new();
    let mut p = producers(&inbox);
    let log = Log::default();
    let mut head = two_channel_head(BarrierAlignment::from(CheckpointingMode::ExactlyOnce), &log);
    let mut snap = TaskStateSnapshot::default();
    p[0].1.checkpoint(&barrier(1), &mut snap).unwrap();
    for i in 0..3 {
        p[0].1.collect(record(i)).unwrap();
    }
    p[0].1.flush().unwrap();
    for (ch, msg) in drain(&inbox) {
        assert_eq!(head.on_message(ch as usize, msg).unwrap(), None);
    }
    assert!(log.seen().is_empty(), "records after the barrier wait");
    assert!(p[0].0.in_use() > 0, "held records keep their permit");
    p[1].1.collect(record(10)).unwrap();
    p[1].1.checkpoint(&barrier(1), &mut snap).unwrap();
    let mut snapshot = None;
    for (ch, msg) in drain(&inbox) {
        if let Some(a) = head.on_message(ch as usize, msg).unwrap() {
            snapshot = Some(a);
        }
    }
    assert_eq!(snapshot, Some(BarrierAction::Snapshot(barrier(1))));
    assert_eq!(
        log.seen(),
        vec![Seen::Record(record(10).value, record(10).timestamp())]
    );
    assert_eq!(head.resume().unwrap(), None);
    assert_eq!(
        p[0].0.in_use(),
        0,
        "processed records give their permit back"
    );
    let after: Vec<Seen> = (0..3)
        .map(|i| Seen::Record(record(i).value, record(i).timestamp()))
        .collect();
    assert_eq!(log.seen()[1..], after[..]);
}

/// While a checkpoint aligns, a channel that delivered its barrier is not read: what its
/// producer sends after the barrier stays in the producer's buffers, so the producer waits
/// once its pool is used up, and the consumer holds no more than that pool. Both the byte
/// path and the in-memory path.
fn alignment_memory_is_bounded_by_the_producers_pool(in_memory: bool) {
    const RECORDS: u64 = 20_000;
    let inbox = TaskInbox::new();
    let pools: Vec<BufferPool> = (0..2).map(|_| BufferPool::new(4, 1024)).collect();
    let writer = |ch: u32| {
        let channels = ChannelBuffers::new(
            vec![ChannelSender::new(inbox.clone(), ch)],
            pools[ch as usize].clone(),
            false,
        );
        if in_memory {
            RecordWriter::in_memory(channels, BincodeSerializer::<Rec>::new(), FirstChannel)
        } else {
            RecordWriter::new(channels, BincodeSerializer::<Rec>::new(), FirstChannel)
        }
    };
    let (mut fast, mut slow) = (writer(0), writer(1));
    let log = Log::default();
    let mut head = two_channel_head(BarrierAlignment::from(CheckpointingMode::ExactlyOnce), &log);
    let producer = std::thread::spawn(move || -> Result<Writer> {
        let mut snap = TaskStateSnapshot::default();
        fast.checkpoint(&barrier(1), &mut snap)?;
        for i in 0..RECORDS {
            fast.collect(record(i))?;
        }
        fast.flush()?;
        Ok(fast)
    });
    // Read everything that arrives until the producer has been stuck for a while.
    let mut quiet_rounds = 0;
    while quiet_rounds < 20 {
        let messages = drain(&inbox);
        if messages.is_empty() {
            quiet_rounds += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        for (ch, msg) in messages {
            assert_eq!(head.on_message(ch as usize, msg).unwrap(), None);
        }
    }
    assert!(
        !producer.is_finished(),
        "the producer must wait for buffers"
    );
    assert!(log.seen().is_empty(), "records after the barrier wait");
    assert_eq!(
        pools[0].in_use(),
        pools[0].capacity(),
        "held data fills the pool"
    );
    assert!(pools[0].max_in_use() <= pools[0].capacity());
    // The last barrier arrives: the snapshot, then everything held, then the rest.
    let mut snap = TaskStateSnapshot::default();
    slow.checkpoint(&barrier(1), &mut snap).unwrap();
    let mut actions = Vec::new();
    for (ch, msg) in drain(&inbox) {
        actions.extend(head.on_message(ch as usize, msg).unwrap());
    }
    assert_eq!(actions, vec![BarrierAction::Snapshot(barrier(1))]);
    let mut last_seen = 0;
    while log.seen().len() < RECORDS as usize {
        assert_eq!(head.resume().unwrap(), None);
        for (ch, msg) in drain(&inbox) {
            assert_eq!(head.on_message(ch as usize, msg).unwrap(), None);
        }
        let seen = log.seen().len();
        if seen == last_seen {
            std::thread::sleep(Duration::from_millis(1));
        }
        last_seen = seen;
    }
    producer.join().expect("producer panicked").unwrap();
    let expected: Vec<Seen> = (0..RECORDS)
        .map(|i| Seen::Record(record(i).value, record(i).timestamp()))
        .collect();
    assert_eq!(log.seen(), expected, "every record once, in order");
}

#[test]
fn alignment_memory_is_bounded_by_the_producers_pool_for_bytes() {
    alignment_memory_is_bounded_by_the_producers_pool(false);
}

#[test]
fn alignment_memory_is_bounded_by_the_producers_pool_in_memory() {
    alignment_memory_is_bounded_by_the_producers_pool(true);
}
