//! The WebSocket gate (SPEC 3, issue 4 item 3): @xmpp/client signs in to
//! the simulator's notifications through deskgate with each proof alone —
//! (a) a recent authenticated REST call from its IP, (c) the session
//! cookie, (b) an `auth.basic.` subprotocol that never reaches Finesse —
//! and without proof gets 401; caps per user and per IP; the long-poll
//! transports go through the same gate.

use deskgate_testkit::edge::{self, good, FINESSE};
use deskgate_testkit::js;
use deskgate_testkit::sim::{basic, sim_rig_with, SimOptions, SimRig};
use std::ffi::OsString;

async fn rig(websocket: &str) -> SimRig {
    let extra = format!("[websocket]\n{websocket}\n");
    sim_rig_with(SimOptions {
        auth: "finesse",
        extra: &extra,
        ..SimOptions::default()
    })
    .await
}

/// Runs tests/js/xmpp-exchange.mjs through the rig with one way of proving the sign-in.
async fn exchange(rig: &SimRig, proof: &str) -> Option<js::Run> {
    let p = finesse_sim::DEMO_PASSWORD;
    let env: Vec<(&str, OsString)> = vec![
        ("DG_CONNECT", rig.gate.addr("front").to_string().into()),
        ("DG_SNI", "finesse1a.example.com".into()),
        ("DG_SERVICE", format!("wss://{FINESSE}/ws/").into()),
        ("DG_DOMAIN", "cc.deskgate.test".into()),
        ("DG_USERS", format!("1001:{p},1002:{p}").into()),
        ("DG_BIG", "20000".into()),
        ("DG_PROOF", proof.into()),
        ("NODE_EXTRA_CA_CERTS", rig.pki.ca_path.clone().into()),
    ];
    js::run("xmpp-exchange.mjs", &["@xmpp/client"], &env).await
}

fn assert_exchanged(run: &js::Run, what: &str) {
    run.assert_ok(what);
    assert!(
        run.stdout.contains("\"ok\":true")
            && run.stdout.contains("\"protocols\":[\"xmpp\",\"xmpp\"]"),
        "{what}: {}",
        run.stdout
    );
}

#[tokio::test]
async fn mode_a_the_client_ip_signed_in_recently() {
    let rig = rig("cookie_ttl = \"off\"\nsubprotocol = false").await;
    let Some(denied) = exchange(&rig, "none").await else {
        return;
    };
    assert!(
        !denied.ok && denied.stdout.contains("401"),
        "{}",
        denied.stdout
    );
    let Some(run) = exchange(&rig, "ip").await else {
        return;
    };
    assert_exchanged(&run, "mode (a)");
    rig.gate
        .security_line(|l| l["event"] == "websocket_denied" && l["reason"] == "no_proof")
        .await;
}

#[tokio::test]
async fn mode_c_the_session_cookie_survives_nat() {
    // the IP proof is off: only the cookie can open the gate
    let rig = rig("ip_window = \"off\"\nsubprotocol = false").await;
    let Some(denied) = exchange(&rig, "ip").await else {
        return;
    };
    assert!(
        !denied.ok && denied.stdout.contains("401"),
        "{}",
        denied.stdout
    );
    let Some(run) = exchange(&rig, "cookie").await else {
        return;
    };
    assert_exchanged(&run, "mode (c)");
    // the cookie never reached the simulator
    assert_eq!(rig.cluster.requests("leaked-credentials"), 0);
}

#[tokio::test]
async fn mode_b_a_credential_subprotocol_that_finesse_never_sees() {
    let rig = rig("ip_window = \"off\"\ncookie_ttl = \"off\"").await;
    let Some(run) = exchange(&rig, "subprotocol").await else {
        return;
    };
    assert_exchanged(&run, "mode (b)");
    // the simulator refuses and counts any auth.* protocol it is offered
    assert_eq!(rig.cluster.requests("leaked-credentials"), 0);
    // a wrong password in the subprotocol is refused by deskgate
    use base64::Engine;
    let offer = format!(
        "xmpp, auth.basic.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1001:wrong")
    );
    let offer: &'static str = Box::leak(offer.into_boxed_str());
    let (head, stream) = edge::upgrade(&rig.client, FINESSE, "/ws/", offer, &[]).await;
    assert!(
        stream.is_none() && head.starts_with("HTTP/1.1 401"),
        "{head}"
    );
    // mode (b) off: the protocol is still stripped, never forwarded
    let off = self::rig("subprotocol = false").await;
    let (head, _) = edge::upgrade(&off.client, FINESSE, "/ws/", offer, &[]).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(off.cluster.requests("leaked-credentials"), 0);
}

#[tokio::test]
async fn websockets_are_capped_per_user_and_per_ip() {
    let rig = rig("per_user = 1\nper_ip = 1").await;
    let pw = finesse_sim::DEMO_PASSWORD;
    let a = rig.client.clone().from_ip("127.0.70.1");
    // a REST sign-in gives the cookie (user-named proof) and marks the IP
    let r = edge::send(
        &a,
        "GET",
        FINESSE,
        "/finesse/api/User/1001",
        &[("authorization", &basic("1001", pw))],
    )
    .await;
    assert_eq!(r.status, 200);
    let cookie = edge::session_cookie(&r).expect("session cookie");
    let (head, first) = edge::upgrade(&a, FINESSE, "/ws/", "xmpp", &[("cookie", &cookie)]).await;
    assert!(first.is_some(), "{head}");
    let (head, second) = edge::upgrade(&a, FINESSE, "/ws/", "xmpp", &[("cookie", &cookie)]).await;
    assert!(
        second.is_none() && head.starts_with("HTTP/1.1 503"),
        "{head}"
    );
    // by IP alone (no cookie): one per IP
    let (head, by_ip) = edge::upgrade(&a, FINESSE, "/ws/", "xmpp", &[]).await;
    assert!(by_ip.is_some(), "{head}");
    let (head, over) = edge::upgrade(&a, FINESSE, "/ws/", "xmpp", &[]).await;
    assert!(over.is_none() && head.starts_with("HTTP/1.1 503"), "{head}");
    // closing one gives its slot back
    drop(first);
    let t = std::time::Instant::now();
    loop {
        let (head, again) =
            edge::upgrade(&a, FINESSE, "/ws/", "xmpp", &[("cookie", &cookie)]).await;
        if again.is_some() {
            break;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{head}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn long_polls_go_through_the_same_gate() {
    let (pki, mock, gate) = edge::finesse_rig("[websocket]\nip_window = \"off\"\n", "").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.71.1");
    let r = edge::send(
        &a,
        "POST",
        FINESSE,
        "/http-bind/",
        &[("x-test-case", "bosh-1")],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = edge::send(
        &a,
        "GET",
        FINESSE,
        "/finesse/api/User/1001",
        &[("authorization", &good("1001"))],
    )
    .await;
    let cookie = edge::session_cookie(&r).expect("session cookie");
    // the cookie works from another address (NAT, a roaming agent)
    let b = edge::client(&pki, &gate, FINESSE, "127.0.71.2");
    let r = edge::send(
        &b,
        "POST",
        FINESSE,
        "/http-bind/",
        &[("cookie", &cookie), ("x-test-case", "bosh-2")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.everything());
    let head = mock.last_head();
    assert!(
        head.contains("bosh-2") && !head.contains("deskgate-session"),
        "{head}"
    );
    assert!(!mock
        .heads
        .lock()
        .expect("lock")
        .iter()
        .any(|h| h.contains("bosh-1")));
    // a forged or expired cookie is no proof
    let forged = cookie.replace("v1.", "v1.x");
    let r = edge::send(&b, "POST", FINESSE, "/http-bind/", &[("cookie", &forged)]).await;
    assert_eq!(r.status, 401);
}
