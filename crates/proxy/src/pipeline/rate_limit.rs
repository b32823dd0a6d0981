//! Step 7: rate limits (429 with `Retry-After`) and in-flight caps (503).
//!
//! The bucket is the user's when the credential is already known valid (a
//! cache hit, looked up once here and reused by step 8), otherwise the
//! client IP's, with the NAT factor. Paths on the unauthenticated list count
//! in the static class, then the component's classes by path, then the
//! component's own rate. Exempt clients are not limited; in dry-run mode a
//! refusal is only logged.

use super::deny::Deny;
use super::log::Record;
use super::seclog::{Event, Kind};
use crate::security::Guard;
use deskgate_config::Component;
use deskgate_policy::counters::Slot;
use deskgate_policy::rate::{retry_after_secs, Class, Key};
use deskgate_policy::IpKey;
use std::net::IpAddr;
use std::sync::Arc;

/// The request's in-flight slot; given back when the answer's head is out.
pub type InFlightSlot = Slot<(usize, Key)>;

/// What step 7 needs to know about the request.
pub struct Subject<'a> {
    pub component: &'a Arc<Component>,
    pub path: &'a str,
    pub client: IpAddr,
    pub exempt: bool,
    /// The user whose credential is known valid (a cache hit).
    pub known_user: Option<&'a str>,
    /// Its bucket key.
    pub known_user_key: Option<u64>,
    pub unauthenticated: bool,
}

pub fn check(g: &Guard, s: &Subject<'_>, rec: &Record) -> Result<Option<InFlightSlot>, Deny> {
    let Some(rates) = g.rates_of(s.component) else {
        return Ok(None);
    };
    let sec = &s.component.security;
    let fold = s.component.rules.case_insensitive;
    // the component's classes by path first (the SSO endpoints are on the
    // unauthenticated list and still get their 5 r/s), then the static
    // class, then the component's own rate
    let class: &Class = sec
        .classes
        .iter()
        .position(|c| c.paths.matches(s.path, fold))
        .and_then(|i| rates.classes.get(i))
        .unwrap_or(if s.unauthenticated {
            &g.static_class
        } else {
            &rates.own
        });
    let (key, cap) = match s.known_user_key {
        Some(k) => (Key::User(k), sec.in_flight),
        // exempt addresses (proxies, balancers) are not limited as a whole;
        // the known users behind them still are
        None if s.exempt => return Ok(None),
        None => (
            Key::Ip(IpKey::of(s.client)),
            sec.in_flight.saturating_mul(g.settings.rate.nat_factor),
        ),
    };
    let dry = g.settings.rate.dry_run;
    if let Err(wait) = class.check(key) {
        log(g, Kind::RateLimited, "rate", s, rec, dry);
        if !dry {
            return Err(Deny::RateLimited(retry_after_secs(wait)));
        }
    }
    let slot_key = (Arc::as_ptr(s.component) as usize, key);
    match g.in_flight.try_take(slot_key, cap) {
        Some(slot) => Ok(Some(slot)),
        None => {
            log(g, Kind::InFlight, "in_flight", s, rec, dry);
            if dry {
                Ok(None)
            } else {
                Err(Deny::InFlight)
            }
        }
    }
}

fn log(g: &Guard, kind: Kind, reason: &str, s: &Subject<'_>, rec: &Record, dry: bool) {
    let mut e = Event::new(kind, reason);
    e.client_ip = Some(s.client);
    e.user = s.known_user;
    e.route = Some(&s.component.name);
    e.request_id = Some(&rec.request_id);
    e.dry_run = dry;
    g.log.write(e);
}
