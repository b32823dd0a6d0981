//! Dialing one upstream node: TCP with a connect timeout, then TLS with the
//! node's internal name for SNI and verification (and a client certificate
//! when mutual TLS is configured).

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::future::Future;
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
    tls: Option<TlsConnector>,
    timeout: Duration,
}

/// A connector bound to one node; the pool keys connections per client.
#[derive(Clone)]
pub struct NodeConnector(Arc<Inner>);

impl NodeConnector {
    pub fn new(
        dial: String,
        internal_host: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let server_name = ServerName::try_from(internal_host.to_string())
            .map_err(|_| format!("{internal_host:?} is not a valid TLS server name"))?;
        Ok(NodeConnector(Arc::new(Inner {
            dial,
            server_name,
            tls: tls.map(TlsConnector::from),
            timeout,
        })))
    }
}

async fn dial(inner: Arc<Inner>) -> Result<TokioIo<UpStream>, ConnectError> {
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
    let io = match &inner.tls {
        None => UpIo::Plain(tcp),
        Some(tls) => {
            let hs = tls.connect(inner.server_name.clone(), tcp);
            let s = tokio::time::timeout(inner.timeout, hs)
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(ConnectError::Tls)?;
            UpIo::Tls(Box::new(s))
        }
    };
    let info = ConnectInfo {
        at: started,
        took: started.elapsed(),
    };
    Ok(TokioIo::new(UpStream { io, info }))
}

impl tower_service::Service<http::Uri> for NodeConnector {
    type Response = TokioIo<UpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        Box::pin(dial(self.0.clone()))
    }
}

/// When a connection to a node was made and how long that took; the pooled
/// client puts it on every response the connection carries, so the access
/// log can tell a fresh connection from a reused one.
#[derive(Clone, Copy, Debug)]
pub struct ConnectInfo {
    pub at: std::time::Instant,
    pub took: Duration,
}

/// A plain or TLS connection to a node.
pub struct UpStream {
    io: UpIo,
    info: ConnectInfo,
}

enum UpIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for UpStream {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.info)
    }
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
