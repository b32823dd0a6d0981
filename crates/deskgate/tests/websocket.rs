//! WebSocket tunnelling: the upgrade passes with its subprotocol, frames of
//! any size and fragmentation pass byte for byte both ways, and an idle
//! tunnel is closed.

use deskgate_testkit::client::Client;
use deskgate_testkit::deskgate::rig;
use deskgate_testkit::mock::Behaviour;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "finesse1a.example.com:8445";

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

async fn upgrade(
    client: &Client,
    path: &str,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    String,
) {
    let mut s = client.tls(false).await.expect("tls");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).await.expect("read head");
        assert_eq!(
            n,
            1,
            "closed during the handshake: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test]
async fn large_and_fragmented_frames_pass_unchanged() {
    let (_pki, mock, gate, client) = rig(Behaviour::WebSocketEcho, "").await;
    let (s, head) = upgrade(&client, "/ws/").await;
    let lower = head.to_lowercase();
    assert!(lower.starts_with("http/1.1 101"), "{head}");
    assert!(lower.contains("sec-websocket-protocol: xmpp"), "{head}");
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(mock
        .last_head()
        .to_lowercase()
        .contains("upgrade: websocket"));

    let big: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let mut sent = frame(true, 0x2, &big, [1, 2, 3, 4]);
    sent.extend(frame(
        false,
        0x1,
        b"<message><body>part one, ",
        [9, 8, 7, 6],
    ));
    sent.extend(frame(false, 0x0, &vec![b'x'; 70_000], [5, 5, 5, 5]));
    sent.extend(frame(true, 0x0, b" the end</body></message>", [0, 1, 0, 1]));
    sent.extend(frame(true, 0x9, b"ping", [3, 3, 3, 3]));
    // write in odd-sized pieces so frames straddle TLS records and reads
    let (mut r, mut w) = tokio::io::split(s);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        for chunk in to_send.chunks(7919) {
            w.write_all(chunk).await.expect("write");
        }
        w.flush().await.expect("flush");
        w
    });
    let mut back = vec![0u8; sent.len()];
    tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("read echo");
    let w = writer.await.expect("writer");
    assert!(back == sent, "bytes changed on the way back");
    assert!(
        *mock.tunnel_bytes.lock().expect("lock") == sent,
        "bytes changed on the way up"
    );
    // the client leaves: the tunnel ends, and the drain has nothing to wait for
    drop((r, w));
    gate.stop().await;
}

#[tokio::test]
async fn idle_tunnels_are_closed() {
    let extra = "[timeouts]\ntunnel_idle = \"1s\"\n";
    let (_pki, _mock, gate, client) = rig(Behaviour::WebSocketEcho, extra).await;
    let (mut s, head) = upgrade(&client, "/ws/").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // traffic keeps it open past the idle time
    for _ in 0..3 {
        let f = frame(true, 0x9, b"p", [1, 1, 1, 1]);
        s.write_all(&f).await.expect("write");
        let mut back = vec![0u8; f.len()];
        s.read_exact(&mut back).await.expect("echo");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // then silence closes it
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "expected close, got {n:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    gate.stop().await;
}

#[tokio::test]
async fn upgrade_to_a_path_outside_the_set_is_refused() {
    let (_pki, mock, gate, client) = rig(Behaviour::WebSocketEcho, "").await;
    let (_s, head) = upgrade(&client, "/cfadmin/ws").await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(mock.heads.lock().expect("lock").is_empty());
    gate.stop().await;
}

#[tokio::test]
async fn shutdown_keeps_tunnels_through_the_drain_then_closes_them_with_1001() {
    let extra = "[timeouts]\ndrain = \"2s\"\n";
    let (_pki, _mock, gate, client) = rig(Behaviour::WebSocketEcho, extra).await;
    let (mut s, head) = upgrade(&client, "/ws/").await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(gate.stop());
    // during the drain the tunnel still works
    tokio::time::sleep(Duration::from_millis(300)).await;
    let f = frame(true, 0x9, b"still there?", [2, 4, 6, 8]);
    s.write_all(&f).await.expect("write during drain");
    let mut back = vec![0u8; f.len()];
    s.read_exact(&mut back).await.expect("echo during drain");
    assert_eq!(back, f);
    // then it gets a close frame, 1001 going away, and the end
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert_eq!(
        rest,
        vec![0x88, 0x02, 0x03, 0xE9],
        "expected a 1001 close frame"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "closed before the drain time: {:?}",
        started.elapsed()
    );
    stopping.await.expect("stop");
}

#[tokio::test]
async fn livedata_socket_io_upgrades_and_polls_pass() {
    let (_pki, mock, gate, client) = rig(Behaviour::WebSocketEcho, "").await;
    let mut s = client.tls(false).await.expect("tls");
    let req = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: livedataa.example.com:8445\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    s.write_all(req.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.expect("read"), 1);
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert!(
        mock.last_head()
            .starts_with("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1"),
        "{}",
        mock.last_head()
    );
    let f = frame(true, 0x1, b"40", [7, 7, 7, 7]);
    s.write_all(&f).await.expect("write");
    let mut back = vec![0u8; f.len()];
    s.read_exact(&mut back).await.expect("echo");
    assert_eq!(back, f);
    drop(s);
    gate.stop().await;
}

#[tokio::test]
async fn an_upgrade_that_declares_a_body_is_refused() {
    let (_pki, mock, gate, client) = rig(Behaviour::WebSocketEcho, "").await;
    let raw = "GET /ws/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 120\r\n\r\n";
    let answer = client
        .raw(format!("{raw}{}", "x".repeat(120)).as_bytes())
        .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let raw = "POST /ws/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n";
    assert!(client.raw(raw.as_bytes()).await.starts_with("HTTP/1.1 400"));
    assert!(
        mock.heads.lock().expect("lock").is_empty(),
        "nothing reached the upstream"
    );
    gate.stop().await;
}
