//! How values become bytes between tasks (never inside a chain).
//!
//! [`TypeSerializer`] is chosen per element type when the graph is built, so the exchange
//! is monomorphised: [`BincodeSerializer`] for serde types in the DataStream API, and
//! [`crate::batch::ArrowIpcSerializer`] for Arrow batches in SQL.

use crate::error::{Result, RuntimeError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;

/// Encodes and decodes values of one type.
pub trait TypeSerializer<T>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `out`.
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<()>;
    /// Decodes one value from exactly `bytes`.
    fn deserialize(&self, bytes: &[u8]) -> Result<T>;
    /// The size of `value`'s encoding: what bounds an in-memory batch ([`crate::typed`]) like
    /// a buffer. The default encodes the value; serializers that can compute it cheaply
    /// should.
    fn encoded_len(&self, value: &T) -> Result<usize> {
        let mut out = Vec::new();
        self.serialize(value, &mut out)?;
        Ok(out.len())
    }
}

/// Compact binary encoding of serde types (bincode, fixed-width integers, little endian).
pub struct BincodeSerializer<T>(PhantomData<fn() -> T>);

impl<T> BincodeSerializer<T> {
    /// The serializer for `T`.
    pub const fn new() -> Self {
        BincodeSerializer(PhantomData)
    }
}

impl<T> Default for BincodeSerializer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for BincodeSerializer<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

/// The error of a bincode call that could not `what` a value of type `T`.
fn codec_error<T>(what: &'static str) -> impl FnOnce(bincode::Error) -> RuntimeError {
    move |e| RuntimeError::Codec {
        context: format!(
            "cannot {what} a value of type {}",
            std::any::type_name::<T>()
        ),
        message: e.to_string(),
    }
}

impl<T: Serialize + DeserializeOwned + 'static> TypeSerializer<T> for BincodeSerializer<T> {
    #[inline]
    fn serialize(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        bincode::serialize_into(out, value).map_err(codec_error::<T>("serialize"))
    }

    /// Walks the value without writing it; fails where encoding would.
    #[inline]
    fn encoded_len(&self, value: &T) -> Result<usize> {
        bincode::serialized_size(value)
            .map(|n| n as usize)
            .map_err(codec_error::<T>("serialize"))
    }

    #[inline]
    fn deserialize(&self, bytes: &[u8]) -> Result<T> {
        bincode::deserialize(bytes).map_err(codec_error::<T>("deserialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_bytes() {
        let s = BincodeSerializer::<(String, i64)>::new();
        let mut out = Vec::new();
        s.serialize(&("a".to_string(), 7), &mut out).unwrap();
        assert_eq!(s.encoded_len(&("a".to_string(), 7)).unwrap(), out.len());
        assert_eq!(s.deserialize(&out).unwrap(), ("a".to_string(), 7));
        let err = s.deserialize(&out[..3]).unwrap_err().to_string();
        assert!(err.contains("cannot deserialize"), "{err}");
    }
}
