//! The credential gate (SPEC 3, issue 4 item 1): nothing unauthenticated
//! reaches an upstream outside the unauthenticated list; wrong credentials
//! are answered by deskgate with a challenge; credential stuffing is not
//! amplified onto Finesse; a changed password stops working within the
//! revalidation window while the new one works at once.

use deskgate_testkit::edge::{self, basic, good, FINESSE, GADGET, IDS, LIVEDATA};
use deskgate_testkit::sim::{sim_rig_with, SimOptions};
use std::time::{Duration, Instant};

/// How long after `since` the status poll first says 401: polled every
/// 100 ms, and it must happen within 2.5 s (a 2 s revalidation window plus
/// one check); panics after 6 s.
async fn refused_within_window<F, Fut>(since: Instant, what: &str, mut status: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    while since.elapsed() < Duration::from_secs(6) {
        if status().await == 401 {
            let after = since.elapsed();
            eprintln!("{what} refused {after:?} after the change");
            assert!(after <= Duration::from_millis(2500), "{what}: {after:?}");
            return after;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} still works after 6 s");
}

/// Each request a case sends carries `x-test-case`; the mock records every
/// head, so a case that reached the upstream shows up there.
struct Case {
    name: &'static str,
    host: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    upgrade: Option<&'static str>,
}

fn case(name: &'static str, host: &'static str, path: &'static str) -> Case {
    Case {
        name,
        host,
        method: "GET",
        path,
        headers: Vec::new(),
        upgrade: None,
    }
}

impl Case {
    fn header(mut self, k: &'static str, v: impl Into<String>) -> Case {
        self.headers.push((k, v.into()));
        self
    }
    fn method(mut self, m: &'static str) -> Case {
        self.method = m;
        self
    }
    fn upgrade(mut self, protocols: &'static str) -> Case {
        self.upgrade = Some(protocols);
        self
    }
}

fn denied_cases() -> Vec<Case> {
    let wrong = basic("1001", "not-the-password");
    let mut v = Vec::new();
    for (host, rest, ws, poll) in [
        (FINESSE, "/finesse/api/User/1001", "/ws/", "/http-bind/"),
        (
            LIVEDATA,
            "/livedata/api/v1/data",
            "/socket.io/?EIO=4&transport=websocket",
            "/socket.io/?EIO=4&transport=polling",
        ),
        (GADGET, "/gadget/api/records", "/ws/", "/http-bind/"),
    ] {
        v.push(case("no credentials", host, rest));
        v.push(case("wrong password", host, rest).header("authorization", wrong.clone()));
        v.push(case("malformed basic", host, rest).header("authorization", "Basic !!!"));
        v.push(
            case("unknown scheme", host, rest).header("authorization", "Digest username=\"1001\""),
        );
        v.push(
            case("bearer without sso", host, rest).header("authorization", "Bearer abc.def.ghi"),
        );
        v.push(case("post without credentials", host, rest).method("POST"));
        v.push(
            case("put with a wrong password", host, rest)
                .method("PUT")
                .header("authorization", wrong.clone()),
        );
        v.push(case("delete without credentials", host, rest).method("DELETE"));
        v.push(case("script without credentials", host, rest).header("sec-fetch-mode", "cors"));
        v.push(case("upgrade without proof", host, ws).upgrade("xmpp"));
        v.push(
            case("upgrade with a wrong credential", host, ws)
                .upgrade("xmpp, auth.basic.MTAwMTp3cm9uZw"),
        );
        v.push(
            case("upgrade with a malformed credential", host, ws).upgrade("xmpp, auth.basic.!!"),
        );
        v.push(
            case("upgrade with a wrong header credential", host, ws)
                .upgrade("xmpp")
                .header("authorization", wrong.clone()),
        );
        v.push(case("long-poll without proof", host, poll).method("POST"));
        v.push(
            case("long-poll with a forged cookie", host, poll)
                .method("POST")
                .header(
                    "cookie",
                    "__Host-deskgate-session=v1.MTAwMQ.9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAA",
                ),
        );
        v.push(case(
            "static-looking API path",
            host,
            "/finesse/api/User/1001;x.js",
        ));
        v.push(case(
            "encoded path to an API",
            host,
            "/desktop/%2e%2e/finesse/api/User/1001",
        ));
        v.push(case("upgrade headers on a REST path", host, rest).upgrade("xmpp"));
        v.push(case(
            "static extension outside a static directory",
            host,
            "/desktop/gadgets/proxy/x.js?url=http://169.254.169.254/",
        ));
        v.push(case(
            "xml extension under the API",
            host,
            "/desktop/api/anything/deeper/report.xml",
        ));
        v.push(case(
            "dot segments into the API",
            host,
            "/desktop/js/../api/x.js",
        ));
        v.push(case(
            "static file of a kind without a default list",
            host,
            "/livedata/static/app.js",
        ));
        v.push(case("a gadget server's script", host, "/gadget/widget.js"));
    }
    v
}

/// host, method, path, headers: a request that must get through.
type Allowed<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>);

#[tokio::test]
async fn nothing_unauthenticated_reaches_any_upstream() {
    let (pki, mock, gate) = edge::finesse_rig("", "").await;
    let cases = denied_cases();
    for (i, c) in cases.iter().enumerate() {
        // one client address per case: no case is blocked because of another
        let ip = format!("127.0.{}.{}", 10 + i / 200, 1 + i % 200);
        let client = edge::client(&pki, &gate, c.host, &ip);
        let tag = format!("denied-{i}");
        let mut headers: Vec<(&str, &str)> =
            c.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        headers.push(("x-test-case", &tag));
        let status = match c.upgrade {
            Some(protocols) => {
                let (head, stream) =
                    edge::upgrade(&client, c.host, c.path, protocols, &headers).await;
                assert!(
                    stream.is_none(),
                    "{} on {}: upgraded\n{head}",
                    c.name,
                    c.host
                );
                head.split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0)
            }
            None => {
                let r = edge::send(&client, c.method, c.host, c.path, &headers).await;
                assert!(
                    !r.everything().contains("internal"),
                    "{}: the answer names an internal host:\n{}",
                    c.name,
                    r.everything()
                );
                r.status
            }
        };
        assert!(
            matches!(status, 400 | 401 | 421),
            "{} on {} {}: got {status}",
            c.name,
            c.host,
            c.path
        );
    }
    // HTTP/2 goes through the same stages
    let h2 = edge::client(&pki, &gate, FINESSE, "127.0.30.250");
    for (i, auth) in ["", "Basic MTAwMTp3cm9uZw=="].iter().enumerate() {
        let tag = format!("denied-h2-{i}");
        let mut b = http::Request::get(format!("https://{FINESSE}/finesse/api/User/1001"))
            .header("x-test-case", &tag);
        if !auth.is_empty() {
            b = b.header("authorization", *auth);
        }
        let r = h2
            .h2(b
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"))
            .await
            .expect("h2");
        assert_eq!(r.status, 401, "h2 {tag}");
    }
    let heads = mock.heads.lock().expect("lock").clone();
    let leaked: Vec<&String> = heads.iter().filter(|h| h.contains("x-test-case")).collect();
    assert!(
        leaked.is_empty(),
        "these reached the upstream:\n{leaked:#?}"
    );
    // and the only requests deskgate made itself were credential checks
    for h in &heads {
        assert!(
            h.starts_with("GET /finesse/api/User/") && h.contains("deskgate-auth"),
            "an unexpected upstream request:\n{h}"
        );
    }
    // the controls: the unauthenticated list, a CORS preflight, IdS (the
    // sign-in flow) and a right credential do get through
    let (g1, g2) = (good("1001"), good("1002"));
    let allowed: [Allowed<'_>; 11] = [
        (FINESSE, "GET", "/desktop/", vec![]),
        (FINESSE, "GET", "/desktop/js/desktop.js", vec![]),
        (FINESSE, "GET", "/desktop/css/theme/desktop.css", vec![]),
        (FINESSE, "GET", "/finesse/api/UserAuthMode/1001", vec![]),
        (FINESSE, "GET", "/desktop/sso/token", vec![]),
        (FINESSE, "GET", "/3rdpartygadget/files/gadget.xml", vec![]),
        (FINESSE, "GET", "/desktop/theme/default/logo.svg", vec![]),
        (IDS, "GET", "/ids/v1/oauth/authorize", vec![]),
        (
            FINESSE,
            "OPTIONS",
            "/finesse/api/User/1001",
            vec![
                ("origin", "https://finesse1a.example.com:8445"),
                ("access-control-request-method", "PUT"),
            ],
        ),
        (
            FINESSE,
            "GET",
            "/finesse/api/User/1001",
            vec![("authorization", g1.as_str())],
        ),
        (
            GADGET,
            "GET",
            "/gadget/api/records",
            vec![("authorization", g2.as_str())],
        ),
    ];
    for (i, (host, method, path, extra)) in allowed.iter().enumerate() {
        let client = edge::client(&pki, &gate, host, "127.0.9.1");
        let tag = format!("allowed-{i}");
        let mut headers: Vec<(&str, &str)> = extra.clone();
        headers.push(("x-test-case", &tag));
        let r = edge::send(&client, method, host, path, &headers).await;
        assert_eq!(r.status, 200, "{method} {host}{path}: {}", r.everything());
        assert!(
            mock.last_head().contains(&tag),
            "{method} {host}{path} did not reach the upstream"
        );
    }
}

#[tokio::test]
async fn deskgate_answers_the_challenge_itself() {
    let (pki, mock, gate) = edge::finesse_rig("", "").await;
    let client = edge::client(&pki, &gate, FINESSE, "127.0.8.1");
    let r = edge::send(&client, "GET", FINESSE, "/finesse/api/User/1001", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers.get("www-authenticate").expect("challenge"),
        "Basic realm=\"deskgate\", charset=\"UTF-8\""
    );
    // a page's script gets a challenge browsers do not turn into a password dialog
    let r = edge::send(
        &client,
        "GET",
        FINESSE,
        "/finesse/api/User/1001",
        &[("sec-fetch-mode", "cors")],
    )
    .await;
    assert_eq!(r.status, 401);
    let challenge = r
        .headers
        .get("www-authenticate")
        .expect("challenge")
        .to_str()
        .expect("text");
    assert!(challenge.starts_with("DeskgateBasic realm="), "{challenge}");
    // no request reached the upstream: not even a credential check
    assert!(mock.heads.lock().expect("lock").is_empty());
    // a good credential is checked once, then served from the cache, with the session cookie
    for _ in 0..5 {
        let r = edge::send(
            &client,
            "GET",
            FINESSE,
            "/finesse/api/User/1001",
            &[("authorization", &good("1001"))],
        )
        .await;
        assert_eq!(r.status, 200);
        let cookie = r
            .headers
            .get("set-cookie")
            .expect("session cookie")
            .to_str()
            .expect("text");
        assert!(
            cookie.starts_with("__Host-deskgate-session=")
                && cookie.contains("Secure")
                && cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.contains("Path=/"),
            "{cookie}"
        );
    }
    let checks = mock
        .heads
        .lock()
        .expect("lock")
        .iter()
        .filter(|h| h.contains("deskgate-auth"))
        .count();
    assert_eq!(checks, 1, "the credential was checked more than once");
    assert_eq!(gate.running().guard().validator.sent(), 1);
    // the access log names the user
    let lines = gate.log_lines(7).await;
    assert!(
        lines
            .iter()
            .any(|l| l["user"] == "1001" && l["status"] == 200),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn credential_stuffing_is_not_amplified_onto_finesse() {
    // Finesse answers slowly here, so many checks would be in flight at once
    let (pki, mock, gate) = edge::finesse_rig("[auth]\nmax_validations = 8\n", "").await;
    let attacker = edge::client(&pki, &gate, FINESSE, "127.0.7.1");
    let start = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for batch in 0..20 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..50 {
            let c = attacker.clone();
            let auth = basic(&format!("user{batch}x{i}"), &format!("guess{batch}{i}"));
            set.spawn(async move {
                edge::send(
                    &c,
                    "GET",
                    FINESSE,
                    "/finesse/api/User/x",
                    &[("authorization", &auth)],
                )
                .await
                .status
            });
        }
        while let Some(s) = set.join_next().await {
            *statuses.entry(s.expect("task")).or_default() += 1;
        }
    }
    let sent = gate.running().guard().validator.sent();
    eprintln!(
        "1000 distinct wrong credentials: {statuses:?}, {sent} checks sent to Finesse, {:?}",
        start.elapsed()
    );
    assert_eq!(statuses.values().sum::<usize>(), 1000);
    assert!(
        statuses.keys().all(|s| matches!(s, 401 | 418)),
        "{statuses:?}"
    );
    // three failing users block the whole IP: after that, nothing is checked;
    // before it, at most one batch of 50 was already on its way
    assert!(sent <= 53, "{sent} checks for 1000 wrong credentials");
    assert!(
        statuses.get(&418).copied().unwrap_or(0) >= 900,
        "{statuses:?}"
    );
    // a repeated wrong credential from a fresh address costs Finesse one check, then none
    let other = edge::client(&pki, &gate, FINESSE, "127.0.7.2");
    let wrong = basic("1001", "typo");
    let before = gate.running().guard().validator.sent();
    for _ in 0..30 {
        let r = edge::send(
            &other,
            "GET",
            FINESSE,
            "/finesse/api/User/1001",
            &[("authorization", &wrong)],
        )
        .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(gate.running().guard().validator.sent() - before, 1);
    // and it counted as one failure: the right password still works from there
    let r = edge::send(
        &other,
        "GET",
        FINESSE,
        "/finesse/api/User/1001",
        &[("authorization", &good("1001"))],
    )
    .await;
    assert_eq!(r.status, 200);
    drop(mock);
}

#[tokio::test]
async fn concurrent_requests_with_one_new_credential_make_one_check() {
    let (pki, _mock, gate) = edge::finesse_rig("", "").await;
    let client = edge::client(&pki, &gate, FINESSE, "127.0.6.1");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let c = client.clone();
        set.spawn(async move {
            edge::send(
                &c,
                "GET",
                FINESSE,
                "/finesse/api/User/1001",
                &[("authorization", &good("1001"))],
            )
            .await
            .status
        });
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.expect("task"), 200);
    }
    assert_eq!(gate.running().guard().validator.sent(), 1);
    // the same with a wrong password: one check, one failure
    let wrong = basic("1002", "typo");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let c = client.clone();
        let w = wrong.clone();
        set.spawn(async move {
            edge::send(
                &c,
                "GET",
                FINESSE,
                "/finesse/api/User/1002",
                &[("authorization", &w)],
            )
            .await
            .status
        });
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.expect("task"), 401);
    }
    assert_eq!(gate.running().guard().validator.sent(), 2);
    assert!(gate.running().guard().brute.blocks().is_empty());
}

#[tokio::test]
async fn a_changed_password_stops_working_within_the_revalidation_window() {
    let rig = sim_rig_with(SimOptions {
        auth: "finesse",
        extra: "[auth]\nrevalidate = \"2s\"\n",
        ..SimOptions::default()
    })
    .await;
    let old = basic("1001", finesse_sim::DEMO_PASSWORD);
    let new = basic("1001", "a-new-password");
    let get = |auth: String| {
        let c = rig.client.clone();
        async move {
            c.send(
                "GET",
                edge::FINESSE,
                "/finesse/api/User/1001",
                Some(&auth),
                "",
            )
            .await
            .status
        }
    };
    assert_eq!(get(old.clone()).await, 200);
    let failed_before = rig.cluster.requests("failed-sign-in");
    rig.cluster
        .with_directory(|d| assert!(d.set_password("1001", "a-new-password")));
    let changed = Instant::now();
    // the new password works at once
    assert_eq!(get(new.clone()).await, 200);
    // the desktop keeps using the old one, as a stale browser tab does
    refused_within_window(changed, "the old password", || get(old.clone())).await;
    for _ in 0..20 {
        assert_eq!(get(old.clone()).await, 401);
    }
    let r = rig
        .client
        .send(
            "GET",
            edge::FINESSE,
            "/finesse/api/User/1001",
            Some(&new),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.everything());
    // Finesse saw one failed sign-in for the whole revocation
    let failed = rig.cluster.requests("failed-sign-in") - failed_before;
    assert!(failed <= 1, "{failed} failed sign-ins recorded");
    rig.gate
        .security_line(|l| l["reason"] == "revoked" && l["user"] == "1001")
        .await;
}

#[tokio::test]
async fn a_removed_user_stops_working_and_an_outage_signs_no_one_out() {
    let rig = sim_rig_with(SimOptions {
        auth: "finesse",
        extra: "[auth]\nrevalidate = \"2s\"\n",
        ..SimOptions::default()
    })
    .await;
    let a = basic("1001", finesse_sim::DEMO_PASSWORD);
    let b = basic("1002", finesse_sim::DEMO_PASSWORD);
    let status = |auth: &str, user: &str| {
        let c = rig.client.clone();
        let (auth, path) = (auth.to_string(), format!("/finesse/api/User/{user}"));
        async move {
            c.send("GET", edge::FINESSE, &path, Some(&auth), "")
                .await
                .status
        }
    };
    assert_eq!(status(&a, "1001").await, 200);
    assert_eq!(status(&b, "1002").await, 200);
    // Finesse goes into an outage (503 to everything): cached users keep working
    rig.cluster.set_outage(true);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        // 503 is Finesse's own answer, passed through; 401 would mean signed out
        let s = status(&a, "1001").await;
        assert_ne!(s, 401, "an outage signed the agent out");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rig.cluster.set_outage(false);
    // a removed user is refused within the window
    rig.cluster.with_directory(|d| assert!(d.remove("1002")));
    let t = Instant::now();
    refused_within_window(t, "the removed user", || status(&b, "1002")).await;
    assert_eq!(status(&a, "1001").await, 200);
}

#[tokio::test]
async fn the_known_users_list_rejects_unknown_users_without_asking_finesse() {
    std::env::set_var(
        "DG_TEST_USERS_ADMIN",
        format!("admin:{}", finesse_sim::DEMO_PASSWORD),
    );
    let rig = sim_rig_with(SimOptions {
        auth: "finesse",
        extra: "[auth.users_list]\ncredentials_env = \"DG_TEST_USERS_ADMIN\"\n",
        ..SimOptions::default()
    })
    .await;
    // wait for the list (fetched at start)
    let t = Instant::now();
    while rig
        .gate
        .running()
        .guard()
        .users
        .read()
        .expect("lock")
        .is_empty()
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the users list was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = rig.gate.running().guard().validator.sent();
    let r = rig
        .client
        .send(
            "GET",
            edge::FINESSE,
            "/finesse/api/User/9999",
            Some(&basic("9999", "x")),
            "",
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        rig.gate.running().guard().validator.sent(),
        before,
        "an unknown user was checked upstream"
    );
    let r = rig
        .client
        .send(
            "GET",
            edge::FINESSE,
            "/finesse/api/User/1001",
            Some(&basic("1001", finesse_sim::DEMO_PASSWORD)),
            "",
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_background_check_revokes_a_password_used_only_on_other_components() {
    // the agent's requests go to LiveData, never to Finesse's REST API: only
    // deskgate's own background check can notice the change
    let rig = sim_rig_with(SimOptions {
        auth: "finesse",
        extra: "[auth]\nrevalidate = \"2s\"\n",
        ..SimOptions::default()
    })
    .await;
    let c = rig.client.clone().with_sni("livedataa.example.com");
    let old = basic("1001", finesse_sim::DEMO_PASSWORD);
    let get = |auth: String| {
        let c = c.clone();
        async move {
            c.send(
                "GET",
                edge::LIVEDATA,
                "/livedata/api/v1/data",
                Some(&auth),
                "",
            )
            .await
            .status
        }
    };
    // authenticated, then forwarded (the simulator plays only Finesse and
    // refuses the LiveData host: any answer but deskgate's 401 will do)
    assert_ne!(get(old.clone()).await, 401);
    let failed_before = rig.cluster.requests("failed-sign-in");
    rig.cluster
        .with_directory(|d| assert!(d.set_password("1001", "a-new-password")));
    let changed = Instant::now();
    refused_within_window(changed, "the old password (background check)", || {
        get(old.clone())
    })
    .await;
    assert_eq!(rig.cluster.requests("failed-sign-in") - failed_before, 1);
}

#[tokio::test]
async fn upgrade_headers_do_not_turn_a_rest_call_into_a_gated_one() {
    let (pki, mock, gate) = edge::finesse_rig("", "").await;
    // the address signs in: proof (a) holds for it now
    let c = edge::client(&pki, &gate, FINESSE, "127.0.62.1");
    let r = edge::send(
        &c,
        "GET",
        FINESSE,
        "/finesse/api/User/1001",
        &[("authorization", &good("1001"))],
    )
    .await;
    assert_eq!(r.status, 200);
    // another agent at that address asks for a REST path with upgrade headers
    let (head, stream) = edge::upgrade(
        &c,
        FINESSE,
        "/finesse/api/User/1002",
        "xmpp",
        &[("x-test-case", "smuggled")],
    )
    .await;
    assert!(
        stream.is_none() && head.starts_with("HTTP/1.1 401"),
        "{head}"
    );
    assert!(!mock
        .heads
        .lock()
        .expect("lock")
        .iter()
        .any(|h| h.contains("smuggled")));
    // with a credential it is an ordinary authenticated request (the mock
    // upgrades it: a 101 is what the upstream said)
    let (head, _) = edge::upgrade(
        &c,
        FINESSE,
        "/finesse/api/User/1002",
        "xmpp",
        &[("authorization", &good("1002"))],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

#[tokio::test]
async fn a_preflight_is_forwarded_without_credentials_or_body() {
    let (pki, mock, gate) = edge::finesse_rig("", "").await;
    let c = edge::client(&pki, &gate, FINESSE, "127.0.63.1");
    let pre = [
        ("origin", "https://finesse1a.example.com:8445"),
        ("access-control-request-method", "PUT"),
    ];
    let mut headers = pre.to_vec();
    let guess = basic("1003", "guess");
    headers.push(("authorization", &guess));
    headers.push(("cookie", "JSESSIONID=abc"));
    headers.push(("x-test-case", "preflight"));
    let r = edge::send(&c, "OPTIONS", FINESSE, "/finesse/api/User/1003", &headers).await;
    assert_eq!(r.status, 200);
    let head = mock.last_head().to_ascii_lowercase();
    assert!(head.contains("x-test-case: preflight"), "{head}");
    assert!(
        !head.contains("authorization") && !head.contains("cookie"),
        "{head}"
    );
    // a preflight with a body is not a preflight
    let mut req = edge::request("OPTIONS", FINESSE, "/finesse/api/User/1003", &pre);
    *req.body_mut() = http_body_util::Full::new(bytes::Bytes::from_static(b"<User/>"));
    let r = c.h1(req).await.expect("answer");
    assert_eq!(r.status, 400);
}
