//! One Finesse node: HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with its own
//! certificate, optionally requiring a client certificate (the upstream
//! mutual-TLS mode), and the dispatch of each request.

use crate::names::{poll_map, Awareness, HostPort};
use crate::Cluster;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ipnet::IpNet;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub type Reply = Response<Full<Bytes>>;

/// Largest request body read (state changes are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn response(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

pub fn empty(status: StatusCode) -> Reply {
    response(status, Bytes::new())
}

pub fn xml_response(status: StatusCode, body: String) -> Reply {
    let mut r = response(status, body.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}

/// How one node is set up.
pub struct NodeConfig {
    /// Its internal name and HTTPS port, as in the proxy map's left side.
    pub name: HostPort,
    /// The other node of the pair.
    pub peer: Option<HostPort>,
    /// Side A is the primary node.
    pub primary: bool,
    pub cert_pem: String,
    pub key_pem: String,
    /// When set, a client certificate signed by this CA is required.
    pub client_ca_pem: Option<String>,
    /// Requests from these addresses are proxied requests.
    pub allowed_proxies: Vec<IpNet>,
    /// The proxy's `/proxymap.txt` (plain HTTP).
    pub proxymap_url: Option<String>,
    pub proxymap_every: Duration,
}

/// A running node.
pub struct Node {
    pub addr: SocketAddr,
    pub awareness: Arc<Awareness>,
    stop: watch::Sender<bool>,
}

impl Node {
    /// Binds `addr` (port 0 picks one) and serves.
    pub async fn bind(
        addr: SocketAddr,
        cfg: NodeConfig,
        cluster: Arc<Cluster>,
    ) -> Result<Node, String> {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot bind {addr}: {e}"))?;
        Node::start(tcp, cfg, cluster)
    }

    /// Serves on an already bound socket.
    pub fn start(tcp: TcpListener, cfg: NodeConfig, cluster: Arc<Cluster>) -> Result<Node, String> {
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        let tls = Arc::new(tls_config(&cfg)?);
        let awareness = Arc::new(Awareness::new(
            cfg.name.clone(),
            cfg.peer.clone(),
            cfg.primary,
            cfg.allowed_proxies.clone(),
        ));
        let (stop, stop_rx) = watch::channel(false);
        if let Some(url) = cfg.proxymap_url.clone() {
            let aw = awareness.clone();
            let mut rx = stop_rx.clone();
            let every = cfg.proxymap_every;
            tokio::spawn(async move {
                tokio::select! {
                    _ = poll_map(aw, url, every) => {}
                    _ = stopped(&mut rx) => {}
                }
            });
        }
        let ctx = Arc::new(Ctx {
            cluster,
            awareness: awareness.clone(),
            stop: stop_rx.clone(),
        });
        tokio::spawn(accept_loop(tcp, tls, ctx, stop_rx));
        tracing::info!(%addr, name = %cfg.name, "Finesse node listening");
        Ok(Node {
            addr,
            awareness,
            stop,
        })
    }

    /// Stops accepting and closes open connections.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tls_config(cfg: &NodeConfig) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Result<Vec<_>, _> =
        CertificateDer::pem_slice_iter(cfg.cert_pem.as_bytes()).collect();
    let certs = certs.map_err(|e| format!("node certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(cfg.key_pem.as_bytes())
        .map_err(|e| format!("node key: {e}"))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match &cfg.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots
                    .add(c.map_err(|e| format!("client CA: {e}"))?)
                    .map_err(|e| format!("client CA: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("node certificate: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Resolves when `rx` turns true (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

struct Ctx {
    cluster: Arc<Cluster>,
    awareness: Arc<Awareness>,
    /// Turns true when the node stops: WebSocket sessions end with it.
    stop: watch::Receiver<bool>,
}

async fn accept_loop(
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (sock, peer) = tokio::select! {
            a = tcp.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => return,
        };
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let conn = async {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await
                {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let service = hyper::service::service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, std::convert::Infallible>(dispatch(req, peer, &ctx).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = stopped(&mut stop) => {}
            }
        });
    }
}

async fn dispatch(req: Request<Incoming>, peer: SocketAddr, ctx: &Ctx) -> Reply {
    let names = ctx.awareness.names_for(peer.ip());
    if names.proxied {
        if let Some(refusal) = refuse_proxied_host(&req, &ctx.awareness) {
            return refusal;
        }
    }
    let path = req.uri().path().to_string();
    tracing::debug!(%peer, method = %req.method(), %path, proxied = names.proxied, "request");
    if path == "/ws/" || path == "/ws" {
        return crate::xmpp::accept(req, ctx.cluster.clone(), ctx.stop.clone());
    }
    if let Some(api) = path.strip_prefix("/finesse/api/") {
        let api = api.to_string();
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return xml_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    crate::resources::api_error("Invalid Input", "the body is too large", ""),
                )
            }
        };
        let call = crate::rest::Call {
            method: &parts.method,
            path: &api,
            headers: &parts.headers,
            body: &body,
            names: &names,
        };
        return crate::rest::handle(&call, &ctx.cluster);
    }
    if matches!(
        path.as_str(),
        "/desktop/sso/token" | "/ids/v1/keys" | "/ids/v1/keys.pem"
    ) {
        let query = req.uri().query().unwrap_or("").to_string();
        let (parts, body) = req.into_parts();
        let body = Limited::new(body, 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return crate::sso::endpoint(&path, &parts.method, &query, &body, &ctx.cluster);
    }
    crate::desktop::handle(
        &path,
        req.uri().query(),
        req.headers(),
        &names,
        &ctx.cluster,
    )
}

/// Finesse answers 400 to a proxied request whose Host is not this node's
/// external name in the proxy map (the proxy must pass the name the client
/// used, and must have sent it to the right node).
fn refuse_proxied_host(req: &Request<Incoming>, aw: &Awareness) -> Option<Reply> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .and_then(HostPort::parse);
    match host {
        Some(h) if aw.is_own_external(&h) => None,
        _ => Some(xml_response(
            StatusCode::BAD_REQUEST,
            crate::resources::api_error(
                "Invalid Host",
                "a proxied request must carry an external host:port from the proxy map",
                "",
            ),
        )),
    }
}
