//! Arrow record batches as DataStream elements: they cross serialising exchanges (Arrow IPC
//! inside the exchange's frames) and in-memory ones, and a job over them gives the same
//! result as the same computation over plain rows.

use std::sync::Arc;
use weir::api::arrow_array::cast::AsArray;
use weir::api::arrow_array::types::Int64Type;
use weir::api::arrow_array::{Array, BooleanArray, Int64Array, RecordBatch, StringArray};
use weir::api::arrow_batch::Batch;
use weir::api::arrow_schema::{DataType, Field, Schema};
use weir::prelude::*;

fn batch(from: i64, rows: i64) -> Batch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("v", DataType::Int64, false),
    ]));
    let names: Vec<Option<String>> = (from..from + rows)
        .map(|i| (i % 5 != 0).then(|| format!("n{}", i % 7)))
        .collect();
    Batch(
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(names)),
                Arc::new(Int64Array::from((from..from + rows).collect::<Vec<_>>())),
            ],
        )
        .expect("batch"),
    )
}

/// Keeps the rows whose value is odd, as a new batch.
fn odd_rows(b: Batch) -> Batch {
    let v = b.0.column(1).as_primitive::<Int64Type>();
    let keep: BooleanArray = v.iter().map(|x| x.map(|x| x % 2 == 1)).collect();
    Batch(arrow_select::filter::filter_record_batch(&b.0, &keep).expect("filtered batch"))
}

fn run(serialize: bool) -> (i64, i64, usize) {
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(2);
    env.set_serialize_local_exchange(serialize);
    let batches: Vec<Batch> = (0..40).map(|i| batch(i * 250, 250)).collect();
    let sums = env
        .from_collection(batches)
        .map(odd_rows)
        .rebalance()
        .map(|b: Batch| {
            let v = b.0.column(1).as_primitive::<Int64Type>();
            let names = b.0.column(0).as_string::<i32>();
            let sum: i64 = v.iter().flatten().sum();
            (sum, b.num_rows() as i64, names.null_count())
        })
        .collect_values();
    env.execute("batches").expect("job");
    sums.take()
        .into_iter()
        .fold((0, 0, 0), |(s, r, n), (a, b, c)| (s + a, r + b, n + c))
}

#[test]
fn batches_cross_serialising_and_in_memory_exchanges_whole() {
    let odd: Vec<i64> = (0..10_000).filter(|i| i % 2 == 1).collect();
    let want = (
        odd.iter().sum::<i64>(),
        odd.len() as i64,
        odd.iter().filter(|i| *i % 5 == 0).count(),
    );
    assert_eq!(run(true), want, "through Arrow IPC");
    assert_eq!(run(false), want, "handed over in memory");
}

/// Every (subtask, key) pair a keyed batch exchange delivered, with the rows' values.
fn keyed_run(serialize: bool) -> Vec<(u32, Option<String>, i64)> {
    #[derive(Clone)]
    struct Tag(u32);
    impl RichFunction for Tag {
        fn open(&mut self, ctx: &weir::api::rich::OpenContext<'_>) -> Result<(), UserError> {
            self.0 = ctx.runtime().subtask;
            Ok(())
        }
    }
    impl RichFlatMapFunction<Batch, (u32, Option<String>, i64)> for Tag {
        fn flat_map(
            &mut self,
            b: Batch,
            out: &mut Collector<'_, (u32, Option<String>, i64)>,
        ) -> Result<(), UserError> {
            let names = b.0.column(0).as_string::<i32>();
            let v = b.0.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let name = (!names.is_null(i)).then(|| names.value(i).to_string());
                out.collect((self.0, name, v.value(i)));
            }
            Ok(())
        }
    }
    let env = StreamExecutionEnvironment::new();
    env.set_parallelism(3);
    env.set_serialize_local_exchange(serialize);
    let batches: Vec<Batch> = (0..20).map(|i| batch(i * 100, 100)).collect();
    let rows = env
        .from_collection(batches)
        .key_by_columns(vec![0])
        .rich_flat_map(Tag(0))
        .collect_values();
    env.execute("keyed batches").expect("job");
    rows.take()
}

#[test]
fn a_keyed_batch_exchange_sends_each_key_to_one_subtask() {
    for serialize in [true, false] {
        let rows = keyed_run(serialize);
        let mut values: Vec<i64> = rows.iter().map(|r| r.2).collect();
        values.sort_unstable();
        assert_eq!(values, (0..2000).collect::<Vec<_>>(), "every row once");
        let mut owner: std::collections::HashMap<Option<String>, u32> = Default::default();
        for (subtask, key, _) in &rows {
            let o = *owner.entry(key.clone()).or_insert(*subtask);
            assert_eq!(o, *subtask, "key {key:?} on two subtasks");
        }
        // 7 names and NULL: 8 keys, spread over more than one of the 3 subtasks.
        assert_eq!(owner.len(), 8);
        let used: std::collections::HashSet<u32> = owner.values().copied().collect();
        assert!(used.len() > 1, "{owner:?}");
    }
}
