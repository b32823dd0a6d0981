//! A real Prosody XMPP server with XMPP-over-WebSocket at `/ws/` and BOSH
//! at `/http-bind/`, over TLS, on a loopback port: the protocol Finesse
//! notifications use.

use crate::pki::Pki;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Prosody {
    _process: crate::Process,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Prosody {
    /// Starts Prosody with the given users; its certificate covers `name`.
    pub async fn start(pki: &Pki, name: &str, users: &[(&str, &str)]) -> Option<Prosody> {
        let bin = crate::require("prosody")?;
        let ctl = crate::require("prosodyctl")?;
        let dir = pki.path().join("prosody");
        std::fs::create_dir_all(dir.join("data")).expect("mkdir");
        std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
        let cert = pki.server("prosody", &[name]);
        // Prosody picks its certificate by SNI from the certificates folder
        std::fs::copy(&cert.cert, dir.join("certs").join(format!("{name}.crt")))
            .expect("copy cert");
        std::fs::copy(&cert.key, dir.join("certs").join(format!("{name}.key"))).expect("copy key");
        for _attempt in 0..5 {
            let port = crate::free_port();
            let cfg = format!(
                r#"
run_as_root = true
daemonize = false
pidfile = "{dir}/prosody.pid"
data_path = "{dir}/data"
certificates = "{dir}/certs"
log = {{ info = "{dir}/prosody.log"; error = "{dir}/error.log" }}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "websocket"; "bosh"; "http"; "presence"; "message"; "iq" }}
modules_disabled = {{ "s2s"; "posix" }}
c2s_ports = {{ }}
s2s_ports = {{ }}
component_ports = {{ }}
http_ports = {{ }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ {port} }}
https_interfaces = {{ "127.0.0.1" }}
https_ssl = {{ certificate = "{cert}"; key = "{key}" }}
http_paths = {{ websocket = "/ws/"; bosh = "/http-bind/" }}
http_default_host = "localhost"
consider_websocket_secure = true
consider_bosh_secure = true
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
VirtualHost "localhost"
    http_host = "{name}"
"#,
                dir = dir.display(),
                name = name,
                cert = cert.cert.display(),
                key = cert.key.display(),
            );
            let cfg_path = dir.join("prosody.cfg.lua");
            std::fs::write(&cfg_path, cfg).expect("cfg");
            for (user, pass) in users {
                let st = Command::new(&ctl)
                    .arg("--config")
                    .arg(&cfg_path)
                    .args(["register", user, "localhost", pass])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("prosodyctl");
                assert!(st.success(), "prosodyctl register {user} failed");
            }
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let mut cmd = Command::new(&bin);
            cmd.arg("--config").arg(&cfg_path);
            if let Some(process) = crate::spawn_listening(&mut cmd, addr).await {
                return Some(Prosody {
                    _process: process,
                    addr,
                    dir,
                });
            }
        }
        let log = std::fs::read_to_string(dir.join("prosody.log")).unwrap_or_default();
        panic!("prosody did not start: {log}");
    }
}
