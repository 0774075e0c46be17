//! Runs a SQL script statement by statement, as Flink's SQL client does with `-f`: DDL
//! fills the catalog, `SET` changes options, each `SELECT` runs as a job and prints its
//! result as a table with row kinds, and each `INSERT INTO` runs its job into the sink
//! table's connector. The client waits for an INSERT's job to finish before the next
//! statement (Flink's `table.dml-sync = true`): its jobs run on the embedded mini-cluster
//! inside the client process, which must outlive them. With a results directory, the i-th SELECT's result
//! is also written as `result-i.csv` (the changelog applied to an empty multiset, rows
//! sorted bytewise), `changelog-i.csv` and `schema-i.txt`, in the files and format
//! Weir's SQL oracle writes for Flink. Files are written only once every statement
//! succeeded, so a failed script leaves none behind.

use crate::catalog::parse_create_table;
use crate::changelog::{kind_at, kinds, RowKind};
use crate::connector::Connectors;
use crate::error::{Result, SqlError};
use crate::format;
use crate::job::{self, JobSettings, QueryOutput};
use crate::plan::Catalog;
use crate::script::{self, Statement};
use datafusion_sql::sqlparser::ast::{Statement as SqlStatement, TableObject};
use std::io::Write;
use std::path::{Path, PathBuf};
use weir_api::prelude::StreamExecutionEnvironment;

/// A client session: the catalog and options the statements so far created.
pub struct Session {
    catalog: Catalog,
    connectors: Connectors,
    /// Where relative `'path'`s of tables resolve.
    base: PathBuf,
    parallelism: u32,
    state_backend: weir_core::StateBackendConfig,
    checkpoint_interval: Option<std::time::Duration>,
    state_ttl: Option<std::time::Duration>,
    results: Vec<QueryOutput>,
}

impl Session {
    /// A session resolving relative paths against `base`, running jobs at `parallelism`.
    pub fn new(base: impl Into<PathBuf>, parallelism: u32) -> Self {
        Session {
            catalog: Catalog::new(),
            connectors: Connectors::default(),
            base: base.into(),
            parallelism: parallelism.max(1),
            state_backend: weir_core::StateBackendConfig::default(),
            checkpoint_interval: None,
            state_ttl: None,
            results: Vec::new(),
        }
    }

    /// The connectors the session's tables may name; register more here (a benchmark's
    /// generator, an application's own sink) before running statements.
    pub fn connectors_mut(&mut self) -> &mut Connectors {
        &mut self.connectors
    }

    /// The job of an `INSERT INTO ... SELECT ...` statement, planned and built but not
    /// started, with its name; [`Session::run_text`] runs the statement to its end
    /// instead.
    pub fn insert_job(&self, sql: &str) -> Result<(StreamExecutionEnvironment, String)> {
        let (statement, windows) = crate::window_tvf::parse_statement(sql)?;
        let SqlStatement::Insert(insert) = statement else {
            return Err(SqlError::Invalid("not an INSERT INTO statement".into()));
        };
        let TableObject::TableName(name) = &insert.table else {
            return Err(SqlError::Unsupported("INSERT INTO a table function".into()));
        };
        let name = name.to_string().trim_matches('`').to_string();
        let sink = self
            .catalog
            .table(&name)
            .ok_or_else(|| SqlError::Invalid(format!("table '{name}' does not exist")))?
            .clone();
        let source = insert
            .source
            .ok_or_else(|| SqlError::Unsupported("INSERT INTO without a query".into()))?;
        if insert.overwrite {
            return Err(SqlError::Unsupported("INSERT OVERWRITE".into()));
        }
        let targets: Vec<String> = insert
            .columns
            .iter()
            .map(|c| c.to_string().trim_matches('`').to_string())
            .collect();
        let query = self
            .catalog
            .plan_query(SqlStatement::Query(source), &windows)?;
        let env = job::insert_job(&query, &sink, &targets, self.settings())?;
        Ok((env, format!("insert-into_{name}")))
    }

    /// Starts a SELECT (or WITH, VALUES) without waiting for it: its result is read as it
    /// changes ([`crate::live`]).
    pub fn start_select(&mut self, sql: &str) -> Result<crate::live::LiveQuery> {
        let (statement, windows) = crate::window_tvf::parse_statement(sql)?;
        if !matches!(statement, SqlStatement::Query(_)) {
            return Err(SqlError::Invalid("not a query".into()));
        }
        let query = self.catalog.plan_query(statement, &windows)?;
        let started = job::start(&query, self.settings())?;
        Ok(crate::live::LiveQuery::new(started, query.columns.clone()))
    }

    /// True if `statement` (one statement, without its `;`) is a query: its rows are a
    /// result (printed by a script, shown as they change by the interactive client).
    pub fn is_query(statement: &str) -> bool {
        let first = statement
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        matches!(first.as_str(), "SELECT" | "WITH" | "VALUES") || first.starts_with('(')
    }

    fn settings(&self) -> JobSettings<'_> {
        JobSettings {
            base: &self.base,
            connectors: &self.connectors,
            parallelism: self.parallelism,
            state_backend: &self.state_backend,
            checkpoint_interval: self.checkpoint_interval,
            state_ttl: self.state_ttl,
        }
    }

    /// The results of the SELECTs run so far, in order.
    pub fn results(&self) -> &[QueryOutput] {
        &self.results
    }

    /// Runs the script at `path` (with `-- include:` lines expanded), printing to `out`.
    pub fn run_file(&mut self, path: &Path, out: &mut dyn Write) -> Result<()> {
        let text = script::expand(path)?;
        self.run_statements(&text, out)
    }

    /// Runs the statements of `text` (includes relative to the session's directory),
    /// printing to `out`. The first failing statement ends the script with an error that
    /// names it and its line.
    pub fn run_text(&mut self, text: &str, out: &mut dyn Write) -> Result<()> {
        let text = script::expand_text(text, &self.base)?;
        self.run_statements(&text, out)
    }

    fn run_statements(&mut self, text: &str, out: &mut dyn Write) -> Result<()> {
        for s in script::split(text)? {
            self.run_statement(&s, out)
                .map_err(|e| SqlError::Statement {
                    number: s.number,
                    line: s.line,
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }

    fn run_statement(&mut self, s: &Statement, out: &mut dyn Write) -> Result<()> {
        let words: Vec<String> = s
            .text
            .split_whitespace()
            .take(3)
            .map(str::to_ascii_uppercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let print = |out: &mut dyn Write, text: &str| {
            writeln!(out, "{text}").map_err(|e| SqlError::Output {
                what: "the client's output".into(),
                source: e,
            })
        };
        match words.as_slice() {
            ["CREATE", "TABLE", ..] | ["CREATE", "TEMPORARY", "TABLE"] => {
                let table = parse_create_table(&s.text)?;
                let name = table.name.clone();
                self.catalog.create_table(table)?;
                print(out, &format!("[INFO] Table '{name}' has been created."))
            }
            ["CREATE", "VIEW", ..] | ["CREATE", "TEMPORARY", "VIEW"] => {
                let (name, query) = view_definition(&s.text)?;
                self.catalog
                    .create_view(&name, query)
                    .map_err(|e| SqlError::Invalid(script_position(&e.to_string(), s.line)))?;
                print(out, &format!("[INFO] View '{name}' has been created."))
            }
            ["SET", ..] => self.set(&s.text, out),
            ["INSERT", "INTO", ..] => {
                let (env, name) = self
                    .insert_job(&s.text)
                    .map_err(|e| match e {
                        SqlError::Invalid(m) => SqlError::Invalid(script_position(&m, s.line)),
                        e => e,
                    })?;
                print(out, "[INFO] Submitting SQL update statement to the cluster...")?;
                env.execute(&name)?;
                print(out, &format!("[INFO] Job '{name}' finished."))
            }
            ["DESCRIBE", ..] | ["DESC", ..] => {
                let name = s
                    .text
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .trim_matches('`');
                let table = self
                    .catalog
                    .table(name)
                    .ok_or_else(|| SqlError::Invalid(format!("table '{name}' does not exist")))?;
                print(out, &describe(table))
            }
            ["EXPLAIN", ..] => {
                let rest = s.text.trim_start()[7..].trim_start();
                let rest = match rest.get(..8) {
                    Some(p) if p.eq_ignore_ascii_case("PLAN FOR") => rest[8..].trim_start(),
                    _ => rest,
                };
                let (statement, windows) = crate::window_tvf::parse_statement(rest)
                    .map_err(|e| SqlError::Invalid(script_position(&e.to_string(), s.line)))?;
                let query = self.catalog.plan_query(statement, &windows)?;
                print(out, &query.explain())
            }
            ["SHOW", "TABLES", ..] => {
                let names = self.catalog.table_names();
                print(out, &names.join("\n"))
            }
            _ if Self::is_query(&s.text) => {
                let (statement, windows) = crate::window_tvf::parse_statement(&s.text)
                    .map_err(|e| SqlError::Invalid(script_position(&e.to_string(), s.line)))?;
                let query = self.catalog.plan_query(statement, &windows)?;
                let output = job::run(&query, self.settings())?;
                print_table(&output, out)?;
                self.results.push(output);
                Ok(())
            }
            _ => Err(SqlError::Unsupported(format!(
                "the statement '{}' (Weir's SQL client runs CREATE TABLE, CREATE VIEW, SET, SHOW TABLES, DESCRIBE, EXPLAIN, SELECT and INSERT INTO so far)",
                s.text.lines().next().unwrap_or_default()
            ))),
        }
    }

    /// `SET 'key' = 'value'`: `parallelism.default`, `state.backend.type` (`hashmap` or
    /// `rocksdb`), `execution.checkpointing.interval` (exactly-once checkpoints, and
    /// Flink's restart strategy with them) and `table.exec.state.ttl` (idle state
    /// retention, [`crate::retention`]) are used; other keys are accepted and reported as
    /// ignored.
    fn set(&mut self, text: &str, out: &mut dyn Write) -> Result<()> {
        let body = text[3..].trim();
        let (key, value) = body
            .split_once('=')
            .map(|(k, v)| (unquote(k.trim()), unquote(v.trim())))
            .ok_or_else(|| SqlError::Invalid("SET needs 'key' = 'value'".into()))?;
        match key.as_str() {
            "parallelism.default" => {
                self.parallelism = value.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                    SqlError::Invalid(format!(
                        "'parallelism.default' must be a positive number, not '{value}'"
                    ))
                })?;
            }
            "execution.checkpointing.interval" => {
                let interval = parse_duration(&value).ok_or_else(|| {
                    SqlError::Invalid(format!(
                        "'execution.checkpointing.interval' must be a duration such as '10 s', '500 ms' or '1 min', not '{value}'"
                    ))
                })?;
                self.checkpoint_interval = (!interval.is_zero()).then_some(interval);
            }
            "table.exec.state.ttl" => {
                let ttl = parse_duration(&value).ok_or_else(|| {
                    SqlError::Invalid(format!(
                        "'table.exec.state.ttl' must be a duration such as '1 h', '10 s' or '0' (never), not '{value}'"
                    ))
                })?;
                self.state_ttl = (!ttl.is_zero()).then_some(ttl);
            }
            "state.backend.rocksdb.memory.fixed-per-tm" => {
                let bytes = parse_memory_size(&value).ok_or_else(|| {
                    SqlError::Invalid(format!(
                        "'state.backend.rocksdb.memory.fixed-per-tm' must be a memory size such as '256 mb' or '1g', not '{value}'"
                    ))
                })?;
                self.state_backend.rocksdb_memory_bytes = Some(bytes);
            }
            "state.backend.type" => {
                let kind: weir_core::StateBackendKind = value
                    .parse()
                    .map_err(|e: weir_core::CoreError| SqlError::Invalid(e.to_string()))?;
                self.state_backend = weir_core::StateBackendConfig {
                    kind,
                    ..self.state_backend.clone()
                };
            }
            other => {
                writeln!(out, "[WARNING] '{other}' has no effect in Weir yet.").map_err(|e| {
                    SqlError::Output {
                        what: "the client's output".into(),
                        source: e,
                    }
                })?;
            }
        }
        writeln!(out, "[INFO] Execute statement succeeded.").map_err(|e| SqlError::Output {
            what: "the client's output".into(),
            source: e,
        })
    }

    /// Writes `result-i.csv`, `changelog-i.csv` and `schema-i.txt` for every SELECT into
    /// `dir` (created if missing; earlier files of these names are removed first).
    pub fn write_results(&self, dir: &Path) -> Result<()> {
        let io = |what: &Path| {
            let what = what.display().to_string();
            move |source| SqlError::Output { what, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if ["result-", "changelog-", "schema-"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        for (i, output) in self.results.iter().enumerate() {
            let n = i + 1;
            let rows = rows(output);
            let mut changelog = String::new();
            for (kind, r) in &rows {
                changelog.push_str(kind.short());
                changelog.push(',');
                changelog.push_str(r);
                changelog.push('\n');
            }
            let sorted = materialise(&rows)?;
            let mut result = String::new();
            for r in sorted {
                result.push_str(&r);
                result.push('\n');
            }
            let schema: String = output
                .columns
                .iter()
                .map(|(name, t)| format!("{name}\t{}\n", t.display()))
                .collect();
            for (file, text) in [
                (format!("result-{n}.csv"), result),
                (format!("changelog-{n}.csv"), changelog),
                (format!("schema-{n}.txt"), schema),
            ] {
                let path = dir.join(file);
                std::fs::write(&path, text).map_err(io(&path))?;
            }
        }
        Ok(())
    }
}

/// A parser message's `Line: L, Column: C` (within the statement) as the script's line:
/// `line N, column C`.
fn script_position(message: &str, statement_line: usize) -> String {
    let Ok(re) = regex::Regex::new(r"Line: (\d+), Column: (\d+)") else {
        return message.to_string();
    };
    re.replace_all(message, |c: &regex::Captures<'_>| {
        let line: usize = c[1].parse().unwrap_or(1);
        format!(
            "line {}, column {}",
            statement_line + line.saturating_sub(1),
            &c[2]
        )
    })
    .into_owned()
}

/// The name and query of `CREATE [TEMPORARY] VIEW name AS query`.
fn view_definition(text: &str) -> Result<(String, &str)> {
    let bad = || SqlError::Invalid("CREATE VIEW needs a name and AS <query>".into());
    let mut rest = text.trim_start();
    let mut name = None;
    // CREATE, [TEMPORARY,] VIEW, the name, AS: each a word followed by whitespace.
    loop {
        let end = rest.find(char::is_whitespace).ok_or_else(bad)?;
        let (word, tail) = rest.split_at(end);
        rest = tail.trim_start();
        match word.to_ascii_uppercase().as_str() {
            "CREATE" | "TEMPORARY" | "VIEW" if name.is_none() => {}
            "AS" if name.is_some() => break,
            _ if name.is_none() => name = Some(word.trim_matches('`').to_string()),
            _ => return Err(bad()),
        }
    }
    Ok((name.ok_or_else(bad)?, rest))
}

fn unquote(s: &str) -> String {
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .unwrap_or(s)
        .replace("''", "'")
}

/// Every row of `output`, formatted.
fn rows(output: &QueryOutput) -> Vec<(RowKind, String)> {
    let mut rows = Vec::new();
    for b in &output.batches {
        let row_kinds = kinds(b);
        for r in 0..b.num_rows() {
            let fields: Vec<String> = output
                .columns
                .iter()
                .enumerate()
                .map(|(c, (_, t))| format::value(b.column(c), t, r))
                .collect();
            rows.push((kind_at(row_kinds.as_ref(), r), fields.join(",")));
        }
    }
    rows
}

/// A changelog applied to an empty multiset (`+I`/`+U` add a row, `-U`/`-D` take one
/// occurrence away), rows sorted by their bytes. A withdrawal of a row that is not there is
/// an error: the query's operators emitted an inconsistent changelog.
fn materialise(changes: &[(RowKind, String)]) -> Result<Vec<String>> {
    let mut counts: std::collections::BTreeMap<&[u8], i64> = Default::default();
    for (kind, row) in changes {
        let n = counts.entry(row.as_bytes()).or_insert(0);
        if kind.adds() {
            *n += 1;
        } else if *n == 0 {
            return Err(SqlError::Invalid(format!(
                "the result's changelog withdraws a row it does not hold ({} {row})",
                kind.short()
            )));
        } else {
            *n -= 1;
        }
    }
    let mut out = Vec::new();
    for (row, n) in counts {
        for _ in 0..n {
            out.push(String::from_utf8_lossy(row).into_owned());
        }
    }
    Ok(out)
}

/// A table's columns as Flink's SQL client describes them: name, type, nullability and
/// the watermark of the rowtime column.
fn describe(table: &crate::catalog::TableDef) -> String {
    let header = ["name", "type", "null", "key", "extras", "watermark"];
    let rows: Vec<[String; 6]> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let watermark = match &table.watermark {
                Some(w) if w.column == i && w.delay_ms == 0 => format!("`{}`", c.name),
                Some(w) if w.column == i => {
                    format!("`{}` - INTERVAL '{}' MILLISECOND", c.name, w.delay_ms)
                }
                _ => String::new(),
            };
            let mut t = c.ty;
            t.nullable = true;
            [
                c.name.clone(),
                t.display(),
                if c.ty.nullable { "TRUE" } else { "FALSE" }.to_string(),
                String::new(),
                String::new(),
                watermark,
            ]
        })
        .collect();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    tableau(&header, &rows)
}

/// Rows as a table in the style of Flink's SQL client (tableau mode): right-aligned cells
/// between rules, then the row count.
pub(crate) fn tableau(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+";
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("| {c:>w$} "))
            .collect::<String>()
            + "|"
    };
    let mut text = format!("{rule}\n{}\n{rule}\n", line(header));
    for r in rows {
        text.push_str(&line(r));
        text.push('\n');
    }
    text.push_str(&format!("{rule}\n{} rows in set", rows.len()));
    text
}

/// Prints a result as Flink's SQL client prints a table (tableau mode), with the row kind.
fn print_table(output: &QueryOutput, out: &mut dyn Write) -> Result<()> {
    let mut header = vec!["op".to_string()];
    header.extend(output.columns.iter().map(|(n, _)| n.clone()));
    let mut lines: Vec<Vec<String>> = Vec::new();
    for b in &output.batches {
        let row_kinds = kinds(b);
        for r in 0..b.num_rows() {
            let mut line = vec![kind_at(row_kinds.as_ref(), r).short().to_string()];
            line.extend(
                output
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(c, (_, t))| format::cell(b.column(c), t, r)),
            );
            lines.push(line);
        }
    }
    let text = tableau(&header, &lines);
    writeln!(out, "{text}").map_err(|e| SqlError::Output {
        what: "the client's output".into(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_definitions_split_into_name_and_query() {
        let (name, query) =
            view_definition("CREATE TEMPORARY VIEW `v` AS\n  SELECT a AS b FROM t").unwrap();
        assert_eq!((name.as_str(), query), ("v", "SELECT a AS b FROM t"));
        assert!(view_definition("CREATE VIEW v SELECT 1").is_err());
        assert!(view_definition("CREATE VIEW AS SELECT 1").is_err());
    }

    #[test]
    fn changelogs_materialise_as_multisets() {
        let c = |k, r: &str| (k, r.to_string());
        let changes = [
            c(RowKind::Insert, "b,1"),
            c(RowKind::Insert, "a,1"),
            c(RowKind::UpdateBefore, "b,1"),
            c(RowKind::UpdateAfter, "b,2"),
            c(RowKind::Insert, "a,1"),
            c(RowKind::Delete, "a,1"),
        ];
        assert_eq!(materialise(&changes).unwrap(), vec!["a,1", "b,2"]);
        assert!(materialise(&[c(RowKind::Delete, "x")]).is_err());
    }

    #[test]
    fn parser_positions_become_script_lines() {
        assert_eq!(
            script_position(
                "Expected: an expression, found: ) at Line: 2, Column: 9",
                31
            ),
            "Expected: an expression, found: ) at line 32, column 9"
        );
        assert_eq!(script_position("no position", 5), "no position");
    }
}

/// A duration as Flink's configuration writes one: a number with an optional unit (`ms`,
/// `s`, `min`, `h`, long forms too); a bare number is milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n.checked_mul(1_000)?,
        "m" | "min" | "minute" | "minutes" => n.checked_mul(60_000)?,
        "h" | "hour" | "hours" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(std::time::Duration::from_millis(ms))
}

/// A memory size as Flink's configuration writes one: a number with an optional unit (`b`,
/// `k`/`kb`, `m`/`mb`, `g`/`gb`, `t`/`tb`, long forms too; powers of 1024); a bare number is
/// bytes.
pub(crate) fn parse_memory_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod duration_tests {
    use super::{parse_duration, parse_memory_size};

    #[test]
    fn memory_sizes_read_as_flinks_configuration_writes_them() {
        assert_eq!(parse_memory_size("1024"), Some(1024));
        assert_eq!(parse_memory_size("256 mb"), Some(256 << 20));
        assert_eq!(parse_memory_size("1g"), Some(1 << 30));
        assert_eq!(parse_memory_size("64 KB"), Some(64 << 10));
        assert_eq!(parse_memory_size("lots"), None);
        assert_eq!(parse_memory_size("3 furlongs"), None);
        assert_eq!(parse_memory_size("99999999999 tb"), None);
    }
    use std::time::Duration;

    #[test]
    fn durations_read_as_flinks_configuration_writes_them() {
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("500 ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("ten seconds"), None);
        assert_eq!(parse_duration("5 fortnights"), None);
    }
}
