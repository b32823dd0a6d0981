//! Step 8: authentication (SPEC 3). Every request to a component with
//! `auth = "finesse"` needs a valid Basic credential (checked against the
//! cluster's Finesse, cached by keyed hash) or SSO bearer token, except the
//! unauthenticated list, CORS preflights and the gated transports (step 9).
//! deskgate answers 401 with a challenge itself; a wrong credential is
//! recorded for step 5 as one failure per distinct credential.

use super::deny::Deny;
use super::seclog::{Event, Kind};
use crate::listen::{ConnInfo, Shared};
use crate::security::credential::{Credential, Presented, Scheme};
use crate::security::validate::Answer;
use crate::security::Guard;
use deskgate_config::SsoKeys;
use deskgate_policy::bruteforce::{fail2ban_line, Outcome};
use deskgate_policy::credentials::{short, Lookup};
use deskgate_policy::IpKey;
use std::net::IpAddr;
use std::sync::Arc;

/// What the caches already know about the request's credential (looked up
/// once, at step 7, so that rate limits can key by user on a hit).
#[derive(Debug)]
pub enum Known {
    Valid {
        user: Arc<str>,
        /// The user's bucket key (kept in the cache entry).
        user_key: u64,
        refresh: bool,
    },
    Rejected,
    Unknown,
    /// No credential (or an unreadable one).
    Nothing,
}

impl Known {
    pub fn user(&self) -> Option<&str> {
        match self {
            Known::Valid { user, .. } => Some(user),
            _ => None,
        }
    }

    pub fn user_key(&self) -> Option<u64> {
        match self {
            Known::Valid { user_key, .. } => Some(*user_key),
            _ => None,
        }
    }
}

pub fn known(g: &Guard, p: &Presented) -> Known {
    let Presented::Some(c) = p else {
        return Known::Nothing;
    };
    match c.scheme {
        Scheme::Basic => match g.creds.lookup(&c.key) {
            Lookup::Valid { entry, refresh } => Known::Valid {
                user: entry.user.clone(),
                user_key: entry.user_key(|u| g.user_key(u)),
                refresh,
            },
            Lookup::Rejected => Known::Rejected,
            Lookup::Unknown => Known::Unknown,
        },
        Scheme::Bearer => match g.sso.as_ref().and_then(|s| s.cached(&c.key)) {
            Some(user) => Known::Valid {
                user_key: g.user_key(&user),
                user,
                refresh: false,
            },
            // a token Finesse refused (upstream mode) is remembered too
            None if matches!(g.creds.lookup(&c.key), Lookup::Rejected) => Known::Rejected,
            None => Known::Unknown,
        },
    }
}

/// Where the request is going, for the security log.
pub struct Context<'a> {
    pub component: &'a Arc<deskgate_config::Component>,
    pub client: IpAddr,
    pub exempt: bool,
    pub route: &'a str,
    pub request_id: &'a str,
    /// The request is the user reading itself from the checking Finesse
    /// (`GET /finesse/api/User/<self>`), so its answer stands in for a
    /// background check (one Finesse contact, not two: a stale password
    /// must cost Finesse one failed sign-in only).
    pub forwarded_check: bool,
}

/// A request let through by its credential.
#[derive(Debug)]
pub struct Verified {
    pub user: Arc<str>,
    /// The cached Basic entry is due for a check that the forwarded
    /// answer is to provide (see [`observe`]).
    pub refresh_due: bool,
}

/// Checks the presented credential; the user on success.
pub async fn verify(
    conn: &Arc<ConnInfo>,
    p: &Presented,
    known: Known,
    cx: &Context<'_>,
) -> Result<Verified, Deny> {
    let g = &conn.shared.guard;
    let c = match p {
        Presented::None => return Err(Deny::Unauthorized("no_credentials")),
        Presented::Malformed => {
            log_failure(g, cx, None, "malformed_credentials");
            return Err(Deny::Unauthorized("malformed_credentials"));
        }
        Presented::Some(c) => c,
    };
    let fresh = |user| Verified {
        user,
        refresh_due: false,
    };
    match known {
        Known::Valid { user, refresh, .. } => {
            let by_answer = refresh && cx.forwarded_check && c.scheme == Scheme::Basic;
            if refresh && !by_answer {
                background_refresh(&conn.shared, cx, c, &user);
            }
            Ok(Verified {
                user,
                refresh_due: by_answer,
            })
        }
        Known::Rejected if c.scheme == Scheme::Bearer => {
            log_failure(g, cx, None, "token_rejected");
            Err(Deny::Unauthorized("token_rejected"))
        }
        Known::Rejected => Err(failure(g, cx, c, "wrong_credentials")),
        Known::Unknown | Known::Nothing => match c.scheme {
            Scheme::Basic => basic(conn, c, cx).await.map(fresh),
            Scheme::Bearer => bearer(conn, c, cx).await.map(fresh),
        },
    }
}

/// What Finesse's answer to a forwarded REST request says about the
/// credential that carried it: a 2xx to the user reading itself confirms
/// it (the due check is done),
/// a 401 `Authorization Failure` means Finesse no longer accepts it (a
/// changed password): it is dropped at once, so a stale desktop costs
/// Finesse one failed sign-in, not one per request until the next check.
/// Other 401s (`Invalid Authorization User Specified`) say nothing about
/// the password.
pub async fn observe(
    g: &Guard,
    key: deskgate_policy::credentials::CredKey,
    v: &Verified,
    client: IpAddr,
    route: &str,
    resp: http::Response<crate::body::ProxyBody>,
) -> http::Response<crate::body::ProxyBody> {
    let status = resp.status();
    if status.is_success() {
        if v.refresh_due {
            g.creds.accept(key, &v.user);
        }
        return resp;
    }
    if status != http::StatusCode::UNAUTHORIZED {
        if v.refresh_due {
            g.creds.refresh_abandoned(&key);
        }
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), read_small(body)).await;
    let Ok(Some(bytes)) = read else {
        // unreadable: the client gets a clean 502 rather than half a body
        return crate::pipeline::deny_response_plain(Deny::UpstreamFailed);
    };
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("<ErrorType>Authorization Failure</ErrorType>") {
        g.creds.reject(key);
        let mut e = Event::new(Kind::AuthFailure, "revoked");
        e.client_ip = Some(client);
        e.user = Some(&v.user);
        e.route = Some(route);
        e.message = Some("Finesse refused a cached credential: dropped from the cache".into());
        g.log.write(e);
    } else if v.refresh_due {
        g.creds.refresh_abandoned(&key);
    }
    http::Response::from_parts(parts, crate::body::full(bytes))
}

async fn basic(conn: &Arc<ConnInfo>, c: &Credential, cx: &Context<'_>) -> Result<Arc<str>, Deny> {
    let shared = &conn.shared;
    let g = &shared.guard;
    let user = c.claimed_user.clone().unwrap_or_default();
    if g.user_known(g.checker(cx.component), &user) == Some(false) {
        // not a Finesse user: refused without asking Finesse
        g.creds.reject(c.key);
        return Err(failure(g, cx, c, "unknown_user"));
    }
    let Some(check) = g.check_for(cx.component) else {
        return Err(Deny::AuthUnavailable);
    };
    let ip = IpKey::of(cx.client);
    // a check of this very credential already on its way is joined: it is
    // not a new attempt and needs no slot. Otherwise failures are known
    // only once Finesse answers, so checks in flight count against the
    // user's allowance, and one address has few at a time.
    let mut hold: Option<(Attempt, Option<deskgate_policy::counters::Slot<IpKey>>)> = None;
    if !g.validator.in_flight(&c.key) {
        let Some(attempt) = Attempt::begin(shared.clone(), ip, &user, short(&c.key)) else {
            log_failure(g, cx, Some(&user), "too_many_attempts");
            return Err(Deny::Unauthorized("too_many_attempts"));
        };
        let slot = if cx.exempt {
            None
        } else {
            Some(
                per_ip_check_slot(g, ip)
                    .await
                    .ok_or(Deny::AuthUnavailable)?,
            )
        };
        // the answer may have come while we waited
        match g.creds.lookup(&c.key) {
            Lookup::Valid { entry, .. } => return Ok(entry.user.clone()),
            Lookup::Rejected => return Err(failure(g, cx, c, "wrong_credentials")),
            Lookup::Unknown => {}
        }
        match g.brute.check(ip, Some(&user)) {
            deskgate_policy::bruteforce::Verdict::Open => {}
            deskgate_policy::bruteforce::Verdict::IpBlocked { .. } if cx.exempt => {}
            _ => return Err(Deny::Blocked),
        }
        hold = Some((attempt, slot));
    }
    // the answer is recorded by the check itself, so a client that hangs up
    // is counted all the same
    let (key, u, sh) = (c.key, user.clone(), shared.clone());
    let (client, exempt) = (cx.client, cx.exempt);
    let (route, id) = (cx.route.to_string(), cx.request_id.to_string());
    let answer = g
        .validator
        .validate(
            shared.snapshot.clone(),
            check,
            c.key,
            c.authorization.clone(),
            user,
            Box::new(move |a| {
                let g = &sh.guard;
                match a {
                    Answer::Valid => g.creds.accept(key, &u),
                    Answer::Rejected(_) => {
                        g.creds.reject(key);
                        let at = Where {
                            client,
                            exempt,
                            route: &route,
                            request_id: &id,
                        };
                        record_wrong(g, &at, &u, short(&key), "wrong_credentials");
                    }
                    Answer::Inconclusive(_) => g.creds.inconclusive(&key),
                }
                drop(hold);
            }),
        )
        .await;
    match answer {
        Answer::Valid => match g.creds.lookup(&c.key) {
            Lookup::Valid { entry, .. } => Ok(entry.user.clone()),
            // accepted and evicted at once (a full cache): still valid now
            _ => Ok(c.claimed_user.as_deref().unwrap_or_default().into()),
        },
        // logged and counted by the check
        Answer::Rejected(_) => Err(Deny::Unauthorized("wrong_credentials")),
        Answer::Inconclusive(reason) => {
            // Finesse restarting must not sign everyone out: an entry we
            // had stays good up to its TTL
            if let Lookup::Valid { entry, .. } = g.creds.lookup(&c.key) {
                return Ok(entry.user.clone());
            }
            tracing::warn!(
                reason,
                "a credential could not be checked: Finesse gave no answer"
            );
            Err(Deny::AuthUnavailable)
        }
    }
}

async fn bearer(conn: &Arc<ConnInfo>, c: &Credential, cx: &Context<'_>) -> Result<Arc<str>, Deny> {
    let shared = &conn.shared;
    let g = &shared.guard;
    let Some(sso) = g.sso.as_ref() else {
        log_failure(g, cx, None, "sso_not_configured");
        return Err(Deny::Unauthorized("sso_not_configured"));
    };
    let token = c.authorization.get("Bearer ".len()..).unwrap_or_default();
    if let SsoKeys::Upstream { check } = &sso.source {
        let Some((user, exp)) = sso.unverified(token) else {
            log_failure(g, cx, None, "malformed_token");
            return Err(Deny::Unauthorized("malformed_token"));
        };
        let Some(base) = g.check_for(cx.component) else {
            return Err(Deny::AuthUnavailable);
        };
        let check = crate::security::validate::Check {
            nodes: base.nodes,
            request: check.clone(),
        };
        let answer = g
            .validator
            .validate(
                shared.snapshot.clone(),
                check,
                c.key,
                c.authorization.clone(),
                user.clone(),
                Box::new(|_| {}),
            )
            .await;
        return match answer {
            Answer::Valid => {
                let user: Arc<str> = user.into();
                sso.remember(c.key, user.clone(), exp);
                Ok(user)
            }
            Answer::Rejected(_) => {
                // remembered: repeating a refused token costs Finesse nothing
                g.creds.reject(c.key);
                log_failure(g, cx, Some(&user), "token_rejected");
                Err(Deny::Unauthorized("token_rejected"))
            }
            Answer::Inconclusive(_) => Err(Deny::AuthUnavailable),
        };
    }
    match sso.verify(token) {
        Ok(v) => {
            sso.remember(c.key, v.user.clone(), Some(v.exp));
            Ok(v.user)
        }
        Err("no_keys_yet") => Err(Deny::AuthUnavailable),
        Err(reason) => {
            // tokens are not guessable: a bad one is logged, not counted
            log_failure(g, cx, None, reason);
            Err(Deny::Unauthorized(reason))
        }
    }
}

/// Checks of new credentials one client address may have in flight.
const CHECKS_PER_IP: u32 = 8;

/// A reservation of one check against the (IP, user) allowance, given
/// back when the check ends (it travels with the check, not the request).
struct Attempt {
    shared: Arc<Shared>,
    ip: IpKey,
    user: String,
    credential: u64,
}

impl Attempt {
    fn begin(shared: Arc<Shared>, ip: IpKey, user: &str, credential: u64) -> Option<Attempt> {
        shared
            .guard
            .brute
            .begin_check(ip, user, credential)
            .then(|| Attempt {
                shared,
                ip,
                user: user.to_string(),
                credential,
            })
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.shared
            .guard
            .brute
            .end_check(self.ip, &self.user, self.credential);
    }
}

/// Waits (up to the validation timeout) for one of the address's check slots.
async fn per_ip_check_slot(g: &Guard, ip: IpKey) -> Option<deskgate_policy::counters::Slot<IpKey>> {
    let deadline = tokio::time::Instant::now() + g.settings.auth.validation_timeout;
    loop {
        if let Some(s) = g.checking.try_take(ip, CHECKS_PER_IP) {
            return Some(s);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A small body read whole (at most 64 KiB).
async fn read_small(mut body: crate::body::ProxyBody) -> Option<bytes::Bytes> {
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > 64 * 1024 {
                return None;
            }
        }
    }
    Some(buf.freeze())
}

/// Re-checks a cached credential in the background with this request's
/// header; the request itself is answered from the cache.
fn background_refresh(shared: &Arc<Shared>, cx: &Context<'_>, c: &Credential, user: &Arc<str>) {
    let g = &shared.guard;
    let Some(check) = g.check_for(cx.component) else {
        g.creds.refresh_abandoned(&c.key);
        return;
    };
    let key = c.key;
    let (sh, u) = (shared.clone(), user.clone());
    let started = g.validator.spawn_background(
        shared.snapshot.clone(),
        check,
        c.authorization.clone(),
        user.to_string(),
        Box::new(move |a| {
            let g = &sh.guard;
            match a {
                Answer::Valid => g.creds.accept(key, &u),
                Answer::Rejected(_) => {
                    g.creds.reject(key);
                    let mut e = Event::new(Kind::AuthFailure, "revoked");
                    e.user = Some(&u);
                    e.message = Some(
                        "Finesse no longer accepts this credential: dropped from the cache".into(),
                    );
                    g.log.write(e);
                }
                Answer::Inconclusive(_) => g.creds.inconclusive(&key),
            }
        }),
    );
    if !started {
        g.creds.refresh_abandoned(&key);
    }
}

fn log_failure(g: &Guard, cx: &Context<'_>, user: Option<&str>, reason: &str) {
    let mut e = Event::new(Kind::AuthFailure, reason);
    e.client_ip = Some(cx.client);
    e.user = user;
    e.route = Some(cx.route);
    e.request_id = Some(cx.request_id);
    g.log.write(e);
}

/// Where a wrong credential was tried, in owned-free form (the check task
/// records it after the request may be gone).
struct Where<'a> {
    client: IpAddr,
    exempt: bool,
    route: &'a str,
    request_id: &'a str,
}

/// A wrong Basic credential: logged, and counted for step 5 (an exempt
/// address is never blocked as a whole; its users are, one by one).
/// Returns the answer to give.
fn failure(g: &Guard, cx: &Context<'_>, c: &Credential, reason: &'static str) -> Deny {
    let user = c.claimed_user.as_deref().unwrap_or("-");
    let at = Where {
        client: cx.client,
        exempt: cx.exempt,
        route: cx.route,
        request_id: cx.request_id,
    };
    record_wrong(g, &at, user, short(&c.key), reason);
    Deny::Unauthorized(reason)
}

fn record_wrong(g: &Guard, at: &Where<'_>, user: &str, credential: u64, reason: &str) {
    let mut e = Event::new(Kind::AuthFailure, reason);
    e.client_ip = Some(at.client);
    e.user = Some(user);
    e.route = Some(at.route);
    e.request_id = Some(at.request_id);
    g.log.write(e);
    let outcome = g
        .brute
        .record_failure(IpKey::of(at.client), user, credential, !at.exempt);
    let mut e = match outcome {
        Outcome::UserBlocked { duration } => {
            let mut e = Event::new(Kind::Block, "user_failures");
            e.message = Some(format!(
                "user {user} is blocked from {} for {} minutes",
                at.client,
                duration.as_secs().div_ceil(60)
            ));
            e.user = Some(user);
            e
        }
        Outcome::IpBlocked { duration } => {
            let mut e = Event::new(Kind::Block, "spraying");
            e.message = Some(fail2ban_line(at.client, duration));
            e
        }
        Outcome::Untracked => {
            tracing::warn!("the brute-force table is full: a failure was not tracked");
            return;
        }
        Outcome::Counted { .. } | Outcome::Repeat => return,
    };
    e.client_ip = Some(at.client);
    e.route = Some(at.route);
    e.request_id = Some(at.request_id);
    g.log.write(e);
}
