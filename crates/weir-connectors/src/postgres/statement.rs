//! The SQL the Postgres sink sends: multi-row `INSERT`s, with `ON CONFLICT ... DO UPDATE`
//! for upserts (what Flink's JDBC dialect for PostgreSQL generates for an upsert table).

/// PostgreSQL allows at most this many parameters in one statement.
const MAX_PARAMS: usize = 65_535;

/// Quotes an identifier: `a"b` becomes `"a""b"`. A dotted name (`schema.table`) is quoted
/// part by part.
pub(crate) fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Quotes a string literal: `it's` becomes `'it''s'`.
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The insert statement of one table.
#[derive(Clone, Debug)]
pub(crate) struct InsertSql {
    table: String,
    columns: Vec<String>,
    /// Conflict columns of an upsert; empty for appends.
    keys: Vec<String>,
}

impl InsertSql {
    pub fn new(table: &str, columns: &[String], keys: &[String]) -> Self {
        InsertSql {
            table: table.to_string(),
            columns: columns.to_vec(),
            keys: keys.to_vec(),
        }
    }

    /// The most rows one statement can carry.
    pub fn max_rows(&self) -> usize {
        MAX_PARAMS / self.columns.len().max(1)
    }

    /// The statement for `rows` rows: `$1..$n` numbered row by row.
    pub fn for_rows(&self, rows: usize) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote_ident(&self.table),
            cols.join(", ")
        );
        let n = self.columns.len();
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..n {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", r * n + c + 1));
            }
            sql.push(')');
        }
        if !self.keys.is_empty() {
            let keys: Vec<String> = self.keys.iter().map(|k| quote_ident(k)).collect();
            let updates: Vec<String> = self
                .columns
                .iter()
                .filter(|c| !self.keys.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                .collect();
            sql.push_str(&format!(" ON CONFLICT ({}) ", keys.join(", ")));
            if updates.is_empty() {
                sql.push_str("DO NOTHING");
            } else {
                sql.push_str(&format!("DO UPDATE SET {}", updates.join(", ")));
            }
        }
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn append_rows_are_numbered_row_by_row() {
        let s = InsertSql::new("events", &names(&["key", "value"]), &[]);
        assert_eq!(
            s.for_rows(2),
            r#"INSERT INTO "events" ("key", "value") VALUES ($1, $2), ($3, $4)"#
        );
    }

    #[test]
    fn upserts_update_every_column_but_the_keys() {
        let s = InsertSql::new(
            "public.totals",
            &names(&["key", "total", "count"]),
            &names(&["key"]),
        );
        assert_eq!(
            s.for_rows(1),
            r#"INSERT INTO "public"."totals" ("key", "total", "count") VALUES ($1, $2, $3) ON CONFLICT ("key") DO UPDATE SET "total" = EXCLUDED."total", "count" = EXCLUDED."count""#
        );
        let only_keys = InsertSql::new("t", &names(&["k"]), &names(&["k"]));
        assert!(only_keys.for_rows(1).ends_with("DO NOTHING"));
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
        let s = InsertSql::new("t", &names(&["a", "b", "c"]), &[]);
        assert_eq!(s.max_rows(), 21_845);
    }
}
