//! Restart strategies: whether and when a failed job runs again (Flink's
//! `RestartBackoffTimeStrategy` implementations).

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};
use weir_core::RestartStrategy;

/// Tracks failures and decides about restarts for one job.
pub struct RestartBackoff {
    strategy: RestartStrategy,
    restarts: u32,
    failures: VecDeque<Instant>,
    current_ms: u64,
    last_failure: Option<Instant>,
}

impl RestartBackoff {
    /// A tracker for `strategy`.
    pub fn new(strategy: RestartStrategy) -> Self {
        RestartBackoff {
            strategy,
            restarts: 0,
            failures: VecDeque::new(),
            current_ms: 0,
            last_failure: None,
        }
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// A failure happened at `now`: the delay before the restart, or `None` if the job
    /// must fail.
    pub fn on_failure(&mut self, now: Instant) -> Option<Duration> {
        let delay_ms = match &self.strategy {
            RestartStrategy::None => return None,
            RestartStrategy::FixedDelay { attempts, delay_ms } => {
                if self.restarts >= *attempts {
                    return None;
                }
                *delay_ms
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval_ms,
                delay_ms,
            } => {
                let window = Duration::from_millis(*interval_ms);
                while self
                    .failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > window)
                {
                    self.failures.pop_front();
                }
                self.failures.push_back(now);
                if self.failures.len() > *max_failures as usize {
                    return None;
                }
                *delay_ms
            }
            RestartStrategy::ExponentialDelay {
                initial_ms,
                max_ms,
                multiplier,
                reset_threshold_ms,
                jitter,
            } => {
                let quiet = self.last_failure.is_none_or(|t| {
                    now.duration_since(t) >= Duration::from_millis(*reset_threshold_ms)
                });
                self.current_ms = if quiet || self.current_ms == 0 {
                    *initial_ms
                } else {
                    ((self.current_ms as f64 * multiplier) as u64).min(*max_ms)
                };
                let jitter = jitter.clamp(0.0, 1.0);
                let spread = (self.current_ms as f64 * jitter) as i64;
                let offset = if spread > 0 {
                    (RandomState::new().hash_one(now) % (2 * spread as u64 + 1)) as i64 - spread
                } else {
                    0
                };
                (self.current_ms as i64 + offset).max(0) as u64
            }
        };
        self.last_failure = Some(now);
        self.restarts += 1;
        Some(Duration::from_millis(delay_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_delay_counts_attempts() {
        let mut b = RestartBackoff::new(RestartStrategy::FixedDelay {
            attempts: 2,
            delay_ms: 5,
        });
        let now = Instant::now();
        assert_eq!(b.on_failure(now), Some(Duration::from_millis(5)));
        assert_eq!(b.on_failure(now), Some(Duration::from_millis(5)));
        assert_eq!(b.on_failure(now), None);
        assert_eq!(b.restarts(), 2);
    }

    #[test]
    fn failure_rate_window() {
        let mut b = RestartBackoff::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval_ms: 1000,
            delay_ms: 1,
        });
        let t0 = Instant::now();
        assert!(b.on_failure(t0).is_some());
        assert!(b.on_failure(t0 + Duration::from_millis(10)).is_some());
        assert!(b.on_failure(t0 + Duration::from_millis(20)).is_none());
        let mut b = RestartBackoff::new(RestartStrategy::FailureRate {
            max_failures: 1,
            interval_ms: 100,
            delay_ms: 1,
        });
        assert!(b.on_failure(t0).is_some());
        assert!(
            b.on_failure(t0 + Duration::from_millis(500)).is_some(),
            "the first one left the window"
        );
    }

    #[test]
    fn exponential_grows_caps_and_resets() {
        let mut b = RestartBackoff::new(RestartStrategy::ExponentialDelay {
            initial_ms: 100,
            max_ms: 250,
            multiplier: 2.0,
            reset_threshold_ms: 10_000,
            jitter: 0.0,
        });
        let t0 = Instant::now();
        let ms = |d: Option<Duration>| d.unwrap().as_millis();
        assert_eq!(ms(b.on_failure(t0)), 100);
        assert_eq!(ms(b.on_failure(t0 + Duration::from_millis(1))), 200);
        assert_eq!(ms(b.on_failure(t0 + Duration::from_millis(2))), 250);
        assert_eq!(
            ms(b.on_failure(t0 + Duration::from_secs(20))),
            100,
            "reset after a quiet period"
        );
        let mut j = RestartBackoff::new(RestartStrategy::ExponentialDelay {
            initial_ms: 1000,
            max_ms: 1000,
            multiplier: 1.5,
            reset_threshold_ms: 10_000,
            jitter: 0.1,
        });
        let d = ms(j.on_failure(t0));
        assert!((900..=1100).contains(&d), "{d}");
        assert!(RestartBackoff::new(RestartStrategy::None)
            .on_failure(t0)
            .is_none());
    }
}
