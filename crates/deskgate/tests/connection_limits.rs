//! Limits where a client can make us spend: the global connection cap, the
//! TLS handshake timeout, slow request heads and bodies, keep-alive idle time
//! and request count. Each ends the offender while deskgate keeps serving.

use bytes::Bytes;
use deskgate_testkit::deskgate::rig;
use deskgate_testkit::mock::Behaviour;
use http::Request;
use http_body_util::Full;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "finesse1a.example.com:8445";

/// Reads until the peer closes; returns what came and how long it took.
async fn until_closed<S: AsyncReadExt + Unpin>(s: &mut S) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    (out, start.elapsed())
}

#[tokio::test]
async fn connections_over_the_global_cap_are_closed_at_accept() {
    let (_pki, _mock, gate, client) = rig(Behaviour::Echo, "[limits]\nmax_connections = 2\n").await;
    let a = client.tls(false).await.expect("first");
    let b = client.tls(false).await.expect("second");
    assert!(
        client.tls(false).await.is_err(),
        "a third connection must be closed before TLS"
    );
    drop(a);
    // the slot comes back once the connection is gone
    let mut ok = false;
    for _ in 0..100 {
        if gate.running().open_connections() < 2 {
            ok = client.tls(false).await.is_ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ok, "slot was not released");
    drop(b);
    gate.stop().await;
}

#[tokio::test]
async fn a_silent_tls_client_is_dropped_after_the_handshake_timeout() {
    let (_pki, _mock, gate, client) =
        rig(Behaviour::Echo, "[timeouts]\nhandshake = \"1s\"\n").await;
    let mut s = client.tcp().await.expect("tcp");
    let (_, took) = until_closed(&mut s).await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    gate.stop().await;
}

#[tokio::test]
async fn a_slow_request_head_is_cut() {
    let (_pki, mock, gate, client) =
        rig(Behaviour::Echo, "[timeouts]\nrequest_head = \"1s\"\n").await;
    let mut s = client.tls(false).await.expect("tls");
    s.write_all(b"GET /desktop/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\n")
        .await
        .expect("write");
    let mut ticks = 0;
    // keep trickling header bytes: progress must not extend the head deadline
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        if s.write_all(b"X-A: b\r\n").await.is_err() {
            break;
        }
        ticks += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, _) = until_closed(&mut s).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "connection stayed open for {:?} ({ticks} writes)",
        start.elapsed()
    );
    assert!(mock.heads.lock().expect("lock").is_empty());
    let lines = gate.log_lines(1).await;
    assert_eq!(
        (lines[0]["status"].as_u64(), lines[0]["deny"].as_str()),
        (Some(408), Some("head_timeout")),
        "{lines:?}"
    );
    // others are still served
    assert_eq!(client.get(HOST, "/desktop/").await.status, 200);
    gate.stop().await;
}

#[tokio::test]
async fn a_stalled_request_body_gets_408() {
    let (_pki, _mock, gate, client) =
        rig(Behaviour::Echo, "[timeouts]\nbody_idle = \"1s\"\n").await;
    let mut s = client.tls(false).await.expect("tls");
    s.write_all(b"POST /finesse/api/x HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nContent-Length: 100\r\n\r\n0123456789").await.expect("write");
    let (out, took) = until_closed(&mut s).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(took < Duration::from_secs(5));
    gate.stop().await;
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed() {
    let (_pki, _mock, gate, client) =
        rig(Behaviour::Echo, "[timeouts]\nkeepalive = \"1s\"\n").await;
    let mut s = client.tls(false).await.expect("tls");
    s.write_all(b"GET /desktop/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\n\r\n")
        .await
        .expect("write");
    let (out, took) = until_closed(&mut s).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn keepalive_connections_close_after_the_request_limit() {
    let (_pki, _mock, gate, client) =
        rig(Behaviour::Echo, "[limits]\nkeepalive_requests = 3\n").await;
    let reqs = (0..4)
        .map(|_| {
            Request::get("/desktop/")
                .header("host", HOST)
                .body(Full::new(Bytes::new()))
                .expect("req")
        })
        .collect();
    let out = client.h1_many(reqs).await;
    assert_eq!(out[0].as_ref().expect("1").status, 200);
    assert!(out[1]
        .as_ref()
        .expect("2")
        .headers
        .get("connection")
        .is_none());
    assert_eq!(out[2].as_ref().expect("3").headers["connection"], "close");
    assert!(out[3].is_err(), "the fourth request has no connection left");
    gate.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_mid_request_is_logged_once_as_499() {
    let (_pki, mock, gate, client) = rig(Behaviour::Slow, "").await;
    let mut s = client.tls(false).await.expect("tls");
    s.write_all(b"GET /desktop/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\n\r\n")
        .await
        .expect("write");
    for _ in 0..500 {
        if !mock.heads.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(s);
    let lines = gate.log_lines(1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["status"], 499);
    gate.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_send_idle() {
    let (_pki, _mock, gate, client) =
        rig(Behaviour::Huge, "[timeouts]\nsend_idle = \"1s\"\n").await;
    let mut s = client.tls(false).await.expect("tls");
    s.write_all(b"GET /desktop/huge HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\n\r\n")
        .await
        .expect("write");
    // read nothing until the server must have given up on us
    let lines = gate.log_lines(1).await;
    assert_eq!(
        lines.len(),
        1,
        "the abandoned answer is logged once: {lines:?}"
    );
    assert_eq!(lines[0]["incomplete"], true, "{lines:?}");
    let (got, _) = until_closed(&mut s).await;
    assert!(
        got.len() < 64 * 1024 * 1024,
        "the whole body arrived: {}",
        got.len()
    );
    gate.stop().await;
}

#[tokio::test]
async fn an_upstream_that_stalls_mid_body_is_cut() {
    let (_pki, _mock, gate, client) = rig(
        Behaviour::StallMidBody,
        "[timeouts]\nupstream_response = \"1s\"\n",
    )
    .await;
    let started = Instant::now();
    let req = Request::get("/desktop/")
        .header("host", HOST)
        .body(Full::new(Bytes::new()))
        .expect("req");
    let r = tokio::time::timeout(Duration::from_secs(10), client.h1(req))
        .await
        .expect("cut in time");
    assert!(r.is_err(), "a stalled body must not look complete");
    assert!(started.elapsed() < Duration::from_secs(5));
    gate.stop().await;
}

#[tokio::test]
async fn idle_h2_connections_are_closed() {
    let (_pki, _mock, gate, client) =
        rig(Behaviour::Echo, "[timeouts]\nkeepalive = \"1s\"\n").await;
    let tls = client.tls(true).await.expect("tls");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2");
    let conn = tokio::spawn(conn);
    let req = Request::get(format!("https://{HOST}/desktop/"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(send.send_request(req).await.expect("send").status(), 200);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle h2 connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    gate.stop().await;
}
