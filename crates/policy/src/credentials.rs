//! The credential cache (SPEC 3): which Authorization values Finesse has
//! accepted or rejected, keyed by a keyed hash, never the password.
//!
//! Revocation without added latency: an entry serves on its own for half
//! the revalidation interval; after that, the first request that uses it is
//! still served from the cache but also asks for a background validation
//! (with that request's own header: the password is never kept). An entry
//! whose last successful validation is older than the revalidation interval
//! is not served any more unless Finesse's last answer was inconclusive (a
//! 5xx or a timeout: Finesse restarting must not sign everyone out), and
//! even then only up to the TTL. So a changed password or a removed user
//! stops working within the interval, and an agent who uses the desktop at
//! least every half interval never waits for a validation.
//!
//! A rejection drops the entry at once and is never retried by us (Finesse
//! locks a user after 5 failed sign-ins); the rejected value is remembered
//! for the negative TTL so that repeating it costs Finesse nothing.

use crate::Clock;
use aws_lc_rs::hmac;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A keyed hash of one Authorization value.
pub type CredKey = [u8; 16];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Longest an entry serves without a successful validation while Finesse is inconclusive.
    pub ttl: Duration,
    /// A successful validation older than this is not trusted on its own.
    pub revalidate: Duration,
    /// How long a rejected value is remembered.
    pub negative_ttl: Duration,
    /// Entries kept at most, each of the accepted and the rejected kind.
    pub capacity: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(15 * 60),
            revalidate: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5 * 60),
            capacity: 100_000,
        }
    }
}

/// Keys credentials and user names with a per-process secret, so the
/// cache holds nothing that could be tried against Finesse.
pub struct Hasher {
    key: hmac::Key,
}

impl Hasher {
    /// A fresh random secret (fails only if the system RNG does, at startup).
    pub fn random() -> Result<Hasher, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "the system random number generator failed".to_string())?;
        Ok(Hasher { key })
    }

    pub fn credential(&self, authorization: &[u8]) -> CredKey {
        self.credential_for(b"", authorization)
    }

    /// The key of a credential as checked by one Finesse cluster: the same
    /// password is a different entry on another cluster.
    pub fn credential_for(&self, checker: &[u8], authorization: &[u8]) -> CredKey {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(checker);
        ctx.update(b"\n");
        ctx.update(authorization);
        let tag = ctx.sign();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag.as_ref()[..16]);
        out
    }

    /// The rate-limit key of a user name (case-insensitive).
    pub fn user(&self, name: &str) -> u64 {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"user:");
        ctx.update(name.to_ascii_lowercase().as_bytes());
        let tag = ctx.sign();
        let mut b = [0u8; 8];
        b.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_le_bytes(b)
    }
}

/// A short identity of a credential for failure counting.
pub fn short(k: &CredKey) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&k[..8]);
    u64::from_le_bytes(b)
}

/// An accepted credential.
#[derive(Debug)]
pub struct Entry {
    pub user: Arc<str>,
    /// Clock ticks of the last successful validation.
    validated: AtomicU64,
    /// Clock ticks of the last validation attempt of any outcome.
    attempted: AtomicU64,
    /// The last attempt got neither yes nor no (5xx, timeout).
    inconclusive: AtomicBool,
    /// A background validation is on its way.
    refreshing: AtomicBool,
    /// The keyed hash of `user` for user-keyed buckets and caps, made on
    /// first use and kept (0: not made yet).
    user_key: AtomicU64,
}

impl Entry {
    /// The user's bucket key; `make` (a keyed hash) runs once per entry,
    /// not once per request.
    pub fn user_key(&self, make: impl FnOnce(&str) -> u64) -> u64 {
        match self.user_key.load(Ordering::Relaxed) {
            0 => {
                let k = make(&self.user).max(1);
                self.user_key.store(k, Ordering::Relaxed);
                k
            }
            k => k,
        }
    }
}

/// What the cache knows about a credential.
#[derive(Debug)]
pub enum Lookup {
    /// Serve it. `refresh`: this caller should validate it in the background
    /// (it won the right to; at most one refresh runs per entry).
    Valid { entry: Arc<Entry>, refresh: bool },
    /// Finesse rejected it recently.
    Rejected,
    /// Not known (or no longer trusted): validate before serving.
    Unknown,
}

pub struct CredentialCache {
    cfg: CacheConfig,
    clock: Clock,
    good: quick_cache::sync::Cache<CredKey, Arc<Entry>>,
    /// Rejected value -> ticks when it is forgotten.
    bad: quick_cache::sync::Cache<CredKey, u64>,
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl CredentialCache {
    pub fn new(cfg: CacheConfig, clock: Clock) -> CredentialCache {
        let cap = cfg.capacity.max(16);
        CredentialCache {
            good: quick_cache::sync::Cache::new(cap),
            bad: quick_cache::sync::Cache::new(cap),
            cfg,
            clock,
        }
    }

    pub fn lookup(&self, key: &CredKey) -> Lookup {
        let now = self.clock.ticks();
        if let Some(until) = self.bad.get(key) {
            if now < until {
                return Lookup::Rejected;
            }
            self.bad.remove(key);
        }
        let Some(entry) = self.good.get(key) else {
            return Lookup::Unknown;
        };
        let age = now.saturating_sub(entry.validated.load(Ordering::Relaxed));
        let half = nanos(self.cfg.revalidate) / 2;
        if age < half {
            return Lookup::Valid {
                entry,
                refresh: false,
            };
        }
        if age >= nanos(self.cfg.ttl) {
            self.good.remove(key);
            return Lookup::Unknown;
        }
        let trusted =
            age < nanos(self.cfg.revalidate) || entry.inconclusive.load(Ordering::Relaxed);
        if !trusted {
            return Lookup::Unknown;
        }
        // one refresh at a time, and not more often than every half interval
        let since_attempt = now.saturating_sub(entry.attempted.load(Ordering::Relaxed));
        let refresh = since_attempt >= half
            && entry
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok();
        Lookup::Valid { entry, refresh }
    }

    /// Finesse said 200.
    pub fn accept(&self, key: CredKey, user: &str) {
        let now = self.clock.ticks();
        self.bad.remove(&key);
        if let Some(e) = self.good.get(&key) {
            if &*e.user == user {
                e.validated.store(now, Ordering::Relaxed);
                e.attempted.store(now, Ordering::Relaxed);
                e.inconclusive.store(false, Ordering::Relaxed);
                e.refreshing.store(false, Ordering::Release);
                return;
            }
        }
        self.good.insert(
            key,
            Arc::new(Entry {
                user: user.into(),
                validated: AtomicU64::new(now),
                attempted: AtomicU64::new(now),
                inconclusive: AtomicBool::new(false),
                refreshing: AtomicBool::new(false),
                user_key: AtomicU64::new(0),
            }),
        );
    }

    /// Finesse said 401, 403 or 404: drop it and remember the refusal.
    pub fn reject(&self, key: CredKey) {
        self.good.remove(&key);
        let until = self.clock.ticks() + nanos(self.cfg.negative_ttl);
        self.bad.insert(key, until);
    }

    /// Finesse gave no answer that means yes or no: keep what we had.
    pub fn inconclusive(&self, key: &CredKey) {
        if let Some(e) = self.good.get(key) {
            e.attempted.store(self.clock.ticks(), Ordering::Relaxed);
            e.inconclusive.store(true, Ordering::Relaxed);
            e.refreshing.store(false, Ordering::Release);
        }
    }

    /// A background validation could not start (too many in flight): the
    /// next use may try again.
    pub fn refresh_abandoned(&self, key: &CredKey) {
        if let Some(e) = self.good.get(key) {
            e.refreshing.store(false, Ordering::Release);
        }
    }

    /// Accepted and rejected entries held (for status and tests).
    pub fn sizes(&self) -> (usize, usize) {
        (self.good.len(), self.bad.len())
    }

    /// Forgets everything (an operator action; every user validates again).
    pub fn clear(&self) {
        self.good.clear();
        self.bad.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (CredentialCache, Clock, CredKey) {
        let clock = Clock::manual();
        let h = Hasher::random().expect("rng");
        let k = h.credential(b"Basic MTAwMTpwdw==");
        (
            CredentialCache::new(CacheConfig::default(), clock.clone()),
            clock,
            k,
        )
    }

    fn valid(l: Lookup) -> Option<bool> {
        match l {
            Lookup::Valid { refresh, .. } => Some(refresh),
            _ => None,
        }
    }

    #[test]
    fn keys_are_keyed_and_never_the_secret() {
        let a = Hasher::random().expect("rng");
        let b = Hasher::random().expect("rng");
        let v = b"Basic MTAwMTpwdw==";
        assert_eq!(a.credential(v), a.credential(v));
        assert_ne!(a.credential(v), b.credential(v));
        assert_ne!(a.credential(v), a.credential(b"Basic MTAwMTpwdx=="));
        assert_eq!(a.user("Agent1"), a.user("agent1"));
    }

    #[test]
    fn a_used_entry_refreshes_in_the_background_without_waiting() {
        let (c, clock, k) = setup();
        assert!(matches!(c.lookup(&k), Lookup::Unknown));
        c.accept(k, "1001");
        assert_eq!(valid(c.lookup(&k)), Some(false));
        clock.advance(Duration::from_secs(31));
        // the first use after half the interval refreshes; the others just serve
        assert_eq!(valid(c.lookup(&k)), Some(true));
        assert_eq!(valid(c.lookup(&k)), Some(false));
        c.accept(k, "1001");
        clock.advance(Duration::from_secs(29));
        assert_eq!(valid(c.lookup(&k)), Some(false));
    }

    #[test]
    fn an_entry_nobody_refreshed_is_not_trusted_after_the_interval() {
        let (c, clock, k) = setup();
        c.accept(k, "1001");
        clock.advance(Duration::from_secs(60));
        assert!(matches!(c.lookup(&k), Lookup::Unknown));
    }

    #[test]
    fn a_rejection_drops_the_entry_and_is_remembered_then_forgotten() {
        let (c, clock, k) = setup();
        c.accept(k, "1001");
        c.reject(k);
        assert!(matches!(c.lookup(&k), Lookup::Rejected));
        clock.advance(Duration::from_secs(299));
        assert!(matches!(c.lookup(&k), Lookup::Rejected));
        clock.advance(Duration::from_secs(1));
        assert!(matches!(c.lookup(&k), Lookup::Unknown));
        assert_eq!(c.sizes(), (0, 0));
    }

    #[test]
    fn finesse_being_down_keeps_entries_up_to_the_ttl() {
        let (c, clock, k) = setup();
        c.accept(k, "1001");
        clock.advance(Duration::from_secs(40));
        assert_eq!(valid(c.lookup(&k)), Some(true));
        c.inconclusive(&k);
        // still served past the interval, with a retry every half interval
        clock.advance(Duration::from_secs(40));
        assert_eq!(valid(c.lookup(&k)), Some(true));
        c.inconclusive(&k);
        assert_eq!(valid(c.lookup(&k)), Some(false));
        clock.advance(Duration::from_secs(15 * 60));
        assert!(matches!(c.lookup(&k), Lookup::Unknown));
    }

    #[test]
    fn the_cache_is_bounded() {
        let clock = Clock::manual();
        let c = CredentialCache::new(
            CacheConfig {
                capacity: 1000,
                ..CacheConfig::default()
            },
            clock,
        );
        let h = Hasher::random().expect("rng");
        for i in 0..10_000u32 {
            c.reject(h.credential(&i.to_le_bytes()));
            c.accept(h.credential(&(i + 1_000_000).to_le_bytes()), "u");
        }
        let (good, bad) = c.sizes();
        assert!(good <= 1100 && bad <= 1100, "{good} {bad}");
    }
}
