//! The one time source of the policy types: the system's monotonic clock in
//! production, a hand-moved one in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cheap, cloneable handle on a monotonic clock.
#[derive(Clone, Debug)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    base: Instant,
    /// `None`: the system clock; `Some`: nanoseconds moved by hand since `base`.
    manual: Option<AtomicU64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Inner {
            base: Instant::now(),
            manual: None,
        }))
    }

    /// A clock that stands still until [`Clock::advance`] moves it.
    pub fn manual() -> Clock {
        Clock(Arc::new(Inner {
            base: Instant::now(),
            manual: Some(AtomicU64::new(0)),
        }))
    }

    /// Moves a manual clock forward (a no-op on the system clock).
    pub fn advance(&self, d: Duration) {
        if let Some(m) = &self.0.manual {
            m.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> Instant {
        match &self.0.manual {
            None => Instant::now(),
            Some(m) => self.0.base + Duration::from_nanos(m.load(Ordering::SeqCst)),
        }
    }

    /// Time since the clock was made, as a plain number (for atomics).
    pub fn ticks(&self) -> u64 {
        self.since_base(self.now())
    }

    /// An instant as the number [`Clock::ticks`] would have given then.
    pub fn since_base(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.0.base).as_nanos() as u64
    }
}

impl governor::clock::Clock for Clock {
    type Instant = governor::nanos::Nanos;
    fn now(&self) -> Self::Instant {
        governor::nanos::Nanos::from(self.ticks())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_by_hand() {
        let c = Clock::manual();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_secs(30));
        assert_eq!(c.now() - t0, Duration::from_secs(30));
        assert_eq!(c.ticks(), 30_000_000_000);
    }
}
