//! The request pipeline: the ordered list of stages (SPEC 6b), in one place.
//!
//! | step | stage | reads | denies with |
//! |------|-------|-------|-------------|
//! | 1 | `listen` (accept, caps, TLS, ALPN) | socket | close |
//! | 2 | `limits`, `normalize` | head, path | 400, 431, 413 |
//! | 3 | `route` | listener, Host, SNI | 421 |
//! | 4 | `client_ip` | peer, trusted header | - |
//! | 5 | `blocked` | client IP, claimed user | 418 |
//! | 6 | `filter` | method, normalised path, UA, Referer | 403, 405, 421/404, 412, 417 |
//! | 7 | `rate_limit` | user on a cache hit, else client IP; class by path | 429, 503 |
//! | 8 | `auth` | Authorization (Basic, Bearer) | 401, 503 |
//! | 9 | `ws_gate` | upgrade or long-poll, session proof | 401, 503 |
//! | 10 | `cache`, then `forward` | method, path, user, Vary headers | 502, 504 |
//! | 11 | `headers::to_client` | response head | - |
//! | 12 | `log`, `seclog` | the request context | - |
//!
//! Every stage returns `Result<_, Deny>`, and a `Deny` becomes the answer.
//! The request's credential is read once (`security::credential`) and its
//! cache entry looked up once (step 7), then used by steps 5, 7, 8 and 9.

pub mod auth;
pub mod blocked;
pub mod cache;
pub mod client_ip;
pub mod deny;
pub mod filter;
pub mod forward;
pub mod headers;
pub mod limits;
pub mod log;
pub mod normalize;
pub mod rate_limit;
pub mod route;
pub mod seclog;
pub mod ws_gate;

use crate::body::{full, CountedBody, ProxyBody};
use crate::listen::ConnInfo;
use crate::security::{credential, Guard};
use deny::Deny;
use deskgate_config::AuthMode;
use http::{header, HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Serves one request from start to finish; never fails, never panics on input.
pub async fn handle(
    req: Request<Incoming>,
    conn: Arc<ConnInfo>,
) -> Result<Response<CountedBody>, std::convert::Infallible> {
    let in_flight = conn.activity.request_started();
    let mut guard = log::LogGuard::new(
        conn.shared.access_log.clone(),
        conn.record(
            req.method().clone(),
            log::loggable_path(req.uri().path()),
            proto(req.version()),
        ),
        Some(in_flight),
    );
    let served = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let is_h1 = req.version() != Version::HTTP_2;
    let script = is_script_request(req.headers());
    let (mut resp, deny) = match run(req, &conn, &mut guard.record).await {
        Ok(r) => (r, None),
        Err(d) => (deny_response(d, &conn.shared.guard, script), Some(d)),
    };
    let upgraded = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    headers::to_client(resp.headers_mut(), upgraded, conn.listener.hsts);
    let last = served >= conn.shared.snapshot.deployment.limits.keepalive_requests as u64;
    if is_h1 && (last || deny.is_some_and(Deny::closes)) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    } else if last {
        // HTTP/2: GOAWAY after this stream; one bad stream never ends the others
        conn.activity.want_close();
    }
    guard.record.status = resp.status().as_u16();
    guard.record.deny = deny.map(Deny::reason);
    let watch = conn.activity.watch_body();
    Ok(resp.map(|b| CountedBody::new(b, Box::new(guard), watch)))
}

/// Steps 2 to 10, in order.
async fn run(
    mut req: Request<Incoming>,
    conn: &Arc<ConnInfo>,
    rec: &mut log::Record,
) -> Result<Response<ProxyBody>, Deny> {
    let d = &conn.shared.snapshot.deployment;
    // 2. parse and normalise
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    limits::check_head(req.headers(), target_len, &d.limits)?;
    limits::check_declared_body(req.headers(), &d.limits)?;
    let path = normalize::normalize(req.uri().path()).map_err(Deny::BadPath)?;
    // 3. route
    let is_h2 = req.version() == Version::HTTP_2;
    let authority = authority_of(&req)?;
    rec.host = authority.map(log::truncated);
    let route = route::resolve(&conn.listener, authority, conn.sni.as_deref(), is_h2)?;
    rec.upstream = conn
        .shared
        .snapshot
        .upstreams
        .get(&route.node)
        .map(|n| n.log_name.clone());
    // 4. real client IP
    let client = client_ip::resolve(conn.peer.ip(), req.headers(), &d.client_ip);
    rec.client_ip = Some(client.ip);
    let g = &conn.shared.guard;
    let comp = &route.component;
    let exempt = g.is_exempt(client.ip, d);
    let upgrade = forward::is_websocket_upgrade(&req);
    // the gate (step 9) decides only for the WebSocket endpoints and the
    // long-poll transports; an upgrade anywhere else needs a credential
    let ws_endpoint = upgrade && forward::is_websocket_endpoint(&path.decided);
    let long_poll = !upgrade && forward::is_long_poll(&path.decided);
    let authenticates = comp.security.auth == AuthMode::Finesse;
    let fold = comp.rules.case_insensitive;
    let on_list = comp.security.unauthenticated.matches(&path.decided, fold);
    let preflight = is_cors_preflight(&req);
    let gated = authenticates && (ws_endpoint || long_poll) && !preflight;
    // an upgrade is never on the unauthenticated list
    let free = on_list && !upgrade;
    let needs_auth = authenticates && !gated && !free && !preflight;
    let presented = credential::presented(
        req.headers(),
        ws_endpoint && g.settings.websocket.subprotocol,
        // the keyed hash only where a cache lookup will use it
        (needs_auth || gated).then_some((&g.hasher, g.checker(comp))),
    );
    // 5. blocked clients
    blocked::check(g, client.ip, exempt, &presented)?;
    // 6. filtering
    filter::check(
        req.method(),
        &path,
        req.headers(),
        &route.component.rules,
        &d.filter,
    )?;
    // 7. rate limits and in-flight caps
    if upgrade {
        // credentials in the offered protocols never reach an upstream
        credential::strip_auth_subprotocol(req.headers_mut());
    }
    if preflight {
        // a preflight carries no credentials and no body: nothing else is forwarded
        if forward::declares_body(&req) {
            return Err(Deny::BadRequest("preflight_with_body"));
        }
        req.headers_mut().remove(header::AUTHORIZATION);
        req.headers_mut().remove(header::COOKIE);
    }
    let known = if needs_auth || gated {
        auth::known(g, &presented)
    } else {
        auth::Known::Nothing
    };
    let limited = rate_limit::check(
        g,
        &rate_limit::Subject {
            component: comp,
            path: &path.decided,
            client: client.ip,
            exempt,
            known_user: known.user(),
            known_user_key: known.user_key(),
            unauthenticated: on_list,
        },
        rec,
    );
    let _in_flight = match limited {
        Ok(slot) => slot,
        Err(d) => {
            release_refresh(g, &presented, &known);
            return Err(d);
        }
    };
    // 8. authentication, 9. WebSocket gate
    let to_checker_api = g.checker(comp) == comp.name && path.decided.starts_with("/finesse/api/");
    // only the user reading itself, without a session cookie Finesse could
    // accept instead, says for sure that Finesse still takes the password
    let self_read = to_checker_api
        && req.method() == http::Method::GET
        && !carries_other_cookies(req.headers())
        && match &presented {
            credential::Presented::Some(c) => c.claimed_user.as_deref().is_some_and(|u| {
                path.decided
                    .strip_prefix("/finesse/api/User/")
                    .is_some_and(|p| p.eq_ignore_ascii_case(u))
            }),
            _ => false,
        };
    let cx = auth::Context {
        component: comp,
        client: client.ip,
        exempt,
        route: &comp.name,
        request_id: &rec.request_id,
        forwarded_check: self_read,
    };
    let mut set_cookie = None;
    let mut hold = None;
    let mut observe = None;
    let mut cache_user = None;
    if needs_auth {
        let user_key = known.user_key();
        let v = auth::verify(conn, &presented, known, &cx).await?;
        g.mark_authenticated(g.checker(comp), client.ip);
        let user_key = user_key.unwrap_or_else(|| g.user_key(&v.user));
        set_cookie = g.session_cookie(g.checker(comp), &v.user, user_key, req.headers());
        rec.user = Some(v.user.clone());
        cache_user = Some(v.user.clone());
        if let credential::Presented::Some(c) = &presented {
            if to_checker_api && c.scheme == credential::Scheme::Basic {
                observe = Some((c.key, v));
            }
        }
    } else if gated {
        let admitted = ws_gate::check(conn, req.headers(), &presented, known, upgrade, &cx).await?;
        rec.user = admitted.user;
        hold = admitted.slot;
    }
    // 10. the cache, then forward (or tunnel)
    // a credential whose check rides on this answer needs the upstream's answer
    let confirms = observe.as_ref().is_some_and(|(_, v)| v.refresh_due);
    let fill = if gated || upgrade || confirms {
        None
    } else {
        let ask = cache::Ask {
            component: comp,
            path: &path.forward,
            user: cache_user.as_deref(),
            free,
            preflight,
        };
        match cache::before(&conn.shared.cache, &ask, &mut req, rec).await {
            cache::Decision::Skip => None,
            cache::Decision::Fetch(f) => Some(f),
            cache::Decision::Served(mut resp) => {
                if let Some(c) = set_cookie {
                    resp.headers_mut().append(header::SET_COOKIE, c);
                }
                return Ok(resp);
            }
        }
    };
    let forwarded = forward::forward(req, route, &path, &client, conn, rec, hold).await;
    let forwarded = match (forwarded, fill) {
        (Ok(r), Some(f)) => f.keep(r, rec).await,
        (r, _) => r,
    };
    let mut resp = match forwarded {
        Ok(r) => r,
        Err(d) => {
            // the answer that was to confirm the credential never came
            if let Some((key, v)) = &observe {
                if v.refresh_due {
                    g.creds.refresh_abandoned(key);
                }
            }
            return Err(d);
        }
    };
    if gated && upgrade && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        // the gate admitted an upgrade, not whatever else the path answers
        return Err(Deny::UpstreamFailed);
    }
    if let Some((key, v)) = observe {
        resp = auth::observe(g, key, &v, client.ip, &comp.name, resp).await;
    }
    if let Some(c) = set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// Cookies other than deskgate's own session cookie (which never reaches
/// the upstream): a Finesse session could vouch for the request instead of
/// the password.
fn carries_other_cookies(h: &http::HeaderMap) -> bool {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|pair| {
            let name = pair.trim().split('=').next().unwrap_or("");
            !name.is_empty() && name != deskgate_config::SESSION_COOKIE
        })
}

/// A request refused before step 8 gives back the background check it won.
fn release_refresh(g: &Guard, presented: &credential::Presented, known: &auth::Known) {
    if let (credential::Presented::Some(c), auth::Known::Valid { refresh: true, .. }) =
        (presented, known)
    {
        g.creds.refresh_abandoned(&c.key);
    }
}

/// A CORS preflight carries no credentials; it skips authentication only.
fn is_cors_preflight<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The request's authority: `:authority` or `Host`, which must agree when both are sent.
fn authority_of<B>(req: &Request<B>) -> Result<Option<&str>, Deny> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(Deny::BadRequest("duplicate_host")),
        (Some(h), None) => Some(h.to_str().map_err(|_| Deny::BadRequest("bad_host"))?),
        (None, _) => None,
    };
    match (req.uri().authority().map(|a| a.as_str()), host) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => {
            Err(Deny::BadRequest("host_authority_mismatch"))
        }
        (Some(a), _) => Ok(Some(a)),
        (None, h) => Ok(h),
    }
}

/// A request made by a page's script (fetch, XHR) rather than by the user
/// navigating: browsers tell with `Sec-Fetch-Mode`, older libraries with
/// `X-Requested-With`.
fn is_script_request(h: &http::HeaderMap) -> bool {
    const SEC_FETCH_MODE: http::HeaderName = http::HeaderName::from_static("sec-fetch-mode");
    const X_REQUESTED_WITH: http::HeaderName = http::HeaderName::from_static("x-requested-with");
    h.get(SEC_FETCH_MODE)
        .is_some_and(|v| v.as_bytes() != b"navigate")
        || h.contains_key(X_REQUESTED_WITH)
}

/// `script`: the challenge of a 401 uses a scheme browsers do not prompt
/// for (`DeskgateBasic`), so a desktop whose agent mistyped shows its own
/// sign-in error instead of a browser password dialog; other clients
/// (curl, a user opening an API URL) get the usual `Basic` challenge.
/// An answer of deskgate's own, without challenge headers.
pub(crate) fn deny_response_plain(d: Deny) -> Response<ProxyBody> {
    let mut r = Response::new(full(d.body()));
    *r.status_mut() = d.status();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn deny_response(d: Deny, g: &Guard, script: bool) -> Response<ProxyBody> {
    let mut r = Response::new(full(d.body()));
    *r.status_mut() = d.status();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    match d {
        Deny::Unauthorized(_) | Deny::WebSocketDenied(_) => {
            let realm = &g.settings.auth.realm;
            let scheme = if script { "DeskgateBasic" } else { "Basic" };
            if let Ok(v) =
                HeaderValue::from_str(&format!("{scheme} realm=\"{realm}\", charset=\"UTF-8\""))
            {
                h.append(header::WWW_AUTHENTICATE, v);
            }
            if g.sso.is_some() {
                if let Ok(v) = HeaderValue::from_str(&format!("Bearer realm=\"{realm}\"")) {
                    h.append(header::WWW_AUTHENTICATE, v);
                }
            }
        }
        Deny::RateLimited(secs) => {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        _ => {}
    }
    r
}

fn proto(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "h2",
        Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    }
}
