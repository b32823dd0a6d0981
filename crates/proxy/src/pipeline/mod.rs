//! The request pipeline: the ordered list of stages (SPEC 6b), in one place.
//!
//! | step | stage | reads | denies with |
//! |------|-------|-------|-------------|
//! | 1 | `listen` (accept, caps, TLS, ALPN) | socket | close |
//! | 2 | `limits`, `normalize` | head, path | 400, 431, 413 |
//! | 3 | `route` | listener, Host, SNI | 421 |
//! | 4 | `client_ip` | peer, trusted header | - |
//! | 5 | blocked clients (edge security issue) | client IP, user | 418 |
//! | 6 | `filter` | method, normalised path, UA, Referer | 403, 405, 421/404, 412, 417 |
//! | 7 | rate limits (edge security issue) | client key | 429, 503 |
//! | 8 | authentication (edge security issue) | Authorization | 401 |
//! | 9 | WebSocket gate (edge security issue) | upgrade, session proof | 401 |
//! | 10 | cache (performance issue), `forward` | node | 502, 504 |
//! | 11 | `headers::to_client` | response head | - |
//! | 12 | `log` | the request context | - |
//!
//! Steps 5, 7, 8 and 9 plug in between the calls below as one stage each;
//! every stage returns `Result<_, Deny>`, and a `Deny` becomes the answer.

pub mod client_ip;
pub mod deny;
pub mod filter;
pub mod forward;
pub mod headers;
pub mod limits;
pub mod log;
pub mod normalize;
pub mod route;

use crate::body::{full, CountedBody, ProxyBody};
use crate::listen::ConnInfo;
use deny::Deny;
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
            req.method().as_str().to_string(),
            log::loggable_path(req.uri().path()),
            proto(req.version()),
        ),
        Some(in_flight),
    );
    let served = conn.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let is_h1 = req.version() != Version::HTTP_2;
    let (mut resp, deny) = match run(req, &conn, &mut guard.record).await {
        Ok(r) => (r, None),
        Err(d) => (deny_response(d), Some(d)),
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
    req: Request<Incoming>,
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
    rec.upstream = Some(format!(
        "{}/{}:{}",
        route.component.name, route.node.internal_host, route.node.internal_port
    ));
    // 4. real client IP
    let client = client_ip::resolve(conn.peer.ip(), req.headers(), &d.client_ip);
    rec.client_ip = Some(client.ip);
    // 6. filtering
    filter::check(
        req.method(),
        &path,
        req.headers(),
        &route.component.rules,
        &d.filter,
    )?;
    // 10. forward (or tunnel)
    forward::forward(req, route, &path, &client, conn, rec).await
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

fn deny_response(d: Deny) -> Response<ProxyBody> {
    let mut r = Response::new(full(d.body()));
    *r.status_mut() = d.status();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn proto(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "h2",
        Version::HTTP_10 => "http/1.0",
        _ => "http/1.1",
    }
}
