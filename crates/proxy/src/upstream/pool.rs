//! The connections to one node, reused across requests.
//!
//! HTTP/1.1: idle keep-alive connections are kept last in, first out (the
//! warmest socket goes first; the coldest ages out), at most `max_idle`,
//! none idle longer than `idle_timeout` (shorter than the usual upstream
//! keep-alive, so a socket the node is about to close is rarely reused). A
//! connection goes back to the pool when its answer's body has been read to
//! the end, and never after an upgrade (the connection is the tunnel then).
//!
//! HTTP/2, when the component offers it (`http2 = true`) and a TLS node
//! picks it in the handshake: requests (but upgrades) share multiplexed
//! connections, each carrying at most [`H2_STREAMS`] at a time; the least
//! busy one is used and another is opened when all are that busy (the
//! usual way to keep one TCP stream from carrying everything). Off by
//! default: HTTP/1.1 keep-alive gave the better login p99 in the agent
//! benchmark, with one HTTP/2 connection and with these alike (see
//! BENCHMARKS.md).
//!
//! A request that a reused connection could not even start (closed in the
//! meantime) goes on the next connection; one that was sent is never
//! repeated (it may not be idempotent).
//!
//! Why our own pool and not hyper-util's: hyper-util spawns a task per
//! request to wait for the connection to be ready again, locks a map keyed
//! by scheme and authority, and rebuilds the URI; here the request path
//! does none of that (see BENCHMARKS.md, "Where the time went").

use super::connect::{ConnectError, ConnectInfo, Dialed, NodeConnector, UpStream};
use crate::body::ProxyBody;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Why a request got no answer from the node.
#[derive(Debug)]
pub enum PoolError {
    /// No connection could be made.
    Connect(ConnectError),
    /// The connection failed while the request was on it.
    Http(hyper::Error),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Connect(e) => e.fmt(f),
            PoolError::Http(e) => write!(f, "upstream request failed: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Connect(e) => Some(e),
            PoolError::Http(e) => Some(e),
        }
    }
}

struct Idle {
    tx: http1::SendRequest<ProxyBody>,
    since: Instant,
    info: ConnectInfo,
}

/// Requests one HTTP/2 connection carries at once before another is opened.
pub const H2_STREAMS: usize = 8;

struct Shared {
    tx: http2::SendRequest<ProxyBody>,
    info: ConnectInfo,
    /// Requests on it whose answer has not ended.
    streams: Arc<AtomicUsize>,
    last_used: Instant,
}

#[derive(Default)]
struct State {
    /// Oldest first: taken from the back, aged out from the front.
    idle: VecDeque<Idle>,
    h2: Vec<Shared>,
}

/// The pool of one node.
pub struct Pool {
    connector: NodeConnector,
    max_idle: usize,
    idle_timeout: Duration,
    state: Mutex<State>,
}

impl Pool {
    pub fn new(connector: NodeConnector, max_idle: usize, idle_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            max_idle,
            idle_timeout,
            state: Mutex::new(State::default()),
        })
    }

    /// Sends `req` (origin-form URI, `Host` set) and waits for the answer's head.
    /// `upgrade`: a WebSocket handshake, which needs an HTTP/1.1 connection of its own.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<PooledBody>, PoolError> {
        if !upgrade {
            let shared = if self.connector.offers_h2() {
                self.shared()
            } else {
                None
            };
            if let Some((mut tx, info, stream)) = shared {
                to_h2_form(&mut req);
                return match tx.try_send_request(req).await {
                    Ok(r) => Ok(answer(r, info, None, Some(stream))),
                    Err(mut e) => match e.take_message() {
                        // closed before it started: a new connection below
                        Some(back) => {
                            drop(stream);
                            req = back;
                            from_h2_form(&mut req);
                            // boxed: a second inline copy would double this future's size
                            Box::pin(self.dial_and_send(req, upgrade)).await
                        }
                        None => Err(PoolError::Http(e.into_error())),
                    },
                };
            }
            while let Some(idle) = self.checkout() {
                let mut tx = idle.tx;
                if tx.ready().await.is_err() {
                    continue;
                }
                match tx.try_send_request(req).await {
                    Ok(r) => return Ok(self.h1_answer(r, tx, idle.info)),
                    Err(mut e) => match e.take_message() {
                        Some(back) => req = back,
                        None => return Err(PoolError::Http(e.into_error())),
                    },
                }
            }
        }
        self.dial_and_send(req, upgrade).await
    }

    async fn dial_and_send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<PooledBody>, PoolError> {
        let Dialed { io, info, h2 } = self
            .connector
            .dial(upgrade)
            .await
            .map_err(PoolError::Connect)?;
        if h2 {
            let (mut tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake::<TokioIo<UpStream>, ProxyBody>(io)
                .await
                .map_err(PoolError::Http)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("upstream HTTP/2 connection ended: {e}");
                }
            });
            let streams = Arc::new(AtomicUsize::new(1));
            let stream = Stream(streams.clone());
            if let Ok(mut st) = self.state.lock() {
                if st.h2.len() < self.max_idle {
                    st.h2.push(Shared {
                        tx: tx.clone(),
                        info,
                        streams,
                        last_used: Instant::now(),
                    });
                }
            }
            to_h2_form(&mut req);
            let r = tx.send_request(req).await.map_err(PoolError::Http)?;
            return Ok(answer(r, info, None, Some(stream)));
        }
        let (mut tx, conn) = http1::Builder::new()
            .handshake::<TokioIo<UpStream>, ProxyBody>(io)
            .await
            .map_err(PoolError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!("upstream connection ended: {e}");
            }
        });
        let r = tx.send_request(req).await.map_err(PoolError::Http)?;
        Ok(self.h1_answer(r, tx, info))
    }

    fn h1_answer(
        self: &Arc<Self>,
        r: Response<Incoming>,
        tx: http1::SendRequest<ProxyBody>,
        info: ConnectInfo,
    ) -> Response<PooledBody> {
        // after a 101 the connection belongs to the tunnel
        let back = (r.status() != http::StatusCode::SWITCHING_PROTOCOLS).then(|| Return {
            pool: self.clone(),
            tx,
            info,
        });
        answer(r, info, back, None)
    }

    /// The least busy live HTTP/2 connection with room for one more
    /// request, counted as carrying it; `None`: open another.
    fn shared(&self) -> Option<(http2::SendRequest<ProxyBody>, ConnectInfo, Stream)> {
        let mut st = self.state.lock().ok()?;
        let now = Instant::now();
        let timeout = self.idle_timeout;
        st.h2.retain(|s| {
            !s.tx.is_closed()
                && (s.streams.load(Ordering::Relaxed) > 0
                    || now.duration_since(s.last_used) < timeout)
        });
        let loads = st.h2.iter().map(|s| s.streams.load(Ordering::Relaxed));
        let i = least_busy(loads, H2_STREAMS)?;
        let s = &mut st.h2[i];
        s.streams.fetch_add(1, Ordering::Relaxed);
        s.last_used = now;
        Some((s.tx.clone(), s.info, Stream(s.streams.clone())))
    }

    /// The most recently used idle connection that may still be alive.
    fn checkout(&self) -> Option<Idle> {
        let mut st = self.state.lock().ok()?;
        let now = Instant::now();
        st.age_out(now, self.idle_timeout);
        while let Some(idle) = st.idle.pop_back() {
            if !idle.tx.is_closed() {
                return Some(idle);
            }
        }
        None
    }

    fn checkin(&self, tx: http1::SendRequest<ProxyBody>, info: ConnectInfo) {
        if tx.is_closed() {
            return;
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        st.age_out(now, self.idle_timeout);
        if st.idle.len() >= self.max_idle {
            st.idle.pop_front();
        }
        st.idle.push_back(Idle {
            tx,
            since: now,
            info,
        });
    }
}

/// The index of the least loaded connection, if it has room under `limit`
/// (the first of equals: the oldest stays warm, the newest can age out).
fn least_busy(loads: impl Iterator<Item = usize>, limit: usize) -> Option<usize> {
    let (i, load) = loads.enumerate().min_by_key(|&(_, l)| l)?;
    (load < limit).then_some(i)
}

/// One request counted on an HTTP/2 connection until its answer ends.
pub struct Stream(Arc<AtomicUsize>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl State {
    /// Dropping the sender lets its connection task close the socket.
    fn age_out(&mut self, now: Instant, timeout: Duration) {
        while self
            .idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) >= timeout)
        {
            self.idle.pop_front();
        }
    }
}

/// `Host` becomes `:authority` (with the scheme) on HTTP/2.
fn to_h2_form(req: &mut Request<ProxyBody>) {
    let authority = req
        .headers_mut()
        .remove(http::header::HOST)
        .and_then(|h| http::uri::Authority::try_from(h.as_bytes()).ok());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTPS);
    parts.authority = authority;
    if let Ok(u) = http::Uri::from_parts(parts) {
        *req.uri_mut() = u;
    }
    *req.version_mut() = http::Version::HTTP_2;
}

/// Back to HTTP/1.1 form, for a request the HTTP/2 connection never took.
fn from_h2_form(req: &mut Request<ProxyBody>) {
    let uri = std::mem::take(req.uri_mut());
    if let Some(a) = uri.authority() {
        if let Ok(v) = http::HeaderValue::from_str(a.as_str()) {
            req.headers_mut().insert(http::header::HOST, v);
        }
    }
    let mut parts = uri.into_parts();
    parts.scheme = None;
    parts.authority = None;
    if let Ok(u) = http::Uri::from_parts(parts) {
        *req.uri_mut() = u;
    }
    *req.version_mut() = http::Version::HTTP_11;
}

fn answer(
    r: Response<Incoming>,
    info: ConnectInfo,
    back: Option<Return>,
    stream: Option<Stream>,
) -> Response<PooledBody> {
    let (mut parts, inner) = r.into_parts();
    parts.extensions.insert(info);
    let mut body = PooledBody {
        inner,
        back,
        stream,
    };
    if body.inner.is_end_stream() {
        body.give_back();
    }
    Response::from_parts(parts, body)
}

/// An HTTP/1.1 connection waiting for its answer's body to end.
struct Return {
    pool: Arc<Pool>,
    tx: http1::SendRequest<ProxyBody>,
    info: ConnectInfo,
}

/// The node's answer body; its end returns the connection to the pool
/// (HTTP/1.1) or frees its place on the connection (HTTP/2).
pub struct PooledBody {
    inner: Incoming,
    back: Option<Return>,
    stream: Option<Stream>,
}

impl PooledBody {
    fn give_back(&mut self) {
        self.stream = None;
        if let Some(r) = self.back.take() {
            r.pool.checkin(r.tx, r.info);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.give_back(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.give_back(),
            // a broken body leaves the connection in an unknown state
            Poll::Ready(Some(Err(_))) => {
                this.back = None;
                this.stream = None;
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// A body dropped before its end takes its connection with it (hyper closes
// a connection whose answer was not read to the end): `back` just drops.

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::empty;

    #[test]
    fn the_least_busy_connection_with_room_is_chosen() {
        let pick = |loads: &[usize]| least_busy(loads.iter().copied(), 8);
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[3, 1, 1, 5]), Some(1));
        assert_eq!(pick(&[8, 8]), None, "all full: open another");
        assert_eq!(pick(&[8, 7]), Some(1));
    }

    #[test]
    fn a_stream_is_counted_until_it_ends() {
        let n = Arc::new(AtomicUsize::new(1));
        let s = Stream(n.clone());
        assert_eq!(n.load(Ordering::Relaxed), 1);
        drop(s);
        assert_eq!(n.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn host_becomes_authority_and_back() {
        let mut req = Request::get("/finesse/api/User/1?x=1")
            .header("host", "finesse.example.com:8445")
            .body(empty())
            .expect("req");
        to_h2_form(&mut req);
        assert_eq!(
            req.uri().to_string(),
            "https://finesse.example.com:8445/finesse/api/User/1?x=1"
        );
        assert!(req.headers().get("host").is_none());
        assert_eq!(req.version(), http::Version::HTTP_2);
        from_h2_form(&mut req);
        assert_eq!(req.uri().to_string(), "/finesse/api/User/1?x=1");
        assert_eq!(req.headers()["host"], "finesse.example.com:8445");
        assert_eq!(req.version(), http::Version::HTTP_11);
    }
}
