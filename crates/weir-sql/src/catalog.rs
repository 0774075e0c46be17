//! Tables declared with `CREATE TABLE`: their columns with Flink types, the event-time
//! watermark, and the connector options; and the catalog that names them for the planner.
//!
//! DDL follows Flink SQL: `CREATE TABLE name (col TYPE [NOT NULL], ..., WATERMARK FOR col AS
//! col - INTERVAL 'n' SECOND) WITH ('connector' = '...', ...)`. The column list is parsed by
//! sqlparser; the WATERMARK clause and the WITH options, which it does not know in this
//! form, are taken out first.

use crate::error::{Result, SqlError};
use crate::types::{kind_of, FlinkType};
use datafusion_sql::sqlparser::ast::{ColumnOption, Expr as SqlExpr, Statement as SqlStatement};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use std::collections::BTreeMap;

/// One column of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Its name, as written.
    pub name: String,
    /// Its type.
    pub ty: FlinkType,
}

/// A table's event-time attribute and how far its watermark trails it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// The rowtime column's index.
    pub column: usize,
    /// The watermark is the largest rowtime seen minus this many milliseconds.
    pub delay_ms: i64,
}

/// A table declared with `CREATE TABLE`.
#[derive(Clone, Debug, PartialEq)]
pub struct TableDef {
    /// Its name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// Its watermark, if declared.
    pub watermark: Option<WatermarkSpec>,
    /// The WITH options (`'connector' = 'filesystem'`, ...), keys as written.
    pub options: BTreeMap<String, String>,
}

impl TableDef {
    /// Option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// Option `key`, or an error naming the table and the option.
    pub fn required(&self, key: &str) -> Result<&str> {
        self.option(key).ok_or_else(|| {
            SqlError::Invalid(format!("table '{}' needs the option '{key}'", self.name))
        })
    }
}

/// Parses a `CREATE [TEMPORARY] TABLE [IF NOT EXISTS]` statement.
pub fn parse_create_table(sql: &str) -> Result<TableDef> {
    let open = find_top_level(sql, '(', 0)
        .ok_or_else(|| SqlError::Invalid("CREATE TABLE without a column list".into()))?;
    let close = matching_paren(sql, open)
        .ok_or_else(|| SqlError::Invalid("the column list of CREATE TABLE is not closed".into()))?;
    let head = &sql[..open];
    let name = head
        .split_whitespace()
        .last()
        .map(|n| n.trim_matches('`').to_string())
        .ok_or_else(|| SqlError::Invalid("CREATE TABLE without a name".into()))?;
    let mut column_defs = Vec::new();
    let mut watermark = None;
    for element in split_top_level(&sql[open + 1..close]) {
        let words: Vec<&str> = element.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()) {
            Some(w) if w == "WATERMARK" => watermark = Some(element.to_string()),
            Some(w) if w == "PRIMARY" || w == "CONSTRAINT" => {
                return Err(SqlError::Unsupported(format!(
                    "table constraints ('{element}')"
                )))
            }
            Some(_) => column_defs.push(element.to_string()),
            None => {}
        }
    }
    let statement = format!("CREATE TABLE t ({})", column_defs.join(", "));
    let parsed = Parser::parse_sql(&GenericDialect {}, &statement)
        .map_err(|e| SqlError::Invalid(format!("in the columns of table '{name}': {e}")))?;
    let Some(SqlStatement::CreateTable(create)) = parsed.into_iter().next() else {
        return Err(SqlError::Invalid(format!(
            "cannot read the columns of table '{name}'"
        )));
    };
    let mut columns = Vec::new();
    for c in &create.columns {
        let not_null = c
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::NotNull));
        let kind = kind_of(&c.data_type).map_err(|e| match e {
            SqlError::Unsupported(m) => {
                SqlError::Unsupported(format!("{m} (column '{}' of table '{name}')", c.name.value))
            }
            e => e,
        })?;
        columns.push(Column {
            name: c.name.value.clone(),
            ty: if not_null {
                FlinkType::not_null(kind)
            } else {
                FlinkType::nullable(kind)
            },
        });
    }
    let watermark = watermark
        .map(|w| parse_watermark(&w, &name, &mut columns))
        .transpose()?;
    let options = match find_top_level(sql, '(', close + 1) {
        Some(at) => {
            let keyword = sql[close + 1..at].trim();
            if !keyword.eq_ignore_ascii_case("WITH") {
                return Err(SqlError::Invalid(format!(
                    "unexpected '{keyword}' after the columns of table '{name}'"
                )));
            }
            let end = matching_paren(sql, at).ok_or_else(|| {
                SqlError::Invalid(format!("the WITH options of table '{name}' are not closed"))
            })?;
            parse_options(&sql[at + 1..end], &name)?
        }
        None => BTreeMap::new(),
    };
    Ok(TableDef {
        name,
        columns,
        watermark,
        options,
    })
}

/// `WATERMARK FOR col AS col [- INTERVAL 'n' UNIT]`: marks `col` as the rowtime.
fn parse_watermark(text: &str, table: &str, columns: &mut [Column]) -> Result<WatermarkSpec> {
    let bad = |why: &str| SqlError::Invalid(format!("watermark of table '{table}': {why}"));
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 4
        || !words[1].eq_ignore_ascii_case("FOR")
        || !words[3].eq_ignore_ascii_case("AS")
    {
        return Err(bad("expected WATERMARK FOR column AS expression"));
    }
    let column_name = words[2].trim_matches('`');
    let column = columns
        .iter()
        .position(|c| c.name == column_name)
        .ok_or_else(|| bad(&format!("no column '{column_name}'")))?;
    let as_at = text
        .to_ascii_uppercase()
        .find(" AS ")
        .ok_or_else(|| bad("expected AS"))?;
    let expr_text = &text[as_at + 4..];
    let expr = Parser::new(&GenericDialect {})
        .try_with_sql(expr_text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| bad(&e.to_string()))?;
    let is_column = |e: &SqlExpr| matches!(e, SqlExpr::Identifier(i) if i.value == column_name);
    let delay_ms = match &expr {
        e if is_column(e) => 0,
        SqlExpr::BinaryOp { left, op, right }
            if is_column(left) && *op == datafusion_sql::sqlparser::ast::BinaryOperator::Minus =>
        {
            crate::interval::interval_ms(right).map_err(|e| bad(&e.to_string()))?
        }
        _ => {
            return Err(SqlError::Unsupported(format!(
                "the watermark expression '{expr_text}' of table '{table}' (Weir takes \
                 'col' or 'col - INTERVAL ...')"
            )))
        }
    };
    match columns[column].ty.kind {
        crate::types::Kind::Timestamp(p) if p <= 3 => {}
        crate::types::Kind::Timestamp(p) => {
            return Err(bad(&format!(
                "the time attribute '{column_name}' is TIMESTAMP({p}); it must be TIMESTAMP(3) or coarser (as in Flink)"
            )))
        }
        _ => return Err(bad(&format!("'{column_name}' is not a TIMESTAMP column"))),
    }
    columns[column].ty.rowtime = true;
    Ok(WatermarkSpec { column, delay_ms })
}

/// `'key' = 'value', ...`
fn parse_options(text: &str, table: &str) -> Result<BTreeMap<String, String>> {
    let bad = || {
        SqlError::Invalid(format!(
            "the WITH options of table '{table}' must be 'key' = 'value' pairs"
        ))
    };
    let mut options = BTreeMap::new();
    for pair in split_top_level(text) {
        let (key, rest) = read_string(pair.trim()).ok_or_else(bad)?;
        let rest = rest.trim_start().strip_prefix('=').ok_or_else(bad)?;
        let (value, rest) = read_string(rest.trim()).ok_or_else(bad)?;
        if !rest.trim().is_empty() {
            return Err(bad());
        }
        options.insert(key, value);
    }
    Ok(options)
}

/// A single-quoted string at the start of `s` ('' is a quote), and what follows it.
fn read_string(s: &str) -> Option<(String, &str)> {
    let rest = s.strip_prefix('\'')?;
    let mut out = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if matches!(chars.peek(), Some((_, '\''))) {
                chars.next();
                out.push('\'');
                continue;
            }
            return Some((out, &rest[i + 1..]));
        }
        out.push(c);
    }
    None
}

/// The characters of `s` outside quotes, each with its byte offset and the parenthesis
/// depth before it (quote characters themselves are left out).
fn unquoted(s: &str) -> impl Iterator<Item = (usize, char, i32)> + '_ {
    let mut quote = None;
    let mut depth = 0;
    s.char_indices().filter_map(move |(i, ch)| {
        if let Some(q) = quote {
            if ch == q {
                quote = None;
            }
            return None;
        }
        if matches!(ch, '\'' | '`' | '"') {
            quote = Some(ch);
            return None;
        }
        let before = depth;
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        Some((i, ch, before))
    })
}

/// The byte offset of the first `c` at nesting depth 0 at or after `from`, outside quotes.
fn find_top_level(s: &str, c: char, from: usize) -> Option<usize> {
    unquoted(&s[from..])
        .find(|&(_, ch, depth)| ch == c && depth == 0)
        .map(|(i, ..)| from + i)
}

/// The offset of the `)` that closes the `(` at `open`.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    unquoted(&s[open..])
        .find(|&(_, ch, depth)| ch == ')' && depth == 1)
        .map(|(i, ..)| open + i)
}

/// `s` split at commas at nesting depth 0 outside quotes, each part trimmed.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, ch, depth) in unquoted(s) {
        if ch == ',' && depth == 0 {
            parts.push(s[start..i].trim());
            start = i + 1;
        }
    }
    let last = s[start..].trim();
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Kind;

    #[test]
    fn flink_ddl_with_watermark_and_options() {
        let t = parse_create_table(
            "CREATE TABLE bid (\n auction BIGINT,\n price DECIMAL(10, 2) NOT NULL,\n channel STRING,\n \
             ts TIMESTAMP(3),\n WATERMARK FOR ts AS ts - INTERVAL '5' SECOND\n) WITH ('connector' = \
             'filesystem', 'path' = 'bid.csv', 'csv.null-literal' = '\\N', 'x' = 'it''s')",
        )
        .unwrap();
        assert_eq!(t.name, "bid");
        assert_eq!(t.columns.len(), 4);
        assert_eq!(t.columns[1].ty, FlinkType::not_null(Kind::Decimal(10, 2)));
        assert_eq!(t.columns[2].ty.display(), "STRING");
        assert_eq!(t.columns[3].ty.display(), "TIMESTAMP(3) *ROWTIME*");
        assert_eq!(
            t.watermark,
            Some(WatermarkSpec {
                column: 3,
                delay_ms: 5000
            })
        );
        assert_eq!(t.option("csv.null-literal"), Some("\\N"));
        assert_eq!(t.option("x"), Some("it's"));
    }

    #[test]
    fn bad_ddl_says_what_is_wrong() {
        for (sql, want) in [
            ("CREATE TABLE t (a FOO)", "type FOO (column 'a'"),
            (
                "CREATE TABLE t (a INT, WATERMARK FOR b AS b)",
                "no column 'b'",
            ),
            (
                "CREATE TABLE t (a INT, WATERMARK FOR a AS a)",
                "not a TIMESTAMP",
            ),
            ("CREATE TABLE t (a INT) WITH ('k' 'v')", "'key' = 'value'"),
            ("CREATE TABLE t (a INT", "not closed"),
        ] {
            let e = parse_create_table(sql).unwrap_err().to_string();
            assert!(e.contains(want), "{sql}: {e}");
        }
    }
}
