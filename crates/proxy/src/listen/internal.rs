//! The internal listener: read-only `/proxymap.txt` for the upstreams
//! (plain HTTP, reached from the inside only), and the admin Unix socket
//! for operator actions. The two never share a socket (SPEC 2).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("deskgate"));
    r
}

fn proxymap_answer<B>(req: &Request<B>, map: &Arc<str>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/proxymap.txt") => {
            text(StatusCode::OK, Bytes::copy_from_slice(map.as_bytes()))
        }
        (_, "/proxymap.txt") => text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

/// A listener the internal endpoints can accept plain connections from.
trait Accept: Send + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept_io(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

type Answer = Arc<dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

/// Accepts until draining starts; each connection gets 30 s and fixed answers.
async fn serve_plain<L: Accept>(listener: L, answer: Answer, mut draining: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            r = listener.accept_io() => match r {
                Ok(s) => s,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = crate::listen::until(&mut draining) => break,
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let r = answer(&req);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

/// Serves `/proxymap.txt` until draining starts.
pub async fn serve_proxymap(tcp: TcpListener, map: Arc<str>, draining: watch::Receiver<bool>) {
    serve_plain(
        tcp,
        Arc::new(move |req| proxymap_answer(req, &map)),
        draining,
    )
    .await;
}

/// What the admin socket reports and acts on. Operator actions (cache
/// clear, reload) join here as the issues that need them land.
pub struct AdminState {
    pub side: &'static str,
    pub shared: Arc<super::Shared>,
    pub proxymap: Arc<str>,
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = text(status, format!("{v}\n"));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn admin_answer<B>(req: &Request<B>, st: &AdminState) -> Response<Full<Bytes>> {
    let g = &st.shared.guard;
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/status") => {
            let (good, bad) = g.creds.sizes();
            json(
                StatusCode::OK,
                serde_json::json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "side": st.side,
                    "open_connections": st.shared.open_connections(),
                    "auth": {
                        "cached": good,
                        "rejected_cached": bad,
                        "validations_sent": g.validator.sent(),
                        "sso_keys": g.sso.as_ref().map(|s| s.key_count()),
                    },
                    "blocks": g.brute.blocks().len(),
                    "cache": cache_status(&st.shared.cache),
                }),
            )
        }
        (&Method::GET, "/proxymap.txt") => text(
            StatusCode::OK,
            Bytes::copy_from_slice(st.proxymap.as_bytes()),
        ),
        (&Method::GET, "/blocks") => {
            let list: Vec<serde_json::Value> = g
                .brute
                .blocks()
                .into_iter()
                .map(|b| {
                    serde_json::json!({
                        "ip": b.ip,
                        "user": b.user,
                        "remaining_s": b.remaining.as_secs(),
                    })
                })
                .collect();
            json(StatusCode::OK, serde_json::json!({ "blocks": list }))
        }
        (&Method::POST, "/unblock") => {
            let target = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("target=")))
                .map(percent_decode);
            let Some(target) = target else {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "give ?target=IP or ?target=USER@IP"}),
                );
            };
            match parse_target(&target) {
                Some(t) => {
                    let lifted = g.brute.unblock(&t);
                    if lifted {
                        g.log_unblock(&target);
                    }
                    json(
                        StatusCode::OK,
                        serde_json::json!({"target": target, "unblocked": lifted}),
                    )
                }
                None => json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": format!("{target:?} is not IP or USER@IP")}),
                ),
            }
        }
        (&Method::POST, "/cache/clear") => {
            let bytes = st.shared.cache.bytes();
            let removed = st.shared.cache.clear();
            tracing::info!(
                "cache cleared through the admin socket: {removed} entries, {bytes} bytes"
            );
            json(
                StatusCode::OK,
                serde_json::json!({"removed": removed, "bytes": bytes}),
            )
        }
        (_, "/blocks" | "/unblock" | "/status" | "/cache/clear") => {
            text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n")
        }
        _ => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

fn cache_status(c: &crate::cache::Cache) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    serde_json::json!({
        "enabled": c.settings.enabled,
        "entries": c.len(),
        "bytes": c.bytes(),
        "max_bytes": c.settings.max_bytes,
        "hits": c.stats.hits.load(Relaxed),
        "misses": c.stats.misses.load(Relaxed),
        "revalidated": c.stats.revalidated.load(Relaxed),
        "collapsed": c.stats.collapsed.load(Relaxed),
        "stored": c.stats.stored.load(Relaxed),
    })
}

/// `IP` or `USER@IP` (the last `@` splits: SSO user names may hold one).
fn parse_target(s: &str) -> Option<deskgate_policy::bruteforce::Target> {
    use deskgate_policy::bruteforce::Target;
    use deskgate_policy::IpKey;
    // `2001:db8::/64` as `deskgate blocks` shows an IPv6 client
    let ip = |t: &str| {
        let t = t.strip_suffix("/64").unwrap_or(t);
        t.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok()
    };
    match s.rsplit_once('@') {
        Some((user, addr)) if !user.is_empty() => {
            Some(Target::User(IpKey::of(ip(addr)?), user.to_string()))
        }
        Some(_) => None,
        None => Some(Target::Ip(IpKey::of(ip(s)?))),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves the admin socket until draining starts; the socket file is owner-only.
pub async fn serve_admin(sock: UnixListener, st: Arc<AdminState>, draining: watch::Receiver<bool>) {
    serve_plain(sock, Arc::new(move |req| admin_answer(req, &st)), draining).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unblock_targets_are_read() {
        use deskgate_policy::bruteforce::Target;
        use deskgate_policy::IpKey;
        let ip = |s: &str| IpKey::of(s.parse().expect("ip"));
        assert_eq!(parse_target("192.0.2.7"), Some(Target::Ip(ip("192.0.2.7"))));
        assert_eq!(
            parse_target("a@b.c@2001:db8::1"),
            Some(Target::User(ip("2001:db8::1"), "a@b.c".into()))
        );
        assert_eq!(parse_target("@1.2.3.4"), None);
        assert_eq!(
            parse_target("2001:db8::/64"),
            Some(Target::Ip(ip("2001:db8::5")))
        );
        assert_eq!(parse_target("nonsense"), None);
        assert_eq!(percent_decode("1001%40127.0.0.1"), "1001@127.0.0.1");
    }
}
