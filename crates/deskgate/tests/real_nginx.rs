//! deskgate in front of a real nginx over TLS: HTTP/1.1 and HTTP/2
//! clients, upstream verification, mutual TLS, header hygiene, client IP.

use bytes::Bytes;
use deskgate_testkit::client::Client;
use deskgate_testkit::deskgate::{one_route, start_one_route, Gate, Setup};
use deskgate_testkit::nginx::{big_file, Nginx, NginxOptions};
use deskgate_testkit::pki::Pki;
use http::Request;
use http_body_util::Full;

const HOST: &str = "finesse1a.example.com:8445";
const NAME: &str = "finesse1a.internal.test";

fn field<'a>(body: &'a str, key: &str) -> &'a str {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

/// The echo of a request whose `Connection` names a secret header: the
/// forwarding headers deskgate builds, whatever protocol reached nginx.
async fn forwarded_as_expected(client: &Client) -> String {
    let req = Request::get("/desktop/x?q=1")
        .header("host", HOST)
        .header("connection", "x-secret")
        .header("x-secret", "s3")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let r = client.h1(req).await.expect("h1");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.text();
    assert_eq!(field(&body, "host"), HOST, "Host is the external host:port");
    assert_eq!(field(&body, "uri"), "/desktop/x?q=1");
    assert_eq!(field(&body, "proto"), "https");
    assert_eq!(field(&body, "port"), "8445");
    assert_eq!(
        field(&body, "secret"),
        "",
        "headers named in Connection are removed"
    );
    assert_eq!(
        r.headers["server"], "deskgate",
        "no upstream Server version"
    );
    body
}

/// deskgate's node is this nginx, over verified TLS.
fn via(ng: &Nginx) -> Setup<'static> {
    Setup {
        upstream: ng.addr,
        scheme: "https",
        internal: NAME,
        ..Setup::default()
    }
}

async fn nginx(pki: &Pki, mtls: bool) -> Option<Nginx> {
    nginx_with(pki, mtls, false).await
}

async fn nginx_with(pki: &Pki, mtls: bool, http2: bool) -> Option<Nginx> {
    Nginx::start(
        pki,
        NginxOptions {
            name: NAME.into(),
            require_client_cert: mtls,
            http2,
        },
    )
    .await
}

#[tokio::test]
async fn h1_and_h2_clients_reach_nginx_over_verified_tls() {
    let pki = Pki::new();
    let Some(ng) = nginx(&pki, false).await else {
        return;
    };
    let (gate, client) = start_one_route(&pki, &via(&ng)).await;

    let body = forwarded_as_expected(&client).await;
    assert_eq!(
        field(&body, "sproto"),
        "HTTP/1.1",
        "nginx offers no h2 here"
    );

    let req = Request::get(format!("https://{HOST}/desktop/h2"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    let r = client.h2(req).await.expect("h2");
    assert_eq!(r.status, 200);
    assert_eq!(field(&r.text(), "host"), HOST);

    // a 3 MB static file streams through intact, both protocols
    let want = big_file();
    let r = client.get(HOST, "/finesse/api/big.bin").await;
    assert_eq!(r.status, 200);
    assert!(r.body == want, "h1 body differs ({} bytes)", r.body.len());
    let req = Request::get(format!("https://{HOST}/finesse/api/big.bin"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    let r = client.h2(req).await.expect("h2");
    assert!(r.body == want, "h2 body differs ({} bytes)", r.body.len());
    gate.stop().await;
}

#[tokio::test]
async fn upstream_with_wrong_certificate_name_gets_502() {
    let pki = Pki::new();
    let Some(ng) = nginx(&pki, false).await else {
        return;
    };
    // deskgate expects another name than nginx's certificate holds
    let (gate, client) = start_one_route(
        &pki,
        &Setup {
            upstream: ng.addr,
            scheme: "https",
            internal: "someone-else.internal.test",
            ..Setup::default()
        },
    )
    .await;
    let r = client.get(HOST, "/desktop/").await;
    assert_eq!(r.status, 502);
    assert!(!r.everything().contains("internal.test"));
    gate.stop().await;
}

#[tokio::test]
async fn mutual_tls_upstream_accepts_deskgate_certificate_and_refuses_without() {
    let pki = Pki::new();
    let Some(ng) = nginx(&pki, true).await else {
        return;
    };
    let cc = pki.client("deskgate-client");
    // the client key comes from the environment this time (secrets: file or env)
    std::env::set_var(
        "DESKGATE_TEST_CLIENT_KEY",
        std::fs::read_to_string(&cc.key).expect("key"),
    );
    let tls_extra = format!(
        "client_cert = \"{}\"\nclient_key_env = \"DESKGATE_TEST_CLIENT_KEY\"",
        cc.cert.display()
    );
    let (gate, client) = start_one_route(
        &pki,
        &Setup {
            tls_extra: &tls_extra,
            ..via(&ng)
        },
    )
    .await;
    let r = client.get(HOST, "/desktop/").await;
    assert_eq!(r.status, 200, "with the client certificate: {}", r.text());
    let req = Request::get(format!("https://{HOST}/finesse/api/SystemInfo"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(client.h2(req).await.expect("h2").status, 200);
    gate.stop().await;

    // the same deskgate setup, still verifying nginx, but with no client certificate
    let (gate, client) = start_one_route(&pki, &via(&ng)).await;
    let r = client.get(HOST, "/desktop/").await;
    assert_eq!(r.status, 400, "nginx refuses without a client certificate");
    let all = r.everything();
    assert!(all.contains("No required SSL certificate"), "{all}");
    assert!(
        !all.contains("internal.test") && !all.contains(&ng.addr.port().to_string()),
        "leak: {all}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn client_ip_is_believed_only_from_trusted_intermediaries() {
    let pki = Pki::new();
    let Some(ng) = nginx(&pki, false).await else {
        return;
    };
    let extra = "[client_ip]\ntrusted = [\"127.0.0.5\"]\nheader = \"X-Real-IP\"\n";
    let toml = one_route(&pki, &Setup { extra, ..via(&ng) });
    let gate = Gate::start(&pki, &toml).await;

    // an untrusted client spoofing every header
    let spoofer =
        Client::new(&pki, gate.addr("front"), "finesse1a.example.com").from_ip("127.0.0.7");
    let req = Request::get("/desktop/")
        .header("host", HOST)
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-client-ip", "6.6.6.6")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let body = spoofer.h1(req).await.expect("h1").text();
    assert_eq!(field(&body, "xff"), "127.0.0.7");
    assert_eq!(field(&body, "xci"), "127.0.0.7");
    assert_eq!(field(&body, "xrip"), "", "the client-IP header is stripped");
    assert!(!body.contains("6.6.6.6"), "{body}");

    // a trusted load balancer passing the real client
    let lb = Client::new(&pki, gate.addr("front"), "finesse1a.example.com").from_ip("127.0.0.5");
    let req = Request::get("/desktop/")
        .header("host", HOST)
        .header("x-real-ip", "198.51.100.7")
        .header("x-forwarded-for", "6.6.6.6")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let body = lb.h1(req).await.expect("h1").text();
    assert_eq!(field(&body, "xci"), "198.51.100.7");
    assert_eq!(field(&body, "xff"), "198.51.100.7, 127.0.0.5");
    let lines = gate.log_lines(2).await;
    assert_eq!(lines[1]["client"], "198.51.100.7");
    assert_eq!(lines[1]["peer"], "127.0.0.5");
    gate.stop().await;
}

#[tokio::test]
async fn http2_to_a_node_that_offers_it_is_opt_in_and_multiplexed() {
    let pki = Pki::new();
    let Some(ng) = nginx_with(&pki, false, true).await else {
        return;
    };
    // HTTP/1.1 unless the component asks for HTTP/2
    let (gate, client) = start_one_route(&pki, &via(&ng)).await;
    let r = client.get(HOST, "/desktop/x").await;
    assert_eq!(field(&r.text(), "sproto"), "HTTP/1.1");
    gate.stop().await;

    let setup = Setup {
        component_extra: "http2 = true",
        ..via(&ng)
    };
    let (gate, client) = start_one_route(&pki, &setup).await;
    // the same forwarding headers as over HTTP/1.1 (`Host` becomes `:authority`)
    let body = forwarded_as_expected(&client).await;
    assert_eq!(field(&body, "sproto"), "HTTP/2.0", "{body}");
    let first = field(&body, "conn").to_string();
    let r = client.get(HOST, "/desktop/again").await;
    assert_eq!(field(&r.text(), "conn"), first, "the connection is reused");

    // many at once, from both client protocols: all over HTTP/2
    let all = (0..20).map(|i| {
        let c = client.clone();
        async move {
            if i % 2 == 0 {
                c.get(HOST, &format!("/desktop/n{i}")).await
            } else {
                let req = Request::get(format!("https://{HOST}/desktop/n{i}"))
                    .body(Full::new(Bytes::new()))
                    .expect("req");
                c.h2(req).await.expect("h2")
            }
        }
    });
    for r in futures_util::future::join_all(all).await {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(field(&r.text(), "sproto"), "HTTP/2.0");
    }
    // one after the other: all on one connection (at most 8 streams each
    // when they come at once)
    let mut conns = std::collections::HashSet::new();
    for i in 0..10 {
        let r = client.get(HOST, &format!("/desktop/s{i}")).await;
        conns.insert(field(&r.text(), "conn").to_string());
    }
    assert_eq!(conns.len(), 1, "{conns:?}");
    // a 3 MB file streams through intact
    let want = big_file();
    let r = client.get(HOST, "/finesse/api/big.bin").await;
    assert_eq!(r.status, 200);
    assert!(r.body == want, "body differs ({} bytes)", r.body.len());

    // a WebSocket handshake needs HTTP/1.1: it gets a connection of its own
    let req = Request::get("/desktop/ws")
        .header("host", HOST)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let r = client.h1(req).await.expect("h1");
    let body = r.text();
    assert_eq!(field(&body, "sproto"), "HTTP/1.1", "{body}");
    assert_eq!(field(&body, "upgrade"), "websocket", "{body}");
    assert_ne!(field(&body, "conn"), first);
    gate.stop().await;
}
