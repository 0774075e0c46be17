//! KeyedStream: a stream partitioned by key, with per-key rolling aggregations.

use crate::datastream::DataStream;
use crate::exchange::KeySelector;
use crate::graph::NodeKind;
use crate::operators::KeyedReduceOp;
use crate::types::Data;
use std::hash::Hash;
use std::ops::Add;
use weir_runtime::operator::OneInputLink;

/// A stream partitioned by a key (Flink's `KeyedStream`): all elements with equal keys are
/// processed by the same subtask, which keeps per-key state.
pub struct KeyedStream<T, K> {
    pub(crate) stream: DataStream<T>,
    pub(crate) key_of: KeySelector<T, K>,
}

impl<T, K> Clone for KeyedStream<T, K> {
    fn clone(&self) -> Self {
        KeyedStream {
            stream: self.stream.clone(),
            key_of: self.key_of.clone(),
        }
    }
}

impl<T: Data, K: Data + Hash + Eq> KeyedStream<T, K> {
    fn rolling<F>(&self, name: &str, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        let key_of = self.key_of.clone();
        self.stream
            .one_input(name, NodeKind::Operator, move |info, out| {
                let op = KeyedReduceOp::new(key_of.clone(), f.clone(), info)?;
                Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
            })
    }

    /// Combines each element with the key's previous result and emits the new result
    /// (the first element of a key is emitted as it is).
    pub fn reduce<F>(&self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.rolling("Keyed Reduce", f)
    }

    /// Rolling sum of the field `field` points to. The other fields keep the values of the
    /// key's first element, as in Flink.
    pub fn sum<N, L>(&self, field: L) -> DataStream<T>
    where
        N: Copy + Add<Output = N>,
        L: Fn(&mut T) -> &mut N + Clone + Send + Sync + 'static,
    {
        self.rolling("Keyed Aggregation", move |mut acc: T, mut v: T| {
            let add = *field(&mut v);
            let f = field(&mut acc);
            *f = *f + add;
            acc
        })
    }

    /// Rolling minimum of a field; the other fields keep the key's first element's values.
    pub fn min<N, L>(&self, field: L) -> DataStream<T>
    where
        N: Copy + PartialOrd,
        L: Fn(&mut T) -> &mut N + Clone + Send + Sync + 'static,
    {
        self.rolling("Keyed Aggregation", move |mut acc: T, mut v: T| {
            let x = *field(&mut v);
            let f = field(&mut acc);
            if x < *f {
                *f = x;
            }
            acc
        })
    }

    /// Rolling maximum of a field; the other fields keep the key's first element's values.
    pub fn max<N, L>(&self, field: L) -> DataStream<T>
    where
        N: Copy + PartialOrd,
        L: Fn(&mut T) -> &mut N + Clone + Send + Sync + 'static,
    {
        self.rolling("Keyed Aggregation", move |mut acc: T, mut v: T| {
            let x = *field(&mut v);
            let f = field(&mut acc);
            if x > *f {
                *f = x;
            }
            acc
        })
    }

    /// The element with the smallest `by` value so far (the earlier one on ties).
    pub fn min_by<N, B>(&self, by: B) -> DataStream<T>
    where
        N: PartialOrd,
        B: Fn(&T) -> N + Clone + Send + Sync + 'static,
    {
        self.rolling(
            "Keyed Aggregation",
            move |acc: T, v: T| if by(&v) < by(&acc) { v } else { acc },
        )
    }

    /// The element with the largest `by` value so far (the earlier one on ties).
    pub fn max_by<N, B>(&self, by: B) -> DataStream<T>
    where
        N: PartialOrd,
        B: Fn(&T) -> N + Clone + Send + Sync + 'static,
    {
        self.rolling(
            "Keyed Aggregation",
            move |acc: T, v: T| if by(&v) > by(&acc) { v } else { acc },
        )
    }

    /// Runs a [`KeyedProcessFunction`](crate::keyed_process::KeyedProcessFunction) with
    /// per-key state and timers.
    pub fn process<O, P>(&self, f: P) -> DataStream<O>
    where
        O: Data,
        P: crate::keyed_process::KeyedProcessFunction<K, T, O>,
    {
        let key_of = self.key_of.clone();
        self.stream
            .one_input("KeyedProcess", NodeKind::Operator, move |info, out| {
                let mut f = f.clone();
                weir_runtime::operator::guarded(info, || {
                    f.open(&crate::functions::RuntimeContext::of(info))
                        .map_err(|e| crate::functions::user_error(info, e))
                })?;
                let op = crate::keyed_process::KeyedProcessOp::new(f, key_of.clone(), info)?;
                Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
            })
    }

    /// The keyed stream as a plain stream (still hash-partitioned towards its next operator).
    pub fn as_stream(&self) -> &DataStream<T> {
        &self.stream
    }
}

/// A keyed stream is a stream, as in Flink: non-keyed transformations apply to it, with
/// the records partitioned by key towards them.
impl<T, K> std::ops::Deref for KeyedStream<T, K> {
    type Target = DataStream<T>;
    fn deref(&self) -> &DataStream<T> {
        &self.stream
    }
}
