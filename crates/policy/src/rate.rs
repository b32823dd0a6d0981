//! Token-bucket rate limits (SPEC 4), keyed by user or by client IP.
//!
//! A request's bucket is its user's when its credential is already known
//! valid, else its client IP's. IP buckets get the class's rate and burst
//! times the NAT factor: many agents behind one address log in at once, and
//! a claimed but unverified user name must never spend someone else's
//! bucket. The buckets are governor's GCRA cells, one map per class; idle
//! keys are dropped by [`Class::evict_idle`], so memory follows the number
//! of clients active in the last few seconds, not all clients ever seen.

use crate::{Clock, IpKey};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// Rate (per second) and burst of one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// Whose bucket a request spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A user whose credential is known valid (a keyed hash of the name).
    User(u64),
    /// Anyone else: the client IP (IPv6 per /64).
    Ip(IpKey),
}

type Limiter = RateLimiter<
    u128,
    DashMapStateStore<u128>,
    Clock,
    governor::middleware::NoOpMiddleware<governor::nanos::Nanos>,
>;

/// One rate class (a component, a CUIC report class, the static class...).
pub struct Class {
    users: Limiter,
    ips: Limiter,
    clock: Clock,
}

fn quota(rate: Rate, factor: u32) -> Quota {
    let per =
        NonZeroU32::new(rate.per_second.saturating_mul(factor).max(1)).unwrap_or(NonZeroU32::MIN);
    let burst =
        NonZeroU32::new(rate.burst.saturating_mul(factor).max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per).allow_burst(burst)
}

impl Class {
    pub fn new(rate: Rate, nat_factor: u32, clock: Clock) -> Class {
        Class {
            users: RateLimiter::dashmap_with_clock(quota(rate, 1), clock.clone()),
            ips: RateLimiter::dashmap_with_clock(quota(rate, nat_factor.max(1)), clock.clone()),
            clock,
        }
    }

    /// Spends one token, or says how long until one is there (for `Retry-After`).
    pub fn check(&self, key: Key) -> Result<(), Duration> {
        let r = match key {
            Key::User(u) => self.users.check_key(&u128::from(u)),
            Key::Ip(ip) => self.ips.check_key(&ip.as_u128()),
        };
        r.map_err(|not_until| {
            let now = governor::clock::Clock::now(&self.clock);
            not_until.wait_time_from(now)
        })
    }

    /// Forgets keys whose bucket is full again (indistinguishable from new).
    pub fn evict_idle(&self) {
        self.users.retain_recent();
        self.ips.retain_recent();
        self.users.shrink_to_fit();
        self.ips.shrink_to_fit();
    }

    /// Keys with live state.
    pub fn tracked(&self) -> usize {
        self.users.len() + self.ips.len()
    }
}

/// `Retry-After` seconds: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Key {
        Key::Ip(IpKey::of(s.parse().expect("ip")))
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_recovers_on_time() {
        let clock = Clock::manual();
        let c = Class::new(
            Rate {
                per_second: 90,
                burst: 50,
            },
            10,
            clock.clone(),
        );
        let user = Key::User(1);
        for _ in 0..50 {
            assert_eq!(c.check(user), Ok(()));
        }
        let wait = c.check(user).expect_err("over the burst");
        assert!(wait <= Duration::from_millis(12), "{wait:?}");
        // another user and an IP are untouched
        assert_eq!(c.check(Key::User(2)), Ok(()));
        assert_eq!(c.check(ip("127.0.0.9")), Ok(()));
        clock.advance(wait);
        assert_eq!(c.check(user), Ok(()));
    }

    #[test]
    fn ip_buckets_get_the_nat_factor() {
        let clock = Clock::manual();
        let c = Class::new(
            Rate {
                per_second: 5,
                burst: 4,
            },
            10,
            clock.clone(),
        );
        let a = ip("127.0.0.9");
        for _ in 0..40 {
            assert_eq!(c.check(a), Ok(()));
        }
        assert!(c.check(a).is_err());
        // a user bucket has the plain burst
        for _ in 0..4 {
            assert_eq!(c.check(Key::User(7)), Ok(()));
        }
        assert!(c.check(Key::User(7)).is_err());
    }

    #[test]
    fn memory_stays_bounded_with_100k_client_ips() {
        let clock = Clock::manual();
        let c = Class::new(
            Rate {
                per_second: 200,
                burst: 400,
            },
            10,
            clock.clone(),
        );
        for i in 0..100_000u32 {
            let k = Key::Ip(IpKey::of(std::net::Ipv4Addr::from(0x0a00_0000 + i).into()));
            assert_eq!(c.check(k), Ok(()));
        }
        assert_eq!(c.tracked(), 100_000);
        // a bucket that spent one of 4000 tokens is full again after a millisecond
        clock.advance(Duration::from_secs(1));
        c.evict_idle();
        assert_eq!(c.tracked(), 0);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
