//! Dialing one upstream node: TCP with a connect timeout, then TLS with the
//! node's internal name for SNI and verification (and a client certificate
//! when mutual TLS is configured).

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why a connection to a node could not be made.
#[derive(Debug)]
pub enum ConnectError {
    Timeout,
    Io(io::Error),
    Tls(io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Timeout => f.write_str("upstream connect timed out"),
            ConnectError::Io(e) => write!(f, "upstream connect failed: {e}"),
            ConnectError::Tls(e) => write!(f, "upstream TLS handshake failed: {e}"),
        }
    }
}
impl std::error::Error for ConnectError {}

struct Inner {
    dial: String,
    server_name: ServerName<'static>,
    /// TLS offering only HTTP/1.1 (for upgrades: the tunnel needs HTTP/1.1).
    tls_h1: Option<TlsConnector>,
    /// TLS offering HTTP/2 and HTTP/1.1: the node picks (ALPN).
    tls_any: Option<TlsConnector>,
    offer_h2: bool,
    timeout: Duration,
}

/// A connector bound to one node.
#[derive(Clone)]
pub struct NodeConnector(Arc<Inner>);

/// A new connection to a node, and what it speaks.
pub struct Dialed {
    pub io: TokioIo<UpStream>,
    pub info: ConnectInfo,
    /// The node chose HTTP/2 in the TLS handshake.
    pub h2: bool,
}

impl NodeConnector {
    /// `tls`: the node's client configuration (HTTP/1.1 in its ALPN);
    /// `offer_h2`: also offer HTTP/2 to the node on ordinary requests.
    pub fn new(
        dial: String,
        internal_host: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        offer_h2: bool,
        timeout: Duration,
    ) -> Result<Self, String> {
        let server_name = ServerName::try_from(internal_host.to_string())
            .map_err(|_| format!("{internal_host:?} is not a valid TLS server name"))?;
        let tls_any = tls.as_ref().map(|c| {
            if !offer_h2 {
                return TlsConnector::from(c.clone());
            }
            let mut any = (**c).clone();
            any.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            TlsConnector::from(Arc::new(any))
        });
        Ok(NodeConnector(Arc::new(Inner {
            dial,
            server_name,
            offer_h2: offer_h2 && tls.is_some(),
            tls_h1: tls.map(TlsConnector::from),
            tls_any,
            timeout,
        })))
    }

    /// HTTP/2 may come back from a dial (a TLS node that picked it).
    pub fn offers_h2(&self) -> bool {
        self.0.offer_h2
    }

    /// TCP (bounded by the connect timeout), then TLS when the node uses it.
    /// `upgrade`: the connection is for a WebSocket, HTTP/1.1 only.
    pub async fn dial(&self, upgrade: bool) -> Result<Dialed, ConnectError> {
        let inner = &self.0;
        let started = std::time::Instant::now();
        let connect = async {
            let addrs = tokio::net::lookup_host(inner.dial.as_str())
                .await
                .map_err(ConnectError::Io)?;
            let mut last = ConnectError::Io(io::Error::new(io::ErrorKind::NotFound, "no address"));
            for a in addrs {
                match TcpStream::connect(a).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = ConnectError::Io(e),
                }
            }
            Err(last)
        };
        let tcp = tokio::time::timeout(inner.timeout, connect)
            .await
            .map_err(|_| ConnectError::Timeout)??;
        let _ = tcp.set_nodelay(true);
        let tls = if upgrade {
            &inner.tls_h1
        } else {
            &inner.tls_any
        };
        let (io, h2) = match tls {
            None => (UpIo::Plain(tcp), false),
            Some(tls) => {
                let hs = tls.connect(inner.server_name.clone(), tcp);
                let s = tokio::time::timeout(inner.timeout, hs)
                    .await
                    .map_err(|_| ConnectError::Timeout)?
                    .map_err(ConnectError::Tls)?;
                let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                (UpIo::Tls(Box::new(s)), h2)
            }
        };
        let info = ConnectInfo {
            at: started,
            took: started.elapsed(),
        };
        Ok(Dialed {
            io: TokioIo::new(UpStream { io }),
            info,
            h2,
        })
    }
}

/// When a connection to a node was made and how long that took; the pool
/// puts it on every response the connection carries, so the access log can
/// tell a fresh connection from a reused one.
#[derive(Clone, Copy, Debug)]
pub struct ConnectInfo {
    pub at: std::time::Instant,
    pub took: Duration,
}

/// A plain or TLS connection to a node.
pub struct UpStream {
    io: UpIo,
}

enum UpIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            UpIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            UpIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            UpIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            UpIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            UpIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match &self.io {
            UpIo::Plain(s) => s.is_write_vectored(),
            UpIo::Tls(s) => s.is_write_vectored(),
        }
    }
}
