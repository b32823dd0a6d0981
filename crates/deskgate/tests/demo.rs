//! `deskgate demo` as a person runs it (the real binary, ports 0): a real
//! Chromium uses the desktop through it, @xmpp/client signs in to the
//! simulator's notifications through it, and Ctrl-C stops it cleanly.

use deskgate_testkit::client::Client;
use deskgate_testkit::js;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where tests keep files for people to look at after the run.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir.canonicalize().expect("artifacts path")
}

/// The demo process, with the labelled lines of its banner.
struct Demo {
    child: Child,
    banner: HashMap<String, String>,
    stderr: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Demo {
    async fn start() -> Demo {
        Demo::start_with(&[]).await
    }

    /// The demo with extra arguments (e.g. `--sso`).
    async fn start_with(extra: &[&str]) -> Demo {
        let scratch = tempfile::tempdir().expect("tempdir");
        let stderr = scratch.path().join("demo.stderr");
        let err_file = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_deskgate"))
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--internal",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(err_file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn deskgate demo");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = HashMap::new();
        // readiness: the banner is printed once everything is up
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("Press Ctrl-C") {
                    return true;
                }
                if let Some((label, value)) = line.trim().split_once(':') {
                    banner.insert(label.trim().to_string(), value.trim().to_string());
                }
            }
            false
        };
        let ready = tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .unwrap_or(false);
        if !ready {
            let err = std::fs::read_to_string(&stderr).unwrap_or_default();
            panic!("deskgate demo did not come up:\n{err}");
        }
        // keep draining stdout so the demo never blocks on a full pipe
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Demo {
            child,
            banner,
            stderr,
            _scratch: scratch,
        }
    }

    fn get(&self, label: &str) -> &str {
        self.banner
            .get(label)
            .unwrap_or_else(|| panic!("banner has no {label:?}: {:?}", self.banner))
    }

    /// The first word of a banner value.
    fn word(&self, label: &str) -> String {
        self.get(label)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// `https://host:port/desktop/` -> (host, port).
    fn host_port(url: &str) -> (String, u16) {
        let rest = url.trim_start_matches("https://");
        let hp = rest.split('/').next().unwrap_or_default();
        let (h, p) = hp.rsplit_once(':').expect("host:port");
        (h.to_string(), p.parse().expect("port"))
    }

    /// Internal names and upstream addresses: what no client may ever see.
    fn internal_names(&self) -> Vec<String> {
        // "finesse-a.lan:8445 on 127.0.0.1:38849, finesse-b.lan:8445 on ..."
        let nodes = self.get("Upstream nodes");
        let mut out = Vec::new();
        for part in nodes.split(',') {
            let words: Vec<&str> = part.split_whitespace().collect();
            if let [name, "on", addr, ..] = words[..] {
                out.push(name.split(':').next().unwrap_or(name).to_string());
                out.push(addr.to_string());
            }
        }
        assert_eq!(out.len(), 4, "{nodes}");
        out
    }

    fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.get("CA certificate")).expect("demo CA file")
    }

    /// Ctrl-C (SIGINT by PID); the exit status.
    async fn interrupt(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid");
        let _ = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(s) => s.expect("wait"),
            Err(_) => {
                let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                panic!("deskgate demo did not stop within 20 s of SIGINT:\n{err}");
            }
        }
    }
}

#[tokio::test]
async fn a_browser_signs_in_changes_state_and_gets_the_notification_through_the_demo() {
    browser_through_the_demo(false).await;
}

#[tokio::test]
async fn a_browser_signs_in_with_sso_through_the_demo() {
    browser_through_the_demo(true).await;
}

/// Chromium signs in on side A (Basic, or an SSO token), changes state and
/// sees the notification, then opens side B.
async fn browser_through_the_demo(sso: bool) {
    let Some(chromium) = deskgate_testkit::require("chromium") else {
        return;
    };
    let demo = Demo::start_with(if sso { &["--sso"] } else { &[] }).await;
    assert!(demo
        .get("Sign-in mode")
        .starts_with(if sso { "SSO" } else { "Basic" }));
    let tag = if sso {
        "desktop-demo-sso"
    } else {
        "desktop-demo"
    };
    let shot = artifacts().join(format!("{tag}.png"));
    let _ = std::fs::remove_file(&shot);
    let pin = demo
        .get("Chromium pin")
        .split_once('=')
        .map(|(_, p)| p.to_string())
        .expect("pin");
    let env = [
        ("DG_URL_A", demo.get("Side A desktop").into()),
        ("DG_URL_B", demo.get("Side B desktop").into()),
        ("DG_PIN", pin.into()),
        ("DG_USER", "1001".into()),
        ("DG_PASSWORD", finesse_sim::DEMO_PASSWORD.into()),
        ("DG_FORBIDDEN", demo.internal_names().join(",").into()),
        ("DG_SCREENSHOT", shot.clone().into()),
        ("DG_CHROMIUM", chromium.into()),
    ];
    let Some(run) = js::run("desktop-browser.mjs", &["playwright-core"], &env).await else {
        return;
    };
    let demo_log = std::fs::read_to_string(&demo.stderr).unwrap_or_default();
    run.assert_ok(&format!("the browser run (demo log:\n{demo_log})"));
    let stdout = run.stdout;
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let report_path = artifacts().join(format!("{tag}.json"));
    std::fs::write(&report_path, format!("{report:#}\n")).expect("write report");
    assert_eq!(report["leaks"], serde_json::json!([]), "{report}");
    // every response the browser got was read and scanned
    assert!(report["unread"].is_null(), "{report}");
    // the wrong password, and nothing else, was refused (in SSO mode by the
    // token endpoint, before any REST call)
    let refused = if sso {
        "/desktop/sso/token"
    } else {
        "/finesse/api/User/1001"
    };
    assert_eq!(
        report["unauthorized"],
        serde_json::json!([refused]),
        "{report}"
    );
    let notes = report["notifications"].to_string();
    assert!(
        notes.contains("/finesse/api/User/1001: state READY")
            && notes.contains("/finesse/api/User/1001: state NOT_READY"),
        "{report}"
    );
    let (_, port_b) = Demo::host_port(demo.get("Side B desktop"));
    assert!(
        report["sideB"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("127.0.0.1:{port_b}, through the proxy"))),
        "{report}"
    );
    // nothing went wrong on the way: no warning or error from deskgate or
    // the nodes (e.g. a node without a proxy-map entry, an upstream failure)
    let log = std::fs::read_to_string(&demo.stderr).unwrap_or_default();
    let bad: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        bad.is_empty(),
        "the demo logged problems:\n{}",
        bad.join("\n")
    );
    // and deskgate logged the notification tunnel
    let access = std::fs::read_to_string(demo.get("Access log")).unwrap_or_default();
    assert!(
        access
            .lines()
            .any(|l| l.contains("\"path\":\"/ws/\"") && l.contains("\"status\":101")),
        "no 101 for /ws/ in the access log:\n{access}"
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!(
        "screenshot: {}, report: {}",
        shot.display(),
        report_path.display()
    );
    assert!(demo.interrupt().await.success());
}

#[tokio::test]
async fn xmpp_client_signs_in_to_the_simulator_through_the_demo() {
    let demo = Demo::start().await;
    let (host, port) = Demo::host_port(demo.get("Side A desktop"));
    let users = format!("1001:{p},1002:{p}", p = finesse_sim::DEMO_PASSWORD);
    let env = [
        ("DG_CONNECT", format!("127.0.0.1:{port}").into()),
        ("DG_SNI", host.clone().into()),
        ("DG_SERVICE", format!("wss://{host}:{port}/ws/").into()),
        ("DG_DOMAIN", "cc.deskgate.test".into()),
        ("DG_USERS", users.into()),
        ("DG_BIG", "30000".into()),
        // the session cookie of a REST sign-in opens the gate (mode c)
        ("DG_PROOF", "cookie".into()),
        ("NODE_EXTRA_CA_CERTS", demo.get("CA certificate").into()),
    ];
    let Some(run) = js::run("xmpp-exchange.mjs", &["@xmpp/client"], &env).await else {
        return;
    };
    run.assert_ok("the XMPP exchange");
    let stdout = run.stdout;
    assert!(
        stdout.contains("\"ok\":true")
            && stdout.contains("\"pong\":\"result\"")
            && stdout.contains("\"protocols\":[\"xmpp\",\"xmpp\"]"),
        "{stdout}"
    );
    assert!(demo.interrupt().await.success());
}

#[tokio::test]
async fn the_demo_serves_its_proxy_map_and_desktop_and_stops_on_ctrl_c() {
    let demo = Demo::start().await;
    let names = demo.internal_names();
    // the proxy map, as the nodes poll it
    let map_url = demo.word("Proxy map");
    let addr: SocketAddr = map_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("addr")
        .parse()
        .expect("socket addr");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /proxymap.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut map = String::new();
    tcp.read_to_string(&mut map).await.expect("read");
    let (ha, pa) = Demo::host_port(demo.get("Side A desktop"));
    let (hb, pb) = Demo::host_port(demo.get("Side B desktop"));
    assert!(
        map.contains(&format!("finesse-a.lan:8445={ha}:{pa}")),
        "{map}"
    );
    assert!(
        map.contains(&format!("finesse-b.lan:8445={hb}:{pb}")),
        "{map}"
    );

    // each side's desktop, with the demo's CA, names only external hosts
    let ca = demo.ca_pem();
    for (host, port) in [(ha.as_str(), pa), (hb.as_str(), pb)] {
        let c = Client::trusting(&ca, SocketAddr::from(([127, 0, 0, 1], port)), host);
        let r = c.get(&format!("{host}:{port}"), "/desktop/").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r
            .text()
            .contains(&format!("https://{host}:{port}/desktop/css/desktop.css")));
        for n in &names {
            assert!(!r.everything().contains(n.as_str()), "{n} leaked");
        }
    }
    // SystemInfo through side B: side A's node is the primary, both by
    // their external names (node B maps its peer too)
    let c = Client::trusting(&ca, SocketAddr::from(([127, 0, 0, 1], pb)), &hb);
    let auth = deskgate_testkit::sim::basic("1001", finesse_sim::DEMO_PASSWORD);
    let r = c
        .send(
            "GET",
            &format!("{hb}:{pb}"),
            "/finesse/api/SystemInfo",
            Some(&auth),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let info = finesse_sim::xml::parse(&r.text()).expect("SystemInfo");
    let node = |tag: &str| {
        let n = info.child(tag).unwrap_or_else(|| panic!("no {tag}"));
        format!(
            "{}:{}",
            n.child_text("host").unwrap_or_default(),
            n.child_text("httpsPort").unwrap_or_default()
        )
    };
    assert_eq!(node("primaryNode"), format!("{ha}:{pa}"));
    assert_eq!(node("secondaryNode"), format!("{hb}:{pb}"));
    for n in &names {
        assert!(!r.everything().contains(n.as_str()), "{n} leaked");
    }

    let scratch = PathBuf::from(demo.word("Scratch dir"));
    assert!(scratch.exists());
    let status = demo.interrupt().await;
    assert!(status.success(), "{status}");
    assert!(
        !scratch.exists(),
        "the scratch directory is removed on exit"
    );
}
