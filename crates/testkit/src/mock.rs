//! Mock upstreams that misbehave on purpose: echo, slow, reset mid-body,
//! and a WebSocket endpoint that echoes raw bytes and records them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 200 with the request head as the body.
    Echo,
    /// Like `Echo`, one second late (for drain tests).
    DelayedEcho,
    /// 200 with a 64 MB body (for clients that stop reading).
    Huge,
    /// Sends a head promising 100000 bytes, 1000 bytes, then nothing, forever.
    StallMidBody,
    /// Accepts and reads the request, never answers.
    Slow,
    /// Sends a head promising 100000 bytes, 1000 bytes, then a TCP reset.
    ResetMidBody,
    /// 101 for upgrades (with `xmpp` when offered), then echoes raw bytes.
    WebSocketEcho,
    /// Checks Basic credentials like Finesse: user `U` has password
    /// `pw-U` ([`mock_password`]); a wrong one gets 401, a right one or none
    /// gets `Echo`'s answer; upgrades get `WebSocketEcho`'s. Records all.
    Finesse,
    /// `Finesse`, answering credential checks (`deskgate-auth`) 300 ms late.
    SlowFinesse,
    /// A web server for cache tests, driven by words in the path; see [`origin_answer`].
    Origin,
}

/// The password of user `user` on a `Behaviour::Finesse` mock.
pub fn mock_password(user: &str) -> String {
    format!("pw-{user}")
}

/// Does the head carry a Basic credential, and is it right for the mock?
fn mock_credential(head: &str) -> Option<bool> {
    use base64::Engine;
    let value = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string())?;
    let b64 = value.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(password == mock_password(user))
}

/// A running mock; the task stops when this is dropped.
pub struct Mock {
    pub addr: SocketAddr,
    /// Request heads seen, in order.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// Raw bytes received after an upgrade.
    pub tunnel_bytes: Arc<Mutex<Vec<u8>>>,
    /// TCP connections accepted (to see pooling).
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// `Origin`: the version of every file (its ETag is `"v<version>"`).
    pub version: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mock {
    pub async fn start(behaviour: Behaviour, tls: Option<Arc<rustls::ServerConfig>>) -> Mock {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let tunnel_bytes = Arc::new(Mutex::new(Vec::new()));
        let (h, t) = (heads.clone(), tunnel_bytes.clone());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = connections.clone();
        let version = Arc::new(std::sync::atomic::AtomicU64::new(1));
        let v = version.clone();
        let acceptor = tls.map(TlsAcceptor::from);
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (h, t, acceptor, v) = (h.clone(), t.clone(), acceptor.clone(), v.clone());
                tokio::spawn(async move {
                    // dropping the socket then resets instead of closing (ResetMidBody);
                    // linger 0 does not block on drop: it sends RST at once, which is the point
                    #[allow(deprecated)]
                    let _ = s.set_linger(Some(Duration::ZERO));
                    match acceptor {
                        Some(a) => {
                            if let Ok(tls) = a.accept(s).await {
                                serve(tls, behaviour, h, t, v).await;
                            }
                        }
                        None => serve(s, behaviour, h, t, v).await,
                    }
                });
            }
        });
        Mock {
            addr,
            heads,
            tunnel_bytes,
            connections,
            version,
            task,
        }
    }

    pub fn last_head(&self) -> String {
        self.heads
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

async fn read_head<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            return Some((head, len));
        }
        let mut tmp = [0u8; 8192];
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    b: Behaviour,
    heads: Arc<Mutex<Vec<String>>>,
    tunnel: Arc<Mutex<Vec<u8>>>,
    version: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut buf = Vec::new();
    while let Some((head, len)) = read_head(&mut s, &mut buf).await {
        // read (and discard) the body, chunked or not
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body_len;
        if chunked {
            loop {
                if find(&buf, b"0\r\n\r\n").is_some() {
                    body_len = buf.len();
                    buf.clear();
                    break;
                }
                let mut tmp = [0u8; 8192];
                match s.read(&mut tmp).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
        } else {
            while buf.len() < len {
                let mut tmp = [0u8; 8192];
                match s.read(&mut tmp).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            }
            body_len = len;
            buf.drain(..len);
        }
        heads.lock().expect("lock").push(head.clone());
        if let Behaviour::DelayedEcho = b {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Behaviour::Origin = b {
            let v = version.load(std::sync::atomic::Ordering::SeqCst);
            let (resp, delay) = origin_answer(&head, v);
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if s.write_all(&resp).await.is_err() {
                return;
            }
            if head
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p.contains("hangup"))
            {
                // closes a keep-alive connection without saying so, as an
                // upstream whose idle timeout ran out does
                return;
            }
            continue;
        }
        let is_upgrade = head.to_ascii_lowercase().contains("\r\nupgrade: websocket");
        let b = match b {
            Behaviour::SlowFinesse => {
                if head.contains("deskgate-auth") {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Behaviour::Finesse
            }
            other => other,
        };
        let b = match b {
            Behaviour::Finesse if is_upgrade => Behaviour::WebSocketEcho,
            Behaviour::Finesse if mock_credential(&head) == Some(false) => {
                let body = "<ApiErrors><ApiError><ErrorType>Authorization Failure</ErrorType></ApiError></ApiErrors>";
                let resp = format!(
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\nContent-Type: application/xml\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
            Behaviour::Finesse => Behaviour::Echo,
            other => other,
        };
        match b {
            Behaviour::Echo
            | Behaviour::DelayedEcho
            | Behaviour::Finesse
            | Behaviour::SlowFinesse
            | Behaviour::Origin => {
                let body = format!("{head}\r\nbody-bytes: {body_len}\r\n");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nServer: mock-upstream/9.9\r\nX-Upstream: yes\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behaviour::Huge => {
                let head = "HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'h'; 64 * 1024];
                for _ in 0..1024 {
                    if s.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
            Behaviour::StallMidBody => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    .await;
                let _ = s.write_all(&[b's'; 1000]).await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Behaviour::Slow => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Behaviour::ResetMidBody => {
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    .await;
                let _ = s.write_all(&[b'x'; 1000]).await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                return; // dropped with SO_LINGER 0: a reset
            }
            Behaviour::WebSocketEcho => {
                let key = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-key"))
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default();
                let proto = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-protocol"))
                    .map(|(_, v)| v.to_string());
                let accept =
                    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
                let mut resp = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n");
                if proto.is_some_and(|p| p.split(',').any(|x| x.trim() == "xmpp")) {
                    resp.push_str("Sec-WebSocket-Protocol: xmpp\r\n");
                }
                resp.push_str("\r\n");
                if s.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
                if !buf.is_empty() {
                    tunnel.lock().expect("lock").extend_from_slice(&buf);
                    let _ = s.write_all(&buf).await;
                }
                let mut tmp = vec![0u8; 65536];
                loop {
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            tunnel.lock().expect("lock").extend_from_slice(&tmp[..n]);
                            if s.write_all(&tmp[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn header_of<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// `Origin`'s answer to a request head, and how long to wait before it.
/// Words in the path choose the answer's headers:
/// - `nocache`: `Cache-Control: no-cache` (kept, revalidated on every use);
/// - `private`: `private, max-age=60`; `public`: `public, max-age=60`;
///   `nostore`: `no-store`; `cookie`: a `Set-Cookie`;
/// - `vary`: `Vary: Accept-Encoding`, and the body names the encoding asked for;
/// - `slow`: answered 300 ms late; `size-N`: a body of N bytes;
/// - `/api/`: a REST answer with no cache headers (never cacheable).
/// - `hangup`: the connection is closed after the answer, without `Connection: close`.
///
/// A wrong Basic password (see [`mock_password`]) gets Finesse's 401.
/// Every answer has `ETag: "v<version>"` and a `Last-Modified` of that
/// version; a matching `If-None-Match` gets 304. The body names the path,
/// the version and the Basic user of the request.
pub fn origin_answer(head: &str, version: u64) -> (Vec<u8>, Option<Duration>) {
    use base64::Engine;
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let etag = format!("\"v{version}\"");
    let modified = format!("Sun, 06 Nov 1994 08:49:{:02} GMT", version % 60);
    let mut extra = String::new();
    let file = !path.contains("/api/");
    if file {
        extra.push_str(&format!("ETag: {etag}\r\nLast-Modified: {modified}\r\n"));
    }
    for (word, h) in [
        ("nocache", "Cache-Control: no-cache"),
        ("private", "Cache-Control: private, max-age=60"),
        ("public", "Cache-Control: public, max-age=60"),
        ("nostore", "Cache-Control: no-store"),
        ("cookie", "Set-Cookie: JSESSIONID=abc; Path=/"),
        ("vary", "Vary: Accept-Encoding"),
    ] {
        if path.contains(word) {
            extra.push_str(h);
            extra.push_str("\r\n");
        }
    }
    if mock_credential(head) == Some(false) {
        // like Finesse: a wrong password is refused
        let body = "<ApiErrors><ApiError><ErrorType>Authorization Failure</ErrorType></ApiError></ApiErrors>";
        let resp = format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        return (resp.into_bytes(), None);
    }
    let delay = path.contains("slow").then_some(Duration::from_millis(300));
    if file
        && header_of(head, "if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        let resp = format!("HTTP/1.1 304 Not Modified\r\n{extra}\r\n");
        return (resp.into_bytes(), delay);
    }
    let user = header_of(head, "authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|t| t.split_once(':').map(|(u, _)| u.to_string()))
        .unwrap_or_else(|| "-".into());
    let enc = header_of(head, "accept-encoding").unwrap_or("-");
    let mut body = format!("{path} v{version} user={user} enc={enc}\n").into_bytes();
    if let Some(n) = path
        .split(['/', '?', '&', '.'])
        .find_map(|w| w.strip_prefix("size-"))
        .and_then(|n| n.parse::<usize>().ok())
    {
        body.resize(n.max(body.len()), b'.');
    }
    let mut resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    (resp, delay)
}
