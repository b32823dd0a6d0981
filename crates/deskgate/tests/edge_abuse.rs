//! Abuse protection (SPEC 4, issue 4 items 4 and 5): brute force blocks a
//! user from one IP, spraying blocks the IP (with the fail2ban line), an
//! operator lifts blocks with `deskgate unblock`; agents behind one NAT do
//! not lock each other out; a trusted load balancer is never blocked while
//! the attacker behind it is; rate, in-flight and connection limits.

use deskgate_testkit::deskgate::{one_route, Gate, Setup};
use deskgate_testkit::edge::{self, basic, good, FINESSE};
use deskgate_testkit::mock::{Behaviour, Mock};
use deskgate_testkit::pki::Pki;
use deskgate_testkit::sim::{sim_rig_with, SimOptions};
use futures_util::{SinkExt, StreamExt};
use std::process::Command;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn status(c: &deskgate_testkit::client::Client, auth: &str, user: &str) -> u16 {
    let path = format!("/finesse/api/User/{user}");
    edge::send(c, "GET", FINESSE, &path, &[("authorization", auth)])
        .await
        .status
}

/// Runs the deskgate binary without blocking the runtime the gate serves on.
async fn deskgate_cli(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskgate"))
        .args(args)
        .output()
        .await
        .expect("run deskgate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn five_wrong_passwords_block_that_user_from_that_ip_only_until_unblocked() {
    let (pki, _mock, gate) = edge::finesse_rig("", "").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.50.1");
    for i in 0..4 {
        assert_eq!(
            status(&a, &basic("1001", &format!("typo{i}")), "1001").await,
            401
        );
    }
    // the same wrong password again does not count
    for _ in 0..10 {
        assert_eq!(status(&a, &basic("1001", "typo0"), "1001").await, 401);
    }
    assert_eq!(status(&a, &good("1001"), "1001").await, 200);
    assert_eq!(status(&a, &basic("1001", "typo4"), "1001").await, 401);
    // blocked: even the right password gets 418, before any credential work
    let sent = gate.running().guard().validator.sent();
    assert_eq!(status(&a, &good("1001"), "1001").await, 418);
    assert_eq!(status(&a, &basic("1001", "another"), "1001").await, 418);
    assert_eq!(gate.running().guard().validator.sent(), sent);
    // the next agent at that address, and the same agent elsewhere, are not
    assert_eq!(status(&a, &good("1002"), "1002").await, 200);
    let b = edge::client(&pki, &gate, FINESSE, "127.0.50.2");
    assert_eq!(status(&b, &good("1001"), "1001").await, 200);
    // no fail2ban line for a user + IP block
    let lines = gate.security_lines(|l| l["event"] == "block").await;
    let block = lines
        .iter()
        .find(|l| l["event"] == "block")
        .expect("block line");
    assert_eq!(block["reason"], "user_failures");
    assert_eq!(block["client"], "127.0.50.1");
    assert_eq!(block["user"], "1001");
    assert!(!block.to_string().contains("exceeding retry limit"));
    // every failure was logged, without the password
    let failures = lines
        .iter()
        .filter(|l| l["event"] == "auth_failure")
        .count();
    assert!(failures >= 5, "{lines:#?}");
    assert!(!std::fs::read_to_string(&gate.security_log)
        .expect("log")
        .contains("typo"));
    // the operator sees and lifts it
    let socket = pki.path().join("admin.sock");
    let socket = socket.to_str().expect("path");
    let (ok, out) = deskgate_cli(&["blocks", "--socket", socket]).await;
    assert!(
        ok && out.contains("127.0.50.1") && out.contains("1001"),
        "{out}"
    );
    let (ok, out) = deskgate_cli(&["unblock", "--socket", socket, "1001@127.0.50.1"]).await;
    assert!(ok && out.contains("unblocked"), "{out}");
    assert_eq!(status(&a, &good("1001"), "1001").await, 200);
    let (ok, out) = deskgate_cli(&["blocks", "--socket", socket]).await;
    assert!(ok && out.contains("no client is blocked"), "{out}");
    let (ok, out) = deskgate_cli(&["unblock", "--socket", socket, "not-an-ip"]).await;
    assert!(!ok && out.contains("not IP or USER@IP"), "{out}");
    gate.security_line(|l| l["event"] == "unblock").await;
}

#[tokio::test]
async fn spraying_blocks_the_whole_ip_with_the_fail2ban_line() {
    let (pki, _mock, gate) = edge::finesse_rig("", "").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.51.1");
    assert_eq!(status(&a, &basic("u1", "x"), "u1").await, 401);
    assert_eq!(status(&a, &basic("u2", "x"), "u2").await, 401);
    assert_eq!(status(&a, &basic("u3", "x"), "u3").await, 401);
    for u in ["1001", "1002", "u1"] {
        assert_eq!(status(&a, &good(u), u).await, 418, "{u}");
    }
    // static files too: the whole IP is blocked
    let r = edge::send(&a, "GET", FINESSE, "/desktop/js/desktop.js", &[]).await;
    assert_eq!(r.status, 418);
    let other = edge::client(&pki, &gate, FINESSE, "127.0.51.2");
    assert_eq!(status(&other, &good("1001"), "1001").await, 200);
    let lines = gate
        .security_lines(|l| l["event"] == "block" && l["reason"] == "spraying")
        .await;
    let block = lines
        .iter()
        .find(|l| l["reason"] == "spraying")
        .expect("block line");
    assert_eq!(
        block["message"],
        "127.0.51.1 will be blocked for 30 minutes for exceeding retry limit."
    );
    // the shipped fail2ban filter matches exactly this line
    if let Some(regex) = deskgate_testkit::require("fail2ban-regex") {
        let filter = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/fail2ban/filter.d/deskgate.conf"
        );
        let out = Command::new(regex)
            .arg(&gate.security_log)
            .arg(filter)
            .output()
            .expect("fail2ban-regex");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        let count = lines.len();
        assert!(
            text.contains(&format!("Lines: {count} lines, 0 ignored, 1 matched")),
            "fail2ban-regex over {count} lines:\n{text}"
        );
    }
    let socket = pki.path().join("admin.sock");
    let socket = socket.to_str().expect("path");
    let (ok, out) = deskgate_cli(&["blocks", "--socket", socket]).await;
    assert!(
        ok && out.contains("127.0.51.1") && out.contains("(whole IP)"),
        "{out}"
    );
    let (ok, out) = deskgate_cli(&["unblock", "--socket", socket, "127.0.51.1"]).await;
    assert!(ok, "{out}");
    assert_eq!(status(&a, &good("1001"), "1001").await, 200);
}

#[tokio::test]
async fn agents_behind_one_nat_keep_working_when_one_of_them_mistypes() {
    let rig = sim_rig_with(SimOptions {
        auth: "finesse",
        ..SimOptions::default()
    })
    .await;
    let nat = rig.client.clone().from_ip("127.0.52.1");
    let pw = finesse_sim::DEMO_PASSWORD;
    // agent 1002 signs in and opens its notification WebSocket
    assert_eq!(status(&nat, &basic("1002", pw), "1002").await, 200);
    let (head, stream) = edge::upgrade(&nat, FINESSE, "/ws/", "xmpp", &[]).await;
    let stream = stream.unwrap_or_else(|| panic!("no upgrade:\n{head}"));
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        stream,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    // agent 1001, at the same address, mistypes ten times
    for i in 0..10 {
        let s = status(&nat, &basic("1001", &format!("typo{i}")), "1001").await;
        assert!(matches!(s, 401 | 418), "{s}");
    }
    assert_eq!(status(&nat, &basic("1001", pw), "1001").await, 418);
    // 1002 is not blocked, its WebSocket still carries XMPP...
    ws.send(Message::text(
        "<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" to=\"cc.deskgate.test\" version=\"1.0\"/>",
    ))
    .await
    .expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer in time")
        .expect("a frame")
        .expect("not an error");
    assert!(answer.to_string().contains("<open"), "{answer}");
    // ...and a whole desktop load (about 120 static files and 20 REST calls
    // at once, over a browser's six connections) is not rate-limited, nor is
    // a second agent signing in
    let mut set = tokio::task::JoinSet::new();
    for conn in 0..6 {
        let c = nat.clone();
        let auth = basic("1002", pw);
        set.spawn(async move {
            let reqs = (0..24)
                .map(|i| {
                    if (conn * 24 + i) % 7 == 0 {
                        edge::request(
                            "GET",
                            FINESSE,
                            "/finesse/api/User/1002",
                            &[("authorization", &auth)],
                        )
                    } else {
                        edge::request("GET", FINESSE, "/desktop/js/desktop.js", &[])
                    }
                })
                .collect();
            c.h1_many(reqs).await
        });
    }
    let mut served = 0;
    while let Some(results) = set.join_next().await {
        for r in results.expect("task") {
            assert_eq!(r.expect("answer").status, 200);
            served += 1;
        }
    }
    assert_eq!(served, 144);
    assert_eq!(status(&nat, &basic("1003", pw), "1003").await, 200);
    let blocks = rig.gate.running().guard().brute.blocks();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0].user.as_deref(), Some("1001"));
}

#[tokio::test]
async fn the_attacker_behind_a_trusted_balancer_is_blocked_and_the_balancer_is_not() {
    let (pki, _mock, gate) = edge::finesse_rig(
        "[client_ip]\ntrusted = [\"127.0.53.1\"]\nheader = \"X-Real-IP\"\n",
        "",
    )
    .await;
    let lb = edge::client(&pki, &gate, FINESSE, "127.0.53.1");
    let via = |client_ip: &'static str, auth: String, user: &'static str| {
        let lb = lb.clone();
        async move {
            let path = format!("/finesse/api/User/{user}");
            edge::send(
                &lb,
                "GET",
                FINESSE,
                &path,
                &[("authorization", &auth), ("x-real-ip", client_ip)],
            )
            .await
            .status
        }
    };
    for u in ["u1", "u2", "u3"] {
        assert_eq!(via("198.51.100.7", basic(u, "x"), u).await, 401);
    }
    assert_eq!(via("198.51.100.7", good("1001"), "1001").await, 418);
    // another client behind the balancer, and the balancer itself, are served
    assert_eq!(via("198.51.100.8", good("1001"), "1001").await, 200);
    assert_eq!(status(&lb, &good("1001"), "1001").await, 200);
    // the balancer's own failures never block it
    for u in ["v1", "v2", "v3", "v4", "v5"] {
        for i in 0..5 {
            assert_eq!(status(&lb, &basic(u, &format!("p{i}")), u).await, 401);
        }
    }
    assert_eq!(status(&lb, &good("1001"), "1001").await, 200);
    // an untrusted peer's X-Real-IP is ignored: it is blocked under its own address
    let liar = edge::client(&pki, &gate, FINESSE, "127.0.53.2");
    for u in ["w1", "w2", "w3"] {
        let path = format!("/finesse/api/User/{u}");
        let s = edge::send(
            &liar,
            "GET",
            FINESSE,
            &path,
            &[
                ("authorization", &basic(u, "x")),
                ("x-real-ip", "198.51.100.9"),
            ],
        )
        .await
        .status;
        assert_eq!(s, 401);
    }
    // whole-IP blocks: the attacker behind the balancer and the liar, never
    // the balancer (its own users are blocked one by one, SPEC 4)
    let blocked: Vec<String> = gate
        .running()
        .guard()
        .brute
        .blocks()
        .into_iter()
        .filter(|b| b.user.is_none())
        .map(|b| b.ip)
        .collect();
    assert!(blocked.contains(&"198.51.100.7".to_string()), "{blocked:?}");
    assert!(blocked.contains(&"127.0.53.2".to_string()), "{blocked:?}");
    assert!(
        !blocked
            .iter()
            .any(|b| b == "127.0.53.1" || b == "198.51.100.9"),
        "{blocked:?}"
    );
    gate.security_line(|l| {
        l["message"] == "198.51.100.7 will be blocked for 30 minutes for exceeding retry limit."
    })
    .await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_while_another_is_served() {
    let (pki, _mock, gate) =
        edge::finesse_rig("[rate]\nnat_factor = 1\n", "rate = 1\nburst = 3\n").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.54.1");
    // a known user spends its own bucket (the first request is the IP's)
    let mut got = Vec::new();
    for _ in 0..5 {
        let r = edge::send(
            &a,
            "GET",
            FINESSE,
            "/finesse/api/User/1001",
            &[("authorization", &good("1001"))],
        )
        .await;
        got.push((
            r.status,
            r.headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_string()),
        ));
    }
    assert_eq!(got.iter().filter(|(s, _)| *s == 200).count(), 4, "{got:?}");
    let (s, retry) = got.last().cloned().expect("five");
    assert_eq!(s, 429);
    assert_eq!(retry.as_deref(), Some("1"));
    // the same user from another address shares its bucket...
    let elsewhere = edge::client(&pki, &gate, FINESSE, "127.0.54.2");
    assert_eq!(status(&elsewhere, &good("1001"), "1001").await, 429);
    // ...another user is served
    assert_eq!(status(&elsewhere, &good("1002"), "1002").await, 200);
    // a claimed but unverified name spends the claimant's IP bucket, not the user's
    let attacker = edge::client(&pki, &gate, FINESSE, "127.0.54.3");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(status(&attacker, &basic("1003", "wrong"), "1003").await);
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
    let victim = edge::client(&pki, &gate, FINESSE, "127.0.54.4");
    assert_eq!(status(&victim, &good("1003"), "1003").await, 200);
    assert_eq!(status(&victim, &good("1003"), "1003").await, 200);
    // static files count in their own class: a desktop load passes
    for _ in 0..20 {
        let r = edge::send(&a, "GET", FINESSE, "/desktop/css/desktop.css", &[]).await;
        assert_eq!(r.status, 200);
    }
    gate.security_line(|l| l["event"] == "rate_limited" && l["user"] == "1001")
        .await;
}

#[tokio::test]
async fn dry_run_only_logs_and_exempt_addresses_are_not_limited() {
    let (pki, _mock, gate) = edge::finesse_rig(
        "[rate]\nnat_factor = 1\ndry_run = true\nexempt = [\"127.0.55.9\"]\n",
        "rate = 1\nburst = 1\n",
    )
    .await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.55.1");
    for _ in 0..5 {
        assert_eq!(status(&a, &good("1001"), "1001").await, 200);
    }
    gate.security_line(|l| l["event"] == "rate_limited" && l["dry_run"] == true)
        .await;
    let before = std::fs::read_to_string(&gate.security_log)
        .expect("log")
        .lines()
        .count();
    let exempt = edge::client(&pki, &gate, FINESSE, "127.0.55.9");
    for _ in 0..5 {
        assert_eq!(status(&exempt, &basic("1002", "typo"), "1002").await, 401);
        assert_eq!(status(&exempt, &basic("1003", "typo"), "1003").await, 401);
        assert_eq!(status(&exempt, &basic("1004", "typo"), "1004").await, 401);
    }
    assert!(gate.running().guard().brute.blocks().is_empty());
    let text = std::fs::read_to_string(&gate.security_log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !lines[before..]
            .iter()
            .any(|l| l["client"] == "127.0.55.9" && l["event"] == "rate_limited"),
        "an exempt address was rate-limited"
    );
}

#[tokio::test]
async fn in_flight_and_connection_caps() {
    let pki = Pki::new();
    let mock = Mock::start(Behaviour::DelayedEcho, None).await;
    let setup = Setup {
        upstream: mock.addr,
        component_extra: "in_flight = 1",
        extra: "[rate]\nnat_factor = 1\nconnections_per_ip = 2\n",
        ..Setup::default()
    };
    let gate = Gate::start(&pki, &one_route(&pki, &setup)).await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.56.1");
    // two requests at once from one client: one waits a second upstream, the other gets 503
    let (x, y) = tokio::join!(
        edge::send(&a, "GET", FINESSE, "/finesse/api/SystemInfo", &[]),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            edge::send(&a, "GET", FINESSE, "/finesse/api/SystemInfo", &[]).await
        }
    );
    assert_eq!((x.status, y.status), (200, 503));
    // a third connection from one address is closed at accept (no TLS, no HTTP)
    let c1 = a.tls(false).await.expect("first connection");
    let c2 = a.tls(false).await.expect("second connection");
    assert!(
        a.tls(false).await.is_err(),
        "a third connection got through"
    );
    let b = edge::client(&pki, &gate, FINESSE, "127.0.56.2");
    assert!(b.tls(false).await.is_ok());
    drop((c1, c2));
    let t = std::time::Instant::now();
    loop {
        if a.tls(false).await.is_ok() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the cap did not free up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gate.security_line(|l| l["event"] == "connection_cap" && l["client"] == "127.0.56.1")
        .await;
    gate.security_line(|l| l["event"] == "in_flight").await;
}

#[tokio::test]
async fn the_security_log_is_reopened_on_request() {
    let (pki, _mock, gate) = edge::finesse_rig("", "").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.57.1");
    assert_eq!(status(&a, &basic("1001", "x"), "1001").await, 401);
    gate.security_line(|l| l["event"] == "auth_failure").await;
    let rotated = gate.security_log.with_extension("log.1");
    std::fs::rename(&gate.security_log, &rotated).expect("rotate");
    gate.running().reopen_logs();
    // the writer reopens in order: a line queued after the reopen lands in the new file
    assert_eq!(status(&a, &basic("1002", "x"), "1002").await, 401);
    gate.security_line(|l| l["user"] == "1002").await;
    let lines = gate.security_lines(|_| true).await;
    assert!(!lines.iter().any(|l| l["user"] == "1001"));
    let old = std::fs::read_to_string(&rotated).expect("rotated");
    assert!(old.contains("\"user\":\"1001\""));
}

#[tokio::test]
async fn a_burst_of_distinct_passwords_makes_at_most_five_checks() {
    let (pki, _mock, gate) = edge::finesse_rig("", "").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.58.1");
    // 100 at once: under the address's 120 connections
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100 {
        let c = a.clone();
        set.spawn(async move { status(&c, &basic("1001", &format!("guess{i}")), "1001").await });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(s) = set.join_next().await {
        *statuses.entry(s.expect("task")).or_default() += 1;
    }
    let sent = gate.running().guard().validator.sent();
    assert!(
        sent <= 5,
        "{sent} checks for a burst of 140 passwords: {statuses:?}"
    );
    assert_eq!(status(&a, &good("1001"), "1001").await, 418);
}

#[tokio::test]
async fn the_sso_endpoints_keep_their_own_rate_on_the_unauthenticated_list() {
    let (pki, _mock, gate) = edge::finesse_rig("[rate]\nnat_factor = 1\n", "").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.59.1");
    let mut limited = 0;
    for _ in 0..20 {
        if edge::send(&a, "GET", FINESSE, "/desktop/sso/token", &[])
            .await
            .status
            == 429
        {
            limited += 1;
        }
    }
    assert!(
        limited >= 10,
        "{limited} of 20 token requests limited at 5 r/s, burst 5"
    );
    // while static files from the same address still load
    assert_eq!(
        edge::send(&a, "GET", FINESSE, "/desktop/js/desktop.js", &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn guesses_are_counted_even_when_the_client_hangs_up() {
    let (pki, _mock, gate) = edge::finesse_rig_with(Behaviour::SlowFinesse, "", "").await;
    let a = edge::client(&pki, &gate, FINESSE, "127.0.64.1");
    for i in 0..10 {
        // gone before Finesse answers (300 ms)
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            status(&a, &basic("1003", &format!("guess{i}")), "1003"),
        )
        .await;
    }
    let t = std::time::Instant::now();
    while !gate
        .running()
        .guard()
        .brute
        .blocks()
        .iter()
        .any(|b| b.user.as_deref() == Some("1003"))
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "abandoned guesses were not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&a, &good("1003"), "1003").await, 418);
    assert!(gate.running().guard().validator.sent() <= 5);
}

#[tokio::test]
async fn agents_signing_in_together_behind_one_address_share_nothing_but_the_address() {
    let (pki, _mock, gate) = edge::finesse_rig_with(Behaviour::SlowFinesse, "", "").await;
    let nat = edge::client(&pki, &gate, FINESSE, "127.0.65.1");
    // 10 agents at once, each desktop firing 10 calls with its credential
    let mut set = tokio::task::JoinSet::new();
    for agent in 0..10 {
        for _ in 0..10 {
            let c = nat.clone();
            let user = format!("{}", 1001 + agent);
            set.spawn(async move { status(&c, &good(&user), &user).await });
        }
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.expect("task"), 200);
    }
    assert_eq!(
        gate.running().guard().validator.sent(),
        10,
        "one check per agent"
    );
    // one typo in a burst of 20 is one check and one failure
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let c = nat.clone();
        set.spawn(async move { status(&c, &basic("1020", "typo"), "1020").await });
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.expect("task"), 401);
    }
    assert_eq!(gate.running().guard().validator.sent(), 11);
}
