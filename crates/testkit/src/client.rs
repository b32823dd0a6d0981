//! TLS clients for tests: HTTP/1.1, HTTP/2 and raw bytes, to any address,
//! with any SNI and Host (like `curl --connect-to`), from any 127.x source.

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A response read whole (tests only).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Status line, headers and body as one text, to search for leaks.
    pub fn everything(&self) -> String {
        let mut s = format!("{}\n", self.status);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        s.push_str(&self.text());
        s
    }
}

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    /// SNI name; an IP literal sends no SNI.
    pub sni: String,
    h1: Arc<rustls::ClientConfig>,
    h2: Arc<rustls::ClientConfig>,
    source: Option<IpAddr>,
}

impl Client {
    pub fn new(pki: &crate::pki::Pki, addr: SocketAddr, sni: &str) -> Client {
        Client {
            addr,
            sni: sni.to_string(),
            h1: pki.client_config(&[b"http/1.1"]),
            h2: pki.client_config(&[b"h2"]),
            source: None,
        }
    }

    /// A client trusting the CA certificate in `ca_pem` (a server this test
    /// did not make the PKI for, such as `deskgate demo`).
    pub fn trusting(ca_pem: &str, addr: SocketAddr, sni: &str) -> Client {
        Client {
            addr,
            sni: sni.to_string(),
            h1: crate::pki::client_config_trusting(ca_pem, &[b"http/1.1"]),
            h2: crate::pki::client_config_trusting(ca_pem, &[b"h2"]),
            source: None,
        }
    }

    /// Connects from this source address (e.g. 127.0.0.7): a distinct client IP.
    pub fn from_ip(mut self, ip: &str) -> Client {
        self.source = Some(ip.parse().expect("source ip"));
        self
    }

    pub fn with_sni(mut self, sni: &str) -> Client {
        self.sni = sni.to_string();
        self
    }

    pub async fn tcp(&self) -> std::io::Result<TcpStream> {
        let sock = TcpSocket::new_v4()?;
        if let Some(ip) = self.source {
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        sock.connect(self.addr).await
    }

    pub async fn tls(&self, h2: bool) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = self.tcp().await?;
        let cfg = if h2 { self.h2.clone() } else { self.h1.clone() };
        let name = ServerName::try_from(self.sni.clone())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        TlsConnector::from(cfg).connect(name, tcp).await
    }

    /// GET over HTTP/1.1 with this Host.
    pub async fn get(&self, host: &str, path: &str) -> Resp {
        let req = Request::get(path)
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.h1(req).await.expect("h1 request")
    }

    /// One HTTP/1.1 request with this method, Host, optional Authorization
    /// and body.
    pub async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let req = b
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        self.h1(req).await.expect("h1 request")
    }

    /// One HTTP/1.1 request on a new connection.
    pub async fn h1(&self, req: Request<Full<Bytes>>) -> Result<Resp, hyper::Error> {
        let tls = self.tls(false).await.expect("tls connect");
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        read(send.send_request(req).await?).await
    }

    /// Several HTTP/1.1 requests on one keep-alive connection.
    pub async fn h1_many(
        &self,
        reqs: Vec<Request<Full<Bytes>>>,
    ) -> Vec<Result<Resp, hyper::Error>> {
        let tls = self.tls(false).await.expect("tls connect");
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut out = Vec::new();
        for r in reqs {
            let res = match send.send_request(r).await {
                Ok(resp) => read(resp).await,
                Err(e) => Err(e),
            };
            out.push(res);
        }
        out
    }

    /// One HTTP/2 request; the URI must be absolute (it carries `:authority`).
    pub async fn h2(&self, req: Request<Full<Bytes>>) -> Result<Resp, hyper::Error> {
        let tls = self.tls(true).await.expect("tls connect");
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "server did not pick h2"
        );
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        read(send.send_request(req).await?).await
    }

    /// Sends raw bytes over TLS and returns whatever comes back until close (or 5 s).
    pub async fn raw(&self, bytes: &[u8]) -> String {
        let mut tls = self.tls(false).await.expect("tls connect");
        tls.write_all(bytes).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

async fn read(resp: http::Response<hyper::body::Incoming>) -> Result<Resp, hyper::Error> {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}
