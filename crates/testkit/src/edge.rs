//! Helpers for the edge-security tests: a recording Finesse-like upstream
//! behind deskgate with the gate on, requests with any headers, and raw
//! WebSocket upgrades whose answer head is returned.

use crate::client::{Client, Resp};
use crate::deskgate::{one_route, Gate, Setup};
use crate::mock::{mock_password, Behaviour, Mock};
use crate::pki::Pki;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const FINESSE: &str = "finesse1a.example.com:8445";
pub const LIVEDATA: &str = "livedataa.example.com:8445";
pub const GADGET: &str = "other.example.com:8445";
pub const IDS: &str = "idsa.example.com:8445";

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    crate::sim::basic(user, password)
}

/// The right credential of `user` on the Finesse mock.
pub fn good(user: &str) -> String {
    basic(user, &mock_password(user))
}

/// deskgate with `auth = "finesse"` in front of a recording Finesse mock
/// (every component on it); `extra` is appended to the config and
/// `component_extra` goes into the Finesse component.
pub async fn finesse_rig(extra: &str, component_extra: &str) -> (Pki, Mock, Gate) {
    finesse_rig_with(Behaviour::Finesse, extra, component_extra).await
}

/// `finesse_rig` with another Finesse-like behaviour (e.g. `SlowFinesse`).
pub async fn finesse_rig_with(
    b: Behaviour,
    extra: &str,
    component_extra: &str,
) -> (Pki, Mock, Gate) {
    let pki = Pki::new();
    let mock = Mock::start(b, None).await;
    let setup = Setup {
        upstream: mock.addr,
        extra,
        component_extra,
        auth: "finesse",
        ..Setup::default()
    };
    let gate = Gate::start(&pki, &one_route(&pki, &setup)).await;
    (pki, mock, gate)
}

/// A client of the gate's listener for `host` (its SNI), from source address `ip`.
pub fn client(pki: &Pki, gate: &Gate, host: &str, ip: &str) -> Client {
    let sni = host.split(':').next().unwrap_or(host);
    Client::new(pki, gate.addr("front"), sni).from_ip(ip)
}

/// A request with these headers (and Host).
pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).expect("request")
}

/// The `name=value` of deskgate's session cookie in an answer.
pub fn session_cookie(r: &Resp) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with("__Host-deskgate-session="))
        .map(str::to_string)
}

/// One HTTP/1.1 request with these headers.
pub async fn send(
    c: &Client,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Resp {
    c.h1(request(method, host, path, headers))
        .await
        .expect("h1 request")
}

/// A WebSocket upgrade offering `protocols`, with extra headers; returns the
/// answer's head, and the stream when the upgrade succeeded.
pub async fn upgrade(
    c: &Client,
    host: &str,
    path: &str,
    protocols: &str,
    headers: &[(&str, &str)],
) -> (
    String,
    Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
) {
    let mut s = c.tls(false).await.expect("tls");
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: {protocols}\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let upgraded = head.starts_with("HTTP/1.1 101");
    (head, upgraded.then_some(s))
}
