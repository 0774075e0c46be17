//! The window operator for the most common configuration: event-time windows that do not
//! merge, with the default event-time trigger and no evictor.
//!
//! Its results are those of the general [`super::operator::WindowOperator`] (the same tests
//! run against both), but its state is laid out window-major: per window, the keys that have
//! contents. The default trigger fires every key of a window at the same watermark, so a
//! firing is one pass over that window's keys instead of one timer and one hash probe per
//! (key, window), and a window's cleanup drops its whole map. Late elements within the
//! allowed lateness fire their key's window at once, as the default trigger does; elements
//! too late for every window go to the late side output.
//!
//! Departure from the per-key-group layout of DESIGN.md §4: contents are not split by key
//! group in memory; a snapshot (issue 4) splits them by computing each key's group.

use super::assigners::WindowAssigner;
use super::operator::WINDOW_CONTENTS;
use super::operator::{clear_window, fire_window, FnEnv, WindowContents};
use super::Window;
use crate::exchange::KeySelector;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::marker::PhantomData;
use weir_core::key_group::StableHasher;
use weir_runtime::operator::{OneInputOperator, OperatorInfo, OutputControl, Outputs};
use weir_runtime::time::ProcessingTimeService;
use weir_runtime::{Result, StreamRecord, Watermark};
use weir_state::{KeyGroupRange, KeyedStateBackend, StateKey};

type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<StableHasher>>;

/// One window's contents per key.
#[derive(Clone)]
struct WindowEntry<K, Acc> {
    keys: KeyMap<K, Acc>,
    /// The watermark passed the window's end: later elements fire at once.
    fired: bool,
}

/// Window-major event-time window operator with the default trigger.
pub(crate) struct EventTimeWindowOperator<T, K, W, O, A, C: WindowContents<T, K, W, O>> {
    key_of: KeySelector<T, K>,
    assigner: A,
    contents: C,
    /// Live windows by (max timestamp, window): firing and cleanup go in this order.
    windows: BTreeMap<(i64, W), WindowEntry<K, C::Acc>>,
    backend: KeyedStateBackend<K>,
    clock: ProcessingTimeService,
    allowed_lateness: i64,
    late_tag: Option<String>,
    watermark: i64,
    info: OperatorInfo,
    scratch: Vec<W>,
    /// Emptied maps of windows that were cleaned up, reused for new windows: a new window
    /// then needs no rehashing and no fresh pages as it fills.
    spare: Vec<KeyMap<K, C::Acc>>,
    _o: PhantomData<fn() -> O>,
}

impl<T, K, W, O, A, C> EventTimeWindowOperator<T, K, W, O, A, C>
where
    T: Clone + Send + 'static,
    K: StateKey,
    W: Window,
    O: 'static,
    A: WindowAssigner<T, W>,
    C: WindowContents<T, K, W, O>,
{
    pub(crate) fn new(
        key_of: KeySelector<T, K>,
        assigner: A,
        contents: C,
        allowed_lateness: i64,
        late_tag: Option<String>,
        info: &OperatorInfo,
    ) -> Self {
        let range =
            KeyGroupRange::for_subtask(info.max_parallelism, info.parallelism, info.subtask);
        EventTimeWindowOperator {
            key_of,
            assigner,
            contents,
            windows: BTreeMap::new(),
            backend: KeyedStateBackend::new(range, info.max_parallelism),
            clock: info.processing_time.clone(),
            allowed_lateness,
            late_tag,
            watermark: i64::MIN,
            info: info.clone(),
            scratch: Vec::new(),
            spare: Vec::new(),
            _o: PhantomData,
        }
    }

    fn cleanup_time(&self, w: &W) -> i64 {
        w.max_timestamp().saturating_add(self.allowed_lateness)
    }
}

impl<T, K, W, O, A, C> OneInputOperator<T, O> for EventTimeWindowOperator<T, K, W, O, A, C>
where
    T: Clone + Send + 'static,
    K: StateKey,
    W: Window,
    O: 'static,
    A: WindowAssigner<T, W>,
    C: WindowContents<T, K, W, O>,
{
    fn process_element(&mut self, r: StreamRecord<T>, out: &mut Outputs<O>) -> Result<()> {
        let ts = match r.timestamp() {
            Some(ts) if ts != i64::MIN => ts,
            _ => {
                return Err(self.info.error(
                    "a record has no event timestamp; event-time windows need timestamps: call assign_timestamps_and_watermarks before the window",
                ))
            }
        };
        let key = self.key_of.key(&r.value);
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.assigner
            .assign_windows(&r.value, ts, i64::MIN, &mut windows);
        let n = windows.len();
        let by_ref = self.contents.adds_by_ref();
        let mut value = Some(r.value);
        let mut skipped = true;
        let mut outcome = Ok(());
        for (i, w) in windows.iter().enumerate() {
            if w.max_timestamp() < ts {
                outcome = Err(self.info.error(format!(
                    "the window assigner put an element with timestamp {ts} into {w:?}, which ends before it"
                )));
                break;
            }
            if self.cleanup_time(w) <= self.watermark {
                continue;
            }
            skipped = false;
            let watermark = self.watermark;
            let EventTimeWindowOperator {
                contents,
                windows: live,
                backend,
                clock,
                info,
                spare,
                ..
            } = self;
            let entry = live
                .entry((w.max_timestamp(), w.clone()))
                .or_insert_with(|| WindowEntry {
                    keys: spare.pop().unwrap_or_default(),
                    fired: w.max_timestamp() <= watermark,
                });
            let acc = match entry.keys.get_mut(&key) {
                Some(acc) => acc,
                None => entry
                    .keys
                    .entry(key.clone())
                    .or_insert_with(|| contents.create()),
            };
            if by_ref {
                if let Some(v) = value.as_ref() {
                    contents.add_ref(acc, v, ts);
                }
            } else {
                let v = if i + 1 == n {
                    value.take()
                } else {
                    value.clone()
                };
                if let Some(v) = v {
                    contents.add(acc, v, ts);
                }
            }
            // The default trigger fires a window the watermark already passed at once.
            if w.max_timestamp() <= watermark {
                let fired = backend
                    .set_current_key(key.clone())
                    .map_err(|e| info.error(e.to_string()))
                    .and_then(|()| {
                        let env = FnEnv {
                            backend,
                            clock,
                            watermark,
                            info,
                        };
                        fire_window(contents, env, &key, w, acc, out)
                    });
                if let Err(e) = fired {
                    outcome = Err(e);
                    break;
                }
            }
        }
        self.scratch = windows;
        outcome?;
        if skipped && ts.saturating_add(self.allowed_lateness) <= self.watermark {
            if let (Some(v), Some(tag)) = (value, &self.late_tag) {
                out.collect_side(tag, StreamRecord::with_timestamp(v, ts))?;
            }
        }
        Ok(())
    }

    fn process_watermark(&mut self, wm: Watermark, out: &mut Outputs<O>) -> Result<()> {
        self.watermark = wm.0;
        let EventTimeWindowOperator {
            contents,
            windows,
            backend,
            clock,
            info,
            allowed_lateness,
            spare,
            ..
        } = self;
        // On-time firings, in the order of the windows' ends.
        for ((max_ts, w), entry) in windows.range_mut(..) {
            if *max_ts > wm.0 {
                break;
            }
            if entry.fired {
                continue;
            }
            entry.fired = true;
            for (key, acc) in entry.keys.iter_mut() {
                backend
                    .set_current_key(key.clone())
                    .map_err(|e| info.error(e.to_string()))?;
                let env = FnEnv {
                    backend,
                    clock,
                    watermark: wm.0,
                    info,
                };
                fire_window(contents, env, key, w, acc, out)?;
            }
        }
        // Cleanup: windows past their end plus the allowed lateness are forgotten, with the
        // function's per-window state.
        while let Some(first) = windows.first_entry() {
            let (max_ts, _) = first.key();
            if max_ts.saturating_add(*allowed_lateness) > wm.0 {
                break;
            }
            let ((_, w), mut entry) = first.remove_entry();
            for (key, _) in entry.keys.drain() {
                backend
                    .set_current_key(key)
                    .map_err(|e| info.error(e.to_string()))?;
                let env = FnEnv {
                    backend,
                    clock,
                    watermark: wm.0,
                    info,
                };
                clear_window(contents, env, &w, out)?;
            }
            if spare.len() < 4 {
                spare.push(entry.keys);
            }
        }
        out.emit_watermark(wm)
    }

    fn state_entries(&self) -> u64 {
        (self.windows.values().map(|e| e.keys.len()).sum::<usize>() + self.backend.entries()) as u64
    }

    /// Writes the contents per key group in the general window operator's layout (section
    /// `window/contents`, entries ((key, window), contents)) with the event-time timers that
    /// operator would hold (firing at the window's end unless it fired, cleanup after the
    /// allowed lateness), so a snapshot restores into either operator.
    fn snapshot_state(
        &mut self,
        _: &weir_runtime::checkpoint::CheckpointBarrier,
        st: &mut weir_state::OperatorSubtaskState,
    ) -> Result<()> {
        let maxp = self.info.max_parallelism;
        let lateness = self.allowed_lateness;
        // A copy now (for plain keys and accumulators the hash tables copy as memory),
        // grouped by key group and encoded later, off the task thread.
        let windows = self.windows.clone();
        st.defer(Box::new(move |st| {
            type Entries<'a, K, W, A> = Vec<((&'a K, &'a W), &'a A)>;
            let mut per_kg: BTreeMap<u32, Entries<'_, K, W, C::Acc>> = BTreeMap::new();
            let mut timers: BTreeMap<u32, Vec<(i64, &K, &W)>> = BTreeMap::new();
            for ((max_ts, w), entry) in &windows {
                let cleanup = max_ts.saturating_add(lateness);
                for (k, acc) in &entry.keys {
                    let kg = weir_core::key_group::key_group_for_key(k, maxp);
                    per_kg.entry(kg).or_default().push(((k, w), acc));
                    let t = timers.entry(kg).or_default();
                    if !entry.fired {
                        t.push((*max_ts, k, w));
                    }
                    if cleanup != *max_ts || entry.fired {
                        t.push((cleanup, k, w));
                    }
                }
            }
            for (kg, entries) in per_kg {
                let bytes = weir_state::snapshot::encode(WINDOW_CONTENTS, &entries)?;
                st.add_section(kg, WINDOW_CONTENTS, bytes);
            }
            for (kg, t) in timers {
                let bytes = weir_state::snapshot::encode(EVENT_TIMERS, &t)?;
                st.add_section(kg, EVENT_TIMERS, bytes);
            }
            Ok(())
        }));
        let err = |e| crate::timers::state_error(&self.info, "snapshot", e);
        self.backend.snapshot(st).map_err(err)
    }

    /// Restores contents in the general operator's layout; a window whose firing timer is
    /// gone has fired already (it is only kept for allowed lateness).
    fn initialize_state(&mut self, restored: &weir_state::RestoredState) -> Result<()> {
        let err = |e| crate::timers::state_error(&self.info, "restore", e);
        let mut firing: std::collections::HashSet<(i64, K, W)> = Default::default();
        for (_, bytes) in restored.sections(EVENT_TIMERS) {
            let t: Vec<(i64, K, W)> =
                weir_state::snapshot::decode(EVENT_TIMERS, bytes).map_err(err)?;
            firing.extend(t);
        }
        for (_, bytes) in restored.sections(WINDOW_CONTENTS) {
            let entries: Vec<((K, W), C::Acc)> =
                weir_state::snapshot::decode(WINDOW_CONTENTS, bytes).map_err(err)?;
            for ((k, w), acc) in entries {
                let max_ts = w.max_timestamp();
                let fired = !firing.contains(&(max_ts, k.clone(), w.clone()));
                let entry = self
                    .windows
                    .entry((max_ts, w))
                    .or_insert_with(|| WindowEntry {
                        keys: KeyMap::default(),
                        fired,
                    });
                entry.fired &= fired;
                entry.keys.insert(k, acc);
            }
        }
        self.backend.restore(restored).map_err(err)
    }
}

/// The general operator's snapshot section of event-time timers.
const EVENT_TIMERS: &str = "timers/event";
