//! Brute-force and spraying protection (SPEC 4), per real client IP.
//!
//! A failure is one *distinct* wrong credential for one (client IP, user):
//! the desktop fires about 20 calls at once with the same wrong password,
//! and that is one failure. Too many failures block that user from that IP
//! only, so one agent's typo behind a NAT never locks out the others; the
//! whole IP is blocked only when failures span several users (spraying).
//! The caller never passes trusted intermediaries or exempt addresses here.

use crate::{Clock, IpKey};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BruteForceConfig {
    /// Distinct wrong credentials per (IP, user) within `window` that block the pair.
    pub failures: u32,
    pub window: Duration,
    /// How long a block lasts.
    pub block: Duration,
    /// Distinct failing users from one IP within `window` that block the whole IP.
    pub spray_users: u32,
    /// Client IPs tracked at most; beyond it, expired state is swept first.
    pub max_tracked: usize,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            failures: 5,
            window: Duration::from_secs(30),
            block: Duration::from_secs(1800),
            spray_users: 3,
            max_tracked: 100_000,
        }
    }
}

/// May a request from this client go on to credential work?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Open,
    /// This user is blocked from this IP.
    UserBlocked {
        remaining: Duration,
    },
    /// The whole IP is blocked.
    IpBlocked {
        remaining: Duration,
    },
}

/// What recording a failure led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new distinct failure; `failures` within the window so far.
    Counted { failures: u32 },
    /// The same wrong credential again: not counted.
    Repeat,
    /// This failure blocked the user from this IP.
    UserBlocked { duration: Duration },
    /// This failure blocked the whole IP (the fail2ban line is due).
    IpBlocked { duration: Duration },
    /// The table is full of live state: not tracked (logged by the caller).
    Untracked,
}

/// What an operator can lift.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Ip(IpKey),
    User(IpKey, String),
}

/// One active block, for `deskgate blocks`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The client IP (IPv6: the /64).
    pub ip: String,
    /// `None` for a whole-IP block.
    pub user: Option<String>,
    pub remaining: Duration,
}

#[derive(Debug)]
struct PerIp {
    /// User -> distinct wrong credentials seen within the window (hash, when).
    failing: HashMap<Box<str>, Vec<(u64, Instant)>>,
    /// Distinct users that failed within the window (hash of the name,
    /// when), kept when a user gets blocked: attacking users one after the
    /// other is still spraying.
    sprayed: Vec<(u64, Instant)>,
    blocked_users: HashMap<Box<str>, Instant>,
    blocked_until: Option<Instant>,
}

/// Users blocked from one IP at most; more is spraying by definition.
const MAX_BLOCKED_USERS: usize = 1000;

fn user_hash(user: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    user.hash(&mut h);
    h.finish()
}

impl PerIp {
    fn new() -> PerIp {
        PerIp {
            failing: HashMap::new(),
            sprayed: Vec::new(),
            blocked_users: HashMap::new(),
            blocked_until: None,
        }
    }

    /// Forgets what has expired; `true` when nothing is left.
    fn sweep(&mut self, now: Instant, window: Duration) -> bool {
        for seen in self.failing.values_mut() {
            seen.retain(|(_, at)| now.saturating_duration_since(*at) < window);
        }
        self.failing.retain(|_, seen| !seen.is_empty());
        self.sprayed
            .retain(|(_, at)| now.saturating_duration_since(*at) < window);
        self.blocked_users.retain(|_, until| *until > now);
        if self.blocked_until.is_some_and(|u| u <= now) {
            self.blocked_until = None;
        }
        self.failing.is_empty()
            && self.sprayed.is_empty()
            && self.blocked_users.is_empty()
            && self.blocked_until.is_none()
    }

    fn blocks(&self) -> usize {
        self.blocked_users.len() + usize::from(self.blocked_until.is_some())
    }
}

/// (client IP, user) of checks in flight.
type PendingKey = (IpKey, Box<str>);

pub struct BruteForce {
    cfg: BruteForceConfig,
    clock: Clock,
    state: Mutex<HashMap<IpKey, PerIp>>,
    /// (IP, user) -> distinct new credentials being checked right now.
    /// Apart from `state`: bounded by the checks in flight, and never a
    /// reason to sweep the big table.
    pending: Mutex<HashMap<PendingKey, Vec<u64>>>,
    /// When the full table was last swept (at most once a second).
    last_sweep: Mutex<Option<Instant>>,
    /// Active blocks (an upper bound): when 0, `check` takes no lock.
    blocks: AtomicUsize,
}

impl BruteForce {
    pub fn new(cfg: BruteForceConfig, clock: Clock) -> BruteForce {
        BruteForce {
            cfg,
            clock,
            state: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(None),
            blocks: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpKey, PerIp>> {
        // a panic elsewhere while holding the lock leaves plain data behind
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Step 5 of the pipeline: is this client (and the user it claims) blocked?
    pub fn check(&self, ip: IpKey, user: Option<&str>) -> Verdict {
        if self.blocks.load(Ordering::Relaxed) == 0 {
            return Verdict::Open;
        }
        let now = self.clock.now();
        let state = self.lock();
        let Some(per) = state.get(&ip) else {
            return Verdict::Open;
        };
        if let Some(until) = per.blocked_until.filter(|u| *u > now) {
            return Verdict::IpBlocked {
                remaining: until - now,
            };
        }
        let user = user.map(normal_user);
        if let Some(until) = user
            .as_deref()
            .and_then(|u| per.blocked_users.get(u))
            .filter(|u| **u > now)
        {
            return Verdict::UserBlocked {
                remaining: *until - now,
            };
        }
        Verdict::Open
    }

    /// Before a new credential is checked with Finesse: may it be? Failures
    /// are only known once Finesse answers, so the checks in flight for one
    /// (IP, user) count against the allowance too: a burst of 140 distinct
    /// passwords at once makes at most `failures` checks, not 140. Give the
    /// reservation back with [`BruteForce::end_check`].
    pub fn begin_check(&self, ip: IpKey, user: &str, credential: u64) -> bool {
        let now = self.clock.now();
        let window = self.cfg.window;
        let user = normal_user(user);
        let counted = {
            let state = self.lock();
            state
                .get(&ip)
                .and_then(|per| per.failing.get(user.as_str()))
                .map_or(0, |seen| {
                    seen.iter()
                        .filter(|(c, at)| {
                            *c != credential && now.saturating_duration_since(*at) < window
                        })
                        .count()
                })
        };
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ip, Box::<str>::from(user.as_str()));
        let held = pending.get(&key).map_or(&[][..], |v| v.as_slice());
        if held.contains(&credential) {
            return true;
        }
        if counted + held.len() >= self.cfg.failures as usize {
            return false;
        }
        pending.entry(key).or_default().push(credential);
        true
    }

    /// The check of `credential` is over (whatever Finesse said).
    pub fn end_check(&self, ip: IpKey, user: &str, credential: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let key = (ip, Box::<str>::from(normal_user(user).as_str()));
        if let Some(p) = pending.get_mut(&key) {
            p.retain(|c| *c != credential);
            if p.is_empty() {
                pending.remove(&key);
            }
        }
    }

    /// Records one wrong credential (`credential` identifies it, never the
    /// password itself) that `user` tried from `ip`. `ip_blocks`: whether
    /// this address may be blocked as a whole (not for exempt addresses,
    /// whose users are still blocked one by one).
    pub fn record_failure(
        &self,
        ip: IpKey,
        user: &str,
        credential: u64,
        ip_blocks: bool,
    ) -> Outcome {
        let now = self.clock.now();
        let cfg = &self.cfg;
        let mut state = self.lock();
        if !state.contains_key(&ip)
            && state.len() >= cfg.max_tracked
            && !self.make_room(&mut state, now)
        {
            return Outcome::Untracked;
        }
        let per = state.entry(ip).or_insert_with(PerIp::new);
        let user = normal_user(user);
        let seen = per.failing.entry(user.clone().into()).or_default();
        seen.retain(|(_, at)| now.saturating_duration_since(*at) < cfg.window);
        if seen.iter().any(|(c, _)| *c == credential) {
            return Outcome::Repeat;
        }
        seen.push((credential, now));
        let failures = seen.len() as u32;
        let uh = user_hash(&user);
        per.sprayed
            .retain(|(_, at)| now.saturating_duration_since(*at) < cfg.window);
        match per.sprayed.iter_mut().find(|(h, _)| *h == uh) {
            Some(entry) => entry.1 = now,
            None => per.sprayed.push((uh, now)),
        }
        if per.sprayed.len() > MAX_BLOCKED_USERS {
            // an exempt address is never blocked as a whole: keep the newest
            per.sprayed.remove(0);
        }
        let users = per.sprayed.len() as u32;
        let before = per.blocks();
        // past this many blocked users an address is spraying; an exempt one
        // cannot be blocked as a whole, so its users keep being blocked
        let too_many_blocked = ip_blocks && per.blocked_users.len() >= MAX_BLOCKED_USERS;
        let outcome = if ip_blocks && (users >= cfg.spray_users || too_many_blocked) {
            per.blocked_until = Some(now + cfg.block);
            per.failing.clear();
            per.sprayed.clear();
            Outcome::IpBlocked {
                duration: cfg.block,
            }
        } else if failures >= cfg.failures && !too_many_blocked {
            per.failing.remove(user.as_str());
            per.blocked_users.insert(user.into(), now + cfg.block);
            Outcome::UserBlocked {
                duration: cfg.block,
            }
        } else {
            Outcome::Counted { failures }
        };
        let after = per.blocks();
        if after > before {
            self.blocks.fetch_add(after - before, Ordering::Relaxed);
        }
        outcome
    }

    /// A full table: sweep, then forget one client that holds no block.
    /// `false` when every tracked client is blocked.
    fn make_room(&self, state: &mut HashMap<IpKey, PerIp>, now: Instant) -> bool {
        let due = {
            let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
            let due =
                last.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            self.sweep_locked(state, now);
            if state.len() < self.cfg.max_tracked {
                return true;
            }
        }
        let victim = state.iter().find(|(_, p)| p.blocks() == 0).map(|(k, _)| *k);
        match victim {
            Some(k) => {
                state.remove(&k);
                true
            }
            None => false,
        }
    }

    /// Lifts a block; `true` if there was one.
    pub fn unblock(&self, target: &Target) -> bool {
        let mut state = self.lock();
        let lifted = match target {
            Target::Ip(ip) => state.get_mut(ip).is_some_and(|p| {
                let had = p.blocked_until.take().is_some();
                p.failing.clear();
                had
            }),
            Target::User(ip, user) => state.get_mut(ip).is_some_and(|p| {
                let u = normal_user(user);
                p.failing.remove(u.as_str());
                p.blocked_users.remove(u.as_str()).is_some()
            }),
        };
        self.recount(&state);
        lifted
    }

    /// Every active block, longest remaining first.
    pub fn blocks(&self) -> Vec<Block> {
        let now = self.clock.now();
        let state = self.lock();
        let mut out = Vec::new();
        for (ip, per) in state.iter() {
            if let Some(until) = per.blocked_until.filter(|u| *u > now) {
                out.push(Block {
                    ip: ip.display(),
                    user: None,
                    remaining: until - now,
                });
            }
            for (user, until) in per.blocked_users.iter().filter(|(_, u)| **u > now) {
                out.push(Block {
                    ip: ip.display(),
                    user: Some(user.to_string()),
                    remaining: *until - now,
                });
            }
        }
        out.sort_by(|a, b| b.remaining.cmp(&a.remaining).then(a.ip.cmp(&b.ip)));
        out
    }

    /// Drops expired failures and blocks (a janitor calls this now and then).
    pub fn sweep(&self) {
        let now = self.clock.now();
        let mut state = self.lock();
        self.sweep_locked(&mut state, now);
    }

    /// Client IPs with live state (for memory bounds and tests).
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn sweep_locked(&self, state: &mut HashMap<IpKey, PerIp>, now: Instant) {
        let window = self.cfg.window;
        state.retain(|_, per| !per.sweep(now, window));
        self.recount(state);
    }

    fn recount(&self, state: &HashMap<IpKey, PerIp>) {
        let n = state.values().map(PerIp::blocks).sum();
        self.blocks.store(n, Ordering::Relaxed);
    }
}

/// User names compare case-insensitively (Finesse login names do).
fn normal_user(u: &str) -> String {
    u.to_ascii_lowercase()
}

/// The text fail2ban matches: only whole-IP blocks write it (a firewall ban
/// of one user + IP pair would hit everyone behind that NAT).
pub fn fail2ban_line(ip: IpAddr, duration: Duration) -> String {
    format!(
        "{ip} will be blocked for {} minutes for exceeding retry limit.",
        duration.as_secs().div_ceil(60)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpKey {
        IpKey::of(s.parse().expect("ip"))
    }

    fn setup() -> (BruteForce, Clock) {
        let clock = Clock::manual();
        (
            BruteForce::new(BruteForceConfig::default(), clock.clone()),
            clock,
        )
    }

    #[test]
    fn the_same_wrong_password_counts_once() {
        let (bf, _) = setup();
        let a = ip("127.0.0.5");
        assert_eq!(
            bf.record_failure(a, "1001", 7, true),
            Outcome::Counted { failures: 1 }
        );
        for _ in 0..20 {
            assert_eq!(bf.record_failure(a, "1001", 7, true), Outcome::Repeat);
        }
        assert_eq!(bf.check(a, Some("1001")), Verdict::Open);
    }

    #[test]
    fn five_distinct_failures_block_the_user_from_that_ip_only() {
        let (bf, clock) = setup();
        let a = ip("127.0.0.5");
        for c in 1..5 {
            assert_eq!(
                bf.record_failure(a, "1001", c, true),
                Outcome::Counted { failures: c as u32 }
            );
        }
        assert_eq!(
            bf.record_failure(a, "1001", 5, true),
            Outcome::UserBlocked {
                duration: Duration::from_secs(1800)
            }
        );
        assert!(matches!(
            bf.check(a, Some("1001")),
            Verdict::UserBlocked { .. }
        ));
        // case does not dodge it
        assert!(matches!(
            bf.check(a, Some("1001".to_uppercase().as_str())),
            Verdict::UserBlocked { .. }
        ));
        // the other agent behind the same NAT, and the same user elsewhere, are fine
        assert_eq!(bf.check(a, Some("1002")), Verdict::Open);
        assert_eq!(bf.check(a, None), Verdict::Open);
        assert_eq!(bf.check(ip("127.0.0.6"), Some("1001")), Verdict::Open);
        // and the block ends on time
        clock.advance(Duration::from_secs(1799));
        assert!(matches!(
            bf.check(a, Some("1001")),
            Verdict::UserBlocked { remaining } if remaining == Duration::from_secs(1)
        ));
        clock.advance(Duration::from_secs(1));
        assert_eq!(bf.check(a, Some("1001")), Verdict::Open);
        bf.sweep();
        assert_eq!(bf.tracked(), 0);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let (bf, clock) = setup();
        let a = ip("127.0.0.5");
        for c in 0..20 {
            clock.advance(Duration::from_secs(10));
            let out = bf.record_failure(a, "1001", c, true);
            assert!(
                matches!(out, Outcome::Counted { failures } if failures <= 3),
                "{out:?}"
            );
        }
    }

    #[test]
    fn spraying_three_users_blocks_the_whole_ip() {
        let (bf, clock) = setup();
        let a = ip("2001:db8::1");
        assert!(matches!(
            bf.record_failure(a, "u1", 1, true),
            Outcome::Counted { .. }
        ));
        assert!(matches!(
            bf.record_failure(a, "u2", 2, true),
            Outcome::Counted { .. }
        ));
        assert_eq!(
            bf.record_failure(a, "u3", 3, true),
            Outcome::IpBlocked {
                duration: Duration::from_secs(1800)
            }
        );
        // the whole /64
        assert!(matches!(
            bf.check(ip("2001:db8::99"), None),
            Verdict::IpBlocked { .. }
        ));
        assert_eq!(bf.check(ip("2001:db8:0:1::1"), None), Verdict::Open);
        let blocks = bf.blocks();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].ip, "2001:db8::/64");
        assert!(bf.unblock(&Target::Ip(a)));
        assert_eq!(bf.check(a, None), Verdict::Open);
        assert!(!bf.unblock(&Target::Ip(a)));
        clock.advance(Duration::from_secs(1));
        assert!(bf.blocks().is_empty());
    }

    #[test]
    fn an_operator_can_lift_a_user_block() {
        let (bf, _) = setup();
        let a = ip("127.0.0.5");
        for c in 0..5 {
            bf.record_failure(a, "1001", c, true);
        }
        assert_eq!(bf.blocks()[0].user.as_deref(), Some("1001"));
        assert!(bf.unblock(&Target::User(a, "1001".into())));
        assert_eq!(bf.check(a, Some("1001")), Verdict::Open);
        // the counter starts again from zero
        assert_eq!(
            bf.record_failure(a, "1001", 99, true),
            Outcome::Counted { failures: 1 }
        );
    }

    #[test]
    fn the_table_is_bounded_evicting_clients_without_blocks() {
        let clock = Clock::manual();
        let cfg = BruteForceConfig {
            max_tracked: 100,
            ..BruteForceConfig::default()
        };
        let bf = BruteForce::new(cfg, clock.clone());
        let nth = |i: u32| IpKey::of(std::net::Ipv4Addr::from(0x0a00_0000 + i).into());
        for i in 0..100u32 {
            bf.record_failure(nth(i), "u", 1, true);
        }
        let extra = ip("127.0.0.1");
        assert_eq!(
            bf.record_failure(extra, "u", 1, true),
            Outcome::Counted { failures: 1 }
        );
        assert_eq!(bf.tracked(), 100);
        // a table full of blocks refuses rather than forget a block
        let bf = BruteForce::new(
            BruteForceConfig {
                max_tracked: 10,
                ..BruteForceConfig::default()
            },
            clock,
        );
        for i in 0..10u32 {
            for u in ["a", "b", "c"] {
                bf.record_failure(nth(i), u, 1, true);
            }
        }
        assert_eq!(bf.record_failure(extra, "u", 1, true), Outcome::Untracked);
        assert!(matches!(bf.check(nth(3), None), Verdict::IpBlocked { .. }));
    }

    #[test]
    fn spraying_one_user_after_the_other_still_blocks_the_ip() {
        let (bf, _) = setup();
        let a = ip("127.0.0.5");
        for c in 0..5 {
            bf.record_failure(a, "1004", c, true);
        }
        for c in 0..4 {
            bf.record_failure(a, "1005", 10 + c, true);
        }
        assert_eq!(
            bf.record_failure(a, "1006", 20, true),
            Outcome::IpBlocked {
                duration: Duration::from_secs(1800)
            }
        );
    }

    #[test]
    fn checks_in_flight_count_against_the_allowance() {
        let (bf, _) = setup();
        let a = ip("127.0.0.5");
        let allowed = (0..140u64)
            .filter(|c| bf.begin_check(a, "1001", *c))
            .count();
        assert_eq!(allowed, 5);
        // the same credential again (single flight) is not a new attempt
        assert!(bf.begin_check(a, "1001", 0));
        // another user at that address is not held back
        assert!(bf.begin_check(a, "1002", 0));
        for c in 0..5 {
            bf.end_check(a, "1001", c);
        }
        bf.record_failure(a, "1001", 0, true);
        bf.record_failure(a, "1001", 1, true);
        let allowed = (100..140u64)
            .filter(|c| bf.begin_check(a, "1001", *c))
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn exempt_addresses_block_users_but_never_the_whole_address() {
        let (bf, _) = setup();
        let a = ip("10.9.9.9");
        for u in ["u1", "u2", "u3", "u4"] {
            bf.record_failure(a, u, 1, false);
        }
        assert_eq!(bf.check(a, None), Verdict::Open);
        for c in 0..5 {
            bf.record_failure(a, "u1", 10 + c, false);
        }
        assert!(matches!(
            bf.check(a, Some("u1")),
            Verdict::UserBlocked { .. }
        ));
    }

    #[test]
    fn the_fail2ban_line_is_exact() {
        assert_eq!(
            fail2ban_line("192.0.2.7".parse().expect("ip"), Duration::from_secs(1800)),
            "192.0.2.7 will be blocked for 30 minutes for exceeding retry limit."
        );
    }
}
