//! The internal listener: read-only `/proxymap.txt` for the upstreams
//! (plain HTTP, reached from the inside only), and the admin Unix socket
//! for operator actions. The two never share a socket (SPEC 2).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("deskgate"));
    r
}

fn proxymap_answer<B>(req: &Request<B>, map: &Arc<str>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/proxymap.txt") => {
            text(StatusCode::OK, Bytes::copy_from_slice(map.as_bytes()))
        }
        (_, "/proxymap.txt") => text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

/// A listener the internal endpoints can accept plain connections from.
trait Accept: Send + 'static {
    type Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn accept_io(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

type Answer = Arc<dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

/// Accepts until draining starts; each connection gets 30 s and fixed answers.
async fn serve_plain<L: Accept>(listener: L, answer: Answer, mut draining: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            r = listener.accept_io() => match r {
                Ok(s) => s,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = crate::listen::until(&mut draining) => break,
        };
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let r = answer(&req);
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}

/// Serves `/proxymap.txt` until draining starts.
pub async fn serve_proxymap(tcp: TcpListener, map: Arc<str>, draining: watch::Receiver<bool>) {
    serve_plain(
        tcp,
        Arc::new(move |req| proxymap_answer(req, &map)),
        draining,
    )
    .await;
}

/// What the admin socket can report. Operator actions (unblock, cache
/// clear, reload) join here as the issues that need them land.
pub struct AdminState {
    pub side: &'static str,
    pub open_connections: Box<dyn Fn() -> usize + Send + Sync>,
    pub proxymap: Arc<str>,
}

fn admin_answer<B>(req: &Request<B>, st: &AdminState) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/status") => text(
            StatusCode::OK,
            format!(
                "{{\"version\":\"{}\",\"side\":\"{}\",\"open_connections\":{}}}\n",
                env!("CARGO_PKG_VERSION"),
                st.side,
                (st.open_connections)()
            ),
        ),
        (&Method::GET, "/proxymap.txt") => text(
            StatusCode::OK,
            Bytes::copy_from_slice(st.proxymap.as_bytes()),
        ),
        _ => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

/// Serves the admin socket until draining starts; the socket file is owner-only.
pub async fn serve_admin(sock: UnixListener, st: Arc<AdminState>, draining: watch::Receiver<bool>) {
    serve_plain(sock, Arc::new(move |req| admin_answer(req, &st)), draining).await;
}
