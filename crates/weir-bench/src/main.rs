//! `weir-bench [--taskmanagers N] WORKLOAD EVENTS PARALLELISM`: runs one shared workload on
//! the embedded mini-cluster (or, with `--taskmanagers`, on a cluster of processes on this
//! host) and prints one line in the Flink anchor's format.

use std::process::ExitCode;
use weir_runtime::allocator::JobAllocator;

/// Jobs allocate per record where user code does (W4 builds a String per word), and records
/// handed over in memory between tasks are allocated on one thread and freed on another.
/// [`JobAllocator`] is jemalloc, whose thread caches return such frees to their arena in
/// batches (with mimalloc's per-block remote frees W4 at p=1 ran ~25 % slower, measured side by
/// side), with a cheaper path for growing small strings. A Weir job binary picks its allocator
/// the same way.
#[global_allocator]
static ALLOCATOR: JobAllocator = JobAllocator;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: weir-bench [--taskmanagers N] WORKLOAD EVENTS PARALLELISM   (--taskmanagers: W0-W4 on a JobManager and N one-slot TaskManager processes on this host; WORKLOAD: W0 W1 W2 W3 W4, W0-sql .. W3-sql: the same as SQL, W2c: W2 with checkpoints, or a Nexmark query q0 q1 q2 q3 q4 q5 q7 q8, or pg-append / pg-upsert with WEIR_BENCH_POSTGRES=URL, or kafka-sink / kafka-source / kafka-to-kafka with WEIR_BENCH_KAFKA=HOST:PORT, or exchange-typed / exchange-bytes / exchange-tcp: one channel between two threads, by transport; PARALLELISM is ignored)\n       weir-bench --cross-core-probe   (the round trip of a cache line between CPUs 0 and 1, in ns)";
    if args.len() == 2 && args[1] == "--cross-core-probe" {
        // `bench/compare.sh` records this before each run (see the `probe` module).
        return match weir_bench::probe::cross_core_round_trip_ns(0, 1, 200_000) {
            Ok(ns) => {
                println!("xcore_ns={ns:.0}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // `--taskmanagers N`: the W workloads on a cluster of processes (see `cluster`).
    let mut args = args;
    let mut task_managers = None;
    if args.len() == 6 && args[1] == "--taskmanagers" {
        match args[2].parse::<usize>() {
            Ok(n) if n > 0 => task_managers = Some(n),
            _ => {
                eprintln!("--taskmanagers takes a number of TaskManagers\n{usage}");
                return ExitCode::from(2);
            }
        }
        args.drain(1..3);
    }
    if args.len() != 4 {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let workload = args[1].trim_end_matches("-ds");
    let (Ok(events), Ok(parallelism)) = (args[2].parse::<u64>(), args[3].parse::<i64>()) else {
        eprintln!("EVENTS and PARALLELISM must be numbers\n{usage}");
        return ExitCode::from(2);
    };
    eprintln!("running {workload} over {events} events at parallelism {parallelism}");
    // Nexmark queries and the connectors' workloads count rows, without a checksum.
    let rows_only = if workload.starts_with("exchange-") {
        Some((
            workload.to_string(),
            weir_bench::exchange::run(workload, events)
                .map(|o| (o.seconds, o.records))
                .map_err(|e| e.to_string()),
        ))
    } else if workload.starts_with("kafka-") {
        Some((
            workload.to_string(),
            weir_bench::kafka::run(workload, events, parallelism).map(|o| (o.seconds, o.records)),
        ))
    } else if workload.starts_with("pg-") {
        Some((
            workload.to_string(),
            weir_bench::postgres::run(workload, events, parallelism)
                .map(|o| (o.seconds, o.rows as u64)),
        ))
    } else if workload.starts_with('q') {
        Some((
            format!("nexmark-{workload}"),
            weir_bench::nexmark::run(workload, events, parallelism, false)
                .map(|o| (o.seconds, o.rows)),
        ))
    } else {
        None
    };
    if let Some((name, outcome)) = rows_only {
        return match outcome {
            Ok((seconds, rows)) => {
                let rss = weir_bench::peak_rss_mb().map_or("NA".to_string(), |m| format!("{m:.0}"));
                println!(
                    "workload={name} events={events} parallelism={parallelism} seconds={seconds:.3} events_per_sec={:.0} peak_rss_mb={rss} out_rows={rows} checksum=NA",
                    events as f64 / seconds,
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // A job's worker process runs the workload's subtasks; the cluster is the client's.
    let cluster = match task_managers {
        Some(n) if !weir_bench::cluster::is_worker() => {
            match weir_bench::cluster::LocalCluster::start(n) {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    let outcome = match &cluster {
        Some(_) if workload.ends_with("-sql") => {
            Err("the SQL workloads run on the embedded mini-cluster only".to_string())
        }
        Some(c) => weir_bench::run_on_cluster(workload, events, parallelism, &c.rest),
        None => match workload.strip_suffix("-sql") {
            Some(w) => weir_bench::sql::run(w, events, parallelism),
            None => weir_bench::run(workload, events, parallelism),
        },
    };
    match outcome {
        Ok(o) => {
            if o.checkpoints > 0 {
                eprintln!(
                    "{} checkpoints completed; largest {} bytes; longest synchronous snapshot {} ms",
                    o.checkpoints, o.checkpoint_bytes, o.checkpoint_sync_ms
                );
            }
            // On a cluster the memory and the checksum are the workers', not this process's.
            let (rss, checksum) = match &cluster {
                Some(_) => ("NA".to_string(), "NA".to_string()),
                None => (
                    weir_bench::peak_rss_mb().map_or("NA".to_string(), |m| format!("{m:.0}")),
                    o.checksum.to_string(),
                ),
            };
            let mode = if cluster.is_some() { " cluster=1" } else { "" };
            println!(
                "workload={workload} events={events} parallelism={parallelism}{mode} seconds={:.3} events_per_sec={:.0} peak_rss_mb={rss} out_rows={} checksum={checksum}",
                o.seconds,
                events as f64 / o.seconds,
                o.out_rows,
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
