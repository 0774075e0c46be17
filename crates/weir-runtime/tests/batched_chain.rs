//! Records go down a chain in batches; control elements keep their place between them.
//!
//! An input head and a source head each feed a chain whose end logs what it receives: runs
//! of records as batches (no larger than `batch_capacity`), and watermarks in between. The
//! log, flattened, must be the input stream exactly as it was sent.

use std::sync::{Arc, Mutex};
use weir_runtime::buffer::Buffer;
use weir_runtime::checkpoint::{CheckpointBarrier, CheckpointNotice};
use weir_runtime::head::{InputChainHead, OneInputHead, SourceChainHead, SourceHead};
use weir_runtime::inbox::{ChannelEvent, ChannelMessage};
use weir_runtime::operator::{
    batch_capacity, OneInputLink, OneInputOperator, OperatorInfo, Output, OutputControl, Outputs,
};
use weir_runtime::serializer::{BincodeSerializer, TypeSerializer};
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_runtime::writer::{begin_record_frame, end_frame, watermark_frame};
use weir_runtime::{Result, StreamRecord, Watermark, WatermarkStatus};
use weir_state::TaskStateSnapshot;

/// What the end of the chain saw.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Batch(Vec<(u64, Option<i64>)>),
    Record(u64, Option<i64>),
    Watermark(i64),
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

impl Output<u64> for Log {
    fn collect(&mut self, r: StreamRecord<u64>) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .push(Seen::Record(r.value, r.timestamp()));
        Ok(())
    }
    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<u64>>) -> Result<()> {
        let b = batch.drain(..).map(|r| (r.value, r.timestamp())).collect();
        self.0.lock().unwrap().push(Seen::Batch(b));
        Ok(())
    }
}

/// Doubles each value, with the default (record by record) batch handling, so the chain
/// has a link that takes batches in and hands records out one at a time.
struct Double;

impl OneInputOperator<u64, u64> for Double {
    fn process_element(&mut self, r: StreamRecord<u64>, out: &mut Outputs<u64>) -> Result<()> {
        out.collect(r.replace(r.value * 2))
    }
}

/// Keeps even values, looping over a batch in place.
struct Even;

impl OneInputOperator<u64, u64> for Even {
    fn process_element(&mut self, r: StreamRecord<u64>, out: &mut Outputs<u64>) -> Result<()> {
        if r.value.is_multiple_of(2) {
            out.collect(r)?;
        }
        Ok(())
    }
    fn process_batch(
        &mut self,
        batch: &mut Vec<StreamRecord<u64>>,
        out: &mut Outputs<u64>,
    ) -> Result<()> {
        batch.retain(|r| r.value.is_multiple_of(2));
        out.collect_batch(batch)
    }
}

/// Flattens a log into the element sequence, checking batch sizes on the way.
fn flatten(seen: &[Seen]) -> Vec<Seen> {
    let cap = batch_capacity::<u64>();
    let mut flat = Vec::new();
    for s in seen {
        match s {
            Seen::Batch(b) => {
                assert!(!b.is_empty(), "an empty batch was handed on");
                assert!(b.len() <= cap, "batch of {} > capacity {cap}", b.len());
                flat.extend(b.iter().map(|&(v, t)| Seen::Record(v, t)));
            }
            other => flat.push(other.clone()),
        }
    }
    flat
}

fn info(name: &str) -> OperatorInfo {
    OperatorInfo {
        name: name.into(),
        max_parallelism: 128,
        parallelism: 1,
        ..Default::default()
    }
}

/// The `Even` operator in front of `log`.
fn even_into(log: &Log) -> OneInputLink<u64, u64, Even> {
    OneInputLink::new(
        Even,
        Outputs::new(Box::new(log.clone()), vec![]),
        info("even"),
    )
    .unwrap()
}

#[test]
fn an_input_head_batches_records_and_keeps_watermarks_in_place() {
    let log = Log::default();
    let even = even_into(&log);
    let mut head = OneInputHead::new(
        1,
        weir_core::CheckpointingMode::ExactlyOnce.into(),
        BincodeSerializer::<u64>::new(),
        Box::new(even),
        "test".into(),
    );
    // Two buffers: 3000 records with a watermark after every 700th, split mid-frame.
    let ser = BincodeSerializer::<u64>::new();
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for i in 0..3000u64 {
        let mut f = Vec::new();
        begin_record_frame(&mut f, Some(i as i64));
        ser.serialize(&i, &mut f).unwrap();
        end_frame(&mut f).unwrap();
        stream.extend_from_slice(&f);
        if i.is_multiple_of(2) {
            expected.push(Seen::Record(i, Some(i as i64)));
        }
        if i % 700 == 699 {
            stream.extend_from_slice(&watermark_frame(Watermark(i as i64)));
            expected.push(Seen::Watermark(i as i64));
        }
    }
    let cut = stream.len() / 2 + 3;
    for part in [&stream[..cut], &stream[cut..]] {
        let msg = ChannelMessage::Buffer(Buffer::unpooled(part.to_vec()));
        assert!(head.on_message(0, msg).unwrap().is_none());
    }
    head.on_message(0, ChannelMessage::Event(ChannelEvent::EndOfPartition))
        .unwrap();
    // The end of the only channel moves event time to the end.
    expected.push(Seen::Watermark(i64::MAX));
    let seen = log.seen();
    assert!(
        seen.iter()
            .any(|s| matches!(s, Seen::Batch(b) if b.len() > 1)),
        "records arrived in batches"
    );
    assert_eq!(flatten(&seen), expected);
    let mut counts = Vec::new();
    head.visit_metrics(&mut |m| counts.push((m.name.clone(), m.records_in, m.records_out)));
    assert_eq!(counts, vec![("even".to_string(), 3000, 1500)]);
}

/// Emits `0..n` with timestamps, 500 per poll, and a watermark after every 300th record.
struct Numbers {
    next: u64,
    n: u64,
}

impl SourceReader<u64> for Numbers {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, u64>) -> Result<PollStatus> {
        for _ in 0..500 {
            if self.next == self.n {
                return Ok(PollStatus::Finished);
            }
            out.collect_with_timestamp(self.next, self.next as i64)?;
            if self.next % 300 == 299 {
                out.emit_watermark(Watermark(self.next as i64))?;
            }
            self.next += 1;
        }
        Ok(PollStatus::MoreAvailable)
    }
}

/// What [`Numbers`] emits, after a chain that turns value `i` into `f(i)` (or drops it).
fn numbers_through(n: u64, f: impl Fn(u64) -> Option<u64>) -> Vec<Seen> {
    let mut expected = Vec::new();
    for i in 0..n {
        if let Some(v) = f(i) {
            expected.push(Seen::Record(v, Some(i as i64)));
        }
        if i % 300 == 299 {
            expected.push(Seen::Watermark(i as i64));
        }
    }
    expected
}

#[test]
fn a_source_head_batches_each_poll_through_record_and_batch_links() {
    let log = Log::default();
    let even = even_into(&log);
    let double =
        OneInputLink::new(Double, Outputs::new(Box::new(even), vec![]), info("double")).unwrap();
    let mut head = SourceHead::new(
        Box::new(Numbers { next: 0, n: 2500 }),
        Outputs::new(Box::new(double), vec![]),
        info("numbers"),
    );
    let mut polls = 0;
    while head.poll().unwrap() != PollStatus::Finished {
        polls += 1;
        // Nothing waits in a batch between two polls.
        let flat = flatten(&log.seen());
        let records = flat
            .iter()
            .filter(|s| matches!(s, Seen::Record(..)))
            .count();
        assert_eq!(records, 500 * polls);
    }
    let expected = numbers_through(2500, |i| Some(i * 2));
    // The record-by-record link in the middle hands records on one at a time.
    assert!(log.seen().iter().all(|s| !matches!(s, Seen::Batch(_))));
    assert_eq!(flatten(&log.seen()), expected);
}

#[test]
fn a_source_feeding_a_batch_link_hands_it_whole_batches() {
    let log = Log::default();
    let even = even_into(&log);
    let mut head = SourceHead::new(
        Box::new(Numbers { next: 0, n: 2500 }),
        Outputs::new(Box::new(even), vec![]),
        info("numbers"),
    );
    while head.poll().unwrap() != PollStatus::Finished {}
    let expected = numbers_through(2500, |i| i.is_multiple_of(2).then_some(i));
    let seen = log.seen();
    assert!(seen.iter().all(|s| !matches!(s, Seen::Record(..))));
    assert_eq!(flatten(&seen), expected);
}
