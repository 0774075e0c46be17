//! The ResourceManager: registers TaskManagers and allocates their slots to jobs.

use crate::error::{ClusterError, Result};
use crate::gateway::{
    AllocatedSlot, ResourceManagerGateway, SlotReport, TaskExecutorGateway, TaskManagerId,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use weir_core::JobId;

struct Registered {
    slots: Vec<Option<JobId>>,
    gateway: Arc<dyn TaskExecutorGateway>,
}

/// Keeps the slot table of the cluster.
#[derive(Default)]
pub struct ResourceManager {
    task_managers: Mutex<BTreeMap<TaskManagerId, Registered>>,
    freed: Condvar,
}

impl ResourceManager {
    /// An empty ResourceManager.
    pub fn new() -> Arc<Self> {
        Arc::new(ResourceManager::default())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<TaskManagerId, Registered>> {
        self.task_managers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(tms: &BTreeMap<TaskManagerId, Registered>) -> SlotReport {
        SlotReport {
            task_managers: tms.len(),
            total: tms.values().map(|t| t.slots.len()).sum(),
            free: tms
                .values()
                .map(|t| t.slots.iter().filter(|s| s.is_none()).count())
                .sum(),
        }
    }
}

impl ResourceManager {
    /// Slots of TaskManager `id` allocated to jobs (0 if it is not registered).
    pub fn allocated_slots(&self, id: &str) -> u32 {
        self.lock().get(id).map_or(0, |tm| {
            tm.slots.iter().filter(|s| s.is_some()).count() as u32
        })
    }

    /// Removes a TaskManager that left or was lost; its slots are gone. True if it was
    /// registered.
    pub fn unregister(&self, id: &str) -> bool {
        let removed = self.lock().remove(id).is_some();
        if removed {
            tracing::info!(task_manager = %id, "TaskManager unregistered");
        }
        removed
    }
}

impl crate::task_manager_registry::TaskManagerDirectory for ResourceManager {
    /// The in-process TaskManagers of an embedded mini-cluster (no data port: their
    /// channels stay in memory).
    fn list(&self) -> Vec<crate::task_manager_registry::TaskManagerInfo> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        self.lock()
            .iter()
            .map(|(id, tm)| crate::task_manager_registry::TaskManagerInfo {
                id: id.clone(),
                host: "localhost".into(),
                pid: std::process::id(),
                data_port: 0,
                slots: tm.slots.len() as u32,
                allocated_slots: tm.slots.iter().filter(|s| s.is_some()).count() as u32,
                cpu_cores: cores,
                physical_memory: 0,
                last_heartbeat_epoch_ms: 0,
            })
            .collect()
    }
}

impl ResourceManagerGateway for ResourceManager {
    fn register_task_manager(
        &self,
        id: TaskManagerId,
        slots: usize,
        gateway: Arc<dyn TaskExecutorGateway>,
    ) {
        tracing::info!(task_manager = %id, slots, "TaskManager registered");
        self.lock().insert(
            id,
            Registered {
                slots: vec![None; slots],
                gateway,
            },
        );
        self.freed.notify_all();
    }

    fn request_slots(
        &self,
        job: JobId,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<AllocatedSlot>> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut tms = self.lock();
        loop {
            let report = Self::report(&tms);
            if report.free >= count {
                let mut out = Vec::with_capacity(count);
                // Spread over TaskManagers in order, filling each before the next.
                'fill: for (id, tm) in tms.iter_mut() {
                    for (i, slot) in tm.slots.iter_mut().enumerate() {
                        if out.len() == count {
                            break 'fill;
                        }
                        if slot.is_none() {
                            *slot = Some(job);
                            out.push(AllocatedSlot {
                                task_manager: id.clone(),
                                index: i,
                                gateway: tm.gateway.clone(),
                            });
                        }
                    }
                }
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClusterError::NotEnoughSlots {
                    job,
                    needed: count,
                    total: report.total,
                    free: report.free,
                    waited_ms: start.elapsed().as_millis() as u64,
                });
            }
            tms = self
                .freed
                .wait_timeout(tms, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn release_slots(&self, job: JobId) {
        let mut tms = self.lock();
        for tm in tms.values_mut() {
            for s in tm.slots.iter_mut() {
                if *s == Some(job) {
                    *s = None;
                }
            }
        }
        drop(tms);
        self.freed.notify_all();
    }

    fn slot_report(&self) -> SlotReport {
        Self::report(&self.lock())
    }

    fn still_holds(&self, slot: &AllocatedSlot) -> bool {
        self.lock()
            .get(&slot.task_manager)
            .is_some_and(|tm| Arc::ptr_eq(&tm.gateway, &slot.gateway))
    }
}
