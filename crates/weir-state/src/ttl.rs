//! State time-to-live, as Flink's `StateTtlConfig`: a value expires `ttl` after it was last
//! written (or also read, with [`TtlUpdateType::OnReadAndWrite`]), measured in processing time.
//! Expired values are removed when they are read, and also without a read, so state written
//! once and never read again does not stay forever:
//! - on the heap, from every checkpoint's snapshot and with it the live state (Flink's
//!   cleanup in full snapshots);
//! - in RocksDB, single values and map entries when RocksDB compacts the files that hold
//!   them (Flink's compaction-filter cleanup), and from every full snapshot.

use std::time::Duration;

/// When the last-access timestamp of a value is refreshed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtlUpdateType {
    /// On creation and on every write (Flink's default).
    OnCreateAndWrite,
    /// Also on every read.
    OnReadAndWrite,
}

/// Whether an expired value that was not removed yet may be returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateVisibility {
    /// Never return an expired value (Flink's default).
    NeverReturnExpired,
    /// Return it if it is still there (it is removed by that read).
    ReturnExpiredIfNotCleanedUp,
}

/// Time-to-live of a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTtlConfig {
    /// How long a value lives after its last access.
    pub ttl: Duration,
    /// Which accesses refresh it.
    pub update_type: TtlUpdateType,
    /// Whether expired values can be seen.
    pub visibility: StateVisibility,
}

impl StateTtlConfig {
    /// A TTL with Flink's defaults: refreshed on write, expired values never returned.
    pub fn new(ttl: Duration) -> Self {
        StateTtlConfig {
            ttl,
            update_type: TtlUpdateType::OnCreateAndWrite,
            visibility: StateVisibility::NeverReturnExpired,
        }
    }

    /// Sets the update type.
    pub fn with_update_type(mut self, t: TtlUpdateType) -> Self {
        self.update_type = t;
        self
    }

    /// Sets the visibility.
    pub fn with_visibility(mut self, v: StateVisibility) -> Self {
        self.visibility = v;
        self
    }

    /// True if a value last accessed at `ts` has expired at `now` (`ts + ttl <= now`).
    pub fn expired(&self, ts: i64, now: i64) -> bool {
        ts.saturating_add(self.ttl.as_millis() as i64) <= now
    }
}

/// A stored value with its last-access time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TtlValue<V> {
    /// The value.
    pub value: V,
    /// Processing time of the last refreshing access, in ms.
    pub ts: i64,
}

/// A stored state value with time-to-live timestamps: a single value, a list or a map of
/// them. Lets a snapshot drop what expired without knowing the state's kind.
pub trait Expiring {
    /// True if the value is one [`TtlValue`], whose bincode ends with its timestamp (what
    /// RocksDB's TTL compaction filter reads).
    const SINGLE: bool = false;

    /// Drops expired parts (elements, entries); false if nothing valid is left.
    fn purge_expired(&mut self, cfg: &StateTtlConfig, now: i64) -> bool;
}

impl<V> Expiring for TtlValue<V> {
    const SINGLE: bool = true;

    fn purge_expired(&mut self, cfg: &StateTtlConfig, now: i64) -> bool {
        !cfg.expired(self.ts, now)
    }
}

impl<V> Expiring for Vec<TtlValue<V>> {
    fn purge_expired(&mut self, cfg: &StateTtlConfig, now: i64) -> bool {
        self.retain(|v| !cfg.expired(v.ts, now));
        !self.is_empty()
    }
}

impl<K, V> Expiring for std::collections::HashMap<K, TtlValue<V>> {
    fn purge_expired(&mut self, cfg: &StateTtlConfig, now: i64) -> bool {
        self.retain(|_, v| !cfg.expired(v.ts, now));
        !self.is_empty()
    }
}

/// Processing time from the wall clock.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What reading a TTL'd value found.
pub(crate) enum Read {
    /// Absent, or expired and not visible.
    Missing,
    /// Present and valid (`refresh` says whether to update its timestamp).
    Valid { refresh: bool },
    /// Expired but visible: return it, then remove it.
    ExpiredVisible,
    /// Expired and hidden: remove it.
    ExpiredHidden,
}

/// Classifies a read of a value last accessed at `ts`.
pub(crate) fn on_read(cfg: Option<&StateTtlConfig>, ts: Option<i64>, now: i64) -> Read {
    let Some(ts) = ts else { return Read::Missing };
    match cfg {
        None => Read::Valid { refresh: false },
        Some(c) if !c.expired(ts, now) => Read::Valid {
            refresh: c.update_type == TtlUpdateType::OnReadAndWrite,
        },
        Some(c) if c.visibility == StateVisibility::ReturnExpiredIfNotCleanedUp => {
            Read::ExpiredVisible
        }
        Some(_) => Read::ExpiredHidden,
    }
}
