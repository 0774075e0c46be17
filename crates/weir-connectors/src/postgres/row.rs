//! One row for the Postgres sink, encoded when it is built.
//!
//! A writer encodes every value into PostgreSQL's binary wire format as soon as the user's
//! row function pushes it, with the column types the server reported for the table. That
//! checks types once, up front (an `i64` for an `INTEGER` column is an error naming the
//! column, not a failed batch later), makes rows plain bytes that can be compared (the upsert
//! buffer keeps one row per key by the key columns' bytes) and stored in a checkpoint, and
//! costs one small allocation per row instead of one per value.

use postgres::types::{IsNull, ToSql, Type};
use serde::{Deserialize, Serialize};

/// The values of one row, in the sink's column order, as the user's row function builds it.
pub struct Row<'a> {
    types: &'a [Type],
    columns: &'a [String],
    /// The encoded values, written in place by each value's `to_sql`.
    data: bytes::BytesMut,
    values: Vec<Option<(u32, u32)>>,
    error: Option<String>,
}

impl<'a> Row<'a> {
    pub(crate) fn new(types: &'a [Type], columns: &'a [String]) -> Self {
        Row {
            types,
            columns,
            data: bytes::BytesMut::new(),
            values: Vec::with_capacity(types.len()),
            error: None,
        }
    }

    /// Appends the value of the next column. `None` (of an `Option`) is SQL `NULL`. A value
    /// of a type the column cannot take, or one value too many, fails the row.
    pub fn push<V: ToSql>(&mut self, value: V) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        let index = self.values.len();
        let Some(ty) = self.types.get(index) else {
            self.error = Some(format!(
                "the row has more values than the sink's {} columns",
                self.types.len()
            ));
            return self;
        };
        let start = self.data.len();
        match value.to_sql_checked(ty, &mut self.data) {
            Ok(IsNull::Yes) => {
                self.data.truncate(start);
                self.values.push(None)
            }
            Ok(IsNull::No) => self
                .values
                .push(Some((start as u32, self.data.len() as u32))),
            Err(e) => {
                self.error = Some(format!(
                    "column '{}' ({ty}) cannot take a {}: {e}",
                    self.columns[index],
                    std::any::type_name::<V>()
                ))
            }
        }
        self
    }

    /// The encoded row, or why it is not a valid row of the sink's table.
    pub(crate) fn finish(self) -> Result<EncodedRow, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.values.len() != self.types.len() {
            return Err(format!(
                "the row has {} values, the sink has {} columns ({})",
                self.values.len(),
                self.types.len(),
                self.columns.join(", ")
            ));
        }
        Ok(EncodedRow {
            data: self.data.into(),
            values: self.values,
        })
    }
}

/// A row's values in binary wire format: `values[i]` is the byte range of column `i` in
/// `data`, or `None` for `NULL`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EncodedRow {
    data: Vec<u8>,
    values: Vec<Option<(u32, u32)>>,
}

impl EncodedRow {
    /// The encoded value of column `i` (`None`: `NULL`).
    pub fn value(&self, i: usize) -> Option<&[u8]> {
        self.values[i].map(|(a, b)| &self.data[a as usize..b as usize])
    }

    /// The values of `columns`, length-prefixed, as one byte string: equal for two rows
    /// exactly when those columns hold equal encodings.
    pub fn key(&self, columns: &[usize]) -> Vec<u8> {
        let mut key = Vec::new();
        for &c in columns {
            match self.value(c) {
                None => key.extend_from_slice(&u32::MAX.to_le_bytes()),
                Some(v) => {
                    key.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    key.extend_from_slice(v);
                }
            }
        }
        key
    }

    /// The row's values as statement parameters.
    pub fn params<'r>(&'r self, types: &'r [Type]) -> impl Iterator<Item = Encoded<'r>> + 'r {
        types.iter().enumerate().map(|(i, ty)| Encoded {
            ty,
            bytes: self.value(i),
        })
    }
}

/// One value already in binary wire format for type `ty`, passed on as it is.
#[derive(Debug)]
pub(crate) struct Encoded<'r> {
    ty: &'r Type,
    bytes: Option<&'r [u8]>,
}

impl ToSql for Encoded<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.bytes {
            None => Ok(IsNull::Yes),
            Some(b) => {
                out.extend_from_slice(b);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    /// The value was encoded for one type; a statement that wants another gets an error
    /// instead of bytes it would misread. (Rows restored from a checkpoint are checked
    /// against the table's current column types before they get here.)
    fn to_sql_checked(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if ty != self.ty {
            return Err(format!(
                "a value encoded as {} was bound to a {ty} parameter",
                self.ty
            )
            .into());
        }
        self.to_sql(ty, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> (Vec<Type>, Vec<String>) {
        (
            vec![Type::TEXT, Type::INT8, Type::INT4],
            vec!["k".into(), "total".into(), "n".into()],
        )
    }

    #[test]
    fn values_are_encoded_by_column_type() {
        let (types, names) = cols();
        let mut row = Row::new(&types, &names);
        row.push("a").push(5i64).push(None::<i32>);
        let r = row.finish().unwrap();
        assert_eq!(r.value(0), Some(&b"a"[..]));
        assert_eq!(r.value(1), Some(&5i64.to_be_bytes()[..]));
        assert_eq!(r.value(2), None);
    }

    #[test]
    fn a_wrong_type_names_the_column() {
        let (types, names) = cols();
        let mut row = Row::new(&types, &names);
        row.push("a").push(5i64).push(7i64);
        let e = row.finish().unwrap_err();
        assert!(e.contains("column 'n' (int4)"), "{e}");
    }

    #[test]
    fn too_few_or_too_many_values_fail() {
        let (types, names) = cols();
        let mut row = Row::new(&types, &names);
        row.push("a");
        assert!(row.finish().unwrap_err().contains("has 1 values"));
        let mut row = Row::new(&types, &names);
        row.push("a").push(1i64).push(1i32).push(1i32);
        assert!(row.finish().unwrap_err().contains("more values"));
    }

    #[test]
    fn keys_tell_null_from_empty() {
        let types = vec![Type::TEXT];
        let names = vec!["k".to_string()];
        let mut a = Row::new(&types, &names);
        a.push("");
        let mut b = Row::new(&types, &names);
        b.push(None::<&str>);
        assert_ne!(a.finish().unwrap().key(&[0]), b.finish().unwrap().key(&[0]));
    }
}
