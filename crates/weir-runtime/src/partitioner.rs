//! Channel selectors: which consumer channel of an edge receives a record.
//!
//! Each is a small generic type so that [`crate::writer::RecordWriter`] is monomorphised per
//! partitioner and key selector.

use std::hash::Hash;
use std::marker::PhantomData;
use weir_core::key_group::{key_group_for_key, operator_index_for_key_group};

/// Picks the consumer channel of a record.
pub trait ChannelSelector<T>: Send {
    /// The channel (below `num_channels`) for `record`.
    fn select(&mut self, record: &T, num_channels: usize) -> usize;
    /// True if every record goes to every channel.
    fn is_broadcast(&self) -> bool {
        false
    }
}

/// Always channel 0: forward edges (one channel) and the global partitioner.
#[derive(Clone, Copy, Debug, Default)]
pub struct FirstChannel;

impl<T> ChannelSelector<T> for FirstChannel {
    #[inline]
    fn select(&mut self, _: &T, _: usize) -> usize {
        0
    }
}

/// Round-robin over the channels: rebalance (all consumers) and rescale (the locally wired
/// ones).
///
/// Flink starts rebalance at a random channel; Weir starts at the producer's subtask index,
/// which spreads producers just as well and keeps runs reproducible.
#[derive(Clone, Copy, Debug)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// Round-robin starting at channel `start` (taken modulo the channel count).
    pub fn starting_at(start: usize) -> Self {
        RoundRobin { next: start }
    }
}

impl<T> ChannelSelector<T> for RoundRobin {
    #[inline]
    fn select(&mut self, _: &T, n: usize) -> usize {
        let c = self.next % n;
        self.next = c + 1;
        c
    }
}

/// A uniformly random channel (xorshift; seeded per producer).
#[derive(Clone, Copy, Debug)]
pub struct Shuffle {
    state: u64,
}

impl Shuffle {
    /// A shuffle whose sequence depends on `seed`.
    pub fn new(seed: u64) -> Self {
        Shuffle {
            state: weir_core::key_group::fmix64(seed ^ 0x9E37_79B9_7F4A_7C15) | 1,
        }
    }
}

impl<T> ChannelSelector<T> for Shuffle {
    #[inline]
    fn select(&mut self, _: &T, n: usize) -> usize {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        (((x >> 32) * n as u64) >> 32) as usize
    }
}

/// Every record to every channel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Broadcast;

impl<T> ChannelSelector<T> for Broadcast {
    fn select(&mut self, _: &T, _: usize) -> usize {
        0
    }
    fn is_broadcast(&self) -> bool {
        true
    }
}

/// By key group: the key's key group decides the consumer subtask (Flink's
/// `KeyGroupStreamPartitioner`).
pub struct KeyGroupSelector<T, K, F> {
    key_of: F,
    max_parallelism: u32,
    _t: PhantomData<fn(&T) -> K>,
}

impl<T, K, F> KeyGroupSelector<T, K, F> {
    /// Routes by `key_of(record)` for a consumer with `max_parallelism` key groups.
    pub fn new(key_of: F, max_parallelism: u32) -> Self {
        KeyGroupSelector {
            key_of,
            max_parallelism,
            _t: PhantomData,
        }
    }
}

impl<T, K: Hash, F: Fn(&T) -> K + Send> ChannelSelector<T> for KeyGroupSelector<T, K, F> {
    #[inline]
    fn select(&mut self, record: &T, n: usize) -> usize {
        if n == 1 {
            // One consumer owns every key group: no key to hash.
            return 0;
        }
        let kg = key_group_for_key(&(self.key_of)(record), self.max_parallelism);
        operator_index_for_key_group(self.max_parallelism, n as u32, kg) as usize
    }
}

/// By the key group a function computes from the record and the max parallelism (for key
/// selectors that borrow the key instead of making one).
pub struct KeyGroupOfSelector<T, F> {
    key_group_of: F,
    max_parallelism: u32,
    _t: PhantomData<fn(&T)>,
}

impl<T, F> KeyGroupOfSelector<T, F> {
    /// Routes by `key_group_of(record, max_parallelism)`.
    pub fn new(key_group_of: F, max_parallelism: u32) -> Self {
        KeyGroupOfSelector {
            key_group_of,
            max_parallelism,
            _t: PhantomData,
        }
    }
}

impl<T, F: Fn(&T, u32) -> u32 + Send> ChannelSelector<T> for KeyGroupOfSelector<T, F> {
    #[inline]
    fn select(&mut self, record: &T, n: usize) -> usize {
        if n == 1 {
            // One consumer owns every key group: no key to hash.
            return 0;
        }
        let kg = (self.key_group_of)(record, self.max_parallelism);
        operator_index_for_key_group(self.max_parallelism, n as u32, kg) as usize
    }
}

/// By a user function of the key and the channel count (Flink's `partitionCustom`).
pub struct CustomSelector<T, K, KF, PF> {
    key_of: KF,
    partition: PF,
    _t: PhantomData<fn(&T) -> K>,
}

impl<T, K, KF, PF> CustomSelector<T, K, KF, PF> {
    /// Routes by `partition(&key_of(record), num_channels)`.
    pub fn new(key_of: KF, partition: PF) -> Self {
        CustomSelector {
            key_of,
            partition,
            _t: PhantomData,
        }
    }
}

impl<T, K, KF, PF> ChannelSelector<T> for CustomSelector<T, K, KF, PF>
where
    KF: Fn(&T) -> K + Send,
    PF: Fn(&K, usize) -> usize + Send,
{
    #[inline]
    fn select(&mut self, record: &T, n: usize) -> usize {
        (self.partition)(&(self.key_of)(record), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles() {
        let mut rr = RoundRobin::starting_at(2);
        let got: Vec<usize> = (0..5)
            .map(|_| ChannelSelector::<u8>::select(&mut rr, &0, 3))
            .collect();
        assert_eq!(got, vec![2, 0, 1, 2, 0]);
    }

    #[test]
    fn shuffle_stays_in_range_and_spreads() {
        let mut s = Shuffle::new(7);
        let mut counts = [0; 4];
        for _ in 0..4000 {
            counts[ChannelSelector::<u8>::select(&mut s, &0, 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn key_group_selector_is_consistent() {
        let mut s = KeyGroupSelector::new(|x: &(String, i32)| x.0.clone(), 128);
        let a = s.select(&("k".into(), 1), 4);
        let b = s.select(&("k".into(), 2), 4);
        assert_eq!(a, b);
        assert!(a < 4);
    }
}
