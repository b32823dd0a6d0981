//! Finesse notifications: XMPP over WebSocket (RFC 7395) at `/ws/`,
//! subprotocol `xmpp`. Enough for the desktop page and for @xmpp/client:
//! SASL PLAIN, bind, presence, XEP-0199 pings, messages between users, and
//! pubsub events on the user's node when its state changes.

pub mod hub;
pub mod session;

use crate::Cluster;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;
use session::{Effect, Session};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest XMPP frame accepted from a client.
const MAX_FRAME: usize = 64 * 1024;
/// A session with no frame at all for this long is closed (the desktop
/// pings every 10 s).
const IDLE: Duration = Duration::from_secs(120);
/// How long a closing session waits for the client's Close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why an upgrade request was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub why: &'static str,
    /// The request carried an `auth.*` subprotocol a proxy should have removed.
    pub leaked_credentials: bool,
}

fn refuse(status: StatusCode, why: &'static str) -> Refusal {
    Refusal {
        status,
        why,
        leaked_credentials: false,
    }
}

/// Checks an upgrade request (RFC 6455 4.2.1, RFC 7395 3.1) and returns the
/// `Sec-WebSocket-Accept` value. Offered `auth.*` protocols are refused: a
/// proxy must remove its credential-carrying subprotocols before
/// forwarding, and the simulator counts each one that arrives under
/// `leaked-credentials`.
pub fn check_upgrade(method: &http::Method, headers: &HeaderMap) -> Result<String, Refusal> {
    let tokens = |name: header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .map(|t| t.trim().to_string())
            .collect::<Vec<_>>()
    };
    let has = |name: header::HeaderName, token: &str| {
        tokens(name).iter().any(|t| t.eq_ignore_ascii_case(token))
    };
    if method != http::Method::GET {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket upgrade is a GET",
        ));
    }
    if !has(header::UPGRADE, "websocket") || !has(header::CONNECTION, "upgrade") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "a WebSocket upgrade is required",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let protocols = tokens(header::SEC_WEBSOCKET_PROTOCOL);
    if protocols.iter().any(|p| p.starts_with("auth.")) {
        return Err(Refusal {
            leaked_credentials: true,
            ..refuse(
                StatusCode::BAD_REQUEST,
                "a credential subprotocol reached the upstream",
            )
        });
    }
    if !protocols.iter().any(|p| p == "xmpp") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "the xmpp subprotocol must be offered",
        ));
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(refuse(
        StatusCode::BAD_REQUEST,
        "Sec-WebSocket-Key is missing",
    ))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
    if decoded.map(|k| k.len()) != Ok(16) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ));
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// Answers an upgrade on `/ws/` and runs the session once it is upgraded,
/// until the client leaves or `stop` turns true.
pub fn accept<B>(
    req: http::Request<hyper::body::Incoming>,
    cluster: Arc<Cluster>,
    stop: watch::Receiver<bool>,
) -> Response<B>
where
    B: Default + From<String>,
{
    let accept_key = match check_upgrade(req.method(), req.headers()) {
        Ok(k) => k,
        Err(refusal) => {
            if refusal.leaked_credentials {
                cluster.count("leaked-credentials");
            }
            let mut r = Response::new(B::from(refusal.why.to_string()));
            *r.status_mut() = refusal.status;
            if refusal.status == StatusCode::UPGRADE_REQUIRED {
                r.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    header::HeaderValue::from_static("13"),
                );
            }
            return r;
        }
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let cfg = WebSocketConfig {
                    max_message_size: Some(MAX_FRAME),
                    max_frame_size: Some(MAX_FRAME),
                    ..WebSocketConfig::default()
                };
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(cfg),
                )
                .await;
                run(ws, cluster, stop).await;
            }
            Err(e) => tracing::debug!("WebSocket upgrade failed: {e}"),
        }
    });
    let mut r = Response::new(B::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        header::HeaderValue::from_static("xmpp"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept_key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Why a session ends on the server's side.
enum Ending {
    /// The client left, broke the socket, or closed the stream.
    Client,
    /// No frame from the client within IDLE.
    Idle,
    /// The node is stopping.
    Shutdown,
}

async fn run<S>(ws: WebSocketStream<S>, cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let stream_id = cluster.next_id();
    let mut session = Session::new(&cluster.xmpp_domain, &stream_id);
    let mut joined: Option<(hub::Registration, tokio::sync::mpsc::Receiver<Arc<str>>)> = None;
    let mut bound_user: Option<String> = None;
    // only frames from the client count as activity, not events sent to it
    let mut idle_at = tokio::time::Instant::now() + IDLE;
    let ending = loop {
        let event = async {
            match &mut joined {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = stream.next() => {
                idle_at = tokio::time::Instant::now() + IDLE;
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    // binary frames are not XMPP (RFC 7395 3.2); closed or broken: stop
                    _ => break Ending::Client,
                };
                let effects = match crate::xml::parse(&text) {
                    Ok(el) => session.on_frame(&el, &|u, p| cluster.check_secret(u, p)),
                    Err(e) => {
                        tracing::debug!("XMPP frame is not XML: {e}");
                        session::stream_error_frames("not-well-formed")
                    }
                };
                let mut close = false;
                for e in effects {
                    match e {
                        Effect::Send(f) => {
                            if sink.send(Message::Text(f)).await.is_err() {
                                close = true;
                            }
                        }
                        Effect::Bound(user) => {
                            joined = Some(cluster.hub.join(&user));
                            bound_user = Some(user);
                        }
                        Effect::Deliver { to, frame } => {
                            cluster.hub.send(&to, frame.into());
                        }
                        Effect::Close => close = true,
                    }
                }
                if close {
                    break Ending::Client;
                }
            }
            Some(frame) = event => {
                if sink.send(Message::Text(frame.to_string())).await.is_err() {
                    break Ending::Client;
                }
            }
            _ = tokio::time::sleep_until(idle_at) => break Ending::Idle,
            _ = crate::server::stopped(&mut stop) => break Ending::Shutdown,
        }
    };
    let condition = match ending {
        Ending::Client => None,
        Ending::Idle => Some("connection-timeout"),
        Ending::Shutdown => Some("system-shutdown"),
    };
    if let Some(c) = condition {
        for e in session::stream_error_frames(c) {
            if let Effect::Send(f) = e {
                let _ = sink.send(Message::Text(f)).await;
            }
        }
    }
    drop(joined);
    if let Some(user) = bound_user {
        cluster.session_ended(&user);
    }
    // the closing handshake: send Close, then read (and drop) what the
    // client still sends until its Close, so the socket is not closed with
    // unread data (which would reset the connection and lose our last
    // frames at the client)
    let _ = sink.send(Message::Close(None)).await;
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-protocol", "xmpp"),
    ];

    fn with(change: (&'static str, &'static str)) -> HeaderMap {
        let pairs: Vec<(&str, &str)> = GOOD
            .iter()
            .map(|&(k, v)| if k == change.0 { change } else { (k, v) })
            .collect();
        headers(&pairs)
    }

    #[test]
    fn a_good_upgrade_gets_the_rfc_6455_accept_key() {
        let key = check_upgrade(&Method::GET, &headers(GOOD)).expect("accepted");
        assert_eq!(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn bad_upgrades_are_refused_with_the_right_status() {
        let status = |m: &Method, h: &HeaderMap| check_upgrade(m, h).err().map(|r| r.status);
        assert_eq!(
            status(&Method::POST, &headers(GOOD)),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        let v8 = with(("sec-websocket-version", "8"));
        assert_eq!(
            status(&Method::GET, &v8),
            Some(StatusCode::UPGRADE_REQUIRED)
        );
        for h in [
            with(("upgrade", "h2c")),
            with(("sec-websocket-key", "c2hvcnQ=")),
            with(("sec-websocket-protocol", "chat")),
        ] {
            assert_eq!(
                status(&Method::GET, &h),
                Some(StatusCode::BAD_REQUEST),
                "{h:?}"
            );
        }
        // credentials a proxy should have removed
        let leaked = with(("sec-websocket-protocol", "xmpp, auth.basic.MTAwMTpwdw"));
        let r = check_upgrade(&Method::GET, &leaked).expect_err("refused");
        assert!(r.leaked_credentials);
        assert!(
            !check_upgrade(&Method::GET, &with(("upgrade", "h2c")))
                .expect_err("refused")
                .leaked_credentials
        );
    }
}
