//! The checkpoint coordinator of a JobMaster (Flink's `CheckpointCoordinator`).
//!
//! It triggers checkpoints periodically at the source tasks (respecting the minimum pause
//! and the number of concurrent checkpoints), collects every task's acknowledgement, and
//! completes a checkpoint by writing its `_metadata` atomically. Then it tells every task
//! (two-phase-commit sinks commit), deletes checkpoints beyond the number retained, and
//! subsumes older pending ones. A decline, a storage failure or a timeout aborts a
//! checkpoint; more failures in a row than tolerated fail the job.
//!
//! Checkpoints go on after some tasks finished their input: a finished task is asked
//! directly for every checkpoint whose barrier it did not see, and answers with its final
//! state (FLIP-147's checkpoints after tasks finished). Once every task finished, the job
//! ends through the final notice (see `weir_runtime::task`).

use crate::gateway::{RestorePoint, SavepointReply, TaskExecutorGateway};
use crate::result::{
    CheckpointHistory, CheckpointStats, CheckpointStatus, OperatorCheckpointStats,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weir_core::{CheckpointConfig, JobGraph, JobId, VertexId};
use weir_runtime::checkpoint::{
    in_flight_uid, CheckpointAck, CheckpointBarrier, CheckpointNotice, SHARED_STATE_DIR,
};
use weir_runtime::inbox::TaskControl;
use weir_state::metadata::{OperatorStateMeta, SubtaskStateHandle};
use weir_state::storage::join_location;
use weir_state::{CheckpointStorage, KeyGroupRange, SnapshotKind, SnapshotMetadata};

/// The deployed tasks of one execution attempt, for sending controls.
#[derive(Default)]
pub struct TaskDirectory {
    /// (TaskManager, vertex, subtask, is a source).
    pub tasks: Vec<(Arc<dyn TaskExecutorGateway>, VertexId, u32, bool)>,
}

impl TaskDirectory {
    fn send_all(&self, job: JobId, control: &TaskControl) {
        for (gw, v, s, _) in &self.tasks {
            gw.send_task_control(job, *v, *s, control.clone());
        }
    }
}

/// Shared, observable checkpoint statistics of a job.
pub type CheckpointStatsCell = Arc<Mutex<CheckpointHistory>>;

struct Pending {
    barrier: CheckpointBarrier,
    started: Instant,
    acks: HashMap<(VertexId, u32), CheckpointAck>,
    location: String,
    /// For a savepoint: who waits for it.
    reply: Option<SavepointReply>,
    /// A stop-with-savepoint: the job ends after it.
    stop: bool,
}

/// A completed checkpoint the job can restore from.
#[derive(Clone)]
struct Completed {
    id: u64,
    point: RestorePoint,
    /// Files of the shared state directory it refers to.
    shared: HashSet<String>,
}

/// A checkpoint failure beyond what the job tolerates.
#[derive(Debug)]
pub struct TooManyFailures(pub String);

/// Coordinates the checkpoints of one job over all its execution attempts.
pub struct CheckpointCoordinator {
    job: JobId,
    graph: Arc<JobGraph>,
    cfg: CheckpointConfig,
    root: Option<Arc<CheckpointStorage>>,
    root_location: String,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    completed: VecDeque<Completed>,
    last_trigger: Option<Instant>,
    last_end: Option<Instant>,
    consecutive_failures: u32,
    stopped: bool,
    expected_acks: usize,
    metrics: Arc<crate::metrics::ClusterMetrics>,
    /// The checkpoint taken once every task finished, and whether the job may now end
    /// (that checkpoint ended, or there is none to take).
    final_checkpoint: Option<u64>,
    final_ready: bool,
    /// Every task finished: a final checkpoint is needed before the job may end.
    final_wanted: bool,
    /// A stop-with-savepoint completed: the job only ends now (over all attempts).
    stopped_at: Option<u64>,
    /// Tasks of the current attempt that finished their input.
    finished: std::collections::HashSet<(VertexId, u32)>,
    stats: CheckpointStatsCell,
}

fn now_epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl CheckpointCoordinator {
    /// A coordinator for `job`; storage is opened when checkpointing is on. Fails if the
    /// storage cannot be opened.
    pub fn new(
        job: JobId,
        graph: Arc<JobGraph>,
        stats: CheckpointStatsCell,
        metrics: Arc<crate::metrics::ClusterMetrics>,
    ) -> Result<Self, weir_state::StateError> {
        let cfg = graph.config.checkpoint.clone();
        let (root, root_location) = if cfg.enabled() {
            let base = match &cfg.storage {
                Some(s) => s.clone(),
                None => std::env::temp_dir()
                    .join("weir-checkpoints")
                    .display()
                    .to_string(),
            };
            let storage = CheckpointStorage::open(&join_location(&base, &job.to_string()))?;
            let loc = storage.location().to_string();
            (Some(storage), loc)
        } else {
            (None, String::new())
        };
        Ok(CheckpointCoordinator {
            job,
            graph,
            cfg,
            root,
            root_location,
            next_id: 1,
            pending: BTreeMap::new(),
            completed: VecDeque::new(),
            last_trigger: None,
            last_end: None,
            consecutive_failures: 0,
            stopped: false,
            expected_acks: 0,
            metrics,
            final_checkpoint: None,
            final_ready: false,
            final_wanted: false,
            stopped_at: None,
            finished: Default::default(),
            stats,
        })
    }

    /// True if periodic checkpoints are on.
    pub fn enabled(&self) -> bool {
        self.root.is_some()
    }

    /// The directory of this job's checkpoints.
    pub fn location(&self) -> &str {
        &self.root_location
    }

    fn update_stats(&self, f: impl FnOnce(&mut CheckpointHistory)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records a checkpoint that ended, in the history and the metrics registry.
    fn record_end(&mut self, stats: CheckpointStats) {
        if self.final_checkpoint == Some(stats.id) {
            self.final_checkpoint = None;
            match &stats.status {
                CheckpointStatus::Completed => self.final_ready = true,
                CheckpointStatus::Failed(reason) => {
                    tracing::warn!(job = %self.job, checkpoint = stats.id, %reason, "the final checkpoint failed; it is taken again");
                }
            }
        }
        self.metrics
            .checkpoint_ended(&self.job.to_string(), &self.graph.name, &stats);
        self.update_stats(|s| {
            match stats.status {
                CheckpointStatus::Completed => s.completed += 1,
                CheckpointStatus::Failed(_) => s.failed += 1,
            }
            s.history.push(stats);
        });
    }

    /// A new execution attempt with `tasks` deployed; checkpoints of the previous attempt
    /// were aborted by [`Self::abort_all`].
    pub fn start_attempt(&mut self, total_tasks: usize) {
        self.expected_acks = total_tasks;
        self.stopped = false;
        self.finished.clear();
        self.final_checkpoint = None;
        self.final_ready = false;
        self.final_wanted = false;
        self.last_trigger = Some(Instant::now());
    }

    /// Checkpoint ids continue after `id` (a restored checkpoint or savepoint).
    pub fn continue_after(&mut self, id: u64) {
        self.next_id = self.next_id.max(id + 1);
    }

    /// When the next trigger is due, if checkpoints may be triggered.
    pub fn next_trigger(&self) -> Option<Instant> {
        if self.final_wanted {
            // The final checkpoint failed: take it again after the minimum pause.
            if self.final_ready || self.final_checkpoint.is_some() {
                return None;
            }
            let pause = Duration::from_millis(self.cfg.min_pause_ms);
            return Some(self.last_end.map_or_else(Instant::now, |t| t + pause));
        }
        // No periodic checkpoints while a stop-with-savepoint is under way: the sources
        // stopped at its barrier, and nothing after it may be committed.
        let stopping = self.pending.values().any(|p| p.stop);
        if !self.enabled() || self.stopped || stopping {
            return None;
        }
        let interval = Duration::from_millis(self.cfg.interval_ms);
        let by_interval = self
            .last_trigger
            .map_or_else(Instant::now, |t| t + interval);
        let by_pause = self
            .last_end
            .map(|t| t + Duration::from_millis(self.cfg.min_pause_ms));
        Some(by_pause.map_or(by_interval, |p| p.max(by_interval)))
    }

    /// The earliest time something must happen: a trigger or a timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let expiry = self.pending.values().map(|p| p.started + timeout).min();
        [self.next_trigger(), expiry].into_iter().flatten().min()
    }

    /// Triggers a checkpoint if one is due and allowed.
    pub fn maybe_trigger(&mut self, now: Instant, tasks: &TaskDirectory) {
        let Some(due) = self.next_trigger() else {
            return;
        };
        let running = self.pending.values().filter(|p| p.reply.is_none()).count();
        if now < due || running >= self.cfg.max_concurrent.max(1) as usize {
            return;
        }
        let id = self.start_checkpoint(now, tasks);
        if self.final_wanted {
            self.final_checkpoint = Some(id);
        }
    }

    /// True if checkpoints are unaligned from their start: their barriers are priority
    /// events that overtake queued data. With an aligned timeout a checkpoint starts
    /// aligned, so its barriers travel in-band (Weir switches to unaligned only at the
    /// receiving task, see the aligner).
    fn priority_barriers(&self) -> bool {
        let a = self.cfg.alignment();
        a.mode == weir_core::CheckpointingMode::ExactlyOnce
            && a.unaligned
            && a.aligned_timeout_ms == 0
    }

    /// Triggers checkpoint number `next_id` at the sources and the finished tasks.
    fn start_checkpoint(&mut self, now: Instant, tasks: &TaskDirectory) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.last_trigger = Some(now);
        let location = join_location(&self.root_location, &format!("chk-{id}"));
        let barrier = CheckpointBarrier {
            id,
            timestamp: now_epoch_ms(),
            kind: SnapshotKind::Checkpoint,
            target: location.clone(),
            unaligned: self.priority_barriers(),
        };
        tracing::info!(job = %self.job, checkpoint = id, "triggering checkpoint");
        self.update_stats(|s| s.triggered += 1);
        for (gw, v, s, is_source) in &tasks.tasks {
            if *is_source || self.finished.contains(&(*v, *s)) {
                gw.send_task_control(
                    self.job,
                    *v,
                    *s,
                    TaskControl::TriggerCheckpoint(barrier.clone()),
                );
            }
        }
        self.pending.insert(
            id,
            Pending {
                barrier,
                started: now,
                acks: HashMap::new(),
                location,
                reply: None,
                stop: false,
            },
        );
        id
    }

    /// Takes a savepoint into a new directory below `target_dir` (outside the periodic
    /// schedule and its limits); with `stop` the sources end after it. `reply` gets the
    /// savepoint's directory once its metadata is written, or the reason it failed.
    pub fn trigger_savepoint(
        &mut self,
        target_dir: &str,
        stop: bool,
        reply: SavepointReply,
        tasks: &TaskDirectory,
    ) {
        if self.stopped {
            let _ = reply.send(Err(crate::ClusterError::Savepoint {
                job: self.job,
                message: "the job is finishing; a savepoint needs every task running".into(),
            }));
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let job = self.job.to_string();
        let location = join_location(target_dir, &format!("savepoint-{}-{id}", &job[..6]));
        let barrier = CheckpointBarrier {
            id,
            timestamp: now_epoch_ms(),
            kind: SnapshotKind::Savepoint,
            target: location.clone(),
            unaligned: false,
        };
        tracing::info!(job = %self.job, savepoint = id, stop, location = %location, "triggering savepoint");
        self.update_stats(|s| s.triggered += 1);
        for (gw, v, s, is_source) in &tasks.tasks {
            if *is_source || self.finished.contains(&(*v, *s)) {
                let control = if stop {
                    TaskControl::StopWithSavepoint(barrier.clone())
                } else {
                    TaskControl::TriggerCheckpoint(barrier.clone())
                };
                gw.send_task_control(self.job, *v, *s, control);
            }
        }
        self.pending.insert(
            id,
            Pending {
                barrier,
                started: Instant::now(),
                acks: HashMap::new(),
                location,
                reply: Some(reply),
                stop,
            },
        );
    }

    /// A task acknowledged; completes the checkpoint when every task did.
    pub fn on_ack(
        &mut self,
        ack: CheckpointAck,
        tasks: &TaskDirectory,
    ) -> Result<(), TooManyFailures> {
        let id = ack.checkpoint_id;
        let Some(p) = self.pending.get_mut(&id) else {
            return Ok(());
        };
        p.acks.insert((ack.vertex, ack.subtask), ack);
        if p.acks.len() < self.expected_acks {
            return Ok(());
        }
        let Some(p) = self.pending.remove(&id) else {
            return Ok(());
        };
        match self.complete(&p) {
            Ok(stats) if p.reply.is_some() => {
                tracing::info!(job = %self.job, savepoint = id, location = %p.location, "savepoint complete");
                // After a stop-with-savepoint the job only ends: no more checkpoints. Its
                // completion is announced (sources stop on it, sinks commit), so it is also
                // what a failure before the end restores from. A savepoint that leaves the job
                // running commits nothing (as in Flink since 1.15): recovery never uses it.
                self.stopped |= p.stop;
                if p.stop {
                    self.stopped_at = Some(id);
                }
                self.record_end(stats);
                if p.stop {
                    tasks.send_all(
                        self.job,
                        &TaskControl::Notify(CheckpointNotice::Complete(id)),
                    );
                }
                if let Some(r) = &p.reply {
                    let _ = r.send(Ok(p.location.clone()));
                }
                Ok(())
            }
            Ok(stats) => {
                tracing::info!(job = %self.job, checkpoint = id, bytes = stats.size_bytes, duration_ms = stats.duration_ms, "checkpoint complete");
                self.consecutive_failures = 0;
                self.last_end = Some(Instant::now());
                self.record_end(stats);
                tasks.send_all(
                    self.job,
                    &TaskControl::Notify(CheckpointNotice::Complete(id)),
                );
                // Older pending checkpoints are subsumed (savepoints go on).
                let older: Vec<u64> = self
                    .pending
                    .range(..id)
                    .filter(|(_, p)| p.reply.is_none())
                    .map(|(k, _)| *k)
                    .collect();
                for o in older {
                    self.abort(o, "subsumed by a newer completed checkpoint", false, tasks);
                }
                Ok(())
            }
            Err(e) => {
                let reason = format!("cannot complete checkpoint {id}: {e}");
                self.record_failure(&p, &reason, tasks);
                if p.reply.is_some() {
                    return Ok(());
                }
                self.count_failure(reason)
            }
        }
    }

    fn complete(&mut self, p: &Pending) -> Result<CheckpointStats, weir_state::StateError> {
        let g = &self.graph;
        let mut operators: BTreeMap<String, OperatorStateMeta> = BTreeMap::new();
        let mut op_sizes: Vec<OperatorCheckpointStats> = Vec::new();
        let (mut align, mut sync, mut asyn, mut size) = (0, 0, 0, 0);
        for v in &g.vertices {
            // The operators' state, and the vertex's in-flight data of unaligned checkpoints.
            let in_flight = (
                in_flight_uid(v.id),
                format!("in-flight data of '{}'", v.name),
            );
            let states = v
                .operators
                .iter()
                .map(|op| (op.uid.clone(), op.name.clone()))
                .chain([in_flight]);
            for (uid, name) in states {
                let mut meta = OperatorStateMeta {
                    name: name.clone(),
                    parallelism: v.parallelism,
                    max_parallelism: v.max_parallelism,
                    subtasks: Vec::new(),
                    has_union_state: false,
                };
                let mut bytes = 0;
                for s in 0..v.parallelism {
                    let Some(ack) = p.acks.get(&(v.id, s)) else {
                        continue;
                    };
                    let Some(st) = ack.operators.iter().find(|o| o.uid == uid) else {
                        continue;
                    };
                    let Some((file, file_size)) = &ack.file else {
                        continue;
                    };
                    bytes += st.bytes;
                    meta.has_union_state |= st.union;
                    // Only keyed state has key groups; other state restores at any max
                    // parallelism.
                    let range = if st.keyed {
                        KeyGroupRange::for_subtask(v.max_parallelism, v.parallelism, s)
                    } else {
                        KeyGroupRange { start: 0, end: 0 }
                    };
                    meta.subtasks.push(SubtaskStateHandle {
                        subtask: s,
                        file: file.clone(),
                        size: *file_size,
                        key_group_start: range.start,
                        key_group_end: range.end,
                    });
                }
                if !meta.subtasks.is_empty() {
                    operators.insert(uid.clone(), meta);
                    op_sizes.push(OperatorCheckpointStats {
                        uid,
                        name,
                        size_bytes: bytes,
                    });
                }
            }
        }
        let mut files_seen = std::collections::HashSet::new();
        for ack in p.acks.values() {
            align = align.max(ack.alignment_ms);
            sync = sync.max(ack.sync_ms);
            asyn = asyn.max(ack.async_ms);
            if let Some((f, s)) = &ack.file {
                if files_seen.insert(f.clone()) {
                    size += s;
                }
            }
        }
        let meta = SnapshotMetadata {
            job_id: self.job.to_string(),
            job_name: g.name.clone(),
            checkpoint_id: p.barrier.id,
            timestamp_ms: p.barrier.timestamp,
            kind: p.barrier.kind,
            operators,
        };
        let storage = CheckpointStorage::open(&p.location)?;
        meta.write(&storage)?;
        if p.reply.is_none() || p.stop {
            self.remember(p, meta);
        }
        Ok(CheckpointStats {
            id: p.barrier.id,
            savepoint: p.barrier.kind == SnapshotKind::Savepoint,
            status: CheckpointStatus::Completed,
            trigger_timestamp_ms: p.barrier.timestamp,
            duration_ms: p.started.elapsed().as_millis() as u64,
            size_bytes: size,
            alignment_ms: align,
            sync_ms: sync,
            async_ms: asyn,
            location: Some(p.location.clone()),
            operators: op_sizes,
        })
    }

    /// Keeps a completed checkpoint for recovery and deletes those beyond the retained.
    fn remember(&mut self, p: &Pending, meta: SnapshotMetadata) {
        self.completed.push_back(Completed {
            id: p.barrier.id,
            point: RestorePoint {
                location: p.location.clone(),
                metadata: Arc::new(meta),
            },
            shared: p
                .acks
                .values()
                .flat_map(|a| a.shared_files.iter().cloned())
                .collect(),
        });
        while self.completed.len() > self.cfg.retained.max(1) as usize {
            if let Some(old) = self.completed.pop_front() {
                // Savepoints belong to the user: only checkpoints are deleted.
                if old.point.metadata.kind == SnapshotKind::Checkpoint {
                    self.delete_dir(&format!("chk-{}", old.id));
                }
                // Shared files go when no retained or pending checkpoint refers to them.
                for f in &old.shared {
                    if !self.shared_in_use(f) {
                        self.delete_file(&format!("{SHARED_STATE_DIR}/{f}"));
                    }
                }
            }
        }
    }

    /// True if a retained or pending checkpoint refers to shared file `name`.
    fn shared_in_use(&self, name: &str) -> bool {
        self.completed.iter().any(|c| c.shared.contains(name))
            || self.pending.values().any(|p| {
                p.acks
                    .values()
                    .any(|a| a.shared_files.iter().any(|f| f == name))
            })
    }

    fn delete_file(&self, rel: &str) {
        if let Some(root) = &self.root {
            if let Err(e) = root.delete(rel) {
                tracing::warn!(job = %self.job, file = rel, error = %e, "cannot delete a shared state file");
            }
        }
    }

    fn delete_dir(&self, rel: &str) {
        if let Some(root) = &self.root {
            if let Err(e) = root.delete_dir(rel) {
                tracing::warn!(job = %self.job, dir = rel, error = %e, "cannot delete a checkpoint directory");
            }
        }
    }

    fn record_failure(&mut self, p: &Pending, reason: &str, tasks: &TaskDirectory) {
        let id = p.barrier.id;
        tracing::warn!(job = %self.job, checkpoint = id, %reason, "checkpoint aborted");
        tasks.send_all(
            self.job,
            &TaskControl::Notify(CheckpointNotice::Aborted(id)),
        );
        self.delete_dir(&format!("chk-{id}"));
        self.last_end = Some(Instant::now());
        let stats = CheckpointStats {
            id,
            savepoint: p.barrier.kind == SnapshotKind::Savepoint,
            status: CheckpointStatus::Failed(reason.to_string()),
            trigger_timestamp_ms: p.barrier.timestamp,
            duration_ms: p.started.elapsed().as_millis() as u64,
            size_bytes: 0,
            alignment_ms: 0,
            sync_ms: 0,
            async_ms: 0,
            location: None,
            operators: Vec::new(),
        };
        self.record_end(stats);
    }

    fn count_failure(&mut self, reason: String) -> Result<(), TooManyFailures> {
        self.consecutive_failures += 1;
        if self.consecutive_failures > self.cfg.tolerable_failures {
            return Err(TooManyFailures(format!(
                "{} checkpoint failure(s) in a row exceed the tolerable {} (last: {reason}); raise the tolerable checkpoint failures or fix the cause",
                self.consecutive_failures, self.cfg.tolerable_failures
            )));
        }
        Ok(())
    }

    fn abort(
        &mut self,
        id: u64,
        reason: &str,
        counts: bool,
        tasks: &TaskDirectory,
    ) -> Option<String> {
        let p = self.pending.remove(&id)?;
        self.record_failure(&p, reason, tasks);
        counts.then(|| reason.to_string())
    }

    /// A task declined checkpoint `id`.
    pub fn on_decline(
        &mut self,
        id: u64,
        reason: String,
        tasks: &TaskDirectory,
    ) -> Result<(), TooManyFailures> {
        match self.abort(id, &reason, true, tasks) {
            Some(r) => self.count_failure(r),
            None => Ok(()),
        }
    }

    /// Aborts pending checkpoints older than the timeout.
    pub fn check_timeouts(
        &mut self,
        now: Instant,
        tasks: &TaskDirectory,
    ) -> Result<(), TooManyFailures> {
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.started) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let reason = format!("checkpoint {id} expired after {} ms", self.cfg.timeout_ms);
            if let Some(r) = self.abort(id, &reason, true, tasks) {
                self.count_failure(r)?;
            }
        }
        Ok(())
    }

    /// Task (`vertex`, `subtask`) finished its input: it is asked for the pending
    /// checkpoints it has not acknowledged, and for later ones directly. When every task
    /// finished, checkpointing stops.
    pub fn task_finished(&mut self, vertex: VertexId, subtask: u32, tasks: &TaskDirectory) {
        self.finished.insert((vertex, subtask));
        if let Some((gw, ..)) = tasks
            .tasks
            .iter()
            .find(|(_, v, s, _)| *v == vertex && *s == subtask)
        {
            for p in self.pending.values() {
                if !p.acks.contains_key(&(vertex, subtask)) {
                    gw.send_task_control(
                        self.job,
                        vertex,
                        subtask,
                        TaskControl::TriggerCheckpoint(p.barrier.clone()),
                    );
                }
            }
        }
        if self.finished.len() >= self.expected_acks {
            if self.enabled() && !self.stopped {
                // A last checkpoint of the finished job: a failure from now on restores
                // every task as finished, so nothing committed at the end is replayed. It
                // is taken again until one completes.
                self.stopped = true;
                self.final_wanted = true;
                self.final_checkpoint = Some(self.start_checkpoint(Instant::now(), tasks));
            } else {
                self.final_ready = true;
            }
        }
    }

    /// The stop-with-savepoint that completed, if one did: the job must not run on.
    pub fn stopped_at_savepoint(&self) -> Option<u64> {
        self.stopped_at
    }

    /// True once the job may end: every task finished and the final checkpoint ended.
    pub fn final_ready(&self) -> bool {
        self.final_ready
    }

    /// The attempt ended (failed or cancelled): pending checkpoints can never complete.
    pub fn abort_all(&mut self, reason: &str) {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        let none = TaskDirectory::default();
        for id in ids {
            self.abort(id, reason, false, &none);
        }
        self.consecutive_failures = 0;
    }

    /// The latest completed checkpoint, to restore from after a failure.
    pub fn latest(&self) -> Option<RestorePoint> {
        self.completed.back().map(|c| c.point.clone())
    }

    /// Forgets checkpoint `id` (it could not be restored); an earlier one becomes the latest.
    pub fn discard(&mut self, id: u64) {
        self.completed.retain(|c| c.id != id);
    }

    /// The job ended for good: aborts pending checkpoints and deletes incomplete ones; the
    /// retained completed checkpoints stay (as Flink's retained checkpoints).
    pub fn shutdown(&mut self) {
        self.abort_all("the job ended");
        self.delete_incomplete();
    }

    /// Deletes checkpoint directories that are not retained completed checkpoints: aborted
    /// ones, and files an upload finished after its checkpoint was aborted.
    fn delete_incomplete(&self) {
        let Some(root) = &self.root else {
            return;
        };
        if !weir_state::storage::wait_for_uploads(Duration::from_secs(10)) {
            tracing::warn!(job = %self.job, "uploads still running; incomplete checkpoints may stay behind");
        }
        let dirs = match root.list_dirs("") {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(job = %self.job, error = %e, "cannot list checkpoints");
                return;
            }
        };
        for d in dirs {
            let id = d.strip_prefix("chk-").and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| !self.completed.iter().any(|c| c.id == id)) {
                self.delete_dir(&d);
            }
        }
        // Shared files that no retained checkpoint refers to (uploaded for checkpoints that
        // were aborted or discarded).
        match root.list_files(SHARED_STATE_DIR) {
            Ok(files) => {
                for f in files {
                    if !self.completed.iter().any(|c| c.shared.contains(&f)) {
                        self.delete_file(&format!("{SHARED_STATE_DIR}/{f}"));
                    }
                }
            }
            Err(e) => tracing::warn!(job = %self.job, error = %e, "cannot list shared state files"),
        }
    }
}
