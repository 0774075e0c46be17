//! The StreamExecutionEnvironment: where a program sets defaults, adds sources and runs the
//! job.

use crate::cluster_client;
use crate::datastream::{DataStream, StreamInput};
use crate::error::{ApiError, Result};
use crate::functions::UserError;
use crate::graph::{ChainingStrategy, NodeCode, NodeKind, StreamEdge, StreamNode};
use crate::runner::CompiledJob;
use crate::source::{
    Boundedness, CollectionSource, IteratorSource, SequenceSource, Source, SourceContext,
};
use crate::translate;
use crate::types::{unerase, Data, TypeOps};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::{
    ClusterError, DispatcherGateway, JobExecutionResult, JobStatus, MiniCluster, MiniClusterConfig,
};
use weir_core::{ExecutionConfig, JobGraph, JobId, NodeId, TaskThreadScheduling};
use weir_runtime::head::SourceHead;
use weir_runtime::operator::Outputs;
use weir_runtime::source::SourceReader;

pub(crate) struct EnvState {
    pub config: ExecutionConfig,
    /// Parallelism and max parallelism as the user set them; validated when the job graph is
    /// built so that a bad value is reported as an error, not a panic.
    pub raw_parallelism: i64,
    pub raw_max_parallelism: Option<i64>,
    pub nodes: Vec<StreamNode>,
    pub edges: Vec<StreamEdge>,
    pub cluster: Option<Arc<MiniCluster>>,
    /// The REST address of a cluster of processes to submit to, set by the program.
    pub jobmanager: Option<String>,
    /// The program reads results back in its own memory (`collect_values`,
    /// `execute_and_collect`): only possible on the embedded mini-cluster.
    pub collects_in_process: bool,
    /// Watermark alignment groups by name, shared by the sources that name them.
    pub alignment_groups: std::collections::HashMap<String, Arc<crate::alignment::AlignmentGroup>>,
}

/// Builds and runs a streaming job (Flink's `StreamExecutionEnvironment`).
///
/// The handle is cheap to clone; every stream created from it adds to the same graph.
#[derive(Clone)]
pub struct StreamExecutionEnvironment {
    pub(crate) state: Rc<RefCell<EnvState>>,
}

impl Default for StreamExecutionEnvironment {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamExecutionEnvironment {
    /// An environment that runs jobs on an embedded mini-cluster, with parallelism defaulting
    /// to the number of cores.
    ///
    /// Started by `weir run`, the program also takes the command's settings from the
    /// environment: `WEIR_PARALLELISM` (the default parallelism, as `flink run -p`) and
    /// `WEIR_FROM_SAVEPOINT` (as `flink run -s`); the program's own calls override them.
    pub fn new() -> Self {
        let mut config = ExecutionConfig::default();
        if let Some(p) = std::env::var(cluster_client::PARALLELISM)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|p| *p > 0)
        {
            config.parallelism = p;
        }
        if let Ok(path) = std::env::var(cluster_client::FROM_SAVEPOINT) {
            config.restore = Some(weir_core::RestoreSettings {
                path,
                allow_non_restored_state: false,
            });
        }
        StreamExecutionEnvironment {
            state: Rc::new(RefCell::new(EnvState {
                raw_parallelism: config.parallelism as i64,
                raw_max_parallelism: None,
                config,
                nodes: Vec::new(),
                edges: Vec::new(),
                cluster: None,
                jobmanager: None,
                collects_in_process: false,
                alignment_groups: Default::default(),
            })),
        }
    }

    /// Default parallelism of operators that do not set their own.
    pub fn set_parallelism(&self, parallelism: i64) -> &Self {
        self.state.borrow_mut().raw_parallelism = parallelism;
        self
    }

    /// The default parallelism as set.
    pub fn parallelism(&self) -> i64 {
        self.state.borrow().raw_parallelism
    }

    /// Default max parallelism (number of key groups).
    pub fn set_max_parallelism(&self, max_parallelism: i64) -> &Self {
        self.state.borrow_mut().raw_max_parallelism = Some(max_parallelism);
        self
    }

    /// Turns operator chaining off for the whole job.
    pub fn disable_operator_chaining(&self) -> &Self {
        self.state.borrow_mut().config.chaining_enabled = false;
        self
    }

    /// How long a partly filled network buffer may wait before it is sent: `0` sends every
    /// record at once, `-1` only sends full buffers.
    pub fn set_buffer_timeout(&self, millis: i64) -> &Self {
        self.state.borrow_mut().config.buffer_timeout_ms = millis;
        self
    }

    /// Size of network buffers in bytes (default 32 KiB).
    pub fn set_buffer_size(&self, bytes: usize) -> &Self {
        self.state.borrow_mut().config.buffer_size = bytes;
        self
    }

    /// Serialise records between tasks of this process into network buffers, as between
    /// processes, instead of handing them over in memory (the default, and faster). Useful
    /// to compare the two, and to test the byte path a distributed job takes.
    pub fn set_serialize_local_exchange(&self, serialize: bool) -> &Self {
        self.state.borrow_mut().config.serialize_local_exchange = serialize;
        self
    }

    /// How the operating system schedules this job's task threads: `SCHED_BATCH` by
    /// default (throughput), or as ordinary threads (see [`TaskThreadScheduling`]).
    pub fn set_task_thread_scheduling(&self, scheduling: TaskThreadScheduling) -> &Self {
        self.state.borrow_mut().config.task_thread_scheduling = scheduling;
        self
    }

    /// Buffers per task beyond two per outgoing channel.
    pub fn set_floating_buffers(&self, buffers: usize) -> &Self {
        self.state.borrow_mut().config.floating_buffers_per_task = buffers;
        self
    }

    /// How long a job waits for enough free slots before it fails.
    pub fn set_slot_request_timeout(&self, timeout: Duration) -> &Self {
        self.state.borrow_mut().config.slot_request_timeout_ms = timeout.as_millis() as u64;
        self
    }

    /// How often periodic watermark generators are asked for a watermark (default 200 ms;
    /// zero turns periodic emission off).
    pub fn set_auto_watermark_interval(&self, interval: Duration) -> &Self {
        self.state.borrow_mut().config.auto_watermark_interval_ms = interval.as_millis() as u64;
        self
    }

    /// Takes a checkpoint every `interval`, exactly-once (Flink's `enableCheckpointing`).
    /// Checkpoints go to a directory under the system's temporary directory unless
    /// [`Self::set_checkpoint_storage`] names one.
    pub fn enable_checkpointing(&self, interval: Duration) -> &Self {
        self.state.borrow_mut().config.checkpoint.interval_ms = interval.as_millis().max(1) as u64;
        self
    }

    /// Barrier alignment: exactly-once (default) or at-least-once.
    pub fn set_checkpointing_mode(&self, mode: weir_core::CheckpointingMode) -> &Self {
        self.state.borrow_mut().config.checkpoint.mode = mode;
        self
    }

    /// Where checkpoints go: a directory or `file://` URL; each job writes below it in a
    /// directory named after its id.
    pub fn set_checkpoint_storage(&self, location: impl Into<String>) -> &Self {
        self.state.borrow_mut().config.checkpoint.storage = Some(location.into());
        self
    }

    /// Changes any checkpoint setting (timeout, minimum pause, concurrent checkpoints,
    /// tolerable failures, retained checkpoints).
    pub fn configure_checkpoints(&self, f: impl FnOnce(&mut weir_core::CheckpointConfig)) -> &Self {
        f(&mut self.state.borrow_mut().config.checkpoint);
        self
    }

    /// The keyed state backend (Flink's `state.backend.type`): heap (the default) or
    /// RocksDB, with incremental checkpoints if asked for.
    ///
    /// ```
    /// use weir_api::prelude::*;
    /// let env = StreamExecutionEnvironment::new();
    /// env.set_state_backend(StateBackendConfig {
    ///     kind: StateBackendKind::RocksDb,
    ///     incremental: true,
    ///     local_dir: None,
    ///     // Block cache and memtables of all RocksDB instances of the process.
    ///     rocksdb_memory_bytes: Some(256 << 20),
    /// });
    /// ```
    pub fn set_state_backend(&self, backend: weir_core::StateBackendConfig) -> &Self {
        self.state.borrow_mut().config.state_backend = backend;
        self
    }

    /// What happens when a task fails (default: no restart without checkpoints,
    /// exponential delay with them).
    pub fn set_restart_strategy(&self, strategy: weir_core::RestartStrategy) -> &Self {
        self.state.borrow_mut().config.restart_strategy = Some(strategy);
        self
    }

    /// Starts the job from a savepoint or retained checkpoint directory (Flink's
    /// `-s <path>`). State for operators whose uid is not in the job is an error unless
    /// `allow_non_restored_state`.
    pub fn restore_from_savepoint(
        &self,
        path: impl Into<String>,
        allow_non_restored_state: bool,
    ) -> &Self {
        self.state.borrow_mut().config.restore = Some(weir_core::RestoreSettings {
            path: path.into(),
            allow_non_restored_state,
        });
        self
    }

    /// Submits jobs to the cluster of processes whose JobManager's REST API is at `address`
    /// (`HOST:PORT`), as Flink's remote environment does; the program's binary is uploaded
    /// and runs as the job's workers. `WEIR_JOBMANAGER` (set by `weir run`) does the same.
    pub fn set_jobmanager(&self, address: impl Into<String>) -> &Self {
        self.state.borrow_mut().jobmanager = Some(address.into());
        self
    }

    /// Runs jobs on `cluster` instead of a mini-cluster started per job.
    pub fn set_cluster(&self, cluster: Arc<MiniCluster>) -> &Self {
        self.state.borrow_mut().cluster = Some(cluster);
        self
    }

    /// The current settings.
    pub fn config(&self) -> ExecutionConfig {
        self.state.borrow().config.clone()
    }

    /// Adds a source.
    pub fn from_source<T: Data, S: Source<T>>(&self, source: S, name: &str) -> DataStream<T> {
        self.add_source(source, name, |source, ctx| source.create_reader(ctx))
    }

    /// Adds a source whose records get timestamps and watermarks from `strategy` right at
    /// the source. A source that reads several splits per reader (Kafka partitions)
    /// generates them per split and emits the smallest ([`Source::generates_split_watermarks`]);
    /// for other sources the assigner runs chained to the reader, with the source's
    /// parallelism, so each source subtask generates the watermarks of what it reads.
    pub fn from_source_with_watermarks<T: Data, S: Source<T>>(
        &self,
        source: S,
        strategy: crate::watermark::WatermarkStrategy<T>,
        name: &str,
    ) -> DataStream<T> {
        let aligned = strategy.watermark_alignment().map(|(group, drift)| {
            let (group, source_no) = self.join_alignment_group(group);
            (group, source_no, drift.as_millis() as i64)
        });
        let align = aligned.clone();
        let wrap = move |reader: Box<dyn SourceReader<T>>, ctx: &SourceContext| match &align {
            None => reader,
            Some((group, source_no, drift)) => Box::new(crate::alignment::AlignedReader {
                inner: reader,
                group: group.clone(),
                member: (*source_no, ctx.subtask),
                max_drift_ms: *drift,
            }),
        };
        let s = if source.generates_split_watermarks() {
            self.add_source(source, name, move |source, ctx| {
                Ok(wrap(
                    source.create_reader_with_watermarks(ctx, &strategy)?,
                    ctx,
                ))
            })
        } else {
            let non_parallel = !source.is_parallel();
            let s = self
                .add_source(source, name, move |source, ctx| {
                    Ok(wrap(source.create_reader(ctx)?, ctx))
                })
                .assign_timestamps_and_watermarks(strategy);
            if non_parallel {
                s.set_parallelism(1)
            } else {
                s
            }
        };
        match aligned {
            None => s,
            Some((group, source_no, _)) => s.report_watermarks_to(group, source_no),
        }
    }

    /// Adds a source that generates its own watermarks (a SQL table's, from its DDL) as a
    /// member of the watermark alignment group `group` (Flink's
    /// `scan.watermark.alignment.*` table options): a subtask whose watermark is more than
    /// `max_drift` ahead of the group's lowest stops reading until the others catch up, as
    /// [`WatermarkStrategy::with_watermark_alignment`](crate::watermark::WatermarkStrategy::with_watermark_alignment)
    /// does for a source given a strategy.
    pub fn from_source_aligned<T: Data, S: Source<T>>(
        &self,
        source: S,
        name: &str,
        group: &str,
        max_drift: Duration,
    ) -> DataStream<T> {
        let (group, source_no) = self.join_alignment_group(group);
        let max_drift_ms = max_drift.as_millis().min(i64::MAX as u128) as i64;
        let members = group.clone();
        let non_parallel = !source.is_parallel();
        let s = self.add_source(source, name, move |source, ctx| {
            Ok(Box::new(crate::alignment::AlignedReader {
                inner: source.create_reader(ctx)?,
                group: members.clone(),
                member: (source_no, ctx.subtask),
                max_drift_ms,
            }))
        });
        let s = if non_parallel {
            s.set_parallelism(1)
        } else {
            s
        };
        s.report_watermarks_to(group, source_no)
    }

    /// The watermark alignment group `group` (made on first use), and the number of a new
    /// source in it.
    fn join_alignment_group(&self, group: &str) -> (Arc<crate::alignment::AlignmentGroup>, u32) {
        let group = self
            .state
            .borrow_mut()
            .alignment_groups
            .entry(group.to_string())
            .or_insert_with(|| crate::alignment::AlignmentGroup::new(group))
            .clone();
        let source_no = group.next_source();
        (group, source_no)
    }

    /// Adds a source node whose readers `create` makes.
    fn add_source<T: Data, S: Source<T>>(
        &self,
        source: S,
        name: &str,
        create: impl Fn(&S, &SourceContext) -> Result<Box<dyn SourceReader<T>>, UserError>
            + Send
            + Sync
            + 'static,
    ) -> DataStream<T> {
        let non_parallel = !source.is_parallel();
        let source = Arc::new(source);
        let code = NodeCode::Source(Arc::new(move |info, main, sides| {
            let ctx = SourceContext {
                subtask: info.subtask,
                parallelism: info.parallelism,
                restored_splits: info.restored.as_ref().map(|r| {
                    let name = weir_runtime::source::SOURCE_SPLITS_STATE;
                    [r.list(name), r.union(name)].concat()
                }),
                auto_watermark_interval_ms: info.auto_watermark_interval_ms,
            };
            let reader = weir_runtime::operator::guarded(info, || {
                create(&source, &ctx).map_err(|e| crate::functions::user_error(info, e))
            })?;
            let out = Outputs::new(unerase::<T>(main)?, sides);
            Ok(Box::new(SourceHead::new(reader, out, info.clone())) as _)
        }));
        let id = self.add_node(
            format!("Source: {name}"),
            NodeKind::Source,
            ChainingStrategy::Head,
            code,
            TypeOps::of::<T>(),
            None,
            &[],
        );
        let s = DataStream::from_node(self.clone(), id);
        if non_parallel {
            self.state.borrow_mut().nodes[id.0 as usize].non_parallel = true;
            s.set_parallelism(1)
        } else {
            s
        }
    }

    /// The elements of `data`, in order, from a single subtask.
    pub fn from_collection<T: Data + Sync>(&self, data: Vec<T>) -> DataStream<T> {
        self.from_source(CollectionSource::new(data), "Collection Source")
    }

    /// The numbers `from..=to`, read in parallel.
    pub fn from_sequence(&self, from: i64, to: i64) -> DataStream<i64> {
        self.from_source(SequenceSource::new(from, to), "Sequence Source")
    }

    /// What `factory()` yields, from a single subtask; unbounded if the iterator never ends
    /// and `bounded` is false.
    pub fn from_iter_fn<T, I, F>(&self, factory: F, boundedness: Boundedness) -> DataStream<T>
    where
        T: Data,
        I: Iterator<Item = T> + Send + 'static,
        F: Fn() -> I + Send + Sync + 'static,
    {
        self.from_source(IteratorSource::new(factory, boundedness), "Iterator Source")
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_node(
        &self,
        name: String,
        kind: NodeKind,
        chaining: ChainingStrategy,
        code: NodeCode,
        out_type: TypeOps,
        in_type: Option<TypeOps>,
        inputs: &[(u8, StreamInput)],
    ) -> NodeId {
        let mut st = self.state.borrow_mut();
        let id = NodeId(st.nodes.len() as u32);
        st.nodes.push(StreamNode {
            id,
            name,
            uid: None,
            parallelism: None,
            max_parallelism: None,
            slot_sharing_group: None,
            chaining,
            kind,
            non_parallel: false,
            code,
            out_type,
            in_type,
        });
        for (input_index, i) in inputs {
            st.edges.push(StreamEdge {
                source: i.node,
                target: id,
                partitioner: i.partitioner,
                input_index: *input_index,
                side_output: i.side_output.clone(),
                ty: i.ty,
                writer: i.writer.clone(),
            });
        }
        id
    }

    /// The job as Flink's execution plan JSON (`getExecutionPlan`).
    pub fn execution_plan(&self) -> Result<String> {
        Ok(translate::execution_plan(&self.state.borrow())?)
    }

    /// The JobGraph the current program translates to (for inspection and tests).
    pub fn job_graph(&self, job_name: &str) -> Result<JobGraph> {
        Ok(translate::translate(&self.state.borrow(), job_name)?.job_graph)
    }

    /// Runs the job and waits for it to end.
    pub fn execute(&self, job_name: &str) -> Result<JobExecutionResult> {
        self.execute_async(job_name)?.wait()
    }

    /// Submits the job and returns at once with a handle to wait for or cancel it. The
    /// program's graph is cleared, as in Flink, so the environment can build another job.
    pub fn execute_async(&self, job_name: &str) -> Result<JobClient> {
        if std::env::var_os(cluster_client::INFO).is_some() {
            // `weir info`: the plan is the program's whole output; the job does not run.
            println!("{}", self.execution_plan()?);
            std::process::exit(0);
        }
        let (graph, code) = {
            let st = self.state.borrow();
            let t = translate::translate(&st, job_name)?;
            let code = CompiledJob::new(&st, &t);
            (t.job_graph, code)
        };
        let cluster = {
            let st = self.state.borrow();
            st.cluster.clone()
        };
        if let Some(worker) = weir_cluster::process::worker::WorkerEnv::from_env() {
            // Started by a TaskManager as this job's worker: run its subtasks, never return.
            let worker = worker.map_err(ApiError::Client)?;
            weir_cluster::process::worker::run(worker, &graph, Arc::new(code));
        }
        if cluster.is_none() {
            let set = self.state.borrow().jobmanager.clone();
            if let Some(address) = set.or_else(cluster_client::jobmanager_address) {
                let collects = self.state.borrow().collects_in_process;
                self.clear_program();
                if collects {
                    return Err(ApiError::Client(format!(
                        "job '{job_name}' reads its results back into this program (collect_values or execute_and_collect), which works only on the embedded mini-cluster: on a cluster of processes they would stay in the TaskManagers' workers. Write them to a sink (files, Kafka, PostgreSQL) instead"
                    )));
                }
                return cluster_client::submit(&address, graph, job_name);
            }
        }
        let cluster = cluster.unwrap_or_else(|| {
            MiniCluster::start(MiniClusterConfig {
                task_managers: 1,
                slots_per_task_manager: graph.required_slots(),
            })
        });
        self.clear_program();
        let dispatcher = cluster.dispatcher();
        let job = dispatcher.submit_job(graph, Arc::new(code))?;
        Ok(JobClient {
            backend: Backend::Embedded {
                cluster,
                dispatcher,
            },
            job,
            name: job_name.to_string(),
        })
    }

    /// Clears the program's graph once a job was built from it, as Flink does.
    fn clear_program(&self) {
        let mut st = self.state.borrow_mut();
        st.nodes.clear();
        st.edges.clear();
        st.collects_in_process = false;
    }
}

/// Where a submitted job runs.
pub(crate) enum Backend {
    /// On a mini-cluster in this process.
    Embedded {
        cluster: Arc<MiniCluster>,
        dispatcher: Arc<dyn DispatcherGateway>,
    },
    /// On a cluster reached through its REST API (started by `weir run`).
    Remote(weir_cluster::rest::client::RestClient),
    /// Submitted to a cluster in detached mode: `wait` returns at once.
    Detached(weir_cluster::rest::client::RestClient),
}

/// A submitted job (Flink's `JobClient`).
pub struct JobClient {
    pub(crate) backend: Backend,
    pub(crate) job: JobId,
    pub(crate) name: String,
}

impl JobClient {
    /// The job's id.
    pub fn job_id(&self) -> JobId {
        self.job
    }

    /// The embedded mini-cluster running the job.
    ///
    /// # Panics
    /// If the job runs on a cluster of processes (the program was started by `weir run`):
    /// there is no cluster object in this process then.
    pub fn cluster(&self) -> &Arc<MiniCluster> {
        match &self.backend {
            Backend::Embedded { cluster, .. } => cluster,
            _ => panic!(
                "job {} runs on a remote cluster, not an embedded one",
                self.job
            ),
        }
    }

    fn remote(&self) -> Result<&weir_cluster::rest::client::RestClient> {
        match &self.backend {
            Backend::Remote(c) | Backend::Detached(c) => Ok(c),
            Backend::Embedded { .. } => Err(ApiError::Client(format!(
                "job {} runs on an embedded mini-cluster",
                self.job
            ))),
        }
    }

    /// The job's current status.
    pub fn status(&self) -> Result<JobStatus> {
        match &self.backend {
            Backend::Embedded { dispatcher, .. } => Ok(dispatcher.job_status(self.job)?),
            _ => Ok(self.remote()?.status(self.job)?),
        }
    }

    /// Asks the job to cancel; [`wait`](Self::wait) then reports the cancellation.
    pub fn cancel(&self) -> Result<()> {
        match &self.backend {
            Backend::Embedded { dispatcher, .. } => Ok(dispatcher.cancel_job(self.job)?),
            _ => Ok(self.remote()?.cancel(self.job)?),
        }
    }

    /// Takes a savepoint into a new directory below `target_dir` and waits for it; the
    /// job goes on. Returns the savepoint's directory, to start a job from with
    /// [`StreamExecutionEnvironment::restore_from_savepoint`].
    pub fn trigger_savepoint(&self, target_dir: impl Into<String>) -> Result<String> {
        self.savepoint(target_dir.into(), false)
    }

    fn savepoint(&self, target_dir: String, stop: bool) -> Result<String> {
        match &self.backend {
            Backend::Embedded { dispatcher, .. } => {
                Ok(dispatcher.trigger_savepoint(self.job, target_dir, stop)?)
            }
            _ => Ok(self.remote()?.savepoint(self.job, &target_dir, stop)?),
        }
    }

    /// Takes a savepoint, then stops the job: sources end right after the savepoint
    /// barrier, without the final watermark, and the job finishes (Flink's
    /// stop-with-savepoint). Returns the savepoint's directory.
    pub fn stop_with_savepoint(&self, target_dir: impl Into<String>) -> Result<String> {
        self.savepoint(target_dir.into(), true)
    }

    /// The job's checkpoint counts and history so far (for a job on a cluster, from its
    /// JobManager's REST API).
    pub fn checkpoint_stats(&self) -> Result<weir_cluster::CheckpointHistory> {
        match &self.backend {
            Backend::Embedded { dispatcher, .. } => Ok(dispatcher.checkpoint_stats(self.job)?),
            _ => Ok(self.remote()?.checkpoint_stats(self.job)?),
        }
    }

    /// Waits for the job to end and returns its result (for a job on a cluster, as its
    /// JobManager reports it).
    pub fn wait(&self) -> Result<JobExecutionResult> {
        let failed = |source: ClusterError| ApiError::JobFailed {
            job: self.name.clone(),
            source,
        };
        match &self.backend {
            Backend::Embedded { dispatcher, .. } => {
                dispatcher.request_job_result(self.job).map_err(failed)
            }
            Backend::Remote(c) => c.wait(self.job).map_err(failed),
            Backend::Detached(_) => Ok(JobExecutionResult {
                job_id: self.job,
                job_name: self.name.clone(),
                net_runtime: Duration::ZERO,
                operators: Vec::new(),
                backpressured_ms: 0,
                restarts: 0,
                checkpoints: Default::default(),
            }),
        }
    }
}
