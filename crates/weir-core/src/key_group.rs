//! Key groups: the unit in which keyed state is partitioned, stored and rescaled.
//!
//! A key is hashed with [`StableHasher`] (fixed algorithm, identical in every process and
//! every build, so a savepoint maps keys to the same key groups after an upgrade), the hash
//! is folded to 32 bits and scrambled with Flink's `MathUtils.murmurHash`, and the result
//! modulo `max_parallelism` is the key group. Key group `kg` belongs to subtask
//! `kg * parallelism / max_parallelism`, exactly as in Flink's `KeyGroupRangeAssignment`.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::hash::{Hash, Hasher};

/// Largest max parallelism Flink (and Weir) accept: 2^15.
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 1 << 15;

/// Default max parallelism lower bound (Flink uses 128).
pub const DEFAULT_LOWER_BOUND_MAX_PARALLELISM: u32 = 128;

/// A fast hasher whose output never changes between builds or platforms.
///
/// The multiply-rotate step is FxHash's; lengths of variable-size data are written by the
/// `Hash` impls themselves. `std`'s `DefaultHasher` is not used because its algorithm may
/// change between Rust releases, which would silently move keys to other key groups.
#[derive(Clone, Copy, Debug, Default)]
pub struct StableHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl StableHasher {
    /// A hasher in its initial state.
    pub const fn new() -> Self {
        StableHasher { hash: 0 }
    }

    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for StableHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let r = chunks.remainder().len();
        if r > 0 {
            self.add(tail_word(bytes, r) ^ ((r as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // Finalise so that low bits depend on every input bit.
        fmix64(self.hash)
    }
}

/// The last `r` (1..=7) bytes of `bytes` as a little-endian word, zero-padded: what copying
/// them into a zeroed `[u8; 8]` gives, but read with whole-word loads (a byte-wise copy into
/// a stack array followed by a word load stalls the CPU's store forwarding, once per key).
#[inline]
fn tail_word(bytes: &[u8], r: usize) -> u64 {
    let n = bytes.len();
    if n >= 8 {
        let last = u64::from_le_bytes(bytes[n - 8..].try_into().unwrap_or([0; 8]));
        return last >> (8 * (8 - r));
    }
    // The whole input is the tail (n == r < 8): two overlapping reads put every byte at its
    // own position; bytes read twice land on the same bits.
    if r >= 4 {
        let lo = u32::from_le_bytes(bytes[..4].try_into().unwrap_or([0; 4])) as u64;
        let hi = u32::from_le_bytes(bytes[r - 4..r].try_into().unwrap_or([0; 4])) as u64;
        lo | (hi << (8 * (r - 4)))
    } else {
        let b = |i: usize| (bytes[i] as u64) << (8 * i);
        b(0) | b(r / 2) | b(r - 1)
    }
}

/// MurmurHash3's 64-bit finaliser.
#[inline]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The stable hash of any hashable key.
#[inline]
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = StableHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Flink's `MathUtils.murmurHash(int)`: scrambles a 32-bit hash code into a non-negative int.
#[inline]
pub fn murmur_hash(code: i32) -> i32 {
    let mut code = code;
    code = code.wrapping_mul(0xcc9e_2d51_u32 as i32);
    code = code.rotate_left(15);
    code = code.wrapping_mul(0x1b87_3593);
    code = code.rotate_left(13);
    code = code.wrapping_mul(5).wrapping_add(0xe654_6b64_u32 as i32);
    code ^= 4;
    code = bit_mix(code);
    if code >= 0 {
        code
    } else if code != i32::MIN {
        -code
    } else {
        0
    }
}

#[inline]
fn bit_mix(mut h: i32) -> i32 {
    h ^= ((h as u32) >> 16) as i32;
    h = h.wrapping_mul(0x85eb_ca6b_u32 as i32);
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(0xc2b2_ae35_u32 as i32);
    h ^= ((h as u32) >> 16) as i32;
    h
}

/// Key group of a key's 64-bit stable hash (folded to 32 bits like a Java `hashCode`).
#[inline]
pub fn key_group_for_hash(hash: u64, max_parallelism: u32) -> u32 {
    let code = (hash ^ (hash >> 32)) as i32;
    let m = murmur_hash(code) as u32;
    // The same value as `%`; the default max parallelism (128) is a power of two, and a
    // mask costs one instruction where a division costs tens, once per record.
    if max_parallelism.is_power_of_two() {
        m & (max_parallelism - 1)
    } else {
        m % max_parallelism
    }
}

/// Key group of a key.
#[inline]
pub fn key_group_for_key<K: Hash + ?Sized>(key: &K, max_parallelism: u32) -> u32 {
    key_group_for_hash(stable_hash(key), max_parallelism)
}

/// The subtask that owns a key group.
#[inline]
pub fn operator_index_for_key_group(max_parallelism: u32, parallelism: u32, key_group: u32) -> u32 {
    let scaled = key_group as u64 * parallelism as u64;
    if max_parallelism.is_power_of_two() {
        (scaled >> max_parallelism.trailing_zeros()) as u32
    } else {
        (scaled / max_parallelism as u64) as u32
    }
}

/// A contiguous, inclusive range of key groups: the ones one subtask owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: u32,
    /// One past the last key group in the range.
    pub end: u32,
}

impl KeyGroupRange {
    /// The key groups owned by `subtask` of `parallelism` (Flink's
    /// `computeKeyGroupRangeForOperatorIndex`).
    pub fn for_subtask(max_parallelism: u32, parallelism: u32, subtask: u32) -> KeyGroupRange {
        let mp = max_parallelism as u64;
        let p = parallelism as u64;
        let i = subtask as u64;
        let start = (i * mp).div_ceil(p);
        let end = ((i + 1) * mp).div_ceil(p);
        KeyGroupRange {
            start: start as u32,
            end: end as u32,
        }
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// True if the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// True if `kg` falls in the range.
    pub fn contains(&self, kg: u32) -> bool {
        kg >= self.start && kg < self.end
    }
}

/// Flink's default max parallelism for an operator of the given parallelism:
/// `min(max(round_up_pow2(p + p/2), 128), 32768)`.
pub fn default_max_parallelism(parallelism: u32) -> u32 {
    let wanted = (parallelism as u64 + parallelism as u64 / 2).next_power_of_two();
    wanted.clamp(
        DEFAULT_LOWER_BOUND_MAX_PARALLELISM as u64,
        UPPER_BOUND_MAX_PARALLELISM as u64,
    ) as u32
}

/// Checks a parallelism value for `what` (an operator or the environment).
pub fn validate_parallelism(what: &str, parallelism: i64) -> Result<u32> {
    if parallelism < 1 {
        return Err(CoreError::InvalidParallelism {
            what: what.to_string(),
            parallelism,
            reason: "parallelism must be at least 1".into(),
        });
    }
    if parallelism > UPPER_BOUND_MAX_PARALLELISM as i64 {
        return Err(CoreError::InvalidParallelism {
            what: what.to_string(),
            parallelism,
            reason: format!("parallelism must be at most {UPPER_BOUND_MAX_PARALLELISM}"),
        });
    }
    Ok(parallelism as u32)
}

/// Checks a max parallelism value, and that it is not below the parallelism.
pub fn validate_max_parallelism(what: &str, max_parallelism: i64, parallelism: u32) -> Result<u32> {
    if max_parallelism < 1 || max_parallelism > UPPER_BOUND_MAX_PARALLELISM as i64 {
        return Err(CoreError::InvalidMaxParallelism {
            what: what.to_string(),
            max_parallelism,
            reason: format!("max parallelism must be between 1 and {UPPER_BOUND_MAX_PARALLELISM}"),
        });
    }
    if (max_parallelism as u32) < parallelism {
        return Err(CoreError::InvalidMaxParallelism {
            what: what.to_string(),
            max_parallelism,
            reason: format!(
                "max parallelism must not be smaller than the parallelism ({parallelism})"
            ),
        });
    }
    Ok(max_parallelism as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_matches_flink() {
        // Values of Java's MathUtils.murmurHash computed with 32-bit two's complement
        // arithmetic (an independent emulation of the Java code).
        assert_eq!(murmur_hash(0), 593_689_054);
        assert_eq!(murmur_hash(1), 68_075_478);
        assert_eq!(murmur_hash(-7), 206_585_249);
        assert_eq!(murmur_hash(123_456), 1_294_369_584);
        assert!(murmur_hash(i32::MIN) >= 0);
        for i in -1000..1000 {
            assert!(murmur_hash(i) >= 0);
        }
    }

    #[test]
    fn key_groups_are_the_murmur_hash_modulo_max_parallelism() {
        for maxp in [1, 2, 7, 128, 1000, 4096, 32768] {
            for i in 0..5000u64 {
                let hash = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let code = (hash ^ (hash >> 32)) as i32;
                assert_eq!(
                    key_group_for_hash(hash, maxp),
                    murmur_hash(code) as u32 % maxp
                );
            }
            for p in [1, 2, 3, 5, maxp] {
                for kg in 0..maxp {
                    assert_eq!(
                        operator_index_for_key_group(maxp, p, kg),
                        (kg as u64 * p as u64 / maxp as u64) as u32
                    );
                }
            }
        }
    }

    #[test]
    fn ranges_cover_all_key_groups_once() {
        for p in 1..=17u32 {
            let mut next = 0;
            for s in 0..p {
                let r = KeyGroupRange::for_subtask(128, p, s);
                assert_eq!(r.start, next);
                for kg in r.start..r.end {
                    assert_eq!(operator_index_for_key_group(128, p, kg), s);
                }
                next = r.end;
            }
            assert_eq!(next, 128);
        }
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash("weir"), stable_hash(&"weir".to_string()));
        // The tail of a byte string is read with word loads; the value is that of the
        // zero-padded copy the hash was defined with.
        let data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        for len in 0..data.len() {
            let bytes = &data[..len];
            let r = len % 8;
            if r > 0 {
                let mut w = [0u8; 8];
                w[..r].copy_from_slice(&bytes[len - r..]);
                assert_eq!(
                    super::tail_word(bytes, r),
                    u64::from_le_bytes(w),
                    "len {len}"
                );
            }
        }
        assert_ne!(stable_hash(&1u64), stable_hash(&2u64));
        let kg = key_group_for_key("hello", 128);
        assert!(kg < 128);
    }

    #[test]
    fn default_max_parallelism_follows_flink() {
        assert_eq!(default_max_parallelism(1), 128);
        assert_eq!(default_max_parallelism(100), 256);
        assert_eq!(default_max_parallelism(30000), 32768);
    }

    #[test]
    fn validation_rejects_bad_values() {
        assert!(validate_parallelism("x", 0).is_err());
        assert!(validate_parallelism("x", -3).is_err());
        assert!(validate_max_parallelism("x", 4, 8).is_err());
        assert!(validate_max_parallelism("x", 40000, 8).is_err());
        assert_eq!(validate_max_parallelism("x", 128, 8), Ok(128));
    }
}
