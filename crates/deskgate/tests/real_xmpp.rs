//! A real XMPP client (@xmpp/client) signs in to a real XMPP server
//! (Prosody, WebSocket at /ws/ over TLS) through deskgate, pings, and
//! exchanges a 150 KB message: the path Finesse notifications take.

use deskgate_testkit::client::Client;
use deskgate_testkit::deskgate::{one_route, Gate, Setup};
use deskgate_testkit::pki::Pki;
use deskgate_testkit::prosody::Prosody;
use std::path::PathBuf;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/js")
}

#[tokio::test]
async fn xmpp_client_logs_in_and_exchanges_messages_through_deskgate() {
    let Some(node) = deskgate_testkit::require("node") else {
        return;
    };
    if !js_dir().join("node_modules/@xmpp/client").exists() {
        if std::env::var("DESKGATE_ALLOW_MISSING_TOOLS").as_deref() == Ok("1") {
            eprintln!(
                "SKIPPED LOUDLY: tests/js/node_modules is missing (run .ci/install-test-tools)"
            );
            return;
        }
        panic!("tests/js/node_modules is missing: run .ci/install-test-tools");
    }
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

    let out = tokio::process::Command::new(node)
        .arg("xmpp-exchange.mjs")
        .current_dir(js_dir())
        .env("DG_CONNECT", addr.to_string())
        .env("DG_SNI", "finesse1a.example.com")
        .env("DG_SERVICE", "wss://finesse1a.example.com:8445/ws/")
        .env("NODE_EXTRA_CA_CERTS", &pki.ca_path)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prosody_log = std::fs::read_to_string(prosody.dir.join("prosody.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "xmpp exchange failed\nstdout: {stdout}\nstderr: {stderr}\nprosody: {prosody_log}"
    );
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
