//! Arrow record batches through a keyed (hash) exchange between real tasks: each batch is
//! split by key into one batch per consumer, and each key lands on the subtask its key group
//! belongs to, as for DataStream records with the same key.

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use std::sync::{Arc, Mutex};
use weir_core::key_group::{key_group_for_key, operator_index_for_key_group};
use weir_runtime::batch::{ArrowIpcSerializer, BatchHashWriter};
use weir_runtime::buffer::BufferPool;
use weir_runtime::head::{OneInputHead, SourceHead};
use weir_runtime::inbox::{ChannelSender, TaskInbox};
use weir_runtime::operator::{CollectingOutput, OperatorInfo, Outputs};
use weir_runtime::source::{PollStatus, SourceOutput, SourceReader};
use weir_runtime::task::{ChainHead, Task};
use weir_runtime::time::ProcessingTimeService;
use weir_runtime::writer::ChannelBuffers;
use weir_runtime::Result;

const MAX_PARALLELISM: u32 = 128;
const CONSUMERS: usize = 3;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]))
}

/// Emits `batches` batches of 1000 rows, keys `0..1000` shifted by the producer index.
struct BatchSource {
    producer: i64,
    left: usize,
}

impl SourceReader<RecordBatch> for BatchSource {
    fn poll_next(&mut self, out: &mut SourceOutput<'_, RecordBatch>) -> Result<PollStatus> {
        if self.left == 0 {
            return Ok(PollStatus::Finished);
        }
        self.left -= 1;
        let keys: Vec<i64> = (0..1000).map(|i| i * 7 + self.producer).collect();
        let names: Vec<String> = keys.iter().map(|k| format!("name-{k}")).collect();
        let batch = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(keys)) as ArrayRef,
                Arc::new(StringArray::from(names)) as ArrayRef,
            ],
        )
        .unwrap();
        out.collect(batch)?;
        Ok(PollStatus::MoreAvailable)
    }
}

#[test]
fn record_batches_are_split_by_key_across_a_hash_exchange() {
    let producers = 2;
    let inboxes: Vec<Arc<TaskInbox>> = (0..CONSUMERS).map(|_| TaskInbox::new()).collect();
    let mut gathered: Vec<Arc<Mutex<Vec<RecordBatch>>>> = Vec::new();
    let mut threads = Vec::new();
    for (c, inbox) in inboxes.iter().enumerate() {
        let (sink, got) = CollectingOutput::new();
        gathered.push(got);
        let head = OneInputHead::new(
            producers,
            weir_core::CheckpointingMode::ExactlyOnce.into(),
            ArrowIpcSerializer::new(schema()),
            Box::new(sink),
            format!("consumer {c}"),
        );
        let task = Task::new(
            format!("consumer ({}/{CONSUMERS})", c + 1),
            ChainHead::Input(Box::new(head)),
            inbox.clone(),
            BufferPool::new(4, 32 * 1024),
            100,
            ProcessingTimeService::default(),
        );
        threads.push(std::thread::spawn(move || task.run().result));
    }
    for p in 0..producers {
        // A small buffer size makes the encoded batches span several buffers.
        let pool = BufferPool::new(2 * CONSUMERS + 2, 4096);
        let senders = (0..CONSUMERS)
            .map(|c| ChannelSender::new(inboxes[c].clone(), p as u32))
            .collect();
        let writer = BatchHashWriter::new(
            ChannelBuffers::new(senders, pool.clone(), false),
            ArrowIpcSerializer::new(schema()),
            vec![0],
            MAX_PARALLELISM,
        );
        let head = SourceHead::new(
            Box::new(BatchSource {
                producer: p as i64,
                left: 5,
            }),
            Outputs::new(Box::new(writer), Vec::new()),
            OperatorInfo {
                name: "batches".into(),
                subtask: p as u32,
                parallelism: producers as u32,
                ..Default::default()
            },
        );
        let task = Task::new(
            format!("producer ({}/{producers})", p + 1),
            ChainHead::Source(Box::new(head)),
            TaskInbox::new(),
            pool,
            100,
            ProcessingTimeService::default(),
        );
        threads.push(std::thread::spawn(move || task.run().result));
    }
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let mut total = 0;
    for (c, g) in gathered.iter().enumerate() {
        for batch in g.lock().unwrap().iter() {
            assert_eq!(batch.schema(), schema());
            let keys = batch.column(0).as_primitive::<Int64Type>();
            let names = batch.column(1).as_string::<i32>();
            for row in 0..batch.num_rows() {
                let k = keys.value(row);
                assert_eq!(names.value(row), format!("name-{k}"), "rows stay whole");
                // The same placement as a DataStream keyed by an i64.
                let kg = key_group_for_key(&k, MAX_PARALLELISM);
                assert_eq!(
                    operator_index_for_key_group(MAX_PARALLELISM, CONSUMERS as u32, kg) as usize,
                    c,
                    "key {k}"
                );
            }
            total += batch.num_rows();
        }
    }
    assert_eq!(total, producers * 5 * 1000);
    assert!(
        gathered.iter().all(|g| !g.lock().unwrap().is_empty()),
        "every consumer got rows"
    );
}
