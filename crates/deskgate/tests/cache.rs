//! The response cache (SPEC 8) against a recording origin whose answers
//! are chosen by words in the path (`mock::origin_answer`): static files
//! served from memory, revalidation, one fetch for concurrent misses,
//! `Vary`, no sharing across users, eviction by size, preflights, and the
//! operator's `deskgate cache clear`. Every security stage is on.

use deskgate_testkit::client::{Client, Resp};
use deskgate_testkit::deskgate::Gate;
use deskgate_testkit::edge::{self, FINESSE};
use deskgate_testkit::mock::{Behaviour, Mock};
use deskgate_testkit::pki::Pki;
use std::sync::atomic::Ordering;

async fn rig(extra: &str) -> (Pki, Mock, Gate, Client) {
    let (pki, mock, gate) = edge::finesse_rig_with(Behaviour::Origin, extra, "").await;
    let c = edge::client(&pki, &gate, FINESSE, "127.0.60.1");
    (pki, mock, gate, c)
}

/// The request heads the origin saw for exactly this path (and query).
fn heads_for(mock: &Mock, target: &str) -> Vec<String> {
    let line = format!(" {target} HTTP/1.1");
    mock.heads
        .lock()
        .expect("lock")
        .iter()
        .filter(|h| h.lines().next().is_some_and(|l| l.ends_with(&line)))
        .cloned()
        .collect()
}

fn seen(mock: &Mock, target: &str) -> usize {
    heads_for(mock, target).len()
}

fn last_head_for(mock: &Mock, target: &str) -> String {
    heads_for(mock, target).pop().unwrap_or_default()
}

async fn get(c: &Client, path: &str, headers: &[(&str, &str)]) -> Resp {
    edge::send(c, "GET", FINESSE, path, headers).await
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// The access log's cache field of each request for `path`, in order.
async fn cache_fields(gate: &Gate, path: &str, at_least: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let fields: Vec<String> = gate
            .log_lines(0)
            .await
            .iter()
            .filter(|l| l["path"] == path)
            .map(|l| l["cache"].as_str().unwrap_or("").to_string())
            .collect();
        if fields.len() >= at_least || tokio::time::Instant::now() > deadline {
            return fields;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn static_files_come_from_memory_and_clients_get_304() {
    let (_pki, mock, gate, c) = rig("").await;
    let p = "/desktop/js/app.js";
    for _ in 0..5 {
        let r = get(&c, p, &[]).await;
        assert_eq!(r.status, 200);
        assert!(
            text(&r).starts_with("/desktop/js/app.js v1"),
            "{}",
            text(&r)
        );
    }
    assert_eq!(seen(&mock, p), 1, "one upstream fetch for five requests");
    let r = get(&c, p, &[]).await;
    assert!(
        r.headers.contains_key("age"),
        "a stored answer says its age"
    );
    assert_eq!(r.headers["etag"], "\"v1\"");
    // the browser's own revalidation is answered here
    let r = get(&c, p, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.headers["etag"], "\"v1\"");
    let r = get(&c, p, &[("if-none-match", "\"v0\"")]).await;
    assert_eq!(r.status, 200);
    let r = get(
        &c,
        p,
        &[("if-modified-since", "Sun, 06 Nov 1994 08:49:01 GMT")],
    )
    .await;
    assert_eq!(r.status, 304);
    // HEAD is answered from the stored GET
    let r = edge::send(&c, "HEAD", FINESSE, p, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(seen(&mock, p), 1);
    let fields = cache_fields(&gate, p, 10).await;
    assert_eq!(fields[0], "miss");
    assert!(fields[1..].iter().all(|f| f == "hit"), "{fields:?}");
    gate.stop().await;
}

#[tokio::test]
async fn stale_answers_are_revalidated_with_the_upstream() {
    let (_pki, mock, gate, c) = rig("").await;
    // no-cache: kept, but checked with the upstream before each use
    let p = "/desktop/js/nocache.js";
    let r = get(&c, p, &[]).await;
    assert!(text(&r).contains(" v1 "));
    let r = get(&c, p, &[]).await;
    assert_eq!(
        r.status, 200,
        "a 304 from the upstream is a 200 with the stored body"
    );
    assert!(text(&r).contains(" v1 "));
    assert_eq!(seen(&mock, p), 2);
    let check = last_head_for(&mock, p).to_ascii_lowercase();
    assert!(check.contains("if-none-match: \"v1\""), "{check}");
    assert!(
        check.contains("if-modified-since: sun, 06 nov 1994 08:49:01 gmt"),
        "{check}"
    );
    // the file changes upstream: the next check gets the new one
    mock.version.store(2, Ordering::SeqCst);
    let r = get(&c, p, &[]).await;
    assert!(text(&r).contains(" v2 "), "{}", text(&r));
    assert_eq!(r.headers["etag"], "\"v2\"");
    // a client's own old validator is not what the upstream sees
    let r = get(&c, p, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(r.status, 200);
    assert!(last_head_for(&mock, p).contains("\"v2\""));
    let fields = cache_fields(&gate, p, 4).await;
    assert_eq!(fields, ["miss", "revalidated", "expired", "revalidated"]);
    gate.stop().await;
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_fetch() {
    let (_pki, mock, gate, _c) = rig("").await;
    let p = "/desktop/js/slow.js";
    let mut tasks = Vec::new();
    for i in 0..20 {
        // from 20 addresses, so that no per-address cap is in the way
        let c = edge::client(&_pki, &gate, FINESSE, &format!("127.0.61.{}", i + 1));
        tasks.push(tokio::spawn(async move { get(&c, p, &[]).await }));
    }
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200);
        assert!(text(&r).starts_with("/desktop/js/slow.js v1"));
    }
    assert_eq!(seen(&mock, p), 1, "20 concurrent misses, one fetch");
    let fields = cache_fields(&gate, p, 20).await;
    assert_eq!(
        fields.iter().filter(|f| *f == "miss").count(),
        1,
        "{fields:?}"
    );
    assert_eq!(
        fields.iter().filter(|f| *f == "hit").count(),
        19,
        "{fields:?}"
    );
    gate.stop().await;
}

#[tokio::test]
async fn vary_keeps_one_answer_per_encoding() {
    let (_pki, mock, gate, c) = rig("").await;
    let p = "/desktop/js/vary.js";
    let gz = [("accept-encoding", "gzip")];
    let br = [("accept-encoding", "br")];
    for _ in 0..3 {
        assert!(text(&get(&c, p, &gz).await).contains("enc=gzip"));
        assert!(text(&get(&c, p, &br).await).contains("enc=br"));
        assert!(text(&get(&c, p, &[]).await).contains("enc=-"));
    }
    assert_eq!(seen(&mock, p), 3, "one fetch per Accept-Encoding value");
    gate.stop().await;
}

#[tokio::test]
async fn answers_that_depend_on_the_user_are_never_shared() {
    let (_pki, mock, gate, c) = rig("").await;
    // the origin marks this REST answer `private, max-age=60`
    let p = "/finesse/api/User/1001/private";
    let a = edge::good("1001");
    let b = edge::good("1002");
    for _ in 0..3 {
        let r = get(&c, p, &[("authorization", &a)]).await;
        assert_eq!(r.status, 200);
        assert!(text(&r).contains("user=1001"), "{}", text(&r));
    }
    assert_eq!(seen(&mock, p), 1, "the user's own copy is reused");
    let r = get(&c, p, &[("authorization", &b)]).await;
    assert!(text(&r).contains("user=1002"), "{}", text(&r));
    assert_eq!(seen(&mock, p), 2, "another user never gets 1001's copy");
    // nobody without a credential gets anything
    assert_eq!(get(&c, p, &[]).await.status, 401);
    assert_eq!(
        get(&c, p, &[("authorization", &edge::basic("1001", "wrong"))])
            .await
            .status,
        401
    );
    assert_eq!(seen(&mock, p), 2);
    // REST answers without cache headers are never kept
    let q = "/finesse/api/User/1001/Dialogs";
    for _ in 0..3 {
        get(&c, q, &[("authorization", &a)]).await;
    }
    assert_eq!(seen(&mock, q), 3);
    // an answer that sets a cookie, or says no-store, is never kept
    for p in ["/desktop/js/cookie.js", "/desktop/js/nostore.js"] {
        for _ in 0..2 {
            get(&c, p, &[]).await;
        }
        assert_eq!(seen(&mock, p), 2, "{p}");
    }
    gate.stop().await;
}

#[tokio::test]
async fn the_cache_is_bounded_by_bytes_and_large_files_stream_past_it() {
    let (pki, mock, gate, c) = rig("[cache]\nmax_bytes = \"1MB\"\nmax_object = \"256KB\"\n").await;
    let file = |i: usize| format!("/desktop/js/f{i}.size-200000.js");
    for i in 0..12 {
        let r = get(&c, &file(i), &[]).await;
        assert_eq!(r.body.len(), 200_000);
    }
    let status = admin(&pki, "GET", "/status").await;
    let bytes = status["cache"]["bytes"].as_u64().expect("bytes");
    let entries = status["cache"]["entries"].as_u64().expect("entries");
    assert!(bytes <= 1024 * 1024, "{bytes} bytes held");
    assert!(
        (3..=5).contains(&entries),
        "{entries} entries of 200 KB in 1 MB"
    );
    // the oldest were evicted: asking again goes upstream
    let again: usize = (0..12)
        .map(|i| usize::from(seen(&mock, &file(i)) == 1))
        .sum();
    assert_eq!(again, 12);
    for i in 0..12 {
        get(&c, &file(i), &[]).await;
    }
    let refetched = (0..12).filter(|i| seen(&mock, &file(*i)) == 2).count();
    assert!(refetched >= 7, "{refetched} of 12 had to be fetched again");
    // larger than max_object: streamed whole, never kept
    let big = "/desktop/js/big.size-300000.js";
    for _ in 0..2 {
        assert_eq!(get(&c, big, &[]).await.body.len(), 300_000);
    }
    assert_eq!(seen(&mock, big), 2);
    gate.stop().await;
}

#[tokio::test]
async fn preflights_are_kept_per_origin_and_the_operator_can_clear_the_cache() {
    let (pki, mock, gate, c) = rig("").await;
    let p = "/finesse/api/User/1001";
    let preflight =
        |origin: &'static str| [("origin", origin), ("access-control-request-method", "PUT")];
    for _ in 0..3 {
        let r = edge::send(
            &c,
            "OPTIONS",
            FINESSE,
            p,
            &preflight("https://a.example.com"),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let options = |mock: &Mock| {
        mock.heads
            .lock()
            .expect("lock")
            .iter()
            .filter(|h| h.starts_with("OPTIONS "))
            .count()
    };
    assert_eq!(options(&mock), 1);
    edge::send(
        &c,
        "OPTIONS",
        FINESSE,
        p,
        &preflight("https://b.example.com"),
    )
    .await;
    assert_eq!(options(&mock), 2, "another origin is another answer");

    let s = "/desktop/js/app.js";
    get(&c, s, &[]).await;
    get(&c, s, &[]).await;
    assert_eq!(seen(&mock, s), 1);
    let socket = pki.path().join("admin.sock");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .args(["cache", "clear", "--socket"])
        .arg(&socket)
        .output()
        .await
        .expect("run deskgate");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("cache cleared: 3 entries"), "{said}");
    get(&c, s, &[]).await;
    assert_eq!(seen(&mock, s), 2, "cleared: fetched again");
    let status = admin(&pki, "GET", "/status").await;
    assert_eq!(status["cache"]["entries"], 1);
    gate.stop().await;
}

/// One request on the admin socket, its JSON answer.
async fn admin(pki: &Pki, method: &str, target: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(pki.path().join("admin.sock"))
        .await
        .expect("admin socket");
    s.write_all(
        format!("{method} {target} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body.trim()).expect("json")
}
