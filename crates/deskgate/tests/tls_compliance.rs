//! sslyze checks deskgate's client-side TLS against Mozilla's
//! "intermediate" profile (TLS 1.2+, forward-secret AEAD suites, sane
//! curves, no compression or renegotiation holes) and exits 1 otherwise.

use deskgate_testkit::deskgate::rig;
use deskgate_testkit::mock::Behaviour;
use std::path::PathBuf;

#[tokio::test]
async fn tls_setup_is_compliant_with_mozilla_intermediate() {
    let sslyze = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/.venv/bin/sslyze");
    if !sslyze.exists() {
        if std::env::var("DESKGATE_ALLOW_MISSING_TOOLS").as_deref() == Ok("1") {
            eprintln!("SKIPPED LOUDLY: sslyze is not installed (run .ci/install-test-tools)");
            return;
        }
        panic!("sslyze is not installed: run .ci/install-test-tools");
    }
    let (pki, _mock, gate, _client) = rig(Behaviour::Echo, "").await;
    let target = format!(
        "finesse1a.example.com:{}{{127.0.0.1}}",
        gate.addr("front").port()
    );
    let out = tokio::process::Command::new(&sslyze)
        .arg("--certinfo_ca_file")
        .arg(&pki.ca_path)
        .arg("--mozilla_config=intermediate")
        .arg(&target)
        .output()
        .await
        .expect("run sslyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK - Compliant"),
        "sslyze says:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gate.stop().await;
}
