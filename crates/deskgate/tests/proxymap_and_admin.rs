//! The internal listener serves the proxy map read-only; the admin socket
//! answers operator queries and is owner-only.

use bytes::Bytes;
use deskgate_testkit::deskgate::{one_route, Gate, Setup};
use deskgate_testkit::pki::Pki;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

async fn plain(
    stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    method: &str,
    path: &str,
) -> (u16, String) {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "deskgate")
        .body(Empty::<Bytes>::new())
        .expect("req");
    let resp = send.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn proxymap_is_served_read_only_on_the_internal_listener() {
    let pki = Pki::new();
    let gate = Gate::start(&pki, &one_route(&pki, &Setup::default())).await;
    let internal = gate.internal.expect("internal listener");
    let tcp = || async {
        tokio::net::TcpStream::connect(internal)
            .await
            .expect("connect")
    };
    let (status, body) = plain(tcp().await, "GET", "/proxymap.txt").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "finesse1a.internal.test:8445=finesse1a.example.com:8445\nidsa.internal.test:8553=idsa.example.com:8445\nlivedataa.internal.test:12008=livedataa.example.com:8445\nother.internal.test:443=other.example.com:8445\n"
    );
    assert_eq!(plain(tcp().await, "POST", "/proxymap.txt").await.0, 405);
    assert_eq!(
        plain(tcp().await, "GET", "/status").await.0,
        404,
        "operator actions never share this listener"
    );
    assert_eq!(plain(tcp().await, "GET", "/desktop/").await.0, 404);
    gate.stop().await;
}

#[tokio::test]
async fn admin_socket_reports_status_and_is_owner_only() {
    let pki = Pki::new();
    let gate = Gate::start(&pki, &one_route(&pki, &Setup::default())).await;
    let sock = pki.path().join("admin.sock");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "admin socket mode {mode:o}");
    let (status, body) = plain(
        tokio::net::UnixStream::connect(&sock)
            .await
            .expect("connect"),
        "GET",
        "/status",
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["side"], "a");
    assert!(v["open_connections"].is_number());
    gate.stop().await;
    assert!(!sock.exists(), "the socket is removed at shutdown");
}

#[tokio::test]
async fn each_side_serves_only_its_listeners_and_the_map_covers_both() {
    use deskgate_testkit::client::Client;
    use deskgate_testkit::mock::{Behaviour, Mock};
    let pki = Pki::new();
    let mock = Mock::start(Behaviour::Echo, None).await;
    let b = pki.server("side-b", &["finesse1b.example.com"]);
    let extra = format!(
        r#"
[[listener]]
name = "back"
side = "b"
bind = "127.0.0.1:0"
external_port = 8445
[[listener.cert]]
names = ["finesse1b.example.com"]
cert = "{}"
key_file = "{}"

[[component]]
name = "finesse1-b"
kind = "finesse"
scheme = "http"
[[component.node]]
internal = "finesse1b.internal.test:8445"
connect = "{}"
external = "finesse1b.example.com:8445"
side = "b"

[[internal]]
side = "b"
bind = "127.0.0.1:0"
"#,
        b.cert.display(),
        b.key.display(),
        mock.addr
    );
    let toml = one_route(
        &pki,
        &Setup {
            upstream: mock.addr,
            extra: &extra,
            ..Setup::default()
        },
    );
    let gate = Gate::start_side(&pki, &toml, deskgate_config::Side::B).await;
    let names: Vec<&String> = gate.listeners.keys().collect();
    assert_eq!(names, vec!["back"], "side b serves only its own listener");
    let client = Client::new(&pki, gate.addr("back"), "finesse1b.example.com");
    assert_eq!(
        client
            .get("finesse1b.example.com:8445", "/desktop/")
            .await
            .status,
        200
    );
    // side a's hosts are not routed here
    assert_eq!(
        client
            .get("finesse1a.example.com:8445", "/desktop/")
            .await
            .status,
        421
    );
    let internal = gate.internal.expect("side b internal listener");
    let (status, map) = plain(
        tokio::net::TcpStream::connect(internal)
            .await
            .expect("connect"),
        "GET",
        "/proxymap.txt",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        map.contains("finesse1a.internal.test:8445=finesse1a.example.com:8445"),
        "{map}"
    );
    assert!(
        map.contains("finesse1b.internal.test:8445=finesse1b.example.com:8445"),
        "{map}"
    );
    gate.stop().await;
}
