//! WindowedStream: the API of windows on a keyed stream.

use super::assigners::WindowAssigner;
use super::evictors::Evictor;
use super::fast::EventTimeWindowOperator;
use super::functions::{PassThrough, ProcessWindowFunction, WindowContext};
use super::operator::{
    AggregateContents, ListContents, ReduceContents, WindowContents, WindowOperator,
};
use super::triggers::Trigger;
use super::Window;
use crate::datastream::DataStream;
use crate::functions::{Collector, OutputTag, UserError};
use crate::graph::NodeKind;
use crate::keyed::KeyedStream;
use crate::types::Data;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use weir_core::StateBackendKind;
use weir_runtime::operator::{OneInputLink, OperatorInfo};
use weir_state::AggregateFunction;

/// A keyed stream cut into windows (Flink's `WindowedStream`).
pub struct WindowedStream<T, K, W, A> {
    keyed: KeyedStream<T, K>,
    assigner: A,
    trigger: Option<Arc<dyn Trigger<T, K, W>>>,
    evictor: Option<Arc<dyn Evictor<T, W>>>,
    allowed_lateness: i64,
    late_tag: Option<String>,
}

impl<T: Data, K: Data + Hash + Eq> KeyedStream<T, K> {
    /// Groups each key's elements into the windows `assigner` gives them.
    pub fn window<W: Window, A: WindowAssigner<T, W>>(
        &self,
        assigner: A,
    ) -> WindowedStream<T, K, W, A> {
        WindowedStream {
            keyed: self.clone(),
            assigner,
            trigger: None,
            evictor: None,
            allowed_lateness: 0,
            late_tag: None,
        }
    }
}

impl<T: Data, K: Data + Hash + Eq, W: Window, A: WindowAssigner<T, W>> WindowedStream<T, K, W, A> {
    /// Replaces the assigner's default trigger.
    ///
    /// # Panics
    /// If the assigner merges windows (sessions) and the trigger cannot merge, as Flink
    /// rejects it.
    pub fn trigger(mut self, trigger: impl Trigger<T, K, W> + 'static) -> Self {
        assert!(
            !self.assigner.is_merging() || trigger.can_merge(),
            "a merging window assigner (sessions) needs a trigger that can merge windows"
        );
        self.trigger = Some(Arc::new(trigger));
        self
    }

    /// Removes elements before or after each firing; the window then keeps every element.
    pub fn evictor(mut self, evictor: impl Evictor<T, W> + 'static) -> Self {
        self.evictor = Some(Arc::new(evictor));
        self
    }

    /// Keeps event-time windows for `lateness` after their end; late elements within it fire
    /// the window again.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = lateness.as_millis() as i64;
        self
    }

    /// Sends elements that are too late for every window to the side output `tag` instead of
    /// dropping them.
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.late_tag = Some(tag.id().to_string());
        self
    }

    fn build<O, C, F>(self, name: &str, make_contents: F) -> DataStream<O>
    where
        O: Data,
        C: WindowContents<T, K, W, O> + 'static,
        F: Fn(Option<Box<dyn Evictor<T, W>>>) -> C + Send + Sync + 'static,
    {
        let WindowedStream {
            keyed,
            assigner,
            trigger,
            evictor,
            allowed_lateness,
            late_tag,
        } = self;
        let key_of = keyed.key_of.clone();
        // The common case (event time, no merging, default trigger, no evictor) runs on the
        // window-major operator on the heap backend; everything else, and every window under
        // RocksDB (whose contents must live in the backend), on the general one.
        let window_major = assigner.is_event_time()
            && !assigner.is_merging()
            && trigger.is_none()
            && evictor.is_none();
        keyed
            .stream
            .one_input(name, NodeKind::Operator, move |info: &OperatorInfo, out| {
                if window_major && info.state_backend.kind == StateBackendKind::Heap {
                    let op = EventTimeWindowOperator::new(
                        key_of.clone(),
                        assigner.clone(),
                        make_contents(None),
                        allowed_lateness,
                        late_tag.clone(),
                        info,
                    );
                    return Ok(Box::new(OneInputLink::new(op, out, info.clone())?));
                }
                let trigger = match &trigger {
                    Some(t) => t.box_clone(),
                    None => assigner.default_trigger::<K>(),
                };
                let contents = make_contents(evictor.as_ref().map(|e| e.box_clone()));
                let op = WindowOperator::new(
                    key_of.clone(),
                    assigner.clone(),
                    trigger,
                    contents,
                    allowed_lateness,
                    late_tag.clone(),
                    info,
                )?;
                Ok(Box::new(OneInputLink::new(op, out, info.clone())?))
            })
    }

    /// Reduces each window's elements with `f`, incrementally; emits the result per firing.
    pub fn reduce<F>(self, f: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.reduce_with_process(f, PassThrough)
    }

    /// Reduces incrementally, then gives the result to `function` with the window's metadata.
    pub fn reduce_with_process<O, F, P>(self, f: F, function: P) -> DataStream<O>
    where
        O: Data,
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
        P: ProcessWindowFunction<T, O, K, W>,
    {
        if self.evictor.is_some() {
            return self.build("Window(Reduce)", move |evictor| ListContents {
                evictor,
                function: ReducingFunction {
                    reduce: f.clone(),
                    function: function.clone(),
                },
            });
        }
        self.build("Window(Reduce)", move |_| ReduceContents {
            reduce: f.clone(),
            function: function.clone(),
        })
    }

    /// Aggregates each window's elements incrementally with `agg`.
    pub fn aggregate<ACC, R, G>(self, agg: G) -> DataStream<R>
    where
        R: Data,
        ACC: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        G: AggregateFunction<T, ACC, R>,
    {
        self.aggregate_with_process(agg, PassThrough)
    }

    /// Aggregates incrementally, then gives the result to `function` with the window's
    /// metadata.
    pub fn aggregate_with_process<ACC, R, O, G, P>(self, agg: G, function: P) -> DataStream<O>
    where
        O: Data,
        R: Send + 'static,
        ACC: Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
        G: AggregateFunction<T, ACC, R>,
        P: ProcessWindowFunction<R, O, K, W>,
    {
        let agg = Arc::new(agg);
        if self.evictor.is_some() {
            return self.build("Window(Aggregate)", move |evictor| ListContents {
                evictor,
                function: AggregatingFunction {
                    agg: agg.clone(),
                    function: function.clone(),
                    _t: PhantomData,
                },
            });
        }
        self.build("Window(Aggregate)", move |_| AggregateContents {
            agg: SharedAggregate(agg.clone()),
            function: function.clone(),
            _t: PhantomData,
        })
    }

    /// Gives all elements of each firing window to `function`.
    pub fn process<O, P>(self, function: P) -> DataStream<O>
    where
        O: Data,
        P: ProcessWindowFunction<T, O, K, W>,
    {
        self.build("Window(Process)", move |evictor| ListContents {
            evictor,
            function: function.clone(),
        })
    }
}

/// An aggregate function shared by the subtasks.
struct SharedAggregate<G>(Arc<G>);

impl<IN, ACC, R, G: AggregateFunction<IN, ACC, R>> AggregateFunction<IN, ACC, R>
    for SharedAggregate<G>
{
    fn create_accumulator(&self) -> ACC {
        self.0.create_accumulator()
    }
    fn add(&self, value: &IN, acc: &mut ACC) {
        self.0.add(value, acc)
    }
    fn get_result(&self, acc: &ACC) -> R {
        self.0.get_result(acc)
    }
    fn merge(&self, a: ACC, b: ACC) -> ACC {
        self.0.merge(a, b)
    }
}

/// With an evictor: reduces the remaining elements at firing time.
#[derive(Clone)]
struct ReducingFunction<F, P> {
    reduce: F,
    function: P,
}

impl<T, O, K, W, F, P> ProcessWindowFunction<T, O, K, W> for ReducingFunction<F, P>
where
    T: 'static,
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    P: ProcessWindowFunction<T, O, K, W>,
{
    fn process(
        &mut self,
        key: &K,
        ctx: &mut WindowContext<'_, K, W>,
        elements: Vec<T>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        match elements.into_iter().reduce(&mut self.reduce) {
            Some(v) => self.function.process(key, ctx, vec![v], out),
            None => Ok(()),
        }
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, K, W>) -> Result<(), UserError> {
        self.function.clear(ctx)
    }
}

/// With an evictor: aggregates the remaining elements at firing time.
struct AggregatingFunction<G, ACC, R, P> {
    agg: Arc<G>,
    function: P,
    _t: PhantomData<fn() -> (ACC, R)>,
}

impl<G, ACC, R, P: Clone> Clone for AggregatingFunction<G, ACC, R, P> {
    fn clone(&self) -> Self {
        AggregatingFunction {
            agg: self.agg.clone(),
            function: self.function.clone(),
            _t: PhantomData,
        }
    }
}

impl<T, R, O, K, W, G, ACC, P> ProcessWindowFunction<T, O, K, W>
    for AggregatingFunction<G, ACC, R, P>
where
    T: 'static,
    ACC: 'static,
    R: 'static,
    G: AggregateFunction<T, ACC, R>,
    P: ProcessWindowFunction<R, O, K, W>,
{
    fn process(
        &mut self,
        key: &K,
        ctx: &mut WindowContext<'_, K, W>,
        elements: Vec<T>,
        out: &mut Collector<'_, O>,
    ) -> Result<(), UserError> {
        let mut acc = self.agg.create_accumulator();
        for e in elements {
            self.agg.add(&e, &mut acc);
        }
        let r = self.agg.get_result(&acc);
        self.function.process(key, ctx, vec![r], out)
    }
    fn clear(&mut self, ctx: &mut WindowContext<'_, K, W>) -> Result<(), UserError> {
        self.function.clear(ctx)
    }
}
