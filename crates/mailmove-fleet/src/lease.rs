//! A worker's own view of a lease: when it was last renewed, by its monotonic clock. The
//! database decides who holds a lease ([`crate::queue`]); this only lets the holder stop
//! *before* the database could give the account to another worker (FLEET.md §3.2: self-fence
//! + the longest append < TTL + grace).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The timings of leases. Keep `self_fence + append_timeout < ttl + grace`: a healthy but slow
/// worker's last writes land before anyone can take its account over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a claim or renewal holds the lease.
    pub ttl: Duration,
    /// How often the holder renews it (and reports progress).
    pub heartbeat: Duration,
    /// How long after expiry the reaper gives the account back to the queue.
    pub grace: Duration,
    /// How long after its last renewal was *sent* a holder stops writing on its own.
    pub self_fence: Duration,
}

impl Default for LeaseTimings {
    fn default() -> Self {
        LeaseTimings {
            ttl: Duration::from_secs(60),
            heartbeat: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            self_fence: Duration::from_secs(45),
        }
    }
}

impl LeaseTimings {
    /// Timings scaled from one TTL, in the default proportions (heartbeat TTL/6, grace TTL/2,
    /// self-fence 3/4 TTL): for tests and simulations with short leases.
    pub fn from_ttl(ttl: Duration) -> Self {
        LeaseTimings { ttl, heartbeat: ttl / 6, grace: ttl / 2, self_fence: ttl * 3 / 4 }
    }

    /// Whether the self-fence comes before anyone else may hold the lease.
    pub fn is_safe(&self) -> bool {
        self.self_fence < self.ttl + self.grace && self.heartbeat < self.self_fence
    }
}

/// When the holder last sent a renewal that the database accepted.
#[derive(Debug)]
pub struct LeaseClock {
    renewed: Mutex<Instant>,
    self_fence: Duration,
}

impl LeaseClock {
    /// A clock for a lease claimed by a statement sent at `claimed`.
    pub fn new(claimed: Instant, self_fence: Duration) -> Self {
        LeaseClock { renewed: Mutex::new(claimed), self_fence }
    }

    /// Records a renewal the database accepted, sent at `sent`.
    pub fn renewed(&self, sent: Instant) {
        let mut renewed = self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if sent > *renewed {
            *renewed = sent;
        }
    }

    /// Whether the holder must stop: its last accepted renewal was sent too long ago.
    pub fn is_fenced(&self) -> bool {
        self.renewed.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).elapsed() > self.self_fence
    }
}
