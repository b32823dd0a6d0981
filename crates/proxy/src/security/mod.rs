//! The edge-security state every connection shares: credential cache,
//! brute-force tracker, rate buckets, concurrency counters, WebSocket
//! proofs and the security log. The pipeline stages (`pipeline::blocked`,
//! `rate_limit`, `auth`, `ws_gate`) ask it questions; the policy itself
//! lives in `deskgate-policy`, with plain inputs and a controllable clock.

pub mod credential;
pub mod sso;
pub mod tasks;
pub mod validate;

use crate::pipeline::seclog::{Event, Kind, SecurityLog};
use deskgate_config::{Component, Deployment, Security, Side, SESSION_COOKIE};
use deskgate_policy::bruteforce::BruteForce;
use deskgate_policy::counters::Counters;
use deskgate_policy::credentials::{CredentialCache, Hasher};
use deskgate_policy::proof::CookieSigner;
use deskgate_policy::rate::{Class, Key};
use deskgate_policy::{Clock, IpKey};
use http::{header, HeaderMap, HeaderValue};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use validate::{Check, Validator};

/// The rate classes of one component.
pub struct ComponentRates {
    pub own: Class,
    /// Parallel to the component's `security.classes`.
    pub classes: Vec<Class>,
}

pub struct Guard {
    pub settings: Security,
    pub clock: Clock,
    pub hasher: Hasher,
    pub creds: Arc<CredentialCache>,
    pub validator: Arc<Validator>,
    /// Component -> how its credentials are checked.
    checks: HashMap<usize, Check>,
    /// Finesse component -> its known user ids and names, once fetched.
    pub users: RwLock<HashMap<String, Arc<HashSet<String>>>>,
    pub sso: Option<sso::Verifier>,
    pub brute: BruteForce,
    rates: HashMap<usize, ComponentRates>,
    pub static_class: Class,
    /// In-flight requests per (component, key).
    pub in_flight: Arc<Counters<(usize, Key)>>,
    /// Open connections per client IP (at accept).
    pub connections: Arc<Counters<IpKey>>,
    /// Open WebSockets per user (proofs b, c) and per IP (proof a).
    pub ws_users: Arc<Counters<u64>>,
    pub ws_ips: Arc<Counters<IpKey>>,
    /// Checks of new credentials in flight per client IP.
    pub checking: Arc<Counters<IpKey>>,
    /// (checking Finesse, client IP) -> clock ticks of its last
    /// authenticated request (proof a).
    recent: quick_cache::sync::Cache<(u64, IpKey), u64>,
    cookies: CookieSigner,
    /// Session cookies issued lately, per (checker, user): a client that
    /// does not keep cookies (scripts, load tools) gets the same one back
    /// instead of a new signature on every request.
    issued: quick_cache::sync::Cache<u64, Arc<Issued>>,
    pub log: SecurityLog,
}

fn component_key(c: &Arc<Component>) -> usize {
    Arc::as_ptr(c) as usize
}

impl Guard {
    pub fn new(
        d: &Deployment,
        side: Side,
        log: SecurityLog,
        clock: Clock,
    ) -> Result<Guard, String> {
        let s = d.security.clone();
        let nat = s.rate.nat_factor;
        let rates = d
            .components
            .iter()
            .map(|c| {
                let r = ComponentRates {
                    own: Class::new(c.security.rate, nat, clock.clone()),
                    classes: c
                        .security
                        .classes
                        .iter()
                        .map(|rc| Class::new(rc.rate, nat, clock.clone()))
                        .collect(),
                };
                (component_key(c), r)
            })
            .collect();
        let checks = d
            .components
            .iter()
            .filter_map(|c| {
                let target = s.check_target(&c.security);
                let finesse = d.components.iter().find(|f| f.name == target)?;
                let check = Check {
                    nodes: finesse
                        .nodes
                        .iter()
                        .filter(|n| n.side == side)
                        .cloned()
                        .collect(),
                    request: s.auth.validate.clone(),
                };
                Some((component_key(c), check))
            })
            .collect();
        let sso = match &s.sso {
            Some(cfg) => Some(sso::Verifier::new(cfg, &clock)?),
            None => None,
        };
        Ok(Guard {
            hasher: Hasher::random()?,
            creds: Arc::new(CredentialCache::new(s.auth.cache.clone(), clock.clone())),
            validator: Arc::new(Validator::new(
                s.auth.max_validations,
                s.auth.validation_timeout,
            )),
            checks,
            users: RwLock::new(HashMap::new()),
            sso,
            brute: BruteForce::new(s.brute_force.clone(), clock.clone()),
            rates,
            static_class: Class::new(s.rate.static_class, nat, clock.clone()),
            in_flight: Counters::new(),
            connections: Counters::new(),
            ws_users: Counters::new(),
            ws_ips: Counters::new(),
            checking: Counters::new(),
            recent: quick_cache::sync::Cache::new(200_000),
            cookies: CookieSigner::random()?,
            issued: quick_cache::sync::Cache::new(100_000),
            log,
            clock,
            settings: s,
        })
    }

    pub fn rates_of(&self, c: &Arc<Component>) -> Option<&ComponentRates> {
        self.rates.get(&component_key(c))
    }

    /// Exempt addresses and trusted intermediaries are never limited or blocked.
    pub fn is_exempt(&self, ip: IpAddr, d: &Deployment) -> bool {
        self.settings.is_exempt(ip) || d.client_ip.is_trusted(ip)
    }

    /// Proof (a): remember that this client IP authenticated just now with
    /// a credential `checker` accepted.
    pub fn mark_authenticated(&self, checker: &str, ip: IpAddr) {
        let Some(window) = self.settings.websocket.ip_window else {
            return;
        };
        let key = (checker_key(checker), IpKey::of(ip));
        let now = self.clock.ticks();
        // one write per tenth of the window is plenty
        let fresh = self
            .recent
            .get(&key)
            .is_some_and(|t| now.saturating_sub(t) < window.as_nanos() as u64 / 10);
        if !fresh {
            self.recent.insert(key, now);
        }
    }

    /// Proof (a): did this client IP authenticate with `checker` within the window?
    pub fn recently_authenticated(&self, checker: &str, ip: IpAddr) -> bool {
        let Some(window) = self.settings.websocket.ip_window else {
            return false;
        };
        self.recent
            .get(&(checker_key(checker), IpKey::of(ip)))
            .is_some_and(|t| self.clock.ticks().saturating_sub(t) < window.as_nanos() as u64)
    }

    /// Proof (c): the user named by a valid session cookie that `checker`'s
    /// credentials earned (a cookie from another Finesse cluster is no
    /// proof here), and its seconds left.
    pub fn cookie_user(&self, checker: &str, h: &HeaderMap) -> Option<(String, u64)> {
        self.settings.websocket.cookie_ttl?;
        let now = unix_now();
        cookie_values(h).find_map(|v| {
            let subject = self.cookies.check(v, now)?;
            let (c, user) = subject.split_once('\u{1f}')?;
            if c != checker {
                return None;
            }
            let left = self.cookies.remaining(v, now)?;
            Some((user.to_string(), left))
        })
    }

    /// A `Set-Cookie` for `user` (checked by `checker`), unless the request
    /// already has one for them with more than half its life left.
    pub fn session_cookie(
        &self,
        checker: &str,
        user: &str,
        user_key: u64,
        h: &HeaderMap,
    ) -> Option<HeaderValue> {
        let ttl = self.settings.websocket.cookie_ttl?;
        if let Some((u, left)) = self.cookie_user(checker, h) {
            if u == user && left > ttl.as_secs() / 2 {
                return None;
            }
        }
        let now = unix_now();
        let slot = user_key ^ checker_key(checker).rotate_left(17);
        if let Some(i) = self.issued.get(&slot) {
            let same = i
                .subject
                .strip_prefix(checker)
                .and_then(|r| r.strip_prefix('\u{1f}'))
                == Some(user);
            if same && now < i.reissue_at {
                return Some(i.value.clone());
            }
        }
        let subject = format!("{checker}\u{1f}{user}");
        let value = self.cookies.issue(&subject, now + ttl.as_secs());
        let value = HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={value}; Path=/; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
            ttl.as_secs()
        ))
        .ok()?;
        self.issued.insert(
            slot,
            Arc::new(Issued {
                subject: subject.into(),
                value: value.clone(),
                // handed out again while it has at least half its life left
                reissue_at: now + ttl.as_secs() / 2,
            }),
        );
        Some(value)
    }

    /// How `c`'s credentials are checked.
    pub fn check_for(&self, c: &Arc<Component>) -> Option<Check> {
        self.checks.get(&component_key(c)).cloned()
    }

    /// The Finesse component that checks `c`'s credentials.
    pub fn checker<'a>(&'a self, c: &'a Component) -> &'a str {
        self.settings.check_target(&c.security)
    }

    /// Is `user` on `checker`'s known-users list? `None` while none is loaded.
    pub fn user_known(&self, checker: &str, user: &str) -> Option<bool> {
        let lists = self.users.read().unwrap_or_else(|p| p.into_inner());
        lists
            .get(checker)
            .map(|l| l.contains(&user.to_ascii_lowercase()))
    }

    /// The cache key of a credential's user, for user-keyed buckets and caps.
    pub fn user_key(&self, user: &str) -> u64 {
        self.hasher.user(user)
    }

    /// Drops idle rate state and expired blocks; runs every few seconds.
    pub fn sweep(&self) {
        self.static_class.evict_idle();
        for r in self.rates.values() {
            r.own.evict_idle();
            r.classes.iter().for_each(Class::evict_idle);
        }
        self.brute.sweep();
    }

    /// An operator lifted a block (admin socket).
    pub fn log_unblock(&self, what: &str) {
        let mut e = Event::new(Kind::Unblock, "operator");
        e.message = Some(format!("{what} unblocked by an operator"));
        self.log.write(e);
    }
}

/// A short key for a checker name (a handful of names per deployment).
/// A session cookie as it was issued, for handing out again.
struct Issued {
    subject: Box<str>,
    value: HeaderValue,
    reissue_at: u64,
}

fn checker_key(checker: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    checker.hash(&mut h);
    h.finish()
}

/// Our cookie's values in the request's `Cookie` headers.
fn cookie_values(h: &HeaderMap) -> impl Iterator<Item = &str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

/// Removes our cookie from what the upstream sees.
pub fn strip_session_cookie(h: &mut HeaderMap) {
    if !h.get_all(header::COOKIE).iter().any(|v| {
        v.as_bytes()
            .windows(SESSION_COOKIE.len())
            .any(|w| w == SESSION_COOKIE.as_bytes())
    }) {
        return;
    }
    let kept: Vec<String> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty() && p.split_once('=').map(|(n, _)| n) != Some(SESSION_COOKIE))
        .map(str::to_string)
        .collect();
    h.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            h.insert(header::COOKIE, v);
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_cookie_never_reaches_the_upstream() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-deskgate-session=v1.x.1.y; b=2"),
        );
        strip_session_cookie(&mut h);
        assert_eq!(h.get(header::COOKIE).expect("kept"), "a=1; b=2");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-deskgate-session=v1"),
        );
        strip_session_cookie(&mut h);
        assert!(h.get(header::COOKIE).is_none());
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("JSESSIONID=abc"));
        strip_session_cookie(&mut h);
        assert_eq!(h.get(header::COOKIE).expect("kept"), "JSESSIONID=abc");
    }
}
