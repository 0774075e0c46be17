//! The networked ResourceManager's table of TaskManager processes: who registered, with how
//! many slots, and when each was last heard from.
//!
//! A TaskManager that sends no heartbeat for longer than the heartbeat timeout is declared
//! lost and removed, and its slots with it (Flink's heartbeat timeout between the
//! ResourceManager and its TaskExecutors). A heartbeat from a TaskManager that is not in the
//! table (declared lost, or registered with an earlier JobManager) is answered with "not
//! registered", and the TaskManager registers again.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the ResourceManager knows of one TaskManager process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskManagerInfo {
    /// The TaskManager's id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// The port of its data plane.
    pub data_port: u16,
    /// Task slots it offers.
    pub slots: u32,
    /// Slots allocated to jobs.
    pub allocated_slots: u32,
    /// CPU cores of its host.
    pub cpu_cores: u32,
    /// Physical memory of its host, in bytes.
    pub physical_memory: u64,
    /// When the last heartbeat (or the registration) arrived, in ms since the Unix epoch.
    pub last_heartbeat_epoch_ms: u64,
}

struct Entry {
    info: TaskManagerInfo,
    last_heartbeat: Instant,
}

/// How a registration was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// A TaskManager not seen before.
    New,
    /// A TaskManager that was registered already (it lost its connection and came back);
    /// its entry is replaced.
    Again,
}

/// What the REST API lists as TaskManagers: the networked ResourceManager's table, or the
/// embedded mini-cluster's in-process TaskManagers.
pub trait TaskManagerDirectory: Send + Sync {
    /// Every TaskManager, by id.
    fn list(&self) -> Vec<TaskManagerInfo>;

    /// One TaskManager.
    fn get(&self, id: &str) -> Option<TaskManagerInfo> {
        self.list().into_iter().find(|t| t.id == id)
    }

    /// (total, free) slots over all TaskManagers.
    fn slots(&self) -> (u32, u32) {
        // Slot counts may come from the network: add without overflowing.
        self.list().iter().fold((0u32, 0u32), |(t, f), tm| {
            (
                t.saturating_add(tm.slots),
                f.saturating_add(tm.slots.saturating_sub(tm.allocated_slots)),
            )
        })
    }
}

impl TaskManagerDirectory for TaskManagerRegistry {
    fn list(&self) -> Vec<TaskManagerInfo> {
        self.lock().values().map(|e| e.info.clone()).collect()
    }

    fn get(&self, id: &str) -> Option<TaskManagerInfo> {
        self.lock().get(id).map(|e| e.info.clone())
    }
}

/// The table, safe to share between the RPC service, the REST API and the heartbeat check.
pub struct TaskManagerRegistry {
    entries: Mutex<BTreeMap<String, Entry>>,
    heartbeat_timeout: Duration,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl TaskManagerRegistry {
    /// An empty table whose TaskManagers are lost after `heartbeat_timeout` of silence.
    pub fn new(heartbeat_timeout: Duration) -> Self {
        TaskManagerRegistry {
            entries: Mutex::new(BTreeMap::new()),
            heartbeat_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // The table stays consistent if a holder panicked: every update is one insert or
        // remove.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The heartbeat timeout.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_timeout
    }

    /// Registers `info` (its heartbeat time is now).
    pub fn register(&self, mut info: TaskManagerInfo) -> Registration {
        info.last_heartbeat_epoch_ms = epoch_ms();
        let entry = Entry {
            info,
            last_heartbeat: Instant::now(),
        };
        match self.lock().insert(entry.info.id.clone(), entry) {
            None => Registration::New,
            Some(_) => Registration::Again,
        }
    }

    /// A heartbeat of `id`; false if `id` is not registered.
    pub fn heartbeat(&self, id: &str) -> bool {
        match self.lock().get_mut(id) {
            Some(e) => {
                e.last_heartbeat = Instant::now();
                e.info.last_heartbeat_epoch_ms = epoch_ms();
                true
            }
            None => false,
        }
    }

    /// Removes `id`; false if it was not registered.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// Removes every TaskManager silent for longer than the heartbeat timeout at `now` and
    /// returns them.
    pub fn expire(&self, now: Instant) -> Vec<TaskManagerInfo> {
        let timeout = self.heartbeat_timeout;
        let mut entries = self.lock();
        let lost: Vec<String> = entries
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last_heartbeat) > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        lost.iter()
            .filter_map(|id| entries.remove(id).map(|e| e.info))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(id: &str, slots: u32) -> TaskManagerInfo {
        TaskManagerInfo {
            id: id.into(),
            host: "127.0.0.1".into(),
            pid: 1,
            data_port: 1,
            slots,
            allocated_slots: 0,
            cpu_cores: 2,
            physical_memory: 1 << 30,
            last_heartbeat_epoch_ms: 0,
        }
    }

    #[test]
    fn silent_task_managers_expire_and_heartbeats_keep_them() {
        let r = TaskManagerRegistry::new(Duration::from_millis(100));
        assert_eq!(r.register(tm("a", 2)), Registration::New);
        assert_eq!(r.register(tm("b", 3)), Registration::New);
        assert_eq!(r.slots(), (5, 5));
        let later = Instant::now() + Duration::from_millis(150);
        assert!(r.heartbeat("b"));
        let lost = r.expire(Instant::now() + Duration::from_millis(50));
        assert!(lost.is_empty());
        let lost: Vec<String> = r
            .expire(later)
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>();
        assert!(lost.contains(&"a".to_string()));
        assert!(!r.heartbeat("a"), "a lost TaskManager must register again");
        assert_eq!(r.register(tm("a", 2)), Registration::New);
        assert_eq!(r.register(tm("a", 2)), Registration::Again);
        assert!(r.remove("a"));
        assert!(!r.remove("a"));
    }
}
