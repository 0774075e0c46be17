//! The TaskManager: runs deployed tasks, one OS thread each, and reports how they end.

use crate::error::{ClusterError, Result};
use crate::gateway::{
    TaskDeployment, TaskEnd, TaskExecutionState, TaskExecutorGateway, TaskManagerId,
};
use crate::shuffle::LocalShuffle;
use crate::wiring::{input_channels, output_targets};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use weir_core::{JobId, VertexId};
use weir_runtime::buffer::BufferPool;
use weir_runtime::deploy::{OutputEdgeIo, TaskIo};
use weir_runtime::inbox::ChannelSender;
use weir_runtime::operator::catch_user_panic;
use weir_runtime::task::{Task, TaskCanceller};
use weir_runtime::time::ProcessingTimeService;
use weir_runtime::RuntimeError;

/// A running subtask: job, vertex and subtask index.
type TaskKey = (JobId, VertexId, u32);

/// Cancel handles of the running tasks.
type RunningTasks = Arc<Mutex<HashMap<TaskKey, TaskCanceller>>>;

/// A TaskManager with a fixed number of slots.
pub struct TaskManager {
    id: TaskManagerId,
    slots: usize,
    shuffle: Arc<LocalShuffle>,
    running: RunningTasks,
    live_threads: Arc<AtomicUsize>,
}

impl TaskManager {
    /// A TaskManager named `id` with `slots` slots, exchanging data through `shuffle`.
    pub fn new(
        id: impl Into<TaskManagerId>,
        slots: usize,
        shuffle: Arc<LocalShuffle>,
    ) -> Arc<Self> {
        Arc::new(TaskManager {
            id: id.into(),
            slots,
            shuffle,
            running: Arc::new(Mutex::new(HashMap::new())),
            live_threads: Arc::new(AtomicUsize::new(0)),
        })
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
        for (i, e) in graph.edges.iter().enumerate() {
            if e.source != d.vertex {
                continue;
            }
            let senders: Vec<ChannelSender> = output_targets(graph, i, d.subtask)
                .into_iter()
                .map(|(consumer, channel)| {
                    ChannelSender::new(self.shuffle.inbox(d.job, e.target, consumer), channel)
                })
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
            processing_time: ProcessingTimeService::default(),
        }
    }
}

impl TaskExecutorGateway for TaskManager {
    fn submit_task(&self, d: TaskDeployment) -> Result<()> {
        let vertex = d.graph.vertex(d.vertex);
        let task_name = format!("{} ({}/{})", vertex.name, d.subtask + 1, vertex.parallelism);
        let io = self.build_io(&d);
        let pool = io.pool.clone();
        let processing_time = io.processing_time.clone();
        let inbox = self.shuffle.inbox(d.job, d.vertex, d.subtask);
        let key = (d.job, d.vertex, d.subtask);
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, TaskCanceller::new(inbox.clone(), pool.clone()));
        let live = self.live_threads.clone();
        let running = self.running.clone();
        live.fetch_add(1, Ordering::SeqCst);
        let thread_name = task_name.clone();
        let job = d.job;
        let spawned = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                tracing::debug!(task = %task_name, "task started");
                // The operators are built on the task's own thread, so that user code in
                // constructors and `open` runs where the task runs and its panics fail the task.
                let built = catch_user_panic(|| d.code.instantiate(&d.graph, d.vertex, io))
                    .map_err(|e| match e {
                        RuntimeError::Other(m) => {
                            RuntimeError::Other(format!("building task '{task_name}': {m}"))
                        }
                        e => e,
                    });
                let (end, metrics, backpressured_ms) = match built {
                    Ok(head) => {
                        let outcome = Task::new(
                            task_name.clone(),
                            head,
                            inbox,
                            pool,
                            d.graph.config.buffer_timeout_ms,
                            processing_time,
                        )
                        .run();
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
                running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                live.fetch_sub(1, Ordering::SeqCst);
                d.job_master
                    .update_task_execution_state(TaskExecutionState {
                        job: d.job,
                        vertex: d.vertex,
                        subtask: d.subtask,
                        end,
                        metrics,
                        backpressured_ms,
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
        for (k, c) in running.iter() {
            if k.0 == job {
                c.cancel();
            }
        }
    }

    fn running_tasks(&self) -> usize {
        self.live_threads.load(Ordering::SeqCst)
    }
}
