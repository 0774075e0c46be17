//! The operating system's scheduling policy for task threads ([`TaskThreadScheduling`]).
//!
//! Threads that a task thread starts (user threads, RocksDB's background threads, the
//! checkpoint I/O runtime if a task is the first to use it) inherit its policy, as threads
//! do on Linux.

use weir_core::TaskThreadScheduling;

/// Puts the calling thread under `policy`: `Batch` replaces the ordinary policy
/// (`SCHED_OTHER`) with `SCHED_BATCH` and leaves any other (a process started under a
/// real-time or idle policy keeps it); `Normal` leaves the inherited policy. Only Linux has
/// `SCHED_BATCH`; elsewhere this does nothing and succeeds.
pub fn apply_to_current_thread(policy: TaskThreadScheduling) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if policy == TaskThreadScheduling::Batch && native::get()? == libc::SCHED_OTHER {
        native::set(libc::SCHED_BATCH)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = policy;
    Ok(())
}

/// The calling thread's policy, if it is one of [`TaskThreadScheduling`]'s (Linux only):
/// `SCHED_BATCH` or the ordinary `SCHED_OTHER`.
pub fn current_thread_policy() -> Option<TaskThreadScheduling> {
    #[cfg(target_os = "linux")]
    {
        match native::get().ok()? {
            libc::SCHED_BATCH => Some(TaskThreadScheduling::Batch),
            libc::SCHED_OTHER => Some(TaskThreadScheduling::Normal),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// The calling thread's policy through the pthread calls, which glibc and musl both
/// implement (musl's process-wide `sched_setscheduler` refuses on purpose).
#[cfg(target_os = "linux")]
mod native {
    use std::io::{Error, Result};

    /// The calling thread's native policy (`SCHED_OTHER`, `SCHED_BATCH`, ...).
    pub(super) fn get() -> Result<libc::c_int> {
        let mut policy: libc::c_int = 0;
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `pthread_self()` is the calling thread, alive for the whole call; the
        // two out-pointers point at live, initialised locals that the call only writes
        // during the call.
        let rc =
            unsafe { libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param) };
        if rc != 0 {
            return Err(Error::from_raw_os_error(rc));
        }
        Ok(policy)
    }

    /// Sets the calling thread's native policy; for the non-real-time policies the static
    /// priority must be 0.
    pub(super) fn set(policy: libc::c_int) -> Result<()> {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `pthread_self()` is the calling thread, alive for the whole call, and the
        // call only reads `param`, a live, initialised local, during the call.
        let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), policy, &param) };
        if rc != 0 {
            return Err(Error::from_raw_os_error(rc));
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Runs `f` on a fresh thread that starts with the ordinary policy; `None` if this
    /// environment refuses `SCHED_OTHER` or `SCHED_BATCH` (a seccomp profile may), so that
    /// the tests check the policy wherever it can be set.
    fn on_fresh_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
        std::thread::spawn(move || {
            let allowed = native::set(libc::SCHED_BATCH)
                .and_then(|()| native::set(libc::SCHED_OTHER))
                .is_ok();
            allowed.then(f)
        })
        .join()
        .expect("thread panicked")
    }

    #[test]
    fn batch_replaces_the_ordinary_policy_and_normal_keeps_it() {
        let Some(seen) = on_fresh_thread(|| {
            let ordinary = current_thread_policy();
            let normal = apply_to_current_thread(TaskThreadScheduling::Normal)
                .map(|()| current_thread_policy())
                .map_err(|e| e.to_string());
            let batch = apply_to_current_thread(TaskThreadScheduling::Batch)
                .map(|()| current_thread_policy())
                .map_err(|e| e.to_string());
            (ordinary, normal, batch)
        }) else {
            eprintln!("skipped: scheduling policies cannot be changed here");
            return;
        };
        assert_eq!(
            seen,
            (
                Some(TaskThreadScheduling::Normal),
                Ok(Some(TaskThreadScheduling::Normal)),
                Ok(Some(TaskThreadScheduling::Batch))
            )
        );
    }

    #[test]
    fn batch_leaves_other_policies_alone() {
        // A thread under SCHED_IDLE (which anyone may choose) stays there.
        let Some(seen) = on_fresh_thread(|| {
            native::set(libc::SCHED_IDLE).map_err(|e| e.to_string())?;
            apply_to_current_thread(TaskThreadScheduling::Batch).map_err(|e| e.to_string())?;
            native::get().map_err(|e| e.to_string())
        }) else {
            eprintln!("skipped: scheduling policies cannot be changed here");
            return;
        };
        assert_eq!(seen, Ok(libc::SCHED_IDLE));
    }

    #[test]
    fn the_policy_is_per_thread() {
        let main_before = current_thread_policy();
        if on_fresh_thread(|| apply_to_current_thread(TaskThreadScheduling::Batch)).is_none() {
            eprintln!("skipped: scheduling policies cannot be changed here");
            return;
        }
        assert_eq!(current_thread_policy(), main_before);
    }
}
