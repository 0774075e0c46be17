//! The operating system's scheduling policy for task threads ([`TaskThreadScheduling`]).

use weir_core::TaskThreadScheduling;

/// Puts the calling thread under `policy`. Only Linux has `SCHED_BATCH`; elsewhere this
/// does nothing and succeeds.
pub fn apply_to_current_thread(policy: TaskThreadScheduling) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let native = match policy {
            TaskThreadScheduling::Batch => libc::SCHED_BATCH,
            TaskThreadScheduling::Normal => libc::SCHED_OTHER,
        };
        // Both policies are non-real-time, so the static priority must be 0, and any
        // unprivileged thread may choose them for itself.
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `sched_setscheduler` reads the `sched_param` through the pointer for the
        // duration of the call only; `param` is a live, initialised local. Pid 0 names the
        // calling thread, so no other thread's state is touched.
        let rc = unsafe { libc::sched_setscheduler(0, native, &param) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = policy;
    Ok(())
}

/// The calling thread's policy, if it is one of [`TaskThreadScheduling`]'s (Linux only).
pub fn current_thread_policy() -> Option<TaskThreadScheduling> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sched_getscheduler` takes no pointers; pid 0 is the calling thread.
        match unsafe { libc::sched_getscheduler(0) } {
            libc::SCHED_BATCH => Some(TaskThreadScheduling::Batch),
            libc::SCHED_OTHER => Some(TaskThreadScheduling::Normal),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Runs `f` on a fresh thread; `None` if this environment refuses `SCHED_BATCH` (a
    /// seccomp profile may), so that the tests check the policy wherever it can be set.
    fn on_batch_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
        std::thread::spawn(move || {
            apply_to_current_thread(TaskThreadScheduling::Batch)
                .ok()
                .map(|()| f())
        })
        .join()
        .expect("thread panicked")
    }

    #[test]
    fn a_thread_switches_between_batch_and_normal() {
        let Some(seen) = on_batch_thread(|| {
            let batch = current_thread_policy();
            let normal = apply_to_current_thread(TaskThreadScheduling::Normal)
                .map(|()| current_thread_policy())
                .map_err(|e| e.to_string());
            (batch, normal)
        }) else {
            eprintln!("skipped: SCHED_BATCH is not allowed here");
            return;
        };
        assert_eq!(
            seen,
            (
                Some(TaskThreadScheduling::Batch),
                Ok(Some(TaskThreadScheduling::Normal))
            )
        );
    }

    #[test]
    fn the_policy_is_per_thread() {
        let main_before = current_thread_policy();
        if on_batch_thread(|| ()).is_none() {
            eprintln!("skipped: SCHED_BATCH is not allowed here");
            return;
        }
        assert_eq!(current_thread_policy(), main_before);
    }
}
