//! deskgate in-process on port 0, from TOML text.

use crate::pki::Pki;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub struct Gate {
    running: Option<deskgate_proxy::Running>,
    pub listeners: HashMap<String, SocketAddr>,
    pub internal: Option<SocketAddr>,
    pub access_log: PathBuf,
    /// Where `one_route` configs write the security log.
    pub security_log: PathBuf,
}

impl Gate {
    /// Writes `toml` next to the PKI files and starts side A from it.
    pub async fn start(pki: &Pki, toml: &str) -> Gate {
        Gate::start_side(pki, toml, deskgate_config::Side::A).await
    }

    /// Like `start`, for either side.
    pub async fn start_side(pki: &Pki, toml: &str, side: deskgate_config::Side) -> Gate {
        // server logs go to the test output (shown for failing tests); RUST_LOG tunes them
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let path = pki.path().join("deskgate.toml");
        std::fs::write(&path, toml).expect("write config");
        let d = match deskgate_config::load(&path) {
            Ok(d) => d,
            Err(e) => panic!("test config is invalid:\n{e}\n---\n{toml}"),
        };
        let running = deskgate_proxy::start(Arc::new(d), side)
            .await
            .expect("start deskgate");
        Gate {
            listeners: running.listeners.iter().cloned().collect(),
            internal: running.internal,
            running: Some(running),
            access_log: pki.path().join("access.log"),
            security_log: pki.path().join("security.log"),
        }
    }

    /// The address of the only (or the named) listener.
    pub fn addr(&self, name: &str) -> SocketAddr {
        *self
            .listeners
            .get(name)
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    pub fn running(&self) -> &deskgate_proxy::Running {
        self.running.as_ref().expect("running")
    }

    /// Drains and stops.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }

    /// Security log lines, once one matches `want` (or after 10 s).
    pub async fn security_lines(
        &self,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.security_log).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if lines.iter().any(&want) || tokio::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The first security log line matching `want`, waiting for it (10 s);
    /// panics with the whole log when none comes.
    pub async fn security_line(
        &self,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let lines = self.security_lines(&want).await;
        match lines.iter().find(|l| want(l)) {
            Some(l) => l.clone(),
            None => panic!("no such security log line in:\n{lines:#?}"),
        }
    }

    /// Access log lines written so far (waits briefly for the writer thread).
    pub async fn log_lines(&self, at_least: usize) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if lines.len() >= at_least || tokio::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// What a one-route test deployment looks like.
pub struct Setup<'a> {
    pub upstream: SocketAddr,
    /// `https` or `http` towards the upstream.
    pub scheme: &'a str,
    /// Internal name of the node (its certificate must cover it for https).
    pub internal: &'a str,
    /// Extra TOML appended (tables such as [timeouts], [client_ip]).
    pub extra: &'a str,
    /// Extra keys inside the [[component]] table.
    pub component_extra: &'a str,
    /// Extra keys inside the [upstream_tls] table.
    pub tls_extra: &'a str,
    /// `auth` of the Finesse, LiveData and gadget components: `none` for
    /// tests of other stages, `finesse` for the edge-security tests.
    pub auth: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            upstream: "127.0.0.1:9".parse().expect("addr"),
            scheme: "http",
            internal: "finesse1a.internal.test",
            extra: "",
            component_extra: "",
            tls_extra: "",
            auth: "none",
        }
    }
}

/// One side-A listener (external port 8445) for finesse1a.example.com and
/// idsa.example.com and livedataa.example.com (one certificate), and
/// other.example.com (a second certificate): a Finesse node behind
/// finesse1a, and IdS, LiveData and gadget nodes on the same upstream.
pub fn one_route(pki: &Pki, s: &Setup<'_>) -> String {
    let cert = pki.server(
        "front",
        &[
            "finesse1a.example.com",
            "idsa.example.com",
            "livedataa.example.com",
            "127.0.0.1",
        ],
    );
    let other = pki.server("other", &["other.example.com"]);
    let log = pki.path().join("access.log");
    format!(
        r#"
[[listener]]
name = "front"
side = "a"
bind = "127.0.0.1:0"
external_port = 8445
[[listener.cert]]
names = ["finesse1a.example.com", "idsa.example.com", "livedataa.example.com", "127.0.0.1"]
cert = "{cert}"
key_file = "{key}"
[[listener.cert]]
names = ["other.example.com"]
cert = "{ocert}"
key_file = "{okey}"

[upstream_tls]
trust = "{ca}"
{tls_extra}

[[component]]
name = "finesse1"
kind = "finesse"
scheme = "{scheme}"
auth = "{auth}"
{component_extra}
[[component.node]]
internal = "{internal}:8445"
connect = "{up}"
external = "finesse1a.example.com:8445"
side = "a"

[[component]]
name = "ids"
kind = "ids"
scheme = "{scheme}"
[[component.node]]
internal = "idsa.internal.test:8553"
connect = "{up}"
external = "idsa.example.com:8445"
side = "a"

[[component]]
name = "livedata"
kind = "livedata"
scheme = "{scheme}"
auth = "{auth}"
[[component.node]]
internal = "livedataa.internal.test:12008"
connect = "{up}"
external = "livedataa.example.com:8445"
side = "a"

[[component]]
name = "other"
kind = "gadget"
scheme = "{scheme}"
auth = "{auth}"
[[component.node]]
internal = "other.internal.test:443"
connect = "{up}"
external = "other.example.com:8445"
side = "a"

[[internal]]
side = "a"
bind = "127.0.0.1:0"
admin_socket = "{admin}"

[log]
access = "{log}"
security = "{seclog}"

{extra}
"#,
        cert = cert.cert.display(),
        key = cert.key.display(),
        ocert = other.cert.display(),
        okey = other.key.display(),
        ca = pki.ca_path.display(),
        scheme = s.scheme,
        internal = s.internal,
        up = s.upstream,
        log = log.display(),
        seclog = pki.path().join("security.log").display(),
        admin = pki.path().join("admin.sock").display(),
        extra = s.extra,
        component_extra = s.component_extra,
        tls_extra = s.tls_extra,
        auth = s.auth,
    )
}

/// The usual rig: a PKI, a mock upstream with `behaviour`, deskgate in front
/// of it (`one_route` plus `extra` TOML), and a client for finesse1a.
pub async fn rig(
    behaviour: crate::mock::Behaviour,
    extra: &str,
) -> (Pki, crate::mock::Mock, Gate, crate::client::Client) {
    let pki = Pki::new();
    let mock = crate::mock::Mock::start(behaviour, None).await;
    let setup = Setup {
        upstream: mock.addr,
        extra,
        ..Setup::default()
    };
    let (gate, client) = start_one_route(&pki, &setup).await;
    (pki, mock, gate, client)
}

/// deskgate from `one_route(setup)`, and a client for finesse1a on its listener.
pub async fn start_one_route(pki: &Pki, setup: &Setup<'_>) -> (Gate, crate::client::Client) {
    let gate = Gate::start(pki, &one_route(pki, setup)).await;
    let client = crate::client::Client::new(pki, gate.addr("front"), "finesse1a.example.com");
    (gate, client)
}
