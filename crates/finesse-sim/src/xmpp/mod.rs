//! Finesse notifications: XMPP over WebSocket (RFC 7395) at `/ws/`,
//! subprotocol `xmpp`. Enough for the desktop page and for @xmpp/client:
//! SASL PLAIN, bind, presence, XEP-0199 pings, messages between users, and
//! pubsub events on the user's node when its state changes.

pub mod hub;
pub mod session;

use crate::Cluster;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;
use session::{Effect, Session};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest XMPP frame accepted from a client.
const MAX_FRAME: usize = 64 * 1024;
/// A session with no frame at all for this long is closed (the desktop
/// pings every 10 s).
const IDLE: Duration = Duration::from_secs(120);

/// Why an upgrade request was refused (400 with this text).
pub fn check_upgrade(headers: &HeaderMap) -> Result<String, &'static str> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if !has(header::UPGRADE, "websocket") || !has(header::CONNECTION, "upgrade") {
        return Err("a WebSocket upgrade is required");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err("Sec-WebSocket-Version must be 13");
    }
    if !has(header::SEC_WEBSOCKET_PROTOCOL, "xmpp") {
        return Err("the xmpp subprotocol must be offered");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("Sec-WebSocket-Key is missing")?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// Answers an upgrade on `/ws/` and runs the session once it is upgraded.
pub fn accept<B>(req: http::Request<hyper::body::Incoming>, cluster: Arc<Cluster>) -> Response<B>
where
    B: Default + From<String>,
{
    let accept_key = match check_upgrade(req.headers()) {
        Ok(k) => k,
        Err(why) => {
            let mut r = Response::new(B::from(why.to_string()));
            *r.status_mut() = StatusCode::BAD_REQUEST;
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
                run(ws, cluster).await;
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

async fn run<S>(ws: WebSocketStream<S>, cluster: Arc<Cluster>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let stream_id = cluster.next_id();
    let mut session = Session::new(&cluster.xmpp_domain, &stream_id);
    let mut joined: Option<(hub::Registration, tokio::sync::mpsc::Receiver<Arc<str>>)> = None;
    let mut signed_in: Option<String> = None;
    loop {
        let event = async {
            match &mut joined {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            incoming = tokio::time::timeout(IDLE, stream.next()) => {
                let text = match incoming {
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
                    // binary frames are not XMPP (RFC 7395 3.2); idle, closed or broken: stop
                    _ => break,
                };
                let effects = match crate::xml::parse(&text) {
                    Ok(el) => session.on_frame(&el, &|u, p| cluster.check_password(u, p)),
                    Err(e) => {
                        tracing::debug!("XMPP frame is not XML: {e}");
                        let _ = sink.send(Message::Text(session::close_frame())).await;
                        break;
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
                        Effect::SignedIn(user) => {
                            joined = Some(cluster.hub.join(&user));
                            signed_in = Some(user);
                        }
                        Effect::Deliver { to, frame } => {
                            cluster.hub.send(&to, frame.into());
                        }
                        Effect::Close => close = true,
                    }
                }
                if close {
                    break;
                }
            }
            Some(frame) = event => {
                if sink.send(Message::Text(frame.to_string())).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(joined);
    if let Some(user) = signed_in {
        cluster.session_ended(&user);
    }
    let _ = sink.send(Message::Close(None)).await;
    let _ = sink.close().await;
}
