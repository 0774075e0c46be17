//! Rows waiting to be written: in arrival order for appends, one per key for upserts.

use super::row::EncodedRow;
use std::collections::HashMap;

/// An upsert buffer's key columns, and where each key's row is.
struct KeyIndex {
    columns: Vec<usize>,
    rows_by_key: HashMap<Vec<u8>, usize>,
}

/// The rows a writer buffers between two flushes.
///
/// For an upsert sink, a later row of a key replaces the earlier one in place (Flink's
/// reduced upsert buffer): one `INSERT ... ON CONFLICT DO UPDATE` cannot touch a row twice,
/// and only the last value of a key matters. Memory is then bounded by the distinct keys of
/// a flush interval, not by its rows.
pub(crate) struct RowBuffer {
    rows: Vec<EncodedRow>,
    /// Upsert: the key columns' indexes, and where each key's row is in `rows`.
    keys: Option<KeyIndex>,
    /// Processing time (ms) at which the oldest buffered row arrived.
    oldest_ms: Option<i64>,
}

impl RowBuffer {
    /// A buffer for an append sink (no key columns) or an upsert sink.
    pub fn new(key_columns: Vec<usize>) -> Self {
        RowBuffer {
            rows: Vec::new(),
            keys: (!key_columns.is_empty()).then(|| KeyIndex {
                columns: key_columns,
                rows_by_key: HashMap::new(),
            }),
            oldest_ms: None,
        }
    }

    /// Adds a row that arrived at `now_ms`.
    pub fn push(&mut self, row: EncodedRow, now_ms: i64) {
        self.oldest_ms.get_or_insert(now_ms);
        match &mut self.keys {
            None => self.rows.push(row),
            Some(k) => match k.rows_by_key.entry(row.key(&k.columns)) {
                std::collections::hash_map::Entry::Occupied(e) => self.rows[*e.get()] = row,
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.rows.len());
                    self.rows.push(row);
                }
            },
        }
    }

    /// The buffered rows.
    pub fn rows(&self) -> &[EncodedRow] {
        &self.rows
    }

    /// Number of buffered rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True if nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// When the oldest buffered row arrived.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.oldest_ms
    }

    /// Forgets every row (they were written).
    pub fn clear(&mut self) {
        self.rows.clear();
        if let Some(k) = &mut self.keys {
            k.rows_by_key.clear();
        }
        self.oldest_ms = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::row::Row;
    use postgres::types::Type;

    fn row(k: &str, v: i64) -> EncodedRow {
        let types = [Type::TEXT, Type::INT8];
        let names = ["k".to_string(), "v".to_string()];
        let mut r = Row::new(&types, &names);
        r.push(k).push(v);
        r.finish().unwrap()
    }

    #[test]
    fn upserts_keep_the_last_row_of_a_key_in_first_arrival_order() {
        let mut b = RowBuffer::new(vec![0]);
        b.push(row("a", 1), 10);
        b.push(row("b", 2), 11);
        b.push(row("a", 3), 12);
        assert_eq!(b.rows(), &[row("a", 3), row("b", 2)]);
        assert_eq!(b.oldest_ms(), Some(10));
        b.clear();
        assert!(b.is_empty() && b.oldest_ms().is_none());
        b.push(row("a", 4), 20);
        assert_eq!(b.rows(), &[row("a", 4)]);
    }

    #[test]
    fn appends_keep_every_row() {
        let mut b = RowBuffer::new(vec![]);
        b.push(row("a", 1), 0);
        b.push(row("a", 1), 0);
        assert_eq!(b.len(), 2);
    }
}
