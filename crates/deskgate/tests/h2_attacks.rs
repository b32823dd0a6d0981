//! HTTP/2 abuse with hand-made frames: rapid reset (CVE-2023-44487) and
//! CONTINUATION floods. deskgate must cut the connection early, spend
//! little upstream, and keep serving everyone else.

use deskgate_testkit::client::Client;
use deskgate_testkit::deskgate::rig;
use deskgate_testkit::h2raw::*;
use deskgate_testkit::mock::Behaviour;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "finesse1a.example.com:8445";

/// Writes `attack` (ignoring write errors once the server hangs up) and
/// returns the frames the server sent until it closed.
async fn attack(client: &Client, attack: Vec<u8>) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let s = client.tls(true).await.expect("tls");
    let (mut r, mut w) = tokio::io::split(s);
    let writer = tokio::spawn(async move {
        let _ = w.write_all(&preface()).await;
        for chunk in attack.chunks(16 * 1024) {
            if w.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = w.flush().await;
        w
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), r.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the abusive connection open");
    let _ = writer.await;
    parse(&got)
}

/// The frames the server sends within a second (the connection may stay open).
async fn frames_within_a_second<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    parse(&got)
}

#[tokio::test]
async fn rapid_reset_gets_goaway() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    let mut burst = Vec::new();
    for i in 0..5000u32 {
        let id = 2 * i + 1;
        burst.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &get_block(HOST, "/desktop/"),
        ));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let frames = attack(&client, burst).await;
    let goaway = frames
        .iter()
        .find(|f| f.0 == GOAWAY)
        .expect("a GOAWAY frame");
    let code = u32::from_be_bytes([goaway.3[4], goaway.3[5], goaway.3[6], goaway.3[7]]);
    assert_eq!(code, 0xb, "ENHANCE_YOUR_CALM");
    let reached = mock.heads.lock().expect("lock").len();
    assert!(
        reached <= 50,
        "{reached} reset streams reached the upstream"
    );
    assert_eq!(
        client.get(HOST, "/desktop/").await.status,
        200,
        "others are still served"
    );
    gate.stop().await;
}

#[tokio::test]
async fn continuation_flood_is_cut_off() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    let mut flood = frame(HEADERS, END_STREAM, 1, &get_block(HOST, "/desktop/"));
    let value = "v".repeat(100);
    for i in 0..20_000u32 {
        flood.extend(frame(
            CONTINUATION,
            0,
            1,
            &literal(&format!("x-junk-{i}"), &value),
        ));
    }
    let frames = attack(&client, flood).await;
    assert!(
        frames.iter().any(|f| f.0 == GOAWAY
            || f.0 == RST_STREAM
            || (f.0 == HEADERS && f.3.windows(3).any(|w| w == b"431"))),
        "expected a refusal, got {} frames",
        frames.len()
    );
    assert!(
        mock.heads.lock().expect("lock").is_empty(),
        "the flooded request reached the upstream"
    );
    assert_eq!(
        client.get(HOST, "/desktop/").await.status,
        200,
        "others are still served"
    );
    gate.stop().await;
}

#[tokio::test]
async fn connection_specific_headers_make_an_h2_request_malformed() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    let mut s = client.tls(true).await.expect("tls");
    let mut block = get_block(HOST, "/desktop/");
    block.extend(literal("transfer-encoding", "chunked"));
    let mut bytes = preface();
    bytes.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    s.write_all(&bytes).await.expect("write");
    let frames = frames_within_a_second(&mut s).await;
    assert!(
        frames
            .iter()
            .any(|f| (f.0 == RST_STREAM && f.2 == 1) || f.0 == GOAWAY),
        "expected the stream to be refused: {:?}",
        frames.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>()
    );
    assert!(mock.heads.lock().expect("lock").is_empty());
    drop(s);
    gate.stop().await;
}

#[tokio::test]
async fn a_zero_window_slow_reader_is_dropped_after_send_idle() {
    let (_pki, _mock, gate, client) =
        rig(Behaviour::Huge, "[timeouts]\nsend_idle = \"1s\"\n").await;
    let mut s = client.tls(true).await.expect("tls");
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: the server may never send us DATA
    bytes.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    bytes.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &get_block(HOST, "/desktop/huge"),
    ));
    s.write_all(&bytes).await.expect("write");
    let started = std::time::Instant::now();
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "the zero-window reader kept its stream open"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too early: {:?}",
        started.elapsed()
    );
    let lines = gate.log_lines(1).await;
    assert_eq!(lines[0]["incomplete"], true, "{lines:?}");
    gate.stop().await;
}

#[tokio::test]
async fn streams_over_the_concurrency_cap_are_refused() {
    let (_pki, mock, gate, client) = rig(Behaviour::Slow, "[limits]\nh2_max_streams = 2\n").await;
    let mut s = client.tls(true).await.expect("tls");
    let mut bytes = preface();
    for id in [1u32, 3, 5] {
        bytes.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &get_block(HOST, "/desktop/"),
        ));
    }
    s.write_all(&bytes).await.expect("write");
    let frames = frames_within_a_second(&mut s).await;
    assert!(
        frames
            .iter()
            .any(|f| (f.0 == RST_STREAM && f.2 == 5) || f.0 == GOAWAY),
        "the third stream must be refused: {:?}",
        frames.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>()
    );
    assert!(mock.heads.lock().expect("lock").len() <= 2);
    drop(s);
    gate.stop().await;
}
