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

/// Written to the shared line instead of a round's value: the answerer stops at once.
const STOP: u64 = u64::MAX;

/// Pins the calling thread to `cpu`.
#[cfg(target_os = "linux")]
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

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: usize) -> Result<(), String> {
    Err("cannot pin a thread: the probe needs Linux".into())
}

/// The mean round trip, in nanoseconds, of a value bounced `rounds` times between a thread on
/// CPU `a` and one on CPU `b` through one shared cache line (each side spins until it sees the
/// other's write, then answers). Both threads are new, so the caller's affinity is untouched.
pub fn cross_core_round_trip_ns(a: usize, b: usize, rounds: u64) -> Result<f64, String> {
    if a == b {
        return Err(format!("the probe needs two different CPUs, got {a} twice"));
    }
    let rounds = rounds.clamp(1, STOP / 4);
    let line = Arc::new(AtomicU64::new(0));
    let spawn = |cpu: usize, line: Arc<AtomicU64>, asks: bool| {
        std::thread::spawn(move || -> Result<f64, String> {
            if let Err(e) = pin_to(cpu) {
                // Releases the other side, which may be waiting for this one.
                line.store(STOP, Ordering::Release);
                return Err(e);
            }
            let start = Instant::now();
            for i in 0..rounds {
                let (send, wait) = if asks {
                    (2 * i + 1, 2 * i + 2)
                } else {
                    (2 * i + 2, 2 * i + 1)
                };
                // Never over a STOP of the other side (the answerer only writes after it saw
                // the asker's value, so only the asker's write can race with a STOP).
                if asks
                    && line
                        .compare_exchange(2 * i, send, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                {
                    return Err("the probe's other thread stopped".into());
                }
                loop {
                    match line.load(Ordering::Acquire) {
                        v if v == wait => break,
                        STOP => return Err("the probe's other thread stopped".into()),
                        _ => std::hint::spin_loop(),
                    }
                }
                if !asks {
                    line.store(send, Ordering::Release);
                }
            }
            Ok(start.elapsed().as_nanos() as f64 / rounds as f64)
        })
    };
    let answerer = spawn(b, line.clone(), false);
    let asker = spawn(a, line, true);
    let asked = asker
        .join()
        .map_err(|_| "the probe's thread panicked".to_string())?;
    let answered = answerer
        .join()
        .map_err(|_| "the probe's thread panicked".to_string())?;
    // A pinning error is the reason; the other side only saw it stop.
    match (asked, answered) {
        (Ok(ns), Ok(_)) => Ok(ns),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(a), Err(b)) => Err(if a.contains("cannot pin") { a } else { b }),
    }
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
        assert!(cross_core_round_trip_ns(0, 100_000, 10)
            .is_err_and(|e| e.contains("out of range") || e.contains("cannot pin")));
        assert!(cross_core_round_trip_ns(1, 1, 10).is_err_and(|e| e.contains("two different")));
    }
}
