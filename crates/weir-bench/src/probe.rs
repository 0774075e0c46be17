//! How long a cache line takes to travel between two cores of this machine, measured just
//! before a benchmark run.
//!
//! On the 2-vCPU VMs the benchmark runs on, the time for one core to see a write of the other
//! is not a constant: it is ~30 ns, ~65 ns or ~330 ns round trip, and it changes from one
//! minute to the next (the hypervisor moves the virtual CPUs between physical cores and dies).
//! Jobs whose tasks hand records between cores (W4's keyed exchange) run up to a third slower
//! while it is ~330 ns, and need more CPU time for the same records; single-threaded chains
//! do not notice. `bench/compare.sh` records this probe before each run, so that a slow run
//! can be told apart from a slow engine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> Result<(), String> {
    // SAFETY: `cpu_set_t` is a plain bit set for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(format!("cpu {cpu} is out of range"));
    }
    // SAFETY: `cpu` is within the set's bits (checked above); `CPU_SET` only sets a bit.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid, initialised set of the given size.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(format!(
            "cannot pin a thread to cpu {cpu}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The mean round trip, in nanoseconds, of a value bounced `rounds` times between a thread on
/// CPU `a` and one on CPU `b` through one shared cache line (each side spins until it sees the
/// other's write, then answers).
pub fn cross_core_round_trip_ns(a: usize, b: usize, rounds: u64) -> Result<f64, String> {
    let line = Arc::new(AtomicU64::new(0));
    let other = line.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let answerer = std::thread::spawn(move || -> Result<(), String> {
        let pinned = pin_to(b);
        let failed = pinned.is_err();
        let _ = ready_tx.send(pinned);
        if failed {
            return Ok(());
        }
        for i in 0..rounds {
            while other.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.store(2 * i + 2, Ordering::Release);
        }
        Ok(())
    });
    let ready = ready_rx
        .recv()
        .map_err(|_| "the probe's second thread ended early".to_string())?;
    ready?;
    // The caller's own affinity is restored after the probe.
    // SAFETY: all zeroes is the empty set, filled in by `sched_getaffinity` below.
    let mut before: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `before` is valid for writes of its size.
    let got =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut before) }
            == 0;
    let pinned = pin_to(a);
    let result = pinned.map(|()| {
        let start = Instant::now();
        for i in 0..rounds {
            line.store(2 * i + 1, Ordering::Release);
            while line.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
        start.elapsed().as_nanos() as f64 / rounds.max(1) as f64
    });
    if got {
        // SAFETY: as for `pin_to`; `before` is the set the thread had.
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &before) };
    }
    if result.is_err() {
        // Release the answerer, which waits for the first value.
        for i in 0..rounds {
            line.store(2 * i + 1, Ordering::Release);
            while line.load(Ordering::Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        }
    }
    answerer
        .join()
        .map_err(|_| "the probe's second thread panicked".to_string())??;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_trip_takes_a_positive_time_or_fails_with_a_message() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            eprintln!("skipped: one CPU");
            return;
        }
        match cross_core_round_trip_ns(0, 1, 10_000) {
            Ok(ns) => assert!(ns > 0.0 && ns < 1e7, "{ns}"),
            // A container may not allow these CPUs.
            Err(e) => assert!(e.contains("cannot pin"), "{e}"),
        }
        assert!(cross_core_round_trip_ns(0, 100_000, 10).is_err());
    }
}
