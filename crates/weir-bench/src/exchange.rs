//! What a channel between two tasks costs, by transport: records of the word-count shape
//! `(String, i64)` from one producer thread to one consumer thread, handed over in memory
//! (`exchange-typed`), as serialised buffers in memory (`exchange-bytes`), or as buffers over
//! a TCP connection on loopback with credit-based flow control (`exchange-tcp`, the network
//! data plane of the cluster). The consumer decodes every record and sums a checksum.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::{BarrierAlignment, CheckpointingMode};
use weir_runtime::buffer::BufferPool;
use weir_runtime::checkpoint::{CheckpointBarrier, CheckpointNotice};
use weir_runtime::exchange::{ChannelKey, CreditConfig, NetworkEnvironment};
use weir_runtime::head::{InputChainHead, OneInputHead};
use weir_runtime::inbox::{ChannelSender, Drained, TaskInbox};
use weir_runtime::operator::{Output, OutputControl};
use weir_runtime::partitioner::FirstChannel;
use weir_runtime::serializer::BincodeSerializer;
use weir_runtime::writer::{ChannelBuffers, RecordWriter};
use weir_runtime::{Result, RuntimeError, StreamRecord, Watermark, WatermarkStatus};
use weir_state::TaskStateSnapshot;

type Rec = (String, i64);

/// Sums what arrives.
#[derive(Clone, Default)]
struct Sum(Arc<Mutex<(u64, u64)>>);

impl OutputControl for Sum {
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

impl Output<Rec> for Sum {
    fn collect(&mut self, r: StreamRecord<Rec>) -> Result<()> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += 1;
        s.1 = s.1.wrapping_add(r.value.1 as u64 ^ r.value.0.len() as u64);
        Ok(())
    }

    fn collect_batch(&mut self, batch: &mut Vec<StreamRecord<Rec>>) -> Result<()> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for r in batch.drain(..) {
            s.0 += 1;
            s.1 = s.1.wrapping_add(r.value.1 as u64 ^ r.value.0.len() as u64);
        }
        Ok(())
    }
}

/// Records out and checksum of one run, and its seconds.
pub struct ExchangeOutcome {
    /// Wall time from the first record written to the last one decoded.
    pub seconds: f64,
    /// Records decoded.
    pub records: u64,
    /// A checksum over the records.
    pub checksum: u64,
}

const WORDS: [&str; 8] = [
    "stream", "weir", "flink", "window", "barrier", "credit", "key", "state",
];

/// Runs `workload` (`exchange-typed`, `exchange-bytes` or `exchange-tcp`) over `events`.
pub fn run(workload: &str, events: u64) -> Result<ExchangeOutcome> {
    let inbox = TaskInbox::new();
    let pool = BufferPool::new(16, 32 * 1024);
    let key = ChannelKey {
        job: 1,
        attempt: 0,
        producer_vertex: 0,
        producer_subtask: 0,
        consumer_vertex: 1,
        consumer_subtask: 0,
    };
    let local: SocketAddr = ([127, 0, 0, 1], 0).into();
    // The network environments live until the run ends.
    let mut envs = Vec::new();
    let sender = match workload {
        "exchange-typed" | "exchange-bytes" => ChannelSender::new(inbox.clone(), 0),
        "exchange-tcp" => {
            let producer = NetworkEnvironment::start(local, CreditConfig::default())?;
            let consumer = NetworkEnvironment::start(local, CreditConfig::default())?;
            let sender = producer.register_subpartition(key);
            let gate = consumer.input_gate(inbox.clone());
            consumer.connect_input(&gate, producer.local_addr(), key, 0)?;
            envs.push((producer, consumer, gate));
            sender
        }
        other => {
            return Err(RuntimeError::Other(format!(
                "unknown exchange workload '{other}'"
            )))
        }
    };
    let channels = ChannelBuffers::new(vec![sender], pool, false);
    let serializer = BincodeSerializer::<Rec>::new();
    let mut writer = if workload == "exchange-typed" {
        RecordWriter::in_memory(channels, serializer, FirstChannel)
    } else {
        RecordWriter::new(channels, serializer, FirstChannel)
    };
    let sum = Sum::default();
    let mut head = OneInputHead::new(
        1,
        BarrierAlignment::from(CheckpointingMode::ExactlyOnce),
        BincodeSerializer::<Rec>::new(),
        Box::new(sum.clone()),
        "consumer".into(),
    );
    let start = Instant::now();
    let mut producer = Some(std::thread::spawn(move || -> Result<()> {
        for i in 0..events {
            let word = WORDS[(i % WORDS.len() as u64) as usize];
            writer.collect(StreamRecord::new((word.to_string(), i as i64)))?;
        }
        writer.finish()
    }));
    let join = |p: std::thread::JoinHandle<Result<()>>| {
        p.join()
            .map_err(|_| RuntimeError::Other("the producer thread panicked".into()))?
    };
    let mut drained = Drained::default();
    while !head.input_ended() {
        inbox.drain(
            Some(Instant::now() + Duration::from_millis(50)),
            &mut drained,
        );
        let idle = drained.inputs.is_empty();
        while let Some((ch, msg)) = drained.inputs.pop_front() {
            head.on_message(ch as usize, msg)?;
        }
        // A producer that failed never sends its end: surface its error.
        if idle && producer.as_ref().is_some_and(|p| p.is_finished()) {
            if let Some(p) = producer.take() {
                join(p)?;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if let Some(p) = producer.take() {
        join(p)?;
    }
    drop(envs);
    let (records, checksum) = *sum.0.lock().unwrap_or_else(|p| p.into_inner());
    Ok(ExchangeOutcome {
        seconds,
        records,
        checksum,
    })
}
