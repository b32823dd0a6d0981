//! Step 10: forward to the node, or tunnel an upgrade.
//!
//! The upstream gets the canonical normalised path, the query unchanged,
//! rebuilt forwarding headers and the client body streamed through its
//! limits. Failures become 502 (unreachable, refused, reset) or 504
//! (connect or response timeout), with fixed bodies: no internal name,
//! address or port ever reaches the client. WebSockets, BOSH and socket.io
//! long-polls are exempt from the response timeout (they wait for the
//! tunnel idle timeout instead).

use super::client_ip::ClientAddr;
use super::deny::Deny;
use super::headers::{self, Forwarding};
use super::log::Record;
use super::normalize::NormalPath;
use super::ws_gate::WsSlot;
use crate::body::{empty, BodyFlags, LimitedBody, ProxyBody};
use crate::listen::ConnInfo;
use crate::upstream::connect::{ConnectError, ConnectInfo};
use crate::upstream::pool::PoolError;
use crate::upstream::tunnel;
use deskgate_config::Route;
use http::{header, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub async fn forward(
    mut req: Request<Incoming>,
    route: &Route,
    path: &NormalPath,
    client: &ClientAddr,
    conn: &Arc<ConnInfo>,
    rec: &mut Record,
    hold: Option<WsSlot>,
) -> Result<Response<ProxyBody>, Deny> {
    let snap = &conn.shared.snapshot;
    let d = &snap.deployment;
    let node = snap
        .upstreams
        .get(&route.node)
        .ok_or(Deny::UpstreamUnreachable)?;
    let upgrade = is_websocket_upgrade(&req);
    if upgrade && (req.method() != http::Method::GET || declares_body(&req)) {
        // an upgrade never carries a body: a declared one would desynchronise
        // the pooled upstream connection (request smuggling)
        return Err(Deny::BadRequest("upgrade_with_body"));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();

    // origin-form: the pool adds scheme and authority where HTTP/2 needs them
    let target = match parts.uri.query() {
        Some(q) => format!("{}?{}", path.forward, q),
        None => path.forward.clone(),
    };
    parts.uri = Uri::from_maybe_shared(bytes::Bytes::from(target))
        .map_err(|_| Deny::BadRequest("bad_query"))?;
    parts.version = Version::HTTP_11;
    headers::to_upstream(
        &mut parts.headers,
        &Forwarding {
            client,
            external_authority: &node.external_authority,
            external_port: &node.external_port,
            client_ip_header: &d.client_ip.header,
            request_id: &rec.request_id,
            upgrade,
        },
    );
    let flags = Arc::new(BodyFlags::default());
    let body: ProxyBody = if upgrade || body.is_end_stream() {
        empty()
    } else {
        LimitedBody::new(body, d.limits.max_body, d.timeouts.body_idle, flags.clone()).boxed()
    };
    let long_poll = upgrade || is_long_poll(&path.decided);
    let timeout = if long_poll {
        d.timeouts.tunnel_idle
    } else {
        route.component.response_timeout
    };

    let started = Instant::now();
    // the response timeout counts from the upload's last progress: a slow
    // 15 MB upload is bounded by the body idle timeout, not answered with
    // 504, and an upstream that stops taking the body still times out
    let deadline = flags.progress.quiet_for(timeout);
    let result = tokio::select! {
        r = node.pool.send(Request::from_parts(parts, body), upgrade) => Ok(r),
        _ = deadline => Err(()),
    };
    rec.upstream_header_ms = Some(started.elapsed().as_millis() as u64);
    let mut resp = match result {
        Err(_) => {
            tracing::warn!(
                upstream = rec.upstream.as_deref(),
                "upstream response timed out after {timeout:?}"
            );
            return Err(Deny::UpstreamTimeout);
        }
        Ok(Err(e)) => return Err(classify(&e, &flags, rec)),
        Ok(Ok(r)) => r,
    };
    if let Some(c) = resp.extensions().get::<ConnectInfo>() {
        let fresh = c.at >= started;
        rec.upstream_connect_ms = Some(if fresh { c.took.as_millis() as u64 } else { 0 });
    }

    if let Some(client_upgrade) = client_upgrade {
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let idle = d.timeouts.tunnel_idle;
            let stop = conn.shared.hard_stop();
            // the tunnel holds the connection (and its slot under the cap) until it ends
            // and its WebSocket slot under the per-user or per-IP cap
            let conn = conn.clone();
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((c, u)) => tunnel::run(c, u, idle, stop).await,
                    Err(e) => tracing::debug!("upgrade failed: {e}"),
                }
                drop(hold);
                drop(conn);
            });
            let (parts, _) = resp.into_parts();
            return Ok(Response::from_parts(parts, empty()));
        }
    }
    // an upstream that stalls mid-body is cut after the same time it had for its head
    Ok(resp.map(|b| LimitedBody::idle_only(b, timeout).boxed()))
}

/// Maps a pool error to the answer; the detail goes to the server log only.
fn classify(e: &PoolError, flags: &BodyFlags, rec: &Record) -> Deny {
    if flags.too_large.load(Ordering::Relaxed) {
        return Deny::BodyTooLarge;
    }
    if flags.timed_out.load(Ordering::Relaxed) {
        return Deny::BodyTimeout;
    }
    if flags.broken.load(Ordering::Relaxed) {
        // the body we were sending is the client's: its fault, not the upstream's
        return Deny::BadRequest("bad_request_body");
    }
    tracing::warn!(upstream = rec.upstream.as_deref(), "{e}");
    match e {
        PoolError::Connect(ConnectError::Timeout) => Deny::UpstreamTimeout,
        PoolError::Connect(_) => Deny::UpstreamUnreachable,
        PoolError::Http(_) => Deny::UpstreamFailed,
    }
}

/// A request that says it has a body (any Content-Length but 0, or chunked).
pub fn declares_body<B: http_body::Body>(req: &Request<B>) -> bool {
    !req.body().is_end_stream()
        || req
            .headers()
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) != Some(0))
}

/// An HTTP/1.1 WebSocket upgrade request.
pub fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        && req
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The WebSocket endpoints the gate decides for: notifications and chat
/// (`/ws/`) and socket.io (LiveData).
pub fn is_websocket_endpoint(path: &str) -> bool {
    under(path, &["/ws", "/socket.io"])
}

fn under(path: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// BOSH and socket.io polling hold a request open on purpose.
pub fn is_long_poll(path: &str) -> bool {
    ["/http-bind", "/httpbinding", "/socket.io"]
        .iter()
        .any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_polls_are_recognised_on_segment_boundaries() {
        assert!(is_long_poll("/http-bind/"));
        assert!(is_long_poll("/http-bind"));
        assert!(is_long_poll("/socket.io/"));
        assert!(!is_long_poll("/http-bindings/x"));
        assert!(!is_long_poll("/desktop/"));
    }

    #[test]
    fn upgrades_are_recognised_and_bodies_declared() {
        let req = Request::get("/ws/")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("req");
        assert!(is_websocket_upgrade(&req));
        assert!(!declares_body(&req));
        let req = Request::get("/ws/")
            .header("content-length", "12")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("req");
        assert!(declares_body(&req));
        let req = Request::get("/ws/")
            .header("upgrade", "websocket")
            .body(())
            .expect("req");
        assert!(!is_websocket_upgrade(&req));
    }
}
