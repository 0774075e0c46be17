//! Idle state retention of SQL operators (`SET 'table.exec.state.ttl' = '1 h'`, Flink's
//! state TTL for SQL): the state of a key that was not written for the TTL is gone.
//!
//! As Flink configures it for SQL operators: the time is processing time, every write
//! refreshes it (`OnCreateAndWrite`), and expired state is never returned
//! (`NeverReturnExpired`): a key seen again after its TTL starts afresh, so a group
//! aggregate emits `+I` for it again.
//!
//! **Removal.** Each key with state has one processing-time cleanup timer, at its last
//! write plus the TTL. When it fires, a key written since gets a new timer at its new
//! expiry; a key that was not has its state removed. So expired state goes also when its
//! key is never read again, on both state backends and without a checkpoint. Departure
//! from Flink: Flink 2.x removes expired SQL state in the background through its state
//! backends (a few entries per state access on the heap, a compaction filter on RocksDB);
//! a timer per key (Flink's older SQL cleanup) is exact in time and needs nothing from
//! the backend, for one timer entry per key. Writes do not touch the timer: one timer per
//! key at a time.

use crate::values::RowKey;
use serde::{Deserialize, Serialize};
use weir_api::timers::InternalTimers;
use weir_state::{KeyedStateBackend, Namespace, StateId};

/// The TTL of idle state, in milliseconds (above 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateTtl(pub i64);

/// State name of the write times: when each key's state (in one namespace) was last
/// written, in ms of processing time.
const WRITTEN: &str = "retention";

/// The retention bookkeeping of one operator subtask: keys' last write times in keyed
/// state, and their cleanup timers in the operator's processing-time queue.
pub struct Retention<N> {
    ttl: i64,
    written: StateId,
    _ns: std::marker::PhantomData<N>,
}

impl<N: Namespace + Clone> Retention<N> {
    /// The bookkeeping of `ttl` in `backend`; `None` without a TTL.
    pub fn register(
        backend: &mut KeyedStateBackend<RowKey>,
        ttl: Option<StateTtl>,
    ) -> weir_state::Result<Option<Self>> {
        let Some(StateTtl(ttl)) = ttl.filter(|t| t.0 > 0) else {
            return Ok(None);
        };
        Ok(Some(Retention {
            ttl,
            written: backend.register::<N, i64>(WRITTEN)?,
            _ns: std::marker::PhantomData,
        }))
    }

    /// The TTL in milliseconds.
    pub fn ttl_ms(&self) -> i64 {
        self.ttl
    }

    /// True if the current key's state in `ns` expired at `now` (its caller removes it
    /// and goes on as if there was none). The bookkeeping of an expired key is removed.
    pub fn expired(
        &self,
        backend: &mut KeyedStateBackend<RowKey>,
        ns: &N,
        now: i64,
    ) -> weir_state::Result<bool> {
        let (table, k, slot) = backend.table::<N, i64>(self.written)?;
        let expired = table
            .get(slot, k, ns)?
            .is_some_and(|at| at.saturating_add(self.ttl) <= now);
        if expired {
            table.remove(slot, k, ns)?;
        }
        Ok(expired)
    }

    /// The current key's state in `ns` was written at `now`; a key without a cleanup timer
    /// gets one.
    pub fn written(
        &self,
        backend: &mut KeyedStateBackend<RowKey>,
        timers: &mut InternalTimers<RowKey, N>,
        key: &RowKey,
        ns: &N,
        now: i64,
    ) -> weir_state::Result<()> {
        let (table, k, slot) = backend.table::<N, i64>(self.written)?;
        if table.get(slot, k, ns)?.is_none() {
            // A key with a write time has its timer already.
            timers.register_processing(now.saturating_add(self.ttl), key.clone(), ns.clone());
        }
        table.insert(slot, k, ns, now)
    }

    /// Fires the cleanup timers due at `now`: each key whose state expired is made the
    /// current key of `backend` and handed to `remove` with its namespace.
    pub fn expire_due(
        &self,
        backend: &mut KeyedStateBackend<RowKey>,
        timers: &mut InternalTimers<RowKey, N>,
        now: i64,
        mut remove: impl FnMut(&mut KeyedStateBackend<RowKey>, &N) -> weir_state::Result<()>,
    ) -> weir_state::Result<()> {
        while let Some((_, key, ns)) = timers.processing.pop_due(now) {
            backend.set_current_key(key.clone())?;
            if self.on_timer(backend, timers, &key, &ns, now)? {
                remove(backend, &ns)?;
            }
        }
        timers.request_next_processing();
        Ok(())
    }

    /// The cleanup timer of the current key in `ns` fired at `now`: true if its state
    /// expired (the caller removes it; the bookkeeping is gone), false if it was written
    /// since (its timer moves to the new expiry).
    fn on_timer(
        &self,
        backend: &mut KeyedStateBackend<RowKey>,
        timers: &mut InternalTimers<RowKey, N>,
        key: &RowKey,
        ns: &N,
        now: i64,
    ) -> weir_state::Result<bool> {
        let (table, k, slot) = backend.table::<N, i64>(self.written)?;
        let Some(&at) = table.get(slot, k, ns)? else {
            // Removed when a read found it expired: nothing left to clean.
            return Ok(true);
        };
        let expiry = at.saturating_add(self.ttl);
        if expiry <= now {
            table.remove(slot, k, ns)?;
            return Ok(true);
        }
        timers.register_processing(expiry, key.clone(), ns.clone());
        Ok(false)
    }
}
