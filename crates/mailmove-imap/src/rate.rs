//! Rate limits of an account (`rate=` bytes per second, `msgrate=` messages per second).
//!
//! One [`RateLimit`] is shared by every connection of a store, so the limit holds for the account
//! whatever the number of connections. It is a virtual schedule (GCRA): each use reserves its share
//! of time after the previous reservations and waits until that reservation is due, minus a burst
//! allowance of one second, so short bursts pass at full speed and the long-run average never
//! exceeds the rate. Waiting happens outside the network time limits: a slow limit never looks like
//! a silent server.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead of the schedule a burst may run.
const BURST: Duration = Duration::from_secs(1);

/// A shared rate limit.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: f64,
    /// When the reservations made so far are used up.
    next: Mutex<Option<Instant>>,
}

impl RateLimit {
    /// A limit of `per_second` units a second (must be positive).
    pub fn new(per_second: f64) -> Self {
        RateLimit { per_second: per_second.max(f64::MIN_POSITIVE), next: Mutex::new(None) }
    }

    /// How long the caller must wait before using `amount` units (and reserves them).
    fn reserve(&self, amount: f64, now: Instant) -> Duration {
        let share = Duration::try_from_secs_f64(amount / self.per_second).unwrap_or(Duration::MAX / 4);
        let mut next = crate::lock::lock(&self.next);
        let start = match *next {
            Some(next) if next > now => next,
            _ => now,
        };
        let end = start.checked_add(share).unwrap_or(start);
        *next = Some(end);
        end.checked_sub(BURST).map_or(Duration::ZERO, |due| due.saturating_duration_since(now))
    }

    /// Waits until `amount` units may be used.
    pub async fn take(&self, amount: u64) {
        if amount == 0 {
            return;
        }
        let wait = self.reserve(amount as f64, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses a byte rate for `rate=`: a number with an optional unit, read by mailmove's one unit
/// parser ([`mailmove_core::units`]: `800k` is 800,000, `1.5MiB` is 1.5 × 1,048,576, a trailing
/// `/s` is allowed); at least one byte a second.
pub(crate) fn parse_bytes_per_second(text: &str) -> Option<f64> {
    mailmove_core::units::parse_rate(text).ok().filter(|rate| *rate >= 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_bytes_per_second("500000"), Some(500_000.0));
        assert_eq!(parse_bytes_per_second("2MB"), Some(2e6));
        assert_eq!(parse_bytes_per_second("800k"), Some(8e5));
        assert_eq!(parse_bytes_per_second("1.5MiB/s"), Some(1.5 * 1048576.0));
        assert_eq!(parse_bytes_per_second("1GiB"), Some(1073741824.0));
        for bad in ["", "fast", "2XB", "-1", "0", "0.5", "1..2M"] {
            assert_eq!(parse_bytes_per_second(bad), None, "{bad}");
        }
    }

    #[test]
    fn schedule_allows_a_burst_then_spaces_uses() {
        let limit = RateLimit::new(100.0);
        let now = Instant::now();
        // One second's worth passes at once (the burst), the next use waits for its share.
        assert_eq!(limit.reserve(100.0, now), Duration::ZERO);
        assert_eq!(limit.reserve(50.0, now), Duration::from_millis(500));
        assert_eq!(limit.reserve(50.0, now), Duration::from_secs(1));
        // Idle time is not banked beyond the burst.
        let later = now + Duration::from_secs(60);
        assert_eq!(limit.reserve(100.0, later), Duration::ZERO);
        assert_eq!(limit.reserve(10.0, later), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn take_waits_for_the_schedule() {
        let limit = RateLimit::new(1000.0);
        let started = Instant::now();
        limit.take(1000).await;
        limit.take(3000).await;
        // 4000 units at 1000/s with a one-second burst: due at 3 s.
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
