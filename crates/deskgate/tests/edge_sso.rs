//! SSO bearer tokens (SPEC 3, issue 4 item 2): signed tokens verified with
//! keys deskgate polls from the simulated IdS (JWKS), a key file, or a
//! shared HMAC secret; or checked once with Finesse. The matrix of bad
//! tokens never reaches the upstream; key rotation is picked up by polling.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use deskgate_testkit::edge::{self, FINESSE};
use deskgate_testkit::sim::{sim_rig_with, SimOptions, SimRig};
use finesse_sim::{SSO_AUDIENCE, SSO_ISSUER};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(user: &str, iss: &str, nbf: u64, exp: u64) -> serde_json::Value {
    serde_json::json!({ "sub": user, "iss": iss, "aud": SSO_AUDIENCE, "iat": nbf, "nbf": nbf, "exp": exp })
}

async fn rig(sso: &str) -> SimRig {
    let extra = format!("[sso]\n{sso}\nissuer = \"{SSO_ISSUER}\"\naudience = \"{SSO_AUDIENCE}\"\n");
    sim_rig_with(SimOptions {
        auth: "finesse",
        extra: &extra,
        ..SimOptions::default()
    })
    .await
}

async fn wait_for_keys(rig: &SimRig) {
    let t = Instant::now();
    while rig
        .gate
        .running()
        .guard()
        .sso
        .as_ref()
        .expect("sso")
        .key_count()
        == 0
    {
        assert!(t.elapsed() < Duration::from_secs(15), "no SSO keys loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bearer(rig: &SimRig, token: &str) -> deskgate_testkit::client::Resp {
    let auth = format!("Bearer {token}");
    edge::send(
        &rig.client,
        "GET",
        FINESSE,
        "/finesse/api/User/1001",
        &[("authorization", &auth)],
    )
    .await
}

const KEYS_URL: &str = "mode = \"keys\"\nkeys_url = \"https://finesse1a.internal.test:8445/ids/v1/keys\"\npoll = \"1s\"";

#[tokio::test]
async fn the_token_matrix() {
    let rig = rig(KEYS_URL).await;
    wait_for_keys(&rig).await;
    let ids = rig.cluster.sso().expect("sso");
    let t = now();
    // the SSO flow passes through deskgate without credentials
    let r = edge::send(
        &rig.client,
        "POST",
        FINESSE,
        "/desktop/sso/token",
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert_eq!(
        r.status, 401,
        "the simulator's own answer to an empty grant"
    );
    let valid = ids.issue("1001", Duration::from_secs(3600)).expect("token");
    let r = bearer(&rig, &valid).await;
    assert_eq!(r.status, 200, "{}", r.everything());
    assert!(r.text().contains("<loginId>1001</loginId>"));
    let other_key = {
        let pair =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("rsa");
        let key = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).expect("key");
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(ids.current_kid());
        jsonwebtoken::encode(&h, &claims("1001", SSO_ISSUER, t, t + 3600), &key).expect("sign")
    };
    // HS/RS confusion: HS256 "signed" with the published public key as the secret
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("1001", SSO_ISSUER, t, t + 3600),
        &EncodingKey::from_secret(ids.pem().as_bytes()),
    )
    .expect("sign");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims("1001", SSO_ISSUER, t, t + 3600).to_string())
    );
    let cases = [
        ("expired", ids.sign(claims("1001", SSO_ISSUER, t - 7200, t - 3600)).expect("t"), "expired"),
        ("not yet valid", ids.sign(claims("1001", SSO_ISSUER, t + 3600, t + 7200)).expect("t"), "not_yet_valid"),
        ("wrong issuer", ids.sign(claims("1001", "https://evil.example/ids", t, t + 3600)).expect("t"), "wrong_issuer"),
        ("wrong audience", ids.sign(serde_json::json!({"sub": "1001", "iss": SSO_ISSUER, "aud": "cuic", "nbf": t, "exp": t + 3600})).expect("t"), "wrong_audience"),
        ("no expiry", ids.sign(serde_json::json!({"sub": "1001", "iss": SSO_ISSUER, "aud": SSO_AUDIENCE})).expect("t"), "missing_claim"),
        ("wrong key", other_key, "bad_signature"),
        ("HS/RS confusion", confused, "algorithm_not_allowed"),
        ("alg none", none, "malformed_token"),
        ("garbage", "not-a-token".to_string(), "malformed_token"),
        ("three garbage parts", "a.b.c".to_string(), "malformed_token"),
        ("tampered payload", {
            let mut parts: Vec<String> = valid.split('.').map(str::to_string).collect();
            parts[1] = URL_SAFE_NO_PAD.encode(claims("2001", SSO_ISSUER, t, t + 3600).to_string());
            parts.join(".")
        }, "bad_signature"),
    ];
    let seen_before = rig.cluster.requests("GET /finesse/api/User");
    for (name, token, reason) in &cases {
        let r = bearer(&rig, token).await;
        assert_eq!(r.status, 401, "{name}: {}", r.everything());
        let challenges: Vec<_> = r.headers.get_all("www-authenticate").iter().collect();
        assert!(
            challenges
                .iter()
                .any(|c| c.to_str().is_ok_and(|c| c.starts_with("Bearer"))),
            "{name}"
        );
        eprintln!("{name}: expecting {reason}");
        rig.gate.security_line(|l| l["reason"] == *reason).await;
    }
    // none of them reached Finesse
    assert_eq!(rig.cluster.requests("GET /finesse/api/User"), seen_before);
    // and tokens are not written to the logs
    let log = std::fs::read_to_string(&rig.gate.security_log).expect("log");
    assert!(!log.contains(&valid[..40]));
}

#[tokio::test]
async fn rotated_keys_are_picked_up_through_the_polled_url() {
    let rig = rig(KEYS_URL).await;
    wait_for_keys(&rig).await;
    let ids = rig.cluster.sso().expect("sso");
    let first = ids.issue("1001", Duration::from_secs(3600)).expect("token");
    assert_eq!(bearer(&rig, &first).await.status, 200);
    ids.rotate().expect("rotate");
    let second = ids.issue("1001", Duration::from_secs(3600)).expect("token");
    let t = Instant::now();
    loop {
        let s = bearer(&rig, &second).await.status;
        if s == 200 {
            break;
        }
        assert_eq!(s, 401);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the new key was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("new key accepted {:?} after the rotation", t.elapsed());
    // a token signed by a key that has left the published set stops working
    // once its cache entry is gone: here a never-seen one
    ids.rotate().expect("rotate");
    let t0 = now();
    let stale = {
        // signed by the first key? it is gone; sign with a fresh foreign key under its kid
        let pair =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("rsa");
        let key = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).expect("key");
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("sim-key-1".into());
        jsonwebtoken::encode(&h, &claims("1001", SSO_ISSUER, t0, t0 + 3600), &key).expect("sign")
    };
    assert_eq!(bearer(&rig, &stale).await.status, 401);
    let third = ids.issue("1001", Duration::from_secs(3600)).expect("token");
    let t = Instant::now();
    while bearer(&rig, &third).await.status != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the third key was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn keys_from_a_pem_file() {
    let pki = deskgate_testkit::pki::Pki::new();
    let cluster = finesse_sim::Cluster::demo(2);
    let ids = cluster.sso().expect("sso");
    let file = pki.path().join("ids-keys.pem");
    std::fs::write(&file, ids.pem()).expect("write");
    let token = ids.issue("1001", Duration::from_secs(600)).expect("token");
    let extra = format!(
        "[sso]\nmode = \"keys\"\nkeys_file = \"{}\"\nissuer = \"{SSO_ISSUER}\"\n",
        file.display()
    );
    let (pki2, _mock, gate) = edge::finesse_rig(&extra, "").await;
    let c = edge::client(&pki2, &gate, FINESSE, "127.0.60.1");
    let auth = format!("Bearer {token}");
    let r = edge::send(
        &c,
        "GET",
        FINESSE,
        "/finesse/api/User/1001",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.everything());
    let lines = gate.log_lines(1).await;
    assert!(lines.iter().any(|l| l["user"] == "1001"), "{lines:#?}");
}

#[tokio::test]
async fn a_shared_hmac_secret_pins_hs256() {
    std::env::set_var("DG_TEST_SSO_SECRET", "copied-from-ids-12.6(1)");
    let (pki, mock, gate) = edge::finesse_rig(
        "[sso]\nmode = \"hmac\"\nsecret_env = \"DG_TEST_SSO_SECRET\"\n",
        "",
    )
    .await;
    let c = edge::client(&pki, &gate, FINESSE, "127.0.61.1");
    let t = now();
    let sign = |secret: &str, alg: Algorithm| {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims("1001", "ids", t, t + 600),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("sign")
    };
    let status = |token: String| {
        let c = c.clone();
        async move {
            let auth = format!("Bearer {token}");
            edge::send(
                &c,
                "GET",
                FINESSE,
                "/finesse/api/User/1001",
                &[("authorization", &auth), ("x-test-case", "hmac")],
            )
            .await
            .status
        }
    };
    assert_eq!(
        status(sign("copied-from-ids-12.6(1)", Algorithm::HS256)).await,
        200
    );
    let reached = mock.heads.lock().expect("lock").len();
    assert_eq!(status(sign("another-secret", Algorithm::HS256)).await, 401);
    // the right secret under another algorithm: the algorithm is pinned
    assert_eq!(
        status(sign("copied-from-ids-12.6(1)", Algorithm::HS512)).await,
        401
    );
    assert_eq!(mock.heads.lock().expect("lock").len(), reached);
}

#[tokio::test]
async fn upstream_mode_asks_finesse_once_per_token() {
    let rig = rig("mode = \"upstream\"").await;
    let ids = rig.cluster.sso().expect("sso");
    let token = ids.issue("1001", Duration::from_secs(3600)).expect("token");
    let before = rig.gate.running().guard().validator.sent();
    for _ in 0..5 {
        assert_eq!(bearer(&rig, &token).await.status, 200);
    }
    assert_eq!(rig.gate.running().guard().validator.sent() - before, 1);
    // a token Finesse does not accept is refused by deskgate, then remembered as unknown
    let t = now();
    let forged = {
        let pair =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("rsa");
        let key = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).expect("key");
        jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims("1001", SSO_ISSUER, t, t + 3600),
            &key,
        )
        .expect("sign")
    };
    let r = bearer(&rig, &forged).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers.get("server").map(|v| v.to_str().unwrap_or("")),
        Some("deskgate")
    );
    assert_eq!(bearer(&rig, "garbage").await.status, 401);
}
