//! The Postgres sink's writers driven by hand against a real PostgreSQL server: batching,
//! upserts, type errors, retries on a lost connection, and two-phase commit across a crash
//! and a restore.

#[path = "../../../tests/support/postgres_server.rs"]
mod postgres_server;

use postgres_server::PgServer;
use std::time::Duration;
use weir_api::sink::{CheckpointNotice, Sink, SinkContext, SinkWriter};
use weir_connectors::postgres::{DeliveryGuarantee, PostgresSink};

type Rec = (String, i64);

fn setup(server: &PgServer, db: &str) -> (String, postgres::Client) {
    let url = server.create_database(db);
    let mut c = server.client(db);
    c.batch_execute(
        "CREATE TABLE events (k TEXT, v BIGINT);
         CREATE TABLE totals (k TEXT PRIMARY KEY, v BIGINT);",
    )
    .unwrap();
    (url, c)
}

fn append(url: &str) -> PostgresSink<Rec> {
    PostgresSink::append(url, "events", &["k", "v"], |(k, v): &Rec, row| {
        row.push(k.as_str()).push(*v);
    })
    .with_lock_timeout(Duration::from_secs(5))
}

fn upsert(url: &str) -> PostgresSink<Rec> {
    PostgresSink::upsert(url, "totals", &["k", "v"], &["k"], |(k, v): &Rec, row| {
        row.push(k.as_str()).push(*v);
    })
    .with_lock_timeout(Duration::from_secs(5))
}

fn writer(sink: &PostgresSink<Rec>, ctx: &SinkContext) -> Box<dyn SinkWriter<Rec>> {
    sink.create_writer(ctx).expect("writer")
}

fn creation_error(sink: &PostgresSink<Rec>, ctx: &SinkContext) -> String {
    match sink.create_writer(ctx) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn rec(k: &str, v: i64) -> Rec {
    (k.to_string(), v)
}

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

fn rows(c: &mut postgres::Client, table: &str) -> Vec<(String, i64)> {
    c.query(&format!("SELECT k, v FROM {table} ORDER BY k, v"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn prepared(c: &mut postgres::Client) -> Vec<String> {
    c.query("SELECT gid FROM pg_prepared_xacts ORDER BY gid", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Ends every other session of the database (the sink's connection among them).
fn kill_other_sessions(c: &mut postgres::Client) -> i64 {
    count(
        c,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
}

#[test]
fn appends_are_written_in_batches_and_at_checkpoints() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "batches");
    let sink = append(&url).with_batch_size(5).with_batch_interval(None);
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    for i in 0..12 {
        w.write(rec("a", i), None).unwrap();
    }
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events"),
        10,
        "two full batches"
    );
    assert!(w.snapshot_state(1).unwrap().is_empty());
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events"),
        12,
        "the barrier flushes"
    );
    w.write(rec("b", 1), None).unwrap();
    w.finish().unwrap();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events"),
        13,
        "the end flushes"
    );
}

#[test]
fn without_a_guarantee_the_barrier_does_not_flush() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "noguarantee");
    let sink = append(&url)
        .with_batch_interval(None)
        .with_delivery_guarantee(DeliveryGuarantee::None);
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    w.snapshot_state(1).unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 0);
    w.finish().unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 1);
}

#[test]
fn an_old_batch_is_written_when_its_interval_passes() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "interval");
    let sink = append(&url).with_batch_interval(Some(Duration::from_millis(50)));
    let ctx = SinkContext::new(0, 1);
    let mut w = writer(&sink, &ctx);
    w.write(rec("a", 1), None).unwrap();
    let asked = ctx.processing_time.next().expect("a flush was scheduled");
    w.on_processing_time(asked - 1).unwrap();
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events"),
        0,
        "not due yet"
    );
    w.on_processing_time(asked).unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 1);
}

#[test]
fn upserts_keep_the_last_value_of_each_key() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "upserts");
    let sink = upsert(&url).with_batch_size(3);
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    // Within one batch and across batches.
    for (k, v) in [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 9)] {
        w.write(rec(k, v), None).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(
        rows(&mut c, "totals"),
        vec![rec("a", 3), rec("b", 9), rec("c", 1)]
    );
}

#[test]
fn bad_configurations_and_rows_fail_with_what_is_wrong() {
    let server = PgServer::start();
    let (url, _c) = setup(&server, "bad");
    let ctx = SinkContext::new(0, 1);
    let missing = PostgresSink::append(&url, "nope", &["k"], |_: &Rec, _| {});
    let e = creation_error(&missing, &ctx);
    assert!(
        e.contains("table nope") && e.contains("does not exist"),
        "{e}"
    );

    let no_key = PostgresSink::upsert(&url, "events", &["k", "v"], &["k"], |_: &Rec, _| {});
    let e = creation_error(&no_key, &ctx);
    assert!(e.contains("not a primary key, unique constraint"), "{e}");

    let no_prefix = append(&url).with_delivery_guarantee(DeliveryGuarantee::ExactlyOnce);
    let e = creation_error(&no_prefix, &ctx);
    assert!(e.contains("transaction prefix"), "{e}");

    let wrong_type = PostgresSink::append(&url, "events", &["k", "v"], |(k, v): &Rec, row| {
        row.push(k.as_str()).push(*v as i32);
    });
    let mut w = writer(&wrong_type, &ctx);
    let e = w.write(rec("a", 1), None).unwrap_err().to_string();
    assert!(e.contains("column 'v' (int8)"), "{e}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = PostgresSink::append(
        &format!("postgres://postgres:secret@127.0.0.1:{port}/x"),
        "events",
        &["k"],
        |_: &Rec, _| {},
    );
    let e = creation_error(&unreachable, &ctx);
    assert!(e.contains("cannot connect") && !e.contains("secret"), "{e}");
}

#[test]
fn exactly_once_needs_prepared_transactions_on_the_server() {
    let server = PgServer::start_with(&[("max_prepared_transactions", "0")]);
    let (url, _c) = setup(&server, "noprep");
    let sink = append(&url)
        .with_delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .with_transaction_prefix("t");
    let e = creation_error(&sink, &SinkContext::new(0, 1));
    assert!(e.contains("max_prepared_transactions"), "{e}");
}

#[test]
fn a_batch_is_retried_on_a_new_connection_after_the_old_one_died() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "retry");
    let sink = append(&url)
        .with_batch_interval(None)
        .with_retries(2, Duration::from_millis(10));
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    assert_eq!(kill_other_sessions(&mut c), 1);
    w.finish().unwrap();
    assert_eq!(rows(&mut c, "events"), vec![rec("a", 1)]);

    // Without retries the same failure fails the writer.
    let sink = append(&url)
        .with_batch_interval(None)
        .with_retries(0, Duration::ZERO);
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("b", 1), None).unwrap();
    kill_other_sessions(&mut c);
    let e = w.finish().unwrap_err().to_string();
    assert!(e.contains("insert 1 rows") || e.contains("begin"), "{e}");
}

fn exactly_once(sink: PostgresSink<Rec>, prefix: &str) -> PostgresSink<Rec> {
    sink.with_delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .with_transaction_prefix(prefix)
        .with_batch_size(2)
}

#[test]
fn exactly_once_commits_on_completion_and_resolves_a_crash_on_restore() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "twophase");
    let sink = exactly_once(append(&url), "job-a");
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    for i in 0..5 {
        w.write(rec("a", i), None).unwrap();
    }
    assert_eq!(
        count(&mut c, "SELECT count(*) FROM events"),
        0,
        "nothing visible before the commit"
    );
    w.snapshot_state(1).unwrap();
    assert_eq!(prepared(&mut c).len(), 1);
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 0);
    w.notify_checkpoint(CheckpointNotice::Complete(1)).unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 5);
    assert!(prepared(&mut c).is_empty());

    // Checkpoint 2 is taken but its notice never arrives; checkpoint 3 is prepared and
    // never completes; then the process dies with rows of a fourth transaction open.
    w.write(rec("b", 1), None).unwrap();
    let s2 = w.snapshot_state(2).unwrap();
    w.write(rec("c", 1), None).unwrap();
    w.snapshot_state(3).unwrap();
    w.write(rec("d", 1), None).unwrap();
    w.write(rec("d", 2), None).unwrap();
    drop(w);
    assert_eq!(prepared(&mut c).len(), 2);

    // Restored from checkpoint 2: its transaction is committed, checkpoint 3's rolled back.
    let w = writer(&sink, &SinkContext::new(0, 1).restored(2, s2.clone()));
    assert!(prepared(&mut c).is_empty(), "{:?}", prepared(&mut c));
    let got: Vec<String> = rows(&mut c, "events").into_iter().map(|r| r.0).collect();
    assert_eq!(got, vec!["a", "a", "a", "a", "a", "b"]);
    drop(w);

    // Restoring again from the same checkpoint (a second failure) commits nothing twice.
    let _w = writer(&sink, &SinkContext::new(0, 1).restored(2, s2));
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 6);
}

#[test]
fn a_fresh_start_rolls_back_only_its_own_leftovers() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "leftovers");
    let mine = exactly_once(append(&url), "mine");
    let other = exactly_once(append(&url), "other");
    // Subtask 1 of 3 and another job's sink each leave a prepared transaction.
    let mut w1 = writer(&mine, &SinkContext::new(1, 3));
    w1.write(rec("x", 1), None).unwrap();
    w1.snapshot_state(4).unwrap();
    let mut wo = writer(&other, &SinkContext::new(0, 1));
    wo.write(rec("y", 1), None).unwrap();
    wo.snapshot_state(4).unwrap();
    drop((w1, wo));
    assert_eq!(prepared(&mut c).len(), 2);
    // The job starts again at parallelism 1: its subtask 0 also owns index 1's leftovers.
    let _w = writer(&mine, &SinkContext::new(0, 1));
    let left = prepared(&mut c);
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("other:"), "{left:?}");
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 0);
}

#[test]
fn an_exactly_once_upsert_never_waits_for_its_own_prepared_transaction() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "upsert2pc");
    let sink = exactly_once(upsert(&url), "totals");
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    w.write(rec("b", 1), None).unwrap();
    w.snapshot_state(1).unwrap();
    // Key a again while checkpoint 1's transaction is prepared and holds a's row lock:
    // more than a batch, so a writer that did not hold its rows would wait here (and fail
    // after the 5 s lock timeout).
    w.write(rec("a", 2), None).unwrap();
    w.write(rec("c", 1), None).unwrap();
    w.write(rec("a", 3), None).unwrap();
    // Checkpoint 2's barrier comes before checkpoint 1's notice: the held rows go into
    // checkpoint 2's state.
    let s2 = w.snapshot_state(2).unwrap();
    w.notify_checkpoint(CheckpointNotice::Complete(1)).unwrap();
    assert_eq!(rows(&mut c, "totals"), vec![rec("a", 1), rec("b", 1)]);
    w.write(rec("b", 2), None).unwrap();
    w.snapshot_state(3).unwrap();
    w.notify_checkpoint(CheckpointNotice::Complete(3)).unwrap();
    assert_eq!(
        rows(&mut c, "totals"),
        vec![rec("a", 3), rec("b", 2), rec("c", 1)]
    );

    // A restore from checkpoint 2 writes the rows held there again; the later ones come
    // from the replayed input.
    drop(w);
    c.batch_execute("DELETE FROM totals").unwrap();
    let mut w = writer(&sink, &SinkContext::new(0, 1).restored(2, s2));
    w.snapshot_state(4).unwrap();
    w.notify_checkpoint(CheckpointNotice::Complete(4)).unwrap();
    assert_eq!(rows(&mut c, "totals"), vec![rec("a", 3), rec("c", 1)]);
}

#[test]
fn the_end_of_input_is_committed_by_the_final_notice() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "final");
    let sink = exactly_once(upsert(&url), "fin");
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    w.snapshot_state(1).unwrap();
    w.write(rec("a", 2), None).unwrap();
    // The input ends before checkpoint 1's notice: a's new row is held, not prepared.
    w.finish().unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM totals"), 0);
    w.notify_checkpoint(CheckpointNotice::Final).unwrap();
    assert_eq!(rows(&mut c, "totals"), vec![rec("a", 2)]);
    assert!(prepared(&mut c).is_empty());
}

#[test]
fn a_scaled_down_restore_resolves_every_old_subtasks_state() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "scaledown");
    let sink = exactly_once(upsert(&url), "scale");
    let mut w0 = writer(&sink, &SinkContext::new(0, 2));
    let mut w1 = writer(&sink, &SinkContext::new(1, 2));
    // Subtask 0: checkpoint 1's notice never arrives, so at checkpoint 2 its transaction is
    // still prepared and a's newer row is held in the state.
    w0.write(rec("a", 1), None).unwrap();
    w0.snapshot_state(1).unwrap();
    w0.write(rec("a", 2), None).unwrap();
    let s0 = w0.snapshot_state(2).unwrap();
    // Subtask 1: checkpoint 2 prepared, then checkpoint 3 prepared and never completed.
    w1.write(rec("b", 1), None).unwrap();
    w1.snapshot_state(1).unwrap();
    w1.notify_checkpoint(CheckpointNotice::Complete(1)).unwrap();
    w1.write(rec("b", 2), None).unwrap();
    let s1 = w1.snapshot_state(2).unwrap();
    w1.write(rec("b", 3), None).unwrap();
    w1.snapshot_state(3).unwrap();
    drop((w0, w1));
    assert_eq!(rows(&mut c, "totals"), vec![rec("b", 1)]);

    // Restored from checkpoint 2 at parallelism 1: both old subtasks' state comes to it.
    let state: Vec<Vec<u8>> = s0.into_iter().chain(s1).collect();
    let _w = writer(&sink, &SinkContext::new(0, 1).restored(2, state));
    assert_eq!(rows(&mut c, "totals"), vec![rec("a", 2), rec("b", 2)]);
    assert!(prepared(&mut c).is_empty(), "{:?}", prepared(&mut c));
}

#[test]
fn a_scaled_up_restore_leaves_other_subtasks_state_alone() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "scaleup");
    let sink = exactly_once(append(&url), "up");
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    let s = w.snapshot_state(4).unwrap();
    drop(w);
    // At parallelism 3 the one entry goes to subtask 2; subtasks 0 and 1 start empty and
    // must not roll back what subtask 2 is to commit (prepared for checkpoint 4 = restored).
    let _w0 = writer(&sink, &SinkContext::new(0, 3).restored(4, vec![]));
    let _w1 = writer(&sink, &SinkContext::new(1, 3).restored(4, vec![]));
    assert_eq!(prepared(&mut c).len(), 1);
    let _w2 = writer(&sink, &SinkContext::new(2, 3).restored(4, s));
    assert_eq!(rows(&mut c, "events"), vec![rec("a", 1)]);
    assert!(prepared(&mut c).is_empty());
}

#[test]
fn a_checkpoint_after_the_end_of_input_prepares_the_last_rows() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "afterend");
    let sink = exactly_once(append(&url), "end");
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    w.finish().unwrap();
    let s = w.snapshot_state(9).unwrap();
    assert_eq!(prepared(&mut c).len(), 1);
    // The job fails before the final notice; restored from checkpoint 9, it commits them.
    drop(w);
    let _w = writer(&sink, &SinkContext::new(0, 1).restored(9, s));
    assert_eq!(rows(&mut c, "events"), vec![rec("a", 1)]);
}

#[test]
fn an_aborted_checkpoints_transaction_is_committed_with_the_next() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "aborted");
    let sink = exactly_once(append(&url), "abort");
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    w.snapshot_state(1).unwrap();
    w.notify_checkpoint(CheckpointNotice::Aborted(1)).unwrap();
    w.write(rec("b", 1), None).unwrap();
    let s2 = w.snapshot_state(2).unwrap();
    assert_eq!(prepared(&mut c).len(), 2);
    w.notify_checkpoint(CheckpointNotice::Complete(2)).unwrap();
    assert_eq!(rows(&mut c, "events"), vec![rec("a", 1), rec("b", 1)]);
    // Checkpoint 2's state named both transactions.
    drop(w);
    let _w = writer(&sink, &SinkContext::new(0, 1).restored(2, s2));
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 2);
}

#[test]
fn a_starting_writer_fences_a_still_running_writer_of_a_failed_attempt() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "fence");
    let sink = exactly_once(append(&url), "fenced");
    // The old attempt's writer is still alive (its thread has not stopped) with rows in an
    // open transaction.
    let mut old = writer(&sink, &SinkContext::new(0, 1));
    old.write(rec("a", 1), None).unwrap();
    old.write(rec("a", 2), None).unwrap();
    let _new = writer(&sink, &SinkContext::new(0, 1));
    assert!(
        old.snapshot_state(1).is_err(),
        "the old writer's session was ended"
    );
    assert!(prepared(&mut c).is_empty());
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 0);
    // Another prefix's writer is left alone.
    let other = exactly_once(append(&url), "other");
    let mut o = writer(&other, &SinkContext::new(0, 1));
    let _again = writer(&sink, &SinkContext::new(0, 1));
    o.write(rec("x", 1), None).unwrap();
    o.write(rec("x", 2), None).unwrap();
    o.snapshot_state(1).unwrap();
    o.notify_checkpoint(CheckpointNotice::Complete(1)).unwrap();
    assert_eq!(count(&mut c, "SELECT count(*) FROM events"), 2);
}

#[test]
fn a_transaction_prefix_outside_the_allowed_characters_is_refused() {
    let server = PgServer::start();
    let (url, _c) = setup(&server, "prefix");
    let sink = exactly_once(append(&url), "it's");
    let e = creation_error(&sink, &SinkContext::new(0, 1));
    assert!(e.contains("transaction prefix 'it's'"), "{e}");
}

#[test]
fn held_rows_are_restored_after_the_leftovers_that_lock_them_are_rolled_back() {
    let server = PgServer::start();
    let (url, mut c) = setup(&server, "heldorder");
    let sink = exactly_once(upsert(&url), "held");
    let mut w = writer(&sink, &SinkContext::new(0, 1));
    w.write(rec("a", 1), None).unwrap();
    w.write(rec("b", 1), None).unwrap();
    w.snapshot_state(1).unwrap();
    w.write(rec("a", 2), None).unwrap();
    w.write(rec("c", 1), None).unwrap();
    // Checkpoint 2 holds a and c; then they go into checkpoint 3's transaction, which is
    // prepared (and locks their rows) but never completes.
    let s2 = w.snapshot_state(2).unwrap();
    w.notify_checkpoint(CheckpointNotice::Complete(1)).unwrap();
    w.write(rec("b", 2), None).unwrap();
    w.snapshot_state(3).unwrap();
    drop(w);
    // Writing the held rows before rolling back checkpoint 3's transaction would wait for its
    // row locks (and fail after the lock timeout).
    let _w = writer(&sink, &SinkContext::new(0, 1).restored(2, s2));
    assert_eq!(
        rows(&mut c, "totals"),
        vec![rec("a", 2), rec("b", 1), rec("c", 1)]
    );
    assert!(prepared(&mut c).is_empty());
}
