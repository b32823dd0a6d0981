//! The Finesse simulator behind deskgate (in-process): proxy awareness
//! (external names through the proxy, internal ones direct), Finesse's
//! documented errors, its lockout, and the upstream mutual-TLS mode.

use deskgate_testkit::sim::{basic, sim_rig, NodeTls, EXTERNAL, INTERNAL};
use finesse_sim::DEMO_PASSWORD;

const INTERNAL_HOST: &str = "finesse1a.internal.test:8445";

fn agent() -> String {
    basic("1001", DEMO_PASSWORD)
}

/// `<ErrorType>` of an ApiErrors body.
fn error_type(body: &str) -> String {
    let el = finesse_sim::xml::parse(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(el.name, "ApiErrors", "{body}");
    el.child("ApiError")
        .and_then(|e| e.child_text("ErrorType"))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn system_info_names_external_hosts_through_the_proxy_and_internal_ones_direct() {
    let rig = sim_rig(NodeTls::Open).await;
    // through deskgate: authentication required, external names
    let r = rig
        .client
        .send("GET", EXTERNAL, "/finesse/api/SystemInfo", None, "")
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let auth = agent();
    let r = rig
        .client
        .send("GET", EXTERNAL, "/finesse/api/SystemInfo", Some(&auth), "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let info = finesse_sim::xml::parse(&r.text()).expect("xml");
    let primary = info.child("primaryNode").expect("primaryNode");
    assert_eq!(primary.child_text("host"), Some("finesse1a.example.com"));
    assert_eq!(primary.child_text("httpsPort"), Some("8445"));
    assert_eq!(info.child_text("isProxyRequest"), Some("true"));
    assert!(!r.everything().contains(INTERNAL), "{}", r.everything());

    // straight from the LAN: no credentials needed, internal names
    let r = rig
        .direct
        .send("GET", INTERNAL_HOST, "/finesse/api/SystemInfo", None, "")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let info = finesse_sim::xml::parse(&r.text()).expect("xml");
    let primary = info.child("primaryNode").expect("primaryNode");
    assert_eq!(primary.child_text("host"), Some(INTERNAL));
    assert_eq!(info.child_text("isProxyRequest"), Some("false"));

    // the desktop configuration and page follow the same view
    let r = rig
        .client
        .send("GET", EXTERNAL, "/desktop/api/DesktopConfig", None, "")
        .await;
    let cfg: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(cfg["host"], EXTERNAL);
    assert_eq!(cfg["isProxyRequest"], true);
    let r = rig
        .client
        .send("GET", EXTERNAL, "/desktop/", None, "")
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .text()
        .contains(&format!("https://{EXTERNAL}/desktop/js/desktop.js")));
    assert!(!r.everything().contains(INTERNAL));
    let r = rig
        .direct
        .send("GET", INTERNAL_HOST, "/desktop/api/DesktopConfig", None, "")
        .await;
    let cfg: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(cfg["host"], INTERNAL_HOST);
    assert_eq!(cfg["isProxyRequest"], false);
    rig.gate.stop().await;
}

/// method, path, credentials, body, status, ErrorType ("" for none)
type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, u16, &'a str);

#[tokio::test]
async fn the_simulator_answers_with_finesse_errors() {
    let rig = sim_rig(NodeTls::Open).await;
    let agent = agent();
    let wrong = basic("1001", "wrong");
    let supervisor = basic("2001", DEMO_PASSWORD);
    let admin = basic("admin", DEMO_PASSWORD);
    let none: Option<&str> = None;
    let cases: &[Case<'_>] = &[
        // no or wrong credentials
        (
            "GET",
            "/finesse/api/User/1001",
            none,
            "",
            401,
            "Authorization Failure",
        ),
        (
            "GET",
            "/finesse/api/User/1001",
            Some(&wrong),
            "",
            401,
            "Authorization Failure",
        ),
        (
            "GET",
            "/finesse/api/User/1001",
            Some("Bearer x"),
            "",
            401,
            "Authorization Failure",
        ),
        // an agent reads only itself; a supervisor reads others
        ("GET", "/finesse/api/User/1001", Some(&agent), "", 200, ""),
        (
            "GET",
            "/finesse/api/User/1002",
            Some(&agent),
            "",
            401,
            "Invalid Authorization User Specified",
        ),
        (
            "GET",
            "/finesse/api/User/1002",
            Some(&supervisor),
            "",
            200,
            "",
        ),
        (
            "GET",
            "/finesse/api/User/9999",
            Some(&supervisor),
            "",
            404,
            "Not Found",
        ),
        // Users needs an administrator
        (
            "GET",
            "/finesse/api/Users",
            Some(&agent),
            "",
            401,
            "Invalid Authorization User Specified",
        ),
        ("GET", "/finesse/api/Users", Some(&admin), "", 200, ""),
        // UserAuthMode needs no credentials
        ("GET", "/finesse/api/UserAuthMode/1001", none, "", 200, ""),
        (
            "GET",
            "/finesse/api/UserAuthMode/9999",
            none,
            "",
            404,
            "Not Found",
        ),
        // unknown API, wrong method
        (
            "GET",
            "/finesse/api/Nope",
            Some(&agent),
            "",
            404,
            "Not Found",
        ),
        (
            "DELETE",
            "/finesse/api/User/1001",
            Some(&agent),
            "",
            405,
            "Method Not Allowed",
        ),
        // state changes
        (
            "PUT",
            "/finesse/api/User/1001",
            Some(&agent),
            "<User><state>DANCING</state></User>",
            400,
            "Invalid Input",
        ),
        (
            "PUT",
            "/finesse/api/User/1001",
            Some(&agent),
            "not xml <",
            400,
            "Invalid Input",
        ),
        (
            "PUT",
            "/finesse/api/User/1001",
            Some(&agent),
            "<User><state>READY</state></User>",
            400,
            "Invalid State",
        ),
        (
            "PUT",
            "/finesse/api/User/1001",
            Some(&agent),
            "<User><state>LOGIN</state></User>",
            400,
            "Invalid Input",
        ),
        (
            "PUT",
            "/finesse/api/User/1002",
            Some(&agent),
            "<User><state>LOGOUT</state></User>",
            401,
            "Invalid Authorization User Specified",
        ),
        (
            "PUT",
            "/finesse/api/User/1001",
            Some(&agent),
            "<User><state>LOGIN</state><extension>5001</extension></User>",
            202,
            "",
        ),
        (
            "PUT",
            "/finesse/api/User/1001",
            Some(&agent),
            "<User><state>READY</state></User>",
            202,
            "",
        ),
    ];
    for &(method, path, auth, body, status, kind) in cases {
        let r = rig
            .direct
            .send(method, INTERNAL_HOST, path, auth, body)
            .await;
        let what = format!("{method} {path} {body}: {}", r.text());
        assert_eq!(r.status, status, "{what}");
        if !kind.is_empty() {
            assert_eq!(error_type(&r.text()), kind, "{what}");
            let ct = r.headers["content-type"].to_str().expect("content-type");
            assert!(ct.starts_with("application/xml"), "{what}");
        }
    }
    assert_eq!(
        rig.cluster.user("1001").expect("user").state,
        finesse_sim::AgentState::Ready
    );
    // a dependency down: 503 (not a rejection of the credential)
    rig.cluster.set_outage(true);
    let r = rig
        .direct
        .send(
            "GET",
            INTERNAL_HOST,
            "/finesse/api/User/1001",
            Some(&agent),
            "",
        )
        .await;
    assert_eq!(r.status, 503);
    rig.cluster.set_outage(false);
    rig.gate.stop().await;
}

#[tokio::test]
async fn five_failed_sign_ins_lock_the_user_for_five_minutes() {
    // Finesse's own lockout, straight from the LAN (deskgate's brute-force
    // stage exists precisely so that the Internet never gets this far)
    let rig = sim_rig(NodeTls::Open).await;
    let get = |auth: String| {
        let c = rig.direct.clone();
        async move {
            c.send(
                "GET",
                INTERNAL_HOST,
                "/finesse/api/User/1003",
                Some(&auth),
                "",
            )
            .await
        }
    };
    for i in 0..5 {
        let r = get(basic("1003", &format!("wrong-{i}"))).await;
        assert_eq!(r.status, 401);
    }
    let r = get(basic("1003", DEMO_PASSWORD)).await;
    assert_eq!(r.status, 401, "locked for 5 minutes");
    assert_eq!(error_type(&r.text()), "Authorization Failure");
    // another user is not affected
    let r = get(agent()).await;
    assert_eq!(r.status, 401, "1001 may not read 1003");
    assert_eq!(
        error_type(&r.text()),
        "Invalid Authorization User Specified"
    );
    rig.gate.stop().await;
}

#[tokio::test]
async fn a_node_that_requires_client_certificates_accepts_deskgate_with_one() {
    let rig = sim_rig(NodeTls::MutualWithCert).await;
    let r = rig
        .client
        .send(
            "GET",
            EXTERNAL,
            "/finesse/api/User/1001",
            Some(&agent()),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // a LAN client without a certificate gets no HTTP answer at all: the
    // node ends the handshake (TLS 1.3 clients see it at their first read)
    let refused = match rig.direct.tls(false).await {
        Err(_) => true,
        Ok(mut tls) => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tls
                .write_all(b"GET /desktop/ HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            // refused: the read fails, or ends without a byte of HTTP
            let _ = tls.read_to_end(&mut buf).await;
            buf.is_empty()
        }
    };
    assert!(refused, "a client without a certificate was served");
    rig.gate.stop().await;
}

#[tokio::test]
async fn a_node_that_requires_client_certificates_refuses_deskgate_without_one() {
    let rig = sim_rig(NodeTls::MutualWithoutCert).await;
    let r = rig
        .client
        .send("GET", EXTERNAL, "/desktop/", None, "")
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.everything().contains(INTERNAL), "{}", r.everything());
    rig.gate.stop().await;
}
