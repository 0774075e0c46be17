//! How a task takes part in checkpoints: it snapshots its chain on its own thread, stores
//! the snapshot in the background and acknowledges it to the coordinator (or declines).

use super::TaskCheckpointing;
use crate::checkpoint::{
    in_flight_uid, CheckpointAck, CheckpointBarrier, InFlightChannel, OperatorStateSize,
    IN_FLIGHT_STATE,
};
use crate::error::{Result, RuntimeError};
use std::time::Instant;
use weir_state::{CheckpointStorage, TaskStateSnapshot};

/// A task's side of checkpointing: its name (for messages) and whom it reports to.
pub(super) struct Snapshots {
    pub(super) name: String,
    pub(super) checkpointing: Option<TaskCheckpointing>,
}

impl Snapshots {
    /// Notes that the task snapshots checkpoint `id` (the end-of-job protocol asks which
    /// checkpoints a finished task has not taken part in).
    pub(super) fn begin(&self, id: u64) {
        if let Some(cp) = &self.checkpointing {
            cp.last_snapshot
                .fetch_max(id, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Takes checkpoint `barrier` of the chain behind `head` (the closure snapshots the
    /// chain and sends the barrier on), then stores the snapshot in the background and
    /// acknowledges it.
    pub(super) fn take(
        &self,
        barrier: &CheckpointBarrier,
        alignment_ms: u64,
        snapshot_chain: impl FnOnce(&mut TaskStateSnapshot) -> Result<()>,
    ) -> Result<()> {
        let start = Instant::now();
        let mut snap = TaskStateSnapshot::default();
        self.begin(barrier.id);
        snapshot_chain(&mut snap)?;
        self.store(barrier, alignment_ms, start, snap);
        Ok(())
    }

    /// Adds the recorded in-flight data of an unaligned checkpoint to its snapshot.
    pub(super) fn add_in_flight(
        &self,
        channels: usize,
        data: Vec<(usize, Vec<u8>)>,
        snap: &mut TaskStateSnapshot,
    ) -> Result<()> {
        let Some(cp) = &self.checkpointing else {
            return Ok(());
        };
        let elements = data
            .into_iter()
            .map(|(ch, data)| {
                bincode::serialize(&InFlightChannel {
                    subtask: cp.subtask,
                    parallelism: cp.parallelism,
                    channels: channels as u32,
                    channel: ch as u32,
                    data,
                })
                .map_err(|e| RuntimeError::Codec {
                    context: "cannot encode in-flight data".into(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !elements.is_empty() {
            snap.operators
                .entry(in_flight_uid(cp.vertex))
                .or_default()
                .add_list(IN_FLIGHT_STATE, elements);
        }
        Ok(())
    }

    /// Stores a taken snapshot in the background and acknowledges it (or declines). The
    /// snapshot's deferred parts are encoded there too, so processing waited only for the
    /// copies the operators took.
    pub(super) fn store(
        &self,
        barrier: &CheckpointBarrier,
        alignment_ms: u64,
        start: Instant,
        mut snap: TaskStateSnapshot,
    ) {
        let name = self.name.as_str();
        let Some(cp) = &self.checkpointing else {
            // A task outside checkpointing (an embedded test) only forwards barriers.
            return;
        };
        let mut ack = CheckpointAck {
            checkpoint_id: barrier.id,
            vertex: cp.vertex,
            subtask: cp.subtask,
            file: None,
            operators: Vec::new(),
            alignment_ms,
            sync_ms: start.elapsed().as_millis() as u64,
            async_ms: 0,
            shared_files: Vec::new(),
        };
        if snap.operators.is_empty() {
            cp.responder.acknowledge(ack);
            return;
        }
        let storage = match CheckpointStorage::open(&barrier.target) {
            Ok(s) => s,
            Err(e) => {
                let reason = format!("task '{name}': {e}");
                tracing::warn!(task = %name, checkpoint = barrier.id, %reason, "checkpoint declined");
                cp.responder
                    .decline(barrier.id, cp.vertex, cp.subtask, reason);
                return;
            }
        };
        let file = format!("v{}-s{}.state", cp.vertex.0, cp.subtask);
        let responder = cp.responder.clone();
        let (id, vertex, subtask) = (barrier.id, cp.vertex, cp.subtask);
        let task = name.to_string();
        let upload_start = Instant::now();
        storage.put_async(
            file.clone(),
            move || {
                snap.resolve()?;
                let sizes: Vec<OperatorStateSize> = snap
                    .operators
                    .iter()
                    .map(|(uid, st)| OperatorStateSize {
                        uid: uid.clone(),
                        bytes: st.size(),
                        keyed: !st.key_groups.is_empty() || !st.handles.is_empty(),
                        union: !st.unions.is_empty(),
                    })
                    .collect();
                let shared: Vec<String> = snap
                    .operators
                    .values()
                    .flat_map(|st| st.shared_files())
                    .collect();
                Ok((snap.to_file_bytes()?, (sizes, shared)))
            },
            move |r| match r {
                Ok((size, (sizes, shared))) => {
                    ack.operators = sizes;
                    ack.shared_files = shared;
                    ack.file = Some((file, size));
                    ack.async_ms = upload_start.elapsed().as_millis() as u64;
                    responder.acknowledge(ack);
                }
                Err(e) => {
                    let reason = format!("task '{task}' cannot store its state: {e}");
                    tracing::warn!(task = %task, checkpoint = id, %reason, "checkpoint declined");
                    responder.decline(id, vertex, subtask, reason)
                }
            },
        );
    }
}
