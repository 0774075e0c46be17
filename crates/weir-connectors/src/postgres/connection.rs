//! A sink subtask's connection: connects, learns the column types, writes rows with cached
//! multi-row statements, and turns the client's errors into [`ConnectorError`]s that say
//! what failed and whether a retry may help.

use super::row::{Encoded, EncodedRow};
use super::statement::{quote_ident, InsertSql};
use crate::error::ConnectorError;
use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::time::Duration;

/// How long a connection attempt may take unless the URL says otherwise (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// True if the same call may succeed on a new connection.
pub(crate) fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        // No SQLSTATE: the client's own I/O (refused, reset, timed out).
        None => causes(e).any(|c| c.downcast_ref::<std::io::Error>().is_some()),
    }
}

/// The errors that caused `e`, nearest first.
fn causes(e: &postgres::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(e), |c| c.source())
}

/// The server's message with its SQLSTATE, detail and hint, or the client's error with its
/// causes: `postgres::Error`'s own `Display` says only "db error".
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        if *db.code() == SqlState::LOCK_NOT_AVAILABLE {
            s.push_str(
                "; another transaction held a row this sink writes for longer than the sink's \
                 lock timeout (with exactly-once, a transaction prepared by another subtask that \
                 waits for its checkpoint: partition the sink's input by the conflict key)",
            );
        }
        return s;
    }
    let mut s = e.to_string();
    for c in causes(e) {
        s.push_str(&format!(": {c}"));
    }
    s
}

/// What a connection needs to know about the sink.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub url: String,
    pub table: String,
    pub columns: Vec<String>,
    pub keys: Vec<String>,
    /// Rows per statement at most (also bounded by PostgreSQL's parameter limit).
    pub batch_size: usize,
    pub lock_timeout: Duration,
}

/// One open connection of a sink subtask.
pub(crate) struct Connection {
    target: Target,
    sql: InsertSql,
    client: Client,
    types: Vec<Type>,
    /// Prepared inserts by row count: full chunks, and powers of two for the remainder, so
    /// at most `log2(batch_size) + 2` statements are ever prepared.
    statements: HashMap<usize, Statement>,
}

impl Connection {
    /// Connects and checks that the table and columns exist (and, for an upsert, that the
    /// keys are a unique constraint) by preparing the one-row insert; its parameter types
    /// are the columns' types.
    pub fn open(target: &Target) -> Result<Self, ConnectorError> {
        let sql = InsertSql::new(&target.table, &target.columns, &target.keys);
        let action = format!("connect to {}", redact(&target.url));
        let mut config: postgres::Config = target
            .url
            .parse()
            .map_err(|e| pg_error(target, &action, &e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = config
            .connect(NoTls)
            .map_err(|e| pg_error(target, &action, &e))?;
        client
            .batch_execute(&format!(
                "SET lock_timeout = {}",
                target.lock_timeout.as_millis().max(1)
            ))
            .map_err(|e| pg_error(target, "set the lock timeout", &e))?;
        let one = client
            .prepare(&sql.for_rows(1))
            .map_err(|e| pg_error(target, "prepare the insert statement", &e))?;
        let types = one.params().to_vec();
        if !target.keys.is_empty() {
            check_unique_keys(&mut client, target)?;
        }
        let mut statements = HashMap::new();
        statements.insert(1, one);
        Ok(Connection {
            target: target.clone(),
            sql,
            client,
            types,
            statements,
        })
    }

    /// The columns' types, in column order.
    pub fn types(&self) -> &[Type] {
        &self.types
    }

    /// The client, for transaction control statements.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// An error of this connection's sink.
    pub fn error(&self, action: &str, e: &postgres::Error) -> ConnectorError {
        pg_error(&self.target, action, e)
    }

    /// Runs statements without parameters (`BEGIN`, `PREPARE TRANSACTION ...`).
    pub fn execute(&mut self, sql: &str, action: &str) -> Result<(), ConnectorError> {
        self.client
            .batch_execute(sql)
            .map_err(|e| pg_error(&self.target, action, &e))
    }

    /// Inserts `rows` in the current transaction (or each statement in its own, outside of
    /// one), in statements of at most `batch_size` rows.
    pub fn insert(&mut self, rows: &[EncodedRow]) -> Result<(), ConnectorError> {
        let chunk = self.target.batch_size.min(self.sql.max_rows()).max(1);
        let mut rest = rows;
        while !rest.is_empty() {
            let n = if rest.len() >= chunk {
                chunk
            } else {
                // The largest power of two that fits.
                1 << (usize::BITS - 1 - rest.len().leading_zeros())
            };
            let (now, later) = rest.split_at(n);
            self.insert_exactly(now)?;
            rest = later;
        }
        Ok(())
    }

    fn insert_exactly(&mut self, rows: &[EncodedRow]) -> Result<(), ConnectorError> {
        let statement = match self.statements.get(&rows.len()) {
            Some(s) => s.clone(),
            None => {
                let s = self
                    .client
                    .prepare(&self.sql.for_rows(rows.len()))
                    .map_err(|e| pg_error(&self.target, "prepare the insert statement", &e))?;
                self.statements.insert(rows.len(), s.clone());
                s
            }
        };
        let types = &self.types;
        let values: Vec<Encoded<'_>> = rows.iter().flat_map(|r| r.params(types)).collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        self.client
            .execute(&statement, &params)
            .map(drop)
            .map_err(|e| pg_error(&self.target, &format!("insert {} rows", rows.len()), &e))
    }

    /// Inserts `rows` and commits them in one transaction.
    pub fn insert_committed(&mut self, rows: &[EncodedRow]) -> Result<(), ConnectorError> {
        self.insert_committed_within(rows, None)
    }

    /// [`Self::insert_committed`], waiting at most `lock_timeout` (instead of the sink's) for
    /// a row lock.
    pub fn insert_committed_within(
        &mut self,
        rows: &[EncodedRow],
        lock_timeout: Option<Duration>,
    ) -> Result<(), ConnectorError> {
        let begin = match lock_timeout {
            None => "BEGIN".to_string(),
            Some(t) => format!("BEGIN; SET LOCAL lock_timeout = {}", t.as_millis().max(1)),
        };
        self.execute(&begin, "begin a transaction")?;
        let r = self
            .insert(rows)
            .and_then(|()| self.execute("COMMIT", "commit"));
        if r.is_err() && !self.client.is_closed() {
            let _ = self.client.batch_execute("ROLLBACK");
        }
        r
    }

    /// Runs a query and returns the first column of each row as text.
    pub fn query_strings(
        &mut self,
        sql: &str,
        action: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        let rows = self
            .client
            .query(sql, &[])
            .map_err(|e| pg_error(&self.target, action, &e))?;
        rows.iter()
            .map(|r| {
                r.try_get::<_, String>(0)
                    .map_err(|e| pg_error(&self.target, action, &e))
            })
            .collect()
    }
}

/// Checks that the upsert keys are a unique index of the table without a predicate, which
/// `ON CONFLICT (keys)` needs. PostgreSQL itself only checks when it plans the first upsert,
/// too late for a clear error at start.
fn check_unique_keys(client: &mut Client, target: &Target) -> Result<(), ConnectorError> {
    let mut keys = target.keys.clone();
    keys.sort();
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_index i \
             WHERE i.indrelid = $1::text::regclass AND i.indisunique AND i.indpred IS NULL \
             AND 0 <> ALL (i.indkey) \
             AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM pg_attribute a \
                  WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) = $2",
            &[&quote_ident(&target.table), &keys],
        )
        .map_err(|e| pg_error(target, "look up the table's unique indexes", &e))?
        .get(0);
    if found == 0 {
        return Err(super::config_error(format!(
            "upsert keys ({}) are not a primary key, unique constraint or unique index of \
                 table {}; ON CONFLICT needs one",
            target.keys.join(", "),
            target.table
        )));
    }
    Ok(())
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn pg_error(target: &Target, action: &str, e: &postgres::Error) -> ConnectorError {
    ConnectorError::Postgres {
        table: target.table.clone(),
        action: action.to_string(),
        message: describe(e),
        transient: is_transient(e),
    }
}

/// True if `e` says that a prepared transaction does not exist (it was committed or rolled
/// back already).
pub(crate) fn is_unknown_transaction(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNDEFINED_OBJECT)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("host=db user=app"), "host=db user=app");
    }
}
