//! The in-process shuffle service: where a producer finds the inbox of a consumer subtask.
//!
//! Inboxes are created on first use by whichever side asks first, so producers and consumers
//! can be deployed in any order. The networked cluster replaces this lookup with a connection
//! to the consumer's TaskManager.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use weir_core::{JobId, VertexId};
use weir_runtime::inbox::TaskInbox;

/// Inboxes of all subtasks of all jobs in this process.
#[derive(Default)]
pub struct LocalShuffle {
    inboxes: Mutex<HashMap<InboxKey, Arc<TaskInbox>>>,
}

/// Job, execution attempt, vertex and subtask of an inbox.
type InboxKey = (JobId, u32, VertexId, u32);

impl LocalShuffle {
    /// The inbox of subtask `subtask` of `vertex` of execution attempt `attempt` of `job`.
    /// Each attempt (restart) gets fresh inboxes; those of earlier attempts are dropped.
    pub fn inbox(
        &self,
        job: JobId,
        attempt: u32,
        vertex: VertexId,
        subtask: u32,
    ) -> Arc<TaskInbox> {
        let mut map = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| k.0 != job || k.1 >= attempt);
        map.entry((job, attempt, vertex, subtask))
            .or_default()
            .clone()
    }

    /// Forgets every inbox of `job` (it ended).
    pub fn release_job(&self, job: JobId) {
        let mut map = self.inboxes.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| k.0 != job);
    }
}
