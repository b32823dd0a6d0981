//! Security regressions: bypass attempts, misrouting, oversized input and
//! failing upstreams. Each gets the right status, reaches no upstream when
//! it should not, leaks no internal name, and deskgate keeps serving.

use bytes::Bytes;
use deskgate_testkit::client::{Client, Resp};
use deskgate_testkit::deskgate::{one_route, rig, start_one_route, Gate, Setup};
use deskgate_testkit::mock::{Behaviour, Mock};
use deskgate_testkit::pki::Pki;
use http::Request;
use http_body_util::Full;

const HOST: &str = "finesse1a.example.com:8445";

/// Words that must never reach a client.
fn assert_no_leak(r: &Resp, upstream: &Mock) {
    let all = r.everything().to_lowercase();
    for word in [
        "internal.test",
        "127.0.0.1",
        &upstream.addr.port().to_string(),
        "mock-upstream",
    ] {
        assert!(!all.contains(word), "answer leaks {word:?}:\n{all}");
    }
}

fn raw_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").into_bytes()
}

fn status_of(raw: &str) -> u16 {
    raw.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn path_bypass_variants_never_reach_the_upstream() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    let cases: &[(&str, u16)] = &[
        ("/desktop/../cfadmin", 403),
        ("/desktop/%2e%2e/cfadmin", 403),
        ("/desktop/%2E%2e/cfadmin/", 403),
        ("/%63fadmin", 403),
        ("//cfadmin", 403),
        ("/CFADMIN", 403),
        ("/cfadmin;x=y", 403),
        ("/desktop/..;/cfadmin", 400),
        ("/desktop;x/../cfadmin", 400),
        ("/desktop%2fcfadmin", 400),
        ("/desktop/%5c../cfadmin", 400),
        ("/desktop/%00", 400),
        ("/desktop/%c0%ae%c0%ae/cfadmin", 400),
        ("/desktop/%zz", 400),
        ("/../cfadmin", 400),
        ("/fippa/", 403),
        ("/desktop/sso/test", 403),
        ("/manager/html", 421),
        ("/desktopx", 421),
    ];
    for (path, want) in cases {
        let raw = client.raw(&raw_get(path)).await;
        assert_eq!(status_of(&raw), *want, "{path}: {raw}");
        assert!(
            !raw.to_lowercase().contains("internal.test"),
            "{path} leaks: {raw}"
        );
    }
    assert!(
        mock.heads.lock().expect("lock").is_empty(),
        "a bypass reached the upstream: {:?}",
        mock.heads.lock().expect("lock")
    );
    // a backslash is refused by the HTTP parser itself, or by us
    let raw = client
        .raw(b"GET /desktop\\..\\cfadmin HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\n\r\n")
        .await;
    assert_eq!(status_of(&raw), 400, "{raw}");
    // and the same bypasses over HTTP/2
    for (path, want) in [
        ("/desktop/../cfadmin", 403),
        ("/desktop/..;/cfadmin", 400),
        ("/%63fadmin", 403),
    ] {
        let req = Request::get(format!("https://{HOST}{path}"))
            .body(Full::new(Bytes::new()))
            .expect("req");
        let r = client.h2(req).await.expect("h2");
        assert_eq!(r.status, want, "h2 {path}");
    }
    assert!(mock.heads.lock().expect("lock").is_empty());
    // the normalised path is what the upstream sees, re-encoded canonically
    let r = client
        .get(HOST, "/desktop//js/./app%2Ejs;jsessionid=1?x=%2F..")
        .await;
    assert_eq!(r.status, 200);
    assert!(
        mock.last_head()
            .starts_with("GET /desktop/js/app.js;jsessionid=1?x=%2F.. HTTP/1.1"),
        "{}",
        mock.last_head()
    );
    gate.stop().await;
}

#[tokio::test]
async fn unknown_hosts_ports_and_misdirected_h2_get_421() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    assert_eq!(
        client
            .get("unknown.example.com:8445", "/desktop/")
            .await
            .status,
        421
    );
    assert_eq!(
        client
            .get("finesse1a.example.com:9999", "/desktop/")
            .await
            .status,
        421
    );
    // a Host without a port means the listener's external port
    assert_eq!(
        client
            .get("finesse1a.example.com", "/desktop/")
            .await
            .status,
        200
    );
    // no Host at all
    let raw = client
        .raw(b"GET /desktop/ HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(status_of(&raw), 400, "{raw}");
    // HTTP/2: SNI other.example.com (a different certificate), Host finesse1a: 421
    let other = client.clone().with_sni("other.example.com");
    let req = Request::get(format!("https://{HOST}/desktop/"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(other.h2(req).await.expect("h2").status, 421);
    // same certificate covers idsa: coalescing is fine
    let req = Request::get("https://idsa.example.com:8445/ids/v1/x")
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(client.h2(req).await.expect("h2").status, 200);
    // HTTP/2 with :authority and a different Host header: refused
    let req = Request::get(format!("https://{HOST}/desktop/"))
        .header("host", "other.example.com:8445")
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(client.h2(req).await.expect("h2").status, 400);
    // no SNI at all (IP literal): routed by Host alone
    let by_ip = client.clone().with_sni("127.0.0.1");
    assert_eq!(by_ip.get(HOST, "/desktop/").await.status, 200);
    let n = mock.heads.lock().expect("lock").len();
    assert_eq!(n, 3, "only the three valid requests reached the upstream");
    gate.stop().await;
}

#[tokio::test]
async fn methods_outside_the_component_set_get_405() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    for m in ["TRACE", "CONNECT", "PATCH"] {
        let raw = client
            .raw(
                format!("{m} /desktop/ HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        assert_eq!(status_of(&raw), 405, "{m}: {raw}");
    }
    // IdS allows GET, POST, OPTIONS only
    let raw = client.raw(b"PUT /ids/v1/x HTTP/1.1\r\nHost: idsa.example.com:8445\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status_of(&raw), 405, "{raw}");
    assert!(mock.heads.lock().expect("lock").is_empty());
    gate.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_heads_are_refused() {
    let extra = "[limits]\nmax_body = \"64KB\"\n";
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, extra).await;
    // declared too large: 413 before anything is read
    let raw = client
        .raw(
            format!(
                "POST /finesse/api/x HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    assert_eq!(status_of(&raw), 413, "{raw}");
    // streamed (chunked) past the limit: 413
    let mut chunked = format!(
        "POST /finesse/api/x HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..20 {
        chunked.extend_from_slice(b"1000\r\n");
        chunked.extend_from_slice(&[b'a'; 0x1000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let raw = client.raw(&chunked).await;
    assert_eq!(status_of(&raw), 413, "{}", &raw[..raw.len().min(200)]);
    // one header line over 8 KB: 431
    let big = "a".repeat(9000);
    let raw = client
        .raw(format!("GET /desktop/ HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&raw), 431, "{}", &raw[..raw.len().min(200)]);
    // a head over 20 KB in all: 431
    let many: String = (0..30)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(1000)))
        .collect();
    let raw = client
        .raw(format!("GET /desktop/ HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&raw), 431, "{}", &raw[..raw.len().min(200)]);
    // more than 100 header fields: 431
    let fields: String = (0..120).map(|i| format!("X-F{i}: 1\r\n")).collect();
    let raw = client
        .raw(format!("GET /desktop/ HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&raw), 431, "{}", &raw[..raw.len().min(200)]);
    // the same over HTTP/2
    let mut req = Request::get(format!("https://{HOST}/desktop/"));
    for i in 0..120 {
        req = req.header(format!("x-f{i}"), "1");
    }
    let r = client
        .h2(req.body(Full::new(Bytes::new())).expect("req"))
        .await
        .expect("h2");
    assert_eq!(r.status, 431);
    let ok_body = Request::post(format!("https://{HOST}/finesse/api/x"))
        .body(Full::new(Bytes::from(vec![b'z'; 60_000])))
        .expect("req");
    let r = client.h2(ok_body).await.expect("h2");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("body-bytes: 60000"), "{}", r.text());
    let big_body = Request::post(format!("https://{HOST}/finesse/api/x"))
        .body(Full::new(Bytes::from(vec![b'z'; 70_000])))
        .expect("req");
    let r = client.h2(big_body).await.expect("h2");
    assert_eq!(r.status, 413);
    assert_eq!(
        mock.heads.lock().expect("lock").len(),
        1,
        "only the allowed body reached the upstream"
    );
    gate.stop().await;
}

#[tokio::test]
async fn slow_upstream_gets_504_without_leaks() {
    let extra = "[timeouts]\nupstream_response = \"1s\"\n";
    let (_pki, mock, gate, client) = rig(Behaviour::Slow, extra).await;
    let r = client.get(HOST, "/desktop/").await;
    assert_eq!(r.status, 504);
    assert_no_leak(&r, &mock);
    // and deskgate keeps answering
    assert_eq!(client.get(HOST, "/cfadmin").await.status, 403);
    gate.stop().await;
}

#[tokio::test]
async fn dead_upstream_gets_502_without_leaks_and_deskgate_keeps_serving() {
    let pki = Pki::new();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }; // closed again: nothing listens there
    let (gate, client) = start_one_route(
        &pki,
        &Setup {
            upstream: dead,
            ..Setup::default()
        },
    )
    .await;
    for _ in 0..3 {
        let r = client.get(HOST, "/desktop/").await;
        assert_eq!(r.status, 502);
        let all = r.everything();
        assert!(
            !all.contains("internal.test") && !all.contains(&dead.port().to_string()),
            "{all}"
        );
    }
    let lines = gate.log_lines(3).await;
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == 502 && l["deny"] == "upstream_unreachable"),
        "{lines:?}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn upstream_reset_mid_body_cuts_the_answer_and_deskgate_keeps_serving() {
    let (pki, _mock, gate, client) = rig(Behaviour::ResetMidBody, "").await;
    let req = Request::get("/desktop/big")
        .header("host", HOST)
        .body(Full::new(Bytes::new()))
        .expect("req");
    let r = client.h1(req).await;
    assert!(r.is_err(), "a truncated body must not look complete: {r:?}");
    let req = Request::get(format!("https://{HOST}/desktop/big"))
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert!(client.h2(req).await.is_err(), "h2 stream must be reset");
    // deskgate keeps serving on the same listener
    let raw = client.raw(&raw_get("/cfadmin")).await;
    assert_eq!(status_of(&raw), 403);
    let lines = gate.log_lines(3).await;
    assert!(
        lines.iter().any(|l| l["incomplete"] == true),
        "the cut answer is logged as incomplete: {lines:?}"
    );
    drop(pki);
    gate.stop().await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_is_closed() {
    let (_pki, mock, gate, _client) = rig(Behaviour::Echo, "").await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gate.addr("front"))
        .await
        .expect("connect");
    s.write_all(b"GET /desktop/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "expected a silent close, got {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(mock.heads.lock().expect("lock").is_empty());
    gate.stop().await;
}

#[tokio::test]
async fn every_request_is_logged_exactly_once() {
    let (_pki, _mock, gate, client) = rig(Behaviour::Echo, "").await;
    let reqs = vec![
        Request::get("/desktop/")
            .header("host", HOST)
            .body(Full::new(Bytes::new()))
            .expect("r"),
        Request::get("/cfadmin")
            .header("host", HOST)
            .body(Full::new(Bytes::new()))
            .expect("r"),
        Request::get("/nope")
            .header("host", HOST)
            .body(Full::new(Bytes::new()))
            .expect("r"),
        Request::get("/desktop/?secret=hunter2")
            .header("host", HOST)
            .header("authorization", "Basic YWdlbnQ6aHVudGVyMg==")
            .body(Full::new(Bytes::new()))
            .expect("r"),
    ];
    let out = client.h1_many(reqs).await;
    let statuses: Vec<u16> = out
        .iter()
        .map(|r| r.as_ref().map(|r| r.status).unwrap_or(0))
        .collect();
    assert_eq!(statuses, vec![200, 403, 421, 200]);
    let lines = gate.log_lines(4).await;
    // give a late duplicate a chance to show up
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let lines_again = gate.log_lines(4).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines_again.len(), 4);
    let ids: std::collections::HashSet<_> = lines.iter().map(|l| l["id"].to_string()).collect();
    assert_eq!(ids.len(), 4);
    let text = std::fs::read_to_string(&gate.access_log).expect("log");
    assert!(
        !text.contains("hunter2") && !text.contains("YWdlbnQ6aHVudGVyMg"),
        "secrets in the log: {text}"
    );
    assert_eq!(lines[1]["deny"], "admin_path");
    assert_eq!(lines[0]["client"], "127.0.0.1");
    gate.stop().await;
}

#[tokio::test]
async fn request_smuggling_shapes_are_refused_before_the_upstream() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    // CL.TE: both framings. The parser follows RFC 9112 6.3 (chunked wins,
    // Content-Length is dropped, the connection closes after the answer), so
    // the bytes after the chunked body are never read as a second request.
    let clte = "POST /finesse/api/x HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /cfadmin HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\n\r\n";
    let answer = client.raw(clte.as_bytes()).await;
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one answer only: {answer}"
    );
    {
        let heads = mock.heads.lock().expect("lock");
        assert_eq!(heads.len(), 1);
        assert!(
            !heads[0].to_lowercase().contains("content-length"),
            "{}",
            heads[0]
        );
    }
    mock.heads.lock().expect("lock").clear();
    let cases: &[&str] = &[
        // two different Content-Length values
        "POST /finesse/api/x HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        // an unknown transfer coding
        "POST /finesse/api/x HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        // obsolete line folding
        "GET /desktop/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nX-A: 1\r\n b\r\n\r\n",
        // a space before the colon
        "GET /desktop/ HTTP/1.1\r\nHost : finesse1a.example.com:8445\r\n\r\n",
        // two Host headers
        "GET /desktop/ HTTP/1.1\r\nHost: finesse1a.example.com:8445\r\nHost: other.example.com:8445\r\n\r\n",
    ];
    for raw in cases {
        let answer = client.raw(raw.as_bytes()).await;
        let status = status_of(&answer);
        assert!(
            status == 400 || (status == 0 && answer.is_empty()),
            "{raw:?} -> {answer:?}"
        );
    }
    let reached = mock.heads.lock().expect("lock").clone();
    assert!(
        reached.iter().all(|h| !h.contains("cfadmin")),
        "a smuggled request reached the upstream: {reached:?}"
    );
    assert!(reached.is_empty(), "{reached:?}");
    gate.stop().await;
}

#[tokio::test]
async fn requests_the_parser_refuses_are_logged_too() {
    let (_pki, _mock, gate, client) = rig(Behaviour::Echo, "").await;
    let fields: String = (0..120).map(|i| format!("X-F{i}: 1\r\n")).collect();
    let raw = client
        .raw(format!("GET /desktop/ HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&raw), 431);
    let raw = client
        .raw(b"GET /desktop/ HTTP/1.1\r\nHost : finesse1a.example.com:8445\r\n\r\n")
        .await;
    assert_eq!(status_of(&raw), 400);
    let lines = gate.log_lines(2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        (lines[0]["status"].as_u64(), lines[0]["deny"].as_str()),
        (Some(431), Some("head_too_large"))
    );
    assert_eq!(
        (lines[1]["status"].as_u64(), lines[1]["deny"].as_str()),
        (Some(400), Some("malformed_request"))
    );
    assert!(
        lines.iter().all(|l| l.get("incomplete").is_none()),
        "{lines:?}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn admin_paths_of_every_component_are_forbidden() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    for (host, path) in [
        ("idsa.example.com:8445", "/idsadmin/"),
        ("idsa.example.com:8445", "/ids/v1/sso/test"),
        ("finesse1a.example.com:8445", "/oamp/"),
        ("finesse1a.example.com:8445", "/idsadmin"),
        ("livedataa.example.com:8445", "/cfadmin/"),
        ("other.example.com:8445", "/cfadmin"),
    ] {
        let r = client.get(host, path).await;
        assert_eq!(r.status, 403, "{host}{path}");
    }
    assert!(mock.heads.lock().expect("lock").is_empty());
    gate.stop().await;
}

#[tokio::test]
async fn filter_settings_from_the_file_apply() {
    let extra = "[filter]\nunsupported_status = 404\nuser_agent = \"Chrome|Firefox\"\nreferer_hosts = [\"finesse1a.example.com\"]\n";
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, extra).await;
    let send = |ua: &'static str, referer: Option<&'static str>, path: &'static str| {
        let client = client.clone();
        async move {
            let mut req = Request::get(path)
                .header("host", HOST)
                .header("user-agent", ua);
            if let Some(r) = referer {
                req = req.header("referer", r);
            }
            client
                .h1(req.body(Full::new(Bytes::new())).expect("req"))
                .await
                .expect("h1")
                .status
        }
    };
    assert_eq!(send("Mozilla/5.0 Chrome/120", None, "/nope").await, 404);
    assert_eq!(send("curl/8.0", None, "/desktop/").await, 412);
    assert_eq!(
        send(
            "Mozilla/5.0 Chrome/120",
            Some("https://evil.example.net/"),
            "/desktop/"
        )
        .await,
        417
    );
    assert_eq!(
        send(
            "Mozilla/5.0 Chrome/120",
            Some("https://finesse1a.example.com:8445/desktop/"),
            "/desktop/"
        )
        .await,
        200
    );
    assert_eq!(mock.heads.lock().expect("lock").len(), 1);
    gate.stop().await;
}

#[tokio::test]
async fn connect_timeout_gets_504() {
    // a listener whose accept queue is full drops new SYNs: connects hang
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let full = sock.listen(0).expect("listen");
    let addr = full.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(s);
        }
    }
    let pki = Pki::new();
    let extra = "[timeouts]\nupstream_connect = \"1s\"\n";
    let gate = Gate::start(
        &pki,
        &one_route(
            &pki,
            &Setup {
                upstream: addr,
                extra,
                ..Setup::default()
            },
        ),
    )
    .await;
    let client = Client::new(&pki, gate.addr("front"), "finesse1a.example.com");
    let r = client.get(HOST, "/desktop/").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(!r.everything().contains(&addr.port().to_string()));
    let lines = gate.log_lines(1).await;
    assert_eq!(lines[0]["deny"], "upstream_timeout");
    drop((full, fillers));
    gate.stop().await;
}

#[tokio::test]
async fn an_overlong_request_target_gets_414() {
    let (_pki, mock, gate, client) = rig(Behaviour::Echo, "").await;
    let long_query = "q=".to_string() + &"a".repeat(9000);
    let raw = client
        .raw(format!("GET /desktop/?{long_query} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&raw), 414, "{}", &raw[..raw.len().min(100)]);
    let raw = client
        .raw(
            format!("GET /desktop/?q=short HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
    assert_eq!(status_of(&raw), 200);
    assert_eq!(mock.heads.lock().expect("lock").len(), 1);
    gate.stop().await;
}

#[tokio::test]
async fn a_broken_chunked_body_is_the_clients_fault() {
    let (_pki, _mock, gate, client) = rig(Behaviour::Echo, "").await;
    let raw = client
        .raw(format!("POST /finesse/api/x HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n").as_bytes())
        .await;
    assert_eq!(status_of(&raw), 400, "{raw}");
    let lines = gate.log_lines(1).await;
    assert_eq!(lines[0]["deny"], "bad_request_body", "{lines:?}");
    gate.stop().await;
}
