//! How long a server may take to answer: a time allowance, then a minimum average rate.
//!
//! A per-read time limit alone does not bound a response: a server that sends one byte a second
//! satisfies every read and holds the run forever (a slow-loris). A fixed limit per response is
//! wrong the other way: a 40 MB message over a throttled link legitimately takes minutes. The rule
//! here allows both and bounds each: a response (everything read while waiting for one answer)
//! may take the `allowance` plus one second for every `min_rate` bytes that arrived.
//! So a slow-loris is cut after about the allowance, and a transfer at or above `min_rate` is
//! never cut. Between any two reads the caller's per-read limit still applies, so a server that
//! stalls after a fast start is cut too.
//!
//! ```
//! use std::time::Duration;
//! use mailmove_net::deadline::{Pace, ResponseClock};
//! let pace = Pace { allowance: Duration::from_secs(60), min_rate: 4096 };
//! let mut clock = ResponseClock::start(pace);
//! clock.received(8192);
//! // Two seconds were earned by the 8 KiB received: 62 s in all, minus what has passed.
//! assert!(clock.remaining().unwrap() > Duration::from_secs(61));
//! ```

use std::time::Duration;

use tokio::time::Instant;

/// The rule: an allowance, then a minimum average rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Time a response may take before its bytes have to earn more.
    pub allowance: Duration,
    /// Bytes per second, on average since the start of the response, below which it is too slow.
    /// Zero turns the rate rule off (the allowance then bounds the whole response).
    pub min_rate: u64,
}

impl Pace {
    /// The default minimum rate: 4 KiB/s, far below any real link (a throttled Gmail download
    /// averages ~30 KB/s) and far above a slow-loris.
    pub const DEFAULT_MIN_RATE: u64 = 4096;
}

/// One response being read under a [`Pace`].
#[derive(Debug, Clone)]
pub struct ResponseClock {
    pace: Pace,
    started: Instant,
    received: u64,
}

impl ResponseClock {
    /// Starts timing a response now.
    pub fn start(pace: Pace) -> Self {
        ResponseClock { pace, started: Instant::now(), received: 0 }
    }

    /// Counts bytes that arrived.
    pub fn received(&mut self, bytes: u64) {
        self.received = self.received.saturating_add(bytes);
    }

    /// Time left before the response is too slow, or `None` when it already is.
    pub fn remaining(&self) -> Option<Duration> {
        let earned = if self.pace.min_rate == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(self.received as f64 / self.pace.min_rate as f64)
        };
        let limit = self.pace.allowance.saturating_add(earned);
        limit.checked_sub(self.started.elapsed()).filter(|left| !left.is_zero())
    }

    /// The wait for the next read: the per-read limit or what is left of the response's time,
    /// whichever is shorter; `None` when the response is already too slow.
    pub fn next_wait(&self, per_read: Duration) -> Option<Duration> {
        self.remaining().map(|left| left.min(per_read))
    }

    /// What happened, for the error message ("12 bytes in 61.0 s; at least 4096 bytes/s are
    /// required after the first 60 s").
    pub fn describe(&self) -> String {
        format!(
            "{} bytes in {:.1} s; at least {} bytes/s are required after the first {} s",
            self.received,
            self.started.elapsed().as_secs_f64(),
            self.pace.min_rate,
            self.pace.allowance.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_runs_out_and_a_flow_does_not() {
        let pace = Pace { allowance: Duration::from_millis(50), min_rate: 1000 };
        let mut trickle = ResponseClock::start(pace);
        trickle.received(1);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(trickle.remaining(), None, "{}", trickle.describe());

        let mut flow = ResponseClock::start(pace);
        std::thread::sleep(Duration::from_millis(80));
        // 1,000 bytes earn one more second.
        flow.received(1000);
        assert!(flow.remaining().is_some());
        assert!(flow.next_wait(Duration::from_millis(10)).unwrap() <= Duration::from_millis(10));
    }

    #[test]
    fn zero_rate_means_the_allowance_bounds_everything() {
        let pace = Pace { allowance: Duration::from_millis(20), min_rate: 0 };
        let mut clock = ResponseClock::start(pace);
        clock.received(u64::MAX);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(clock.remaining(), None);
    }
}
