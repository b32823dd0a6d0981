//! The simulator on its own. The `finesse-sim` binary: HTTPS with its own
//! certificate, the desktop page, the WebSocket handshake rules, an XMPP
//! session that gets a pubsub event when the REST API changes the agent's
//! state, and sign-out when the agent's last notification session goes
//! away. An in-process node: stopping it ends its WebSocket sessions.

use base64::Engine;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Sim {
    child: Option<tokio::process::Child>,
    node: Option<finesse_sim::Node>,
    addr: SocketAddr,
    tls: tokio_rustls::TlsConnector,
    _dir: tempfile::TempDir,
}

fn connector(ca_pem: &[u8]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.expect("pem")).expect("root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

impl Sim {
    /// A node in this process, from the library.
    async fn in_process() -> Sim {
        let ca = deskgate_devcerts::Ca::new("test CA").expect("ca");
        let leaf = ca.server(&["finesse-a.lan"]).expect("leaf");
        let cfg = finesse_sim::NodeConfig {
            name: finesse_sim::HostPort::new("finesse-a.lan", 8445),
            peer: None,
            primary: true,
            cert_pem: leaf.cert_pem,
            key_pem: leaf.key_pem,
            client_ca_pem: None,
            allowed_proxies: Vec::new(),
            proxymap_url: None,
            proxymap_every: Duration::from_secs(60),
        };
        let node = finesse_sim::Node::bind(
            "127.0.0.1:0".parse().expect("addr"),
            cfg,
            finesse_sim::Cluster::demo(3),
        )
        .await
        .expect("node");
        Sim {
            child: None,
            addr: node.addr,
            node: Some(node),
            tls: connector(ca.cert_pem().as_bytes()),
            _dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The binary, as a person starts it.
    async fn binary() -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_finesse-sim"))
            .args(["--listen", "127.0.0.1:0", "--name", "finesse-a.lan:8445"])
            .args(["--presence-grace", "3", "--agents", "3"])
            .arg("--ca-out")
            .arg(&ca)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn finesse-sim");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(rest) = l.strip_prefix("Finesse simulator on https://") {
                    let a = rest.split('/').next().unwrap_or_default();
                    return a.parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the simulator printed its address");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let pem = std::fs::read(&ca).expect("CA written");
        Sim {
            child: Some(child),
            node: None,
            addr,
            tls: connector(&pem),
            _dir: dir,
        }
    }

    async fn tls(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let name = ServerName::try_from("finesse-a.lan").expect("name");
        self.tls
            .connect(name, tcp)
            .await
            .expect("TLS with the written CA")
    }

    async fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(self.tls().await))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let auth = base64::engine::general_purpose::STANDARD.encode("1001:deskgate-demo");
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "finesse-a.lan:8445")
            .header("authorization", format!("Basic {auth}"))
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let resp = send.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn state(&self) -> String {
        let (_, body) = self.request("GET", "/finesse/api/User/1001", "").await;
        let user = finesse_sim::xml::parse(&body).expect("User");
        user.child_text("state").unwrap_or_default().to_string()
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

async fn websocket(sim: &Sim, protocol: Option<&str>) -> Result<Ws, String> {
    let mut req = "wss://finesse-a.lan:8445/ws/"
        .into_client_request()
        .expect("request");
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().expect("header"));
    }
    tokio_tungstenite::client_async(req, sim.tls().await)
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// The next text frame (10 s at most).
async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no frame: {other:?}"),
        }
    }
}

async fn send(ws: &mut Ws, frame: &str) {
    ws.send(Message::Text(frame.to_string()))
        .await
        .expect("send");
}

/// open, SASL PLAIN, open, bind, presence.
async fn sign_in(ws: &mut Ws) {
    let open = r#"<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="cc.deskgate.test" version="1.0"/>"#;
    send(ws, open).await;
    assert!(next_text(ws).await.starts_with("<open"));
    assert!(next_text(ws).await.contains("PLAIN"));
    let plain = base64::engine::general_purpose::STANDARD.encode("\u{0}1001\u{0}deskgate-demo");
    send(
        ws,
        &format!(
            r#"<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">{plain}</auth>"#
        ),
    )
    .await;
    assert!(next_text(ws).await.starts_with("<success"));
    send(ws, open).await;
    assert!(next_text(ws).await.starts_with("<open"));
    assert!(next_text(ws).await.contains("xmpp-bind"));
    send(
        ws,
        r#"<iq type="set" id="b1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>"#,
    )
    .await;
    assert!(next_text(ws).await.contains("<jid>1001@cc.deskgate.test/"));
    send(ws, "<presence/>").await;
}

#[tokio::test]
async fn the_binary_serves_the_desktop_and_notifications_with_its_own_certificate() {
    let sim = Sim::binary().await;
    let (status, page) = sim.request("GET", "/desktop/", "").await;
    assert_eq!(status, 200);
    assert!(page.contains("https://finesse-a.lan:8445/desktop/js/desktop.js"));

    // the WebSocket handshake needs the xmpp subprotocol
    let refused = websocket(&sim, None).await;
    assert!(refused.is_err_and(|e| e.contains("400")));
    let mut ws = websocket(&sim, Some("xmpp")).await.expect("upgrade");
    sign_in(&mut ws).await;
    send(
        &mut ws,
        r#"<iq type="get" id="p1" to="cc.deskgate.test"><ping xmlns="urn:xmpp:ping"/></iq>"#,
    )
    .await;
    assert!(next_text(&mut ws).await.contains(r#"id="p1""#));

    // a REST state change arrives as a pubsub event
    let login = "<User><state>LOGIN</state><extension>5001</extension></User>";
    assert_eq!(
        sim.request("PUT", "/finesse/api/User/1001", login).await.0,
        202
    );
    let event = next_text(&mut ws).await;
    assert!(
        event.contains(r#"node="/finesse/api/User/1001""#),
        "{event}"
    );
    assert!(
        event.contains("&lt;state&gt;NOT_READY&lt;/state&gt;"),
        "{event}"
    );

    // the last session goes: signed out after the grace (3 s here), not at once
    send(
        &mut ws,
        r#"<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/>"#,
    )
    .await;
    assert!(next_text(&mut ws).await.starts_with("<close"));
    drop(ws);
    assert_eq!(
        sim.state().await,
        "NOT_READY",
        "signed out before the grace"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sim.state().await != "LOGOUT" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not signed out after losing presence"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(mut child) = sim.child {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

#[tokio::test]
async fn stopping_a_node_ends_its_notification_sessions_with_system_shutdown() {
    let sim = Sim::in_process().await;
    let mut ws = websocket(&sim, Some("xmpp")).await.expect("upgrade");
    sign_in(&mut ws).await;
    sim.node.as_ref().expect("node").stop();
    let error = next_text(&mut ws).await;
    assert!(error.contains("system-shutdown"), "{error}");
    assert!(next_text(&mut ws).await.starts_with("<close"));
}
