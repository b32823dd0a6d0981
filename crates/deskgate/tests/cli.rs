//! The `deskgate` binary: check, proxymap, gen-certs, and run with
//! SIGUSR1 (log reopen) and SIGTERM (graceful drain).

use deskgate_testkit::client::Client;
use deskgate_testkit::deskgate::{one_route, Setup};
use deskgate_testkit::mock::{Behaviour, Mock};
use deskgate_testkit::pki::Pki;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_deskgate");

/// A copy of `examples/NAME` in a fresh directory (its certificates land there).
fn example_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join(name);
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(name),
        &cfg,
    )
    .expect("copy example");
    (dir, cfg)
}

fn deskgate(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run deskgate")
}

#[test]
fn check_passes_on_the_example_once_its_certificates_exist() {
    let (dir, cfg) = example_copy("deskgate.toml");
    let cfg_s = cfg.to_str().expect("utf8");
    // before gen-certs: a clear failure naming the missing files
    let out = deskgate(&["check", "-c", cfg_s]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deskgate.toml:")
            && err.contains("cannot read")
            && err.contains("test failed"),
        "{err}"
    );
    // the documented command makes them
    let out = deskgate(&["gen-certs", "-c", cfg_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = deskgate(&["check", "-c", cfg_s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("test is successful") && stdout.contains("7 component(s), 15 node(s)"),
        "{stdout}"
    );
    // keys are owner-only
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("certs/finesse-a.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key is readable by others");
    // running gen-certs again changes nothing
    let out = deskgate(&["gen-certs", "-c", cfg_s]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("all certificate files exist"));

    let out = deskgate(&["proxymap", "-c", cfg_s]);
    assert!(out.status.success());
    let map = String::from_utf8_lossy(&out.stdout);
    assert_eq!(map.lines().count(), 15, "{map}");
    assert!(
        map.lines()
            .any(|l| l == "finesse1a.internal.example.com:8445=finesse1a.example.com:8445"),
        "{map}"
    );
    assert!(
        map.lines()
            .any(|l| l == "impb.internal.example.com:5280=chatb.example.com:5280"),
        "{map}"
    );
    assert!(
        map.lines()
            .all(|l| l.split('=').count() == 2 && l.split('=').all(|s| s.contains(':'))),
        "{map}"
    );
}

#[test]
fn the_loopback_example_checks_out_too() {
    let (_dir, cfg) = example_copy("loopback.toml");
    let cfg_s = cfg.to_str().expect("utf8");
    assert!(deskgate(&["gen-certs", "-c", cfg_s]).status.success());
    let out = deskgate(&["check", "-c", cfg_s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = deskgate(&["proxymap", "-c", cfg_s]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "finesse.internal:8080=finesse.localhost:8445\n"
    );
}

#[test]
fn check_fails_with_exit_1_and_names_the_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[listener]]\nside = \"a\"\nbind = \"0.0.0.0:443\"\nexternal_port = 70000\n",
    )
    .expect("write");
    let out = deskgate(&["check", "-c", cfg.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:4: listener[0].external_port: port 70000 is out of range"),
        "{err}"
    );
}

fn wait_for_line(reader: &mut impl BufRead, needle: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "deskgate exited before printing {needle:?}");
        if line.contains(needle) {
            return line;
        }
    }
}

fn addr_in(line: &str) -> std::net::SocketAddr {
    let at = line.find("addr=").expect("addr=") + 5;
    line[at..]
        .split_whitespace()
        .next()
        .expect("addr")
        .parse()
        .expect("socket addr")
}

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(st.success());
}

async fn wait_file_has(path: &Path, n: usize) -> String {
    for _ in 0..250 {
        let t = std::fs::read_to_string(path).unwrap_or_default();
        if t.lines().count() >= n {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test]
async fn run_reopens_logs_on_sigusr1_and_drains_on_sigterm() {
    let pki = Pki::new();
    let mock = Mock::start(Behaviour::DelayedEcho, None).await;
    let toml = one_route(
        &pki,
        &Setup {
            upstream: mock.addr,
            ..Setup::default()
        },
    );
    let cfg = pki.path().join("run.toml");
    std::fs::write(&cfg, toml).expect("write");
    let mut child = Command::new(BIN)
        .args(["run", "-c", cfg.to_str().expect("utf8"), "--side", "a"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let addr = addr_in(&wait_for_line(&mut stderr, "listening listener=front"));
    wait_for_line(&mut stderr, "deskgate ready");
    let client = Client::new(&pki, addr, "finesse1a.example.com");
    assert_eq!(
        client
            .get("finesse1a.example.com:8445", "/desktop/")
            .await
            .status,
        200
    );

    // logrotate: move the file away, SIGUSR1, the next line lands in a new file
    let log = pki.path().join("access.log");
    let rotated = pki.path().join("access.log.1");
    wait_file_has(&log, 1).await;
    std::fs::rename(&log, &rotated).expect("rotate");
    kill(child.id(), "USR1");
    wait_for_line(&mut stderr, "reopening the access log");
    assert_eq!(
        client
            .get("finesse1a.example.com:8445", "/desktop/")
            .await
            .status,
        200
    );
    let fresh = wait_file_has(&log, 1).await;
    assert_eq!(fresh.lines().count(), 1, "new file: {fresh}");
    assert_eq!(
        std::fs::read_to_string(&rotated)
            .expect("old")
            .lines()
            .count(),
        1
    );

    // SIGTERM while a request is in flight: it completes, then deskgate exits 0
    let c2 = client.clone();
    let in_flight = tokio::spawn(async move {
        c2.get("finesse1a.example.com:8445", "/desktop/slow")
            .await
            .status
    });
    for _ in 0..250 {
        if mock.heads.lock().expect("lock").len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    kill(child.id(), "TERM");
    wait_for_line(&mut stderr, "draining");
    assert_eq!(
        in_flight.await.expect("join"),
        200,
        "the in-flight request finished during the drain"
    );
    // no new connections while draining or after
    let refused = tokio::time::timeout(Duration::from_secs(5), client.tls(false)).await;
    assert!(
        !matches!(refused, Ok(Ok(_))),
        "accepted a connection while draining"
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn run_fails_cleanly_when_its_port_is_taken() {
    let pki = Pki::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let toml = one_route(&pki, &Setup::default()).replacen(
        "bind = \"127.0.0.1:0\"",
        &format!("bind = \"127.0.0.1:{port}\""),
        1,
    );
    let cfg = pki.path().join("taken.toml");
    std::fs::write(&cfg, toml).expect("write");
    let out = Command::new(BIN)
        .args(["run", "-c", cfg.to_str().expect("utf8"), "--side", "a"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listener front: cannot bind 127.0.0.1:{port}")),
        "{err}"
    );
    drop(taken);
}
