//! The benchmark's load generator against deskgate in front of the
//! simulator, with every security stage on: a handful of agents sign in,
//! ping over XMPP and leave without an error, and idle WebSockets open and
//! are held. Keeps `bench/` honest: its agents are real desktops' traffic.

use deskgate_testkit::sim::{sim_rig_with, SimOptions, SimRig, EXTERNAL};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// `deskgate-loadgen MODE` aimed at the rig's listener.
fn loadgen(mode: &str, front: &str, ca: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskgate-loadgen"));
    c.args([mode, "--connect", front, "--host", EXTERNAL, "--ca", ca]);
    c
}

/// deskgate with every security stage on in front of the simulator; its
/// listener address and the CA its certificate chains to.
async fn rig() -> (SimRig, String, String) {
    let rig = sim_rig_with(SimOptions {
        auth: "finesse",
        ..SimOptions::default()
    })
    .await;
    let front = rig.gate.addr("front").to_string();
    let ca = rig.pki.ca_path.display().to_string();
    (rig, front, ca)
}

#[tokio::test]
async fn agents_sign_in_ping_and_leave_without_errors() {
    let (rig, front, ca) = rig().await;
    let out = loadgen("agents", &front, &ca)
        .args([
            "--agents",
            "5",
            "--login-window",
            "1",
            // every agent pings within its first 10 s
            "--duration",
            "11",
            "--statics",
            "12",
            "--rest",
            "4",
            "--per-ip",
            "2",
            "--ip-net",
            "91",
        ])
        .output()
        .await
        .expect("run deskgate-loadgen");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["logins_ok"], 5, "{v}");
    assert!(v["pings"].as_u64().unwrap_or(0) >= 5, "{v}");
    // 1 page + 12 statics + 4 REST calls + the WebSocket, per agent
    assert!(v["requests"].as_u64().unwrap_or(0) >= 5 * 18, "{v}");
    rig.gate.stop().await;
}

#[tokio::test]
async fn idle_websockets_open_through_the_gate_and_are_held() {
    let (rig, front, ca) = rig().await;
    let mut child = loadgen("ws-idle", &front, &ca)
        .args(["--count", "4", "--ip-net", "92"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run deskgate-loadgen");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready in time")
        .expect("read")
        .unwrap_or_default();
    assert_eq!(first, "ready 4");
    let mut stdin = child.stdin.take().expect("stdin");
    let _ = stdin.shutdown().await;
    drop(stdin);
    let status = child.wait().await.expect("wait");
    assert!(status.success());
    rig.gate.stop().await;
}
