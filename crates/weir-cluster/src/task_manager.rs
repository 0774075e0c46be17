//! The TaskManager: runs deployed tasks, one OS thread each, and reports how they end.

use crate::error::{ClusterError, Result};
use crate::gateway::{
    RestorePoint, TaskDeployment, TaskEnd, TaskExecutionState, TaskExecutorGateway, TaskManagerId,
};
use crate::shuffle::LocalShuffle;
use crate::wiring::{input_channels, output_targets};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use weir_core::{JobId, TaskThreadScheduling, VertexId};
use weir_runtime::buffer::BufferPool;
use weir_runtime::checkpoint::{in_flight_uid, InFlightChannel, IN_FLIGHT_STATE};
use weir_runtime::deploy::{OutputEdgeIo, TaskIo};
use weir_runtime::exchange::{ChannelKey, InputGate, NetworkEnvironment};
use weir_runtime::inbox::{ChannelSender, TaskControl, TaskInbox};
use weir_runtime::metrics::LiveMetrics;
use weir_runtime::operator::catch_user_panic;
use weir_runtime::task::{ChainHead, Task, TaskCanceller, TaskCheckpointing};
use weir_runtime::time::ProcessingTimeService;
use weir_runtime::user_metrics::{MetricGroup, UserMetrics};
use weir_runtime::RuntimeError;
use weir_state::{CheckpointStorage, RestoredState, SnapshotReader};

/// A running subtask: job, vertex and subtask index.
type TaskKey = (JobId, VertexId, u32);

/// A running task's handles: its attempt, its canceller and its inbox.
type RunningTask = (u32, TaskCanceller, Arc<TaskInbox>);

/// Handles of the running tasks.
type RunningTasks = Arc<Mutex<HashMap<TaskKey, RunningTask>>>;

/// Restored in-flight data: (input channel, encoded frames).
type InFlightData = Vec<(usize, Vec<u8>)>;

/// Takes the in-flight data of an unaligned checkpoint out of the restored state and checks
/// that this subtask recorded it (same parallelism, same channels).
fn restored_in_flight(
    d: &TaskDeployment,
    r: &RestorePoint,
    restored: &mut HashMap<String, Arc<RestoredState>>,
) -> std::result::Result<Option<InFlightData>, RuntimeError> {
    let Some(st) = restored.remove(&in_flight_uid(d.vertex)) else {
        return Ok(None);
    };
    let v = d.graph.vertex(d.vertex);
    let channels = input_channels(&d.graph, d.vertex, d.subtask).len() as u32;
    let fail = |message: String| RuntimeError::Restore {
        checkpoint_id: r.metadata.checkpoint_id,
        source: weir_state::StateError::Restore(message),
    };
    let mut out = Vec::new();
    for bytes in st.list(IN_FLIGHT_STATE) {
        let c: InFlightChannel = bincode::deserialize(bytes)
            .map_err(|e| fail(format!("unreadable in-flight data: {e}")))?;
        if c.channel >= channels {
            return Err(fail(format!(
                "in-flight data names input channel {} of {channels}",
                c.channel
            )));
        }
        if c.subtask != d.subtask || c.parallelism != v.parallelism || c.channels != channels {
            return Err(fail(format!(
                "task '{}' was checkpointed unaligned, with in-flight data, at parallelism {} and {} input channels; it now has parallelism {} and {channels} channels. Unaligned checkpoints restore only unchanged; rescale from a savepoint (always aligned)",
                v.name, c.parallelism, c.channels, v.parallelism
            )));
        }
        out.push((c.channel as usize, c.data));
    }
    Ok(Some(out))
}

/// Reads the state of every operator of the deployed vertex from the snapshot `r`.
fn restore_task_state(
    d: &TaskDeployment,
    r: &RestorePoint,
) -> std::result::Result<HashMap<String, Arc<RestoredState>>, RuntimeError> {
    let id = r.metadata.checkpoint_id;
    let fail = |source| RuntimeError::Restore {
        checkpoint_id: id,
        source,
    };
    let v = d.graph.vertex(d.vertex);
    let storage = CheckpointStorage::open(&r.location).map_err(fail)?;
    let mut reader = SnapshotReader::new(storage, r.metadata.clone());
    let mut out = HashMap::new();
    let in_flight = in_flight_uid(d.vertex);
    let uids = v.operators.iter().map(|op| &op.uid).chain([&in_flight]);
    for uid in uids {
        if let Some(st) = reader
            .restore_operator(uid, d.subtask, v.parallelism, v.max_parallelism)
            .map_err(fail)?
        {
            st.verify_shared_files().map_err(fail)?;
            out.insert(uid.clone(), Arc::new(st));
        }
    }
    Ok(out)
}

/// A TaskManager with a fixed number of slots.
pub struct TaskManager {
    id: TaskManagerId,
    slots: usize,
    shuffle: Arc<LocalShuffle>,
    running: RunningTasks,
    live_threads: Arc<AtomicUsize>,
    /// Where user metrics of this TaskManager's tasks are exported, once set.
    user_metrics: std::sync::OnceLock<Arc<UserMetrics>>,
    /// The data plane, for channels to and from subtasks in other processes.
    network: Option<Arc<NetworkEnvironment>>,
    /// Every task's live counters, of the latest attempt of each subtask; kept after the
    /// task ends, so that an ended job shows its final counts (as the Dispatcher keeps ended
    /// jobs).
    live: Arc<Mutex<HashMap<TaskKey, LiveTask>>>,
}

/// What is kept of a task for its live counters: its attempt, its published operator counts
/// and its buffer pool (whose backpressure time can be read at any moment).
type LiveTask = (u32, LiveMetrics, BufferPool);

/// One subtask's counters as its task last published them.
#[derive(Clone, Debug)]
pub struct TaskMetrics {
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask index.
    pub subtask: u32,
    /// The execution attempt.
    pub attempt: u32,
    /// Per operator of its chain.
    pub operators: Vec<weir_runtime::metrics::OperatorMetrics>,
    /// Time its writers waited for buffers so far, ms (backpressure).
    pub backpressured_ms: u64,
}

impl TaskManager {
    /// A TaskManager named `id` with `slots` slots, exchanging data through `shuffle`.
    pub fn new(
        id: impl Into<TaskManagerId>,
        slots: usize,
        shuffle: Arc<LocalShuffle>,
    ) -> Arc<Self> {
        Self::build(id.into(), slots, shuffle, None)
    }

    /// A TaskManager whose tasks also exchange data with subtasks in other processes,
    /// through `network` (a job's worker process).
    pub fn with_network(
        id: impl Into<TaskManagerId>,
        slots: usize,
        shuffle: Arc<LocalShuffle>,
        network: Arc<NetworkEnvironment>,
    ) -> Arc<Self> {
        Self::build(id.into(), slots, shuffle, Some(network))
    }

    fn build(
        id: TaskManagerId,
        slots: usize,
        shuffle: Arc<LocalShuffle>,
        network: Option<Arc<NetworkEnvironment>>,
    ) -> Arc<Self> {
        Arc::new(TaskManager {
            id,
            slots,
            shuffle,
            running: Arc::new(Mutex::new(HashMap::new())),
            live_threads: Arc::new(AtomicUsize::new(0)),
            user_metrics: std::sync::OnceLock::new(),
            network,
            live: Default::default(),
        })
    }

    /// The counters of `job`'s tasks here, as their tasks last published them (those of
    /// the latest attempt of each subtask).
    pub fn task_metrics(&self, job: JobId) -> Vec<TaskMetrics> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .filter(|(k, _)| k.0 == job)
            .map(|(k, (attempt, m, pool))| TaskMetrics {
                vertex: k.1,
                subtask: k.2,
                attempt: *attempt,
                operators: m.snapshot(),
                backpressured_ms: pool.backpressured_ms(),
            })
            .collect()
    }

    /// The data plane and the address of subtask `subtask` of `vertex`, when that subtask
    /// runs in another process.
    fn remote(
        &self,
        d: &TaskDeployment,
        vertex: VertexId,
        subtask: u32,
    ) -> Option<(&Arc<NetworkEnvironment>, SocketAddr)> {
        let net = self.network.as_ref()?;
        let addr = d.locations.as_ref()?.get(vertex, subtask)?;
        (addr != net.local_addr()).then_some((net, addr))
    }

    /// Opens the input channels of `d` whose producers run in other processes, into `inbox`.
    fn connect_remote_inputs(
        &self,
        d: &TaskDeployment,
        inbox: &Arc<TaskInbox>,
    ) -> Result<Option<Arc<InputGate>>> {
        let mut gate = None;
        for (channel, info) in input_channels(&d.graph, d.vertex, d.subtask)
            .into_iter()
            .enumerate()
        {
            let producer = d.graph.edges[info.edge].source;
            let Some((net, peer)) = self.remote(d, producer, info.producer) else {
                continue;
            };
            let gate = gate.get_or_insert_with(|| net.input_gate(inbox.clone()));
            let key = ChannelKey {
                job: d.job.0,
                attempt: d.attempt,
                producer_vertex: producer.0,
                producer_subtask: info.producer,
                consumer_vertex: d.vertex.0,
                consumer_subtask: d.subtask,
            };
            net.connect_input(gate, peer, key, channel as u32)
                .map_err(|e| ClusterError::Deployment {
                    job: d.job,
                    message: format!(
                        "cannot open input channel {channel} of subtask {} of vertex {} from {peer}: {e}",
                        d.subtask, d.vertex.0
                    ),
                })?;
        }
        Ok(gate)
    }

    /// Exports the user metrics of tasks deployed from now on through `metrics` (the first
    /// call counts).
    pub fn export_user_metrics(&self, metrics: Arc<UserMetrics>) {
        let _ = self.user_metrics.set(metrics);
    }

    /// This TaskManager's id.
    pub fn id(&self) -> &TaskManagerId {
        &self.id
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    fn build_io(&self, d: &TaskDeployment) -> TaskIo {
        let graph = &d.graph;
        let cfg = &graph.config;
        let mut outputs = Vec::new();
        let mut channels_out = 0;
        let mut remote_outputs = false;
        for (i, e) in graph.edges.iter().enumerate() {
            if e.source != d.vertex {
                continue;
            }
            let senders: Vec<ChannelSender> = output_targets(graph, i, d.subtask)
                .into_iter()
                .map(
                    |(consumer, channel)| match self.remote(d, e.target, consumer) {
                        Some((net, _)) => {
                            remote_outputs = true;
                            net.register_subpartition(ChannelKey {
                                job: d.job.0,
                                attempt: d.attempt,
                                producer_vertex: d.vertex.0,
                                producer_subtask: d.subtask,
                                consumer_vertex: e.target.0,
                                consumer_subtask: consumer,
                            })
                        }
                        None => ChannelSender::new(
                            self.shuffle.inbox(d.job, d.attempt, e.target, consumer),
                            channel,
                        ),
                    },
                )
                .collect();
            channels_out += senders.len();
            outputs.push(OutputEdgeIo {
                edge: i,
                senders,
                consumer_max_parallelism: graph.vertex(e.target).max_parallelism,
            });
        }
        TaskIo {
            subtask: d.subtask,
            inputs: input_channels(graph, d.vertex, d.subtask),
            outputs,
            pool: BufferPool::new(
                2 * channels_out + cfg.floating_buffers_per_task,
                cfg.buffer_size,
            ),
            flush_always: cfg.buffer_timeout_ms == 0,
            // Records cross processes only as bytes.
            in_memory_exchange: !cfg.serialize_local_exchange && !remote_outputs,
            processing_time: ProcessingTimeService::default(),
            alignment: cfg.checkpoint.alignment(),
            restored: HashMap::new(),
            waker: Default::default(),
            metrics: MetricGroup::for_task(
                self.user_metrics.get().cloned(),
                &d.job.to_string(),
                &graph.name,
            ),
        }
    }
}

/// Puts the calling task thread under `policy`. Scheduling is a performance setting, so a
/// refusal (a seccomp profile, say) only logs: a warning the first time in this process,
/// then at debug level, not once per task.
fn apply_scheduling(policy: TaskThreadScheduling, task_name: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if let Err(e) = crate::thread_scheduling::apply_to_current_thread(policy) {
        if WARNED.swap(true, Ordering::Relaxed) {
            tracing::debug!(task = %task_name, "task thread scheduling {policy:?} refused: {e}");
        } else {
            tracing::warn!(
                task = %task_name,
                "could not set task threads' scheduling policy to {policy:?} ({e}); they run \
                 with the inherited policy"
            );
        }
    }
}

impl TaskExecutorGateway for TaskManager {
    fn submit_task(&self, d: TaskDeployment) -> Result<()> {
        let vertex = d.graph.vertex(d.vertex);
        let task_name = format!("{} ({}/{})", vertex.name, d.subtask + 1, vertex.parallelism);
        if let Some(net) = &self.network {
            // Channels of earlier attempts of the job are dead; their buffers go.
            net.release_attempts_before(d.job.0, d.attempt);
        }
        let mut io = self.build_io(&d);
        let pool = io.pool.clone();
        let processing_time = io.processing_time.clone();
        let inbox = self.shuffle.inbox(d.job, d.attempt, d.vertex, d.subtask);
        let gate = self.connect_remote_inputs(&d, &inbox)?;
        io.waker = weir_runtime::time::TaskWaker::new(&inbox, processing_time.clone());
        let task_metrics = io.metrics.clone();
        let key = (d.job, d.vertex, d.subtask);
        let attempt = d.attempt;
        let live_metrics = LiveMetrics::default();
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (attempt, live_metrics.clone(), pool.clone()));
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key,
                (
                    attempt,
                    TaskCanceller::new(inbox.clone(), pool.clone()),
                    inbox.clone(),
                ),
            );
        let live = self.live_threads.clone();
        let running = self.running.clone();
        live.fetch_add(1, Ordering::SeqCst);
        let thread_name = task_name.clone();
        let job = d.job;
        let spawned = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                // The gate lives as long as the task reads from it.
                let _gate = gate;
                tracing::debug!(task = %task_name, "task started");
                apply_scheduling(d.graph.config.task_thread_scheduling, &task_name);
                // The operators are built on the task's own thread, so that user code in
                // constructors and `open` runs where the task runs and its panics fail the task.
                let mut in_flight = None;
                let built = match &d.restore {
                    Some(r) => restore_task_state(&d, r).and_then(|mut m| {
                        in_flight = restored_in_flight(&d, r, &mut m)?;
                        io.restored = m;
                        Ok(())
                    }),
                    None => Ok(()),
                }
                .and_then(|()| catch_user_panic(|| d.code.instantiate(&d.graph, d.vertex, io)))
                .and_then(|mut head| {
                    if let (Some(r), ChainHead::Input(h)) = (&d.restore, &mut head) {
                        h.restored_from(r.metadata.checkpoint_id);
                    }
                    match (in_flight.take(), &mut head) {
                        (None, _) => {}
                        (Some(data), ChainHead::Input(h)) => h.preload_in_flight(data),
                        (Some(_), ChainHead::Source(_)) => {
                            return Err(RuntimeError::Other(
                                "in-flight data was restored for a source task".into(),
                            ))
                        }
                    }
                    Ok(head)
                })
                .map_err(|e| match e {
                    RuntimeError::Other(m) => {
                        RuntimeError::Other(format!("building task '{task_name}': {m}"))
                    }
                    e => e,
                });
                let (end, metrics, backpressured_ms) = match built {
                    Ok(head) => {
                        let mut task = Task::new(
                            task_name.clone(),
                            head,
                            inbox,
                            pool,
                            d.graph.config.buffer_timeout_ms,
                            processing_time,
                        );
                        task = task.with_live_metrics(live_metrics);
                        if let Some(responder) = d.checkpoints.clone() {
                            task = task.with_checkpointing(TaskCheckpointing {
                                responder,
                                vertex: d.vertex,
                                subtask: d.subtask,
                                parallelism: d.graph.vertex(d.vertex).parallelism,
                                last_snapshot: Default::default(),
                            });
                        }
                        let outcome = task.run();
                        let end = match outcome.result {
                            Ok(()) => TaskEnd::Finished,
                            Err(RuntimeError::Cancelled) => TaskEnd::Canceled,
                            Err(e) => TaskEnd::Failed(e),
                        };
                        (end, outcome.metrics, outcome.backpressured_ms)
                    }
                    Err(e) => {
                        // Release whatever waits on this task.
                        TaskCanceller::new(inbox, pool).cancel();
                        (TaskEnd::Failed(e), Vec::new(), 0)
                    }
                };
                tracing::debug!(task = %task_name, ?end, "task ended");
                // The task's metric series go with it, as Flink closes its metric group.
                task_metrics.close();
                {
                    let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
                    if running.get(&key).is_some_and(|r| r.0 == attempt) {
                        running.remove(&key);
                    }
                }
                live.fetch_sub(1, Ordering::SeqCst);
                d.job_master
                    .update_task_execution_state(TaskExecutionState {
                        job: d.job,
                        vertex: d.vertex,
                        subtask: d.subtask,
                        end,
                        metrics,
                        backpressured_ms,
                        attempt,
                    });
            });
        if let Err(e) = spawned {
            self.live_threads.fetch_sub(1, Ordering::SeqCst);
            return Err(ClusterError::Deployment {
                job,
                message: format!("cannot start a thread for a task: {e}"),
            });
        }
        Ok(())
    }

    fn cancel_job_tasks(&self, job: JobId) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        for (k, (_, c, _)) in running.iter() {
            if k.0 == job {
                c.cancel();
            }
        }
    }

    fn send_task_control(
        &self,
        job: JobId,
        vertex: VertexId,
        subtask: u32,
        control: TaskControl,
    ) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.get(&(job, vertex, subtask)) {
            Some((_, _, inbox)) => {
                inbox.send_control(control);
                true
            }
            None => false,
        }
    }

    fn running_tasks(&self) -> usize {
        self.live_threads.load(Ordering::SeqCst)
    }
}
