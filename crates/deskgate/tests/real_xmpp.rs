//! A real XMPP client (@xmpp/client) signs in to a real XMPP server
//! (Prosody, WebSocket at /ws/ over TLS) through deskgate, pings, and
//! exchanges a 150 KB message: the path Finesse notifications take.

use deskgate_testkit::client::Client;
use deskgate_testkit::deskgate::{one_route, Gate, Setup};
use deskgate_testkit::js;
use deskgate_testkit::pki::Pki;
use deskgate_testkit::prosody::Prosody;

#[tokio::test]
async fn xmpp_client_logs_in_and_exchanges_messages_through_deskgate() {
    let pki = Pki::new();
    let name = "finesse1a.internal.test";
    let Some(prosody) = Prosody::start(
        &pki,
        name,
        &[("agent1", "pw-agent1"), ("agent2", "pw-agent2")],
    )
    .await
    else {
        return;
    };
    let toml = one_route(
        &pki,
        &Setup {
            upstream: prosody.addr,
            scheme: "https",
            internal: name,
            ..Setup::default()
        },
    );
    let gate = Gate::start(&pki, &toml).await;
    let addr = gate.addr("front");

    let env = [
        ("DG_CONNECT", addr.to_string().into()),
        ("DG_SNI", "finesse1a.example.com".into()),
        ("DG_SERVICE", "wss://finesse1a.example.com:8445/ws/".into()),
        ("NODE_EXTRA_CA_CERTS", pki.ca_path.clone().into()),
    ];
    let Some(run) = js::run("xmpp-exchange.mjs", &["@xmpp/client"], &env).await else {
        return;
    };
    let prosody_log = std::fs::read_to_string(prosody.dir.join("prosody.log")).unwrap_or_default();
    run.assert_ok(&format!("the XMPP exchange (prosody log:\n{prosody_log})"));
    let stdout = run.stdout;
    assert!(
        stdout.contains("\"ok\":true")
            && stdout.contains("\"pong\":\"result\"")
            && stdout.contains("\"protocols\":[\"xmpp\",\"xmpp\"]"),
        "{stdout}"
    );

    // the upgrades were logged as 101 to the Finesse route
    let lines = gate.log_lines(2).await;
    assert!(
        lines
            .iter()
            .filter(|l| l["status"] == 101 && l["path"] == "/ws/")
            .count()
            >= 2,
        "{lines:?}"
    );
    // BOSH long-poll endpoint is reachable too (Prosody answers GET with its info page)
    let c = Client::new(&pki, addr, "finesse1a.example.com");
    let r = c.get("finesse1a.example.com:8445", "/http-bind/").await;
    assert_eq!(r.status, 200, "{}", r.text());
    gate.stop().await;
}

#[tokio::test]
async fn bosh_long_polls_through_deskgate_outlive_the_response_timeout() {
    use bytes::Bytes;
    use http::Request;
    use http_body_util::Full;
    let pki = Pki::new();
    let name = "finesse1a.internal.test";
    let Some(prosody) = Prosody::start(&pki, name, &[("agent1", "pw-agent1")]).await else {
        return;
    };
    // REST answers must come within 1 s; a BOSH poll that waits 2 s must still pass
    let extra = "[timeouts]\nupstream_response = \"1s\"\n";
    let toml = one_route(
        &pki,
        &Setup {
            upstream: prosody.addr,
            scheme: "https",
            internal: name,
            extra,
            ..Setup::default()
        },
    );
    let gate = Gate::start(&pki, &toml).await;
    let client = Client::new(&pki, gate.addr("front"), "finesse1a.example.com");
    let post = |body: String| {
        Request::post("/http-bind/")
            .header("host", "finesse1a.example.com:8445")
            .header("content-type", "text/xml; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .expect("req")
    };
    let open = "<body rid='1000' to='localhost' xml:lang='en' wait='2' hold='1' ver='1.6' xmpp:version='1.0' xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh'/>";
    let r = client.h1(post(open.into())).await.expect("session");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let sid = text
        .split("sid='")
        .nth(1)
        .or_else(|| text.split("sid=\"").nth(1))
        .and_then(|s| s.split(['\'', '"']).next())
        .unwrap_or_else(|| panic!("no sid in {text}"))
        .to_string();
    assert!(
        text.contains("mechanisms"),
        "stream features expected: {text}"
    );
    // an empty poll: Prosody holds it for `wait` seconds, then answers
    let started = std::time::Instant::now();
    let poll =
        format!("<body rid='1001' sid='{sid}' xmlns='http://jabber.org/protocol/httpbind'/>");
    let r = client.h1(post(poll)).await.expect("poll");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1500),
        "the poll was held: {:?}",
        started.elapsed()
    );
    gate.stop().await;
}
