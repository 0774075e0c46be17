//! Turning Kafka records into stream elements (Flink's `KafkaRecordDeserializationSchema`).
//!
//! The value deserializers ([`RawBytes`], [`Utf8Strings`], [`Json`]) read the record's value
//! and skip records without one (tombstones); a closure over the whole [`KafkaRecord`]
//! sees the key, partition, offset and timestamp too.

use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use weir_api::functions::UserError;

/// A Kafka record as the source reads it.
#[derive(Clone, Copy, Debug)]
pub struct KafkaRecord<'a> {
    /// The record's topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp (create or log-append time, ms since the epoch), if it has one.
    pub timestamp: Option<i64>,
    /// Its key, if it has one.
    pub key: Option<&'a [u8]>,
    /// Its value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
}

/// Makes stream elements of Kafka records.
pub trait KafkaRecordDeserializer<T>: Send + Sync + 'static {
    /// The element for `record`, or `None` to skip the record. An error fails the job with
    /// the record's partition and offset named.
    fn deserialize(&self, record: &KafkaRecord<'_>) -> Result<Option<T>, UserError>;
}

impl<T, F> KafkaRecordDeserializer<T> for F
where
    F: Fn(&KafkaRecord<'_>) -> Result<Option<T>, UserError> + Send + Sync + 'static,
{
    fn deserialize(&self, record: &KafkaRecord<'_>) -> Result<Option<T>, UserError> {
        self(record)
    }
}

/// The value's bytes as they are.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawBytes;

impl KafkaRecordDeserializer<Vec<u8>> for RawBytes {
    fn deserialize(&self, record: &KafkaRecord<'_>) -> Result<Option<Vec<u8>>, UserError> {
        Ok(record.value.map(<[u8]>::to_vec))
    }
}

/// The value as UTF-8 text (Flink's `SimpleStringSchema`); invalid UTF-8 is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Strings;

impl KafkaRecordDeserializer<String> for Utf8Strings {
    fn deserialize(&self, record: &KafkaRecord<'_>) -> Result<Option<String>, UserError> {
        record
            .value
            .map(|v| {
                std::str::from_utf8(v)
                    .map(str::to_owned)
                    .map_err(|e| format!("the value is not UTF-8 text: {e}").into())
            })
            .transpose()
    }
}

/// The value as JSON of type `T` (serde); a value that does not parse is an error.
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// JSON values of type `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: DeserializeOwned + 'static> KafkaRecordDeserializer<T> for Json<T> {
    fn deserialize(&self, record: &KafkaRecord<'_>) -> Result<Option<T>, UserError> {
        record
            .value
            .map(|v| {
                serde_json::from_slice(v).map_err(|e| {
                    format!("the value is not the JSON the source expects: {e}").into()
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: Option<&[u8]>) -> KafkaRecord<'_> {
        KafkaRecord {
            topic: "t",
            partition: 0,
            offset: 7,
            timestamp: Some(1),
            key: None,
            value,
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        item: String,
    }

    #[test]
    fn value_deserializers() {
        assert_eq!(
            RawBytes.deserialize(&record(Some(b"\x00\xff"))).unwrap(),
            Some(vec![0, 255])
        );
        assert_eq!(RawBytes.deserialize(&record(None)).unwrap(), None);
        assert_eq!(
            Utf8Strings.deserialize(&record(Some(b"a,1"))).unwrap(),
            Some("a,1".to_string())
        );
        let bad = Utf8Strings.deserialize(&record(Some(b"\xff"))).unwrap_err();
        assert!(bad.to_string().contains("not UTF-8"), "{bad}");
        let json = Json::<Order>::new();
        assert_eq!(
            json.deserialize(&record(Some(br#"{"id":3,"item":"tea"}"#)))
                .unwrap(),
            Some(Order {
                id: 3,
                item: "tea".into()
            })
        );
        let bad = json.deserialize(&record(Some(b"{\"id\":"))).unwrap_err();
        assert!(bad.to_string().contains("not the JSON"), "{bad}");
        let keyed = |r: &KafkaRecord<'_>| -> Result<Option<(i32, i64)>, UserError> {
            Ok(Some((r.partition, r.offset)))
        };
        assert_eq!(keyed.deserialize(&record(None)).unwrap(), Some((0, 7)));
    }
}
