//! Forwarding behaviour: pooled upstream connections, long-polls exempt
//! from the response timeout, request bodies streamed up.

use bytes::Bytes;
use deskgate_testkit::deskgate::{rig, start_one_route, Setup};
use deskgate_testkit::mock::{Behaviour, Mock};
use deskgate_testkit::pki::Pki;
use http::Request;
use http_body_util::Full;
use std::sync::atomic::Ordering;

const HOST: &str = "finesse1a.example.com:8445";

fn get(path: &str) -> Request<Full<Bytes>> {
    get_at(HOST, path)
}

fn get_at(host: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("req")
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_reused() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    // ten requests from ten client connections, one after the other
    for _ in 0..10 {
        assert_eq!(client.get(HOST, "/desktop/").await.status, 200);
    }
    assert_eq!(mock.heads.lock().expect("lock").len(), 10);
    assert_eq!(
        mock.connections.load(Ordering::SeqCst),
        1,
        "one pooled upstream connection served all ten"
    );
    // the log tells the fresh connection from the reused ones
    let lines = gate.log_lines(10).await;
    assert!(lines[0]["upstream_connect_ms"].is_u64(), "{}", lines[0]);
    assert!(
        lines[1..].iter().all(|l| l["upstream_connect_ms"] == 0),
        "{lines:?}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_never_reused() {
    let (_pki, mock, gate, client) = rig(Behaviour::Origin, "").await;
    // every answer ends with the upstream closing the connection silently
    for i in 0..5 {
        let r = client
            .get(HOST, &format!("/desktop/nostore-hangup-{i}.txt"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(mock.connections.load(Ordering::SeqCst), 5);
    // a connection the upstream keeps is kept
    for i in 0..5 {
        let r = client.get(HOST, &format!("/desktop/nostore-{i}.txt")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(mock.connections.load(Ordering::SeqCst), 6);
    gate.stop().await;
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_reused_afterwards() {
    let (_pki, mock, gate, client) = rig(Behaviour::Origin, "").await;
    // twenty at once, each held 300 ms by the upstream: twenty connections
    let all = (0..20).map(|i| {
        let c = client.clone();
        async move { c.get(HOST, &format!("/desktop/nostore-slow-{i}.txt")).await }
    });
    for r in futures_util::future::join_all(all).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let opened = mock.connections.load(Ordering::SeqCst);
    assert_eq!(opened, 20, "one connection per concurrent request");
    // then, one after the other: all on the idle ones
    for i in 0..20 {
        let r = client.get(HOST, &format!("/desktop/nostore-{i}.txt")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(mock.connections.load(Ordering::SeqCst), opened);
    gate.stop().await;
}

#[tokio::test]
async fn long_polls_are_exempt_from_the_response_timeout() {
    let extra = "[timeouts]\nupstream_response = \"300ms\"\n";
    let (_pki, _mock, gate, client) = rig(Behaviour::DelayedEcho, extra).await;
    // a REST call that takes a second times out...
    assert_eq!(
        client
            .h1(get("/finesse/api/User/1001"))
            .await
            .expect("h1")
            .status,
        504
    );
    // ...a BOSH long-poll that takes a second does not
    let r = client.h1(get("/http-bind/")).await.expect("h1");
    assert_eq!(r.status, 200, "{}", r.text());
    // ...nor does a socket.io polling request to LiveData
    let poll = get_at(
        "livedataa.example.com:8445",
        "/socket.io/?EIO=4&transport=polling",
    );
    assert_eq!(client.h1(poll).await.expect("h1").status, 200);
    gate.stop().await;
}

#[tokio::test]
async fn per_component_response_timeout_overrides_the_default() {
    let pki = Pki::new();
    let mock = Mock::start(Behaviour::DelayedEcho, None).await;
    let extra = "[timeouts]\nupstream_response = \"300ms\"\n";
    let (gate, client) = start_one_route(
        &pki,
        &Setup {
            upstream: mock.addr,
            extra,
            component_extra: "response_timeout = \"5s\"",
            ..Setup::default()
        },
    )
    .await;
    assert_eq!(
        client
            .h1(get("/finesse/api/User/1001"))
            .await
            .expect("h1")
            .status,
        200
    );
    // the IdS component keeps the global 300 ms
    let ids = get_at("idsa.example.com:8445", "/ids/v1/x");
    assert_eq!(client.h1(ids).await.expect("h1").status, 504);
    gate.stop().await;
}

#[tokio::test]
async fn request_bodies_stream_to_the_upstream() {
    let (_pki, _mock, gate, client) = rig(Behaviour::Echo, "").await;
    let body = vec![b'q'; 5 * 1024 * 1024];
    let req = Request::put("/finesse/api/User/1001")
        .header("host", HOST)
        .body(Full::new(Bytes::from(body.clone())))
        .expect("req");
    let r = client.h1(req).await.expect("h1");
    assert!(r.text().contains("body-bytes: 5242880"), "{}", r.text());
    let req = Request::put(format!("https://{HOST}/finesse/api/User/1001"))
        .body(Full::new(Bytes::from(body)))
        .expect("req");
    let r = client.h2(req).await.expect("h2");
    assert!(r.text().contains("body-bytes: 5242880"), "{}", r.text());
    gate.stop().await;
}

#[tokio::test]
async fn the_response_timeout_starts_after_a_slow_upload() {
    let extra = "[timeouts]\nupstream_response = \"2s\"\n";
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, extra).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = client.tls(false).await.expect("tls");
    s.write_all(format!("PUT /finesse/api/User/1001 HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").as_bytes()).await.expect("head");
    // eight chunks over three seconds: longer than the response timeout
    for _ in 0..8 {
        s.write_all(b"5\r\nhello\r\n").await.expect("chunk");
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    s.write_all(b"0\r\n\r\n").await.expect("end");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(mock.heads.lock().expect("lock").len(), 1);
    gate.stop().await;
}
