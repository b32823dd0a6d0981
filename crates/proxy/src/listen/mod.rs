//! Step 1: accept, connection caps, plain-HTTP detection, TLS handshake
//! with a timeout, ALPN, and serving HTTP/1.1 or HTTP/2 on the connection
//! until it idles out, the client leaves or the server drains.

pub mod activity;
pub mod internal;
pub mod tls;

use crate::pipeline;
use crate::pipeline::log::{AccessLog, LogGuard, Record};
use crate::Snapshot;
use activity::{Activity, Tracked, Verdict};
use deskgate_config::Listener;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// State shared by every connection of one instance.
pub struct Shared {
    /// The deployment this instance serves (a reload will swap it here).
    pub snapshot: Arc<Snapshot>,
    pub access_log: Arc<AccessLog>,
    /// Edge-security state: caches, blocks, buckets, caps, security log.
    pub guard: crate::security::Guard,
    /// Answers kept in memory (SPEC 8).
    pub cache: crate::cache::Cache,
    connections: Arc<Semaphore>,
    ids: AtomicU64,
    id_prefix: u32,
    /// `true` once draining starts: stop accepting, finish what is open.
    draining: watch::Receiver<bool>,
    /// `true` when the drain time is over: close everything.
    stopped: watch::Receiver<bool>,
}

impl Shared {
    pub fn new(
        snapshot: Arc<Snapshot>,
        access_log: Arc<AccessLog>,
        guard: crate::security::Guard,
        draining: watch::Receiver<bool>,
        stopped: watch::Receiver<bool>,
    ) -> Arc<Shared> {
        let max = snapshot.deployment.limits.max_connections;
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        let cache = crate::cache::Cache::new(&snapshot.deployment.cache);
        Arc::new(Shared {
            cache,
            snapshot,
            access_log,
            guard,
            connections: Arc::new(Semaphore::new(max)),
            ids: AtomicU64::new(0),
            id_prefix,
            draining,
            stopped,
        })
    }

    /// 16 hex digits: the process's prefix, then a counter.
    pub fn next_request_id(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        let v = (u64::from(self.id_prefix) << 32) | (n & 0xffff_ffff);
        let mut id = String::with_capacity(16);
        for shift in (0..16).rev() {
            id.push(HEX[((v >> (shift * 4)) & 0xf) as usize] as char);
        }
        id
    }

    /// Resolves when the drain time is over.
    pub fn hard_stop(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.stopped.clone();
        async move {
            let _ = crate::listen::until(&mut rx).await;
        }
    }

    /// Connections currently open (for status and tests).
    pub fn open_connections(&self) -> usize {
        self.snapshot.deployment.limits.max_connections - self.connections.available_permits()
    }
}

/// Resolves once the flag is set (drain, stop).
pub async fn until(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|set| *set).await;
}

/// What the pipeline knows about the connection a request came on.
pub struct ConnInfo {
    /// The connection's slot under the global cap; a tunnel keeps it until it ends.
    _slot: OwnedSemaphorePermit,
    /// The connection's slot under the per-IP cap (none for exempt peers).
    _ip_slot: Option<IpSlot>,
    pub peer: SocketAddr,
    pub listener: Arc<Listener>,
    /// The listener's name, shared by the log records of the connection.
    listener_name: Arc<str>,
    pub sni: Option<String>,
    pub shared: Arc<Shared>,
    pub activity: Arc<Activity>,
    pub requests: AtomicU64,
}

impl ConnInfo {
    /// The start of an access log record for a request on this connection.
    pub fn record(&self, method: http::Method, path: String, proto: &'static str) -> Record {
        Record {
            request_id: self.shared.next_request_id(),
            listener: self.listener_name.clone(),
            peer: Some(self.peer.ip()),
            method,
            method_known: true,
            path,
            proto,
            cache: "-",
            ..Default::default()
        }
    }
}

/// Serves one external listener until draining starts.
pub async fn serve(tcp: TcpListener, listener: Arc<Listener>, shared: Arc<Shared>) {
    let acceptor = match tls::server_config(listener.clone()) {
        Ok(c) => TlsAcceptor::from(c),
        Err(e) => {
            tracing::error!(listener = %listener.name, "TLS setup failed: {e}");
            return;
        }
    };
    let builder = Arc::new(http_builder(&shared));
    let mut draining = shared.draining.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = tcp.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // out of file descriptors and the like: back off briefly
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::listen::until(&mut draining) => break,
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection cap reached: closing at accept");
            drop(stream);
            continue;
        };
        let Some(ip_slot) = per_ip_slot(&shared, peer) else {
            drop(stream);
            continue;
        };
        let (acceptor, listener, shared, builder) = (
            acceptor.clone(),
            listener.clone(),
            shared.clone(),
            builder.clone(),
        );
        tokio::spawn(connection(
            stream,
            peer,
            (permit, ip_slot),
            acceptor,
            listener,
            shared,
            builder,
        ));
    }
}

type IpSlot = deskgate_policy::counters::Slot<deskgate_policy::IpKey>;

/// The per-IP connection cap at accept (SPEC 4): before TLS, so there is
/// no HTTP to answer with; the connection is closed. `None`: close it;
/// `Some(None)`: exempt (trusted intermediaries, the exempt list).
fn per_ip_slot(shared: &Shared, peer: SocketAddr) -> Option<Option<IpSlot>> {
    let g = &shared.guard;
    let d = &shared.snapshot.deployment;
    if g.is_exempt(peer.ip(), d) {
        return Some(None);
    }
    let r = &g.settings.rate;
    let cap = r.connections_per_ip.saturating_mul(r.nat_factor);
    let key = deskgate_policy::IpKey::of(peer.ip());
    match g.connections.try_take(key, cap) {
        Some(s) => Some(Some(s)),
        None => {
            let mut e = crate::pipeline::seclog::Event::new(
                crate::pipeline::seclog::Kind::ConnectionCap,
                "connections_per_ip",
            );
            e.client_ip = Some(peer.ip());
            e.dry_run = r.dry_run;
            g.log.write(e);
            r.dry_run.then_some(None)
        }
    }
}

fn http_builder(shared: &Shared) -> auto::Builder<TokioExecutor> {
    let d = &shared.snapshot.deployment;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .max_buf_size(d.limits.max_head.max(8192))
        .max_headers(d.limits.max_headers)
        // the connection task enforces the head and idle limits (`Activity`,
        // checked every second); hyper's own timer would cost a timer entry
        // and an allocation per request
        .header_read_timeout(None);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(d.limits.h2_max_streams)
        .max_header_list_size(d.limits.max_head as u32)
        // rapid reset: few pending resets allowed; CONTINUATION floods are
        // bounded by the header list size in h2
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256));
    b
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    (slot, ip_slot): (OwnedSemaphorePermit, Option<IpSlot>),
    acceptor: TlsAcceptor,
    listener: Arc<Listener>,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
) {
    let t = &shared.snapshot.deployment.timeouts;
    let _ = stream.set_nodelay(true);
    let handshake = async {
        // plain HTTP on a TLS port: close without a word (reference: 444)
        let mut first = [0u8; 1];
        match stream.peek(&mut first).await {
            Ok(1) if first[0] == 0x16 => {}
            _ => return None,
        }
        acceptor.accept(stream).await.ok()
    };
    let tls = match tokio::time::timeout(t.handshake, handshake).await {
        Ok(Some(s)) => s,
        _ => return,
    };
    let (_, session) = tls.get_ref();
    let sni = session.server_name().map(|s| s.to_ascii_lowercase());
    let is_h2 = session.alpn_protocol() == Some(b"h2");
    let activity = Activity::new();
    let info = Arc::new(ConnInfo {
        _slot: slot,
        _ip_slot: ip_slot,
        peer,
        listener_name: listener.name.as_str().into(),
        listener,
        sni,
        shared: shared.clone(),
        activity: activity.clone(),
        requests: AtomicU64::new(0),
    });
    let info_for_log = info.clone();
    let service = service_fn(move |req| pipeline::handle(req, info.clone()));
    let io = TokioIo::new(Tracked::new(tls, activity.clone()));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut draining = shared.draining.clone();
    let mut stopped = shared.stopped.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let head_timeout = (!is_h2).then_some(t.request_head);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    log_parser_rejection(&info_for_log, e.as_ref(), is_h2);
                }
                break;
            }
            _ = tick.tick() => match activity.check(t.keepalive, head_timeout, t.send_idle) {
                Verdict::KeepGoing => {}
                Verdict::Shutdown if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
                Verdict::Shutdown => {}
                Verdict::Abort => {
                    if activity.head_pending() {
                        log_rejection(&info_for_log, 408, "head_timeout", is_h2);
                    }
                    break;
                }
            },
            _ = crate::listen::until(&mut draining), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = crate::listen::until(&mut stopped) => break,
        }
    }
}

/// Requests the HTTP parser refused before the pipeline saw them (head too
/// large, too many fields, bad syntax) still get their one access log line.
fn log_parser_rejection(
    conn: &ConnInfo,
    e: &(dyn std::error::Error + Send + Sync + 'static),
    is_h2: bool,
) {
    let Some(e) = e.downcast_ref::<hyper::Error>() else {
        return;
    };
    // hyper answers these itself: 414 for a long URI, 431 for a large head, 400 else
    let (status, reason) = if e.is_parse_too_large() && e.to_string().contains("URI too long") {
        (414, "uri_too_long")
    } else if e.is_parse_too_large() {
        (431, "head_too_large")
    } else if e.is_parse() {
        (400, "malformed_request")
    } else {
        return;
    };
    log_rejection(conn, status, reason, is_h2);
}

/// One access log line for a request that never reached the pipeline.
fn log_rejection(conn: &ConnInfo, status: u16, reason: &'static str, is_h2: bool) {
    let proto = if is_h2 { "h2" } else { "http/1.1" };
    let mut record = conn.record(http::Method::GET, "-".into(), proto);
    record.method_known = false;
    record.client_ip = Some(conn.peer.ip());
    record.status = status;
    record.deny = Some(reason);
    let mut guard = LogGuard::new(conn.shared.access_log.clone(), record, None);
    guard.mark_complete();
}
