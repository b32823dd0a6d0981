//! `deskgate demo`: the whole product in one command. Two simulated Finesse
//! nodes (sides A and B, one cluster) on loopback, and deskgate in front of
//! both with both sides' listeners in this one process, upstream TLS
//! verified and mutual, and certificates made fresh for the run.
//!
//! The deployment is written as an ordinary config file and loaded through
//! the same validation as `deskgate run`, so the demo exercises the product
//! rather than a special path. Listeners are bound first (port 0 allowed)
//! and the ports they got are written into the config as the external
//! ports, so the proxy map and routing match what the browser uses.

use deskgate_config::Side;
use deskgate_devcerts::Ca;
use finesse_sim::{Cluster, HostPort, Node, NodeConfig, DEMO_PASSWORD};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The command-line knobs of the demo.
pub struct DemoArgs {
    /// Side A's listener; side B takes the next port (port 0: any free one).
    pub listen: SocketAddr,
    /// Side A's internal (proxy map) listener; side B takes the next port.
    pub internal: SocketAddr,
    pub agents: u32,
    /// SSO mode: desktops sign in with tokens from the simulated IdS, and
    /// deskgate verifies them with the keys it polls from the nodes.
    pub sso: bool,
}

const NODE_A: &str = "finesse-a.lan";
const NODE_B: &str = "finesse-b.lan";
const NODE_PORT: u16 = 8445;

/// Side A's external host: a name every browser resolves to loopback.
const HOST_A: &str = "localhost";
/// Side B's external host: an IP literal, so the demo also shows a client
/// without SNI being routed by Host alone.
const HOST_B: &str = "127.0.0.1";

pub async fn run(args: DemoArgs) -> ExitCode {
    match start(args).await {
        Ok(demo) => {
            print!("{}", demo.banner);
            wait_for_stop().await;
            println!("deskgate demo: stopping");
            demo.stop().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("deskgate demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut i), Ok(mut t)) => {
            tokio::select! {
                _ = i.recv() => {}
                _ = t.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A running demo: deskgate's two sides, the two nodes, and the scratch
/// directory holding this run's certificates, config and logs.
pub struct Demo {
    pub banner: String,
    sides: Vec<deskgate_proxy::Running>,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Drains both sides first (requests in flight still reach their
    /// node), then stops the nodes.
    pub async fn stop(self) {
        let drains: Vec<_> = self
            .sides
            .into_iter()
            .map(|r| tokio::spawn(r.shutdown()))
            .collect();
        for d in drains {
            let _ = d.await;
        }
        for n in &self.nodes {
            n.stop();
        }
    }
}

/// Binds `base` and a second address (next port, or any when port 0).
async fn bind_pair(base: SocketAddr, flag: &str) -> Result<(TcpListener, TcpListener), String> {
    let next = if base.port() == 0 {
        base
    } else {
        let p = base
            .port()
            .checked_add(1)
            .ok_or(format!("{flag} {base}: side B needs the next port"))?;
        SocketAddr::new(base.ip(), p)
    };
    let bind = |a: SocketAddr| async move {
        TcpListener::bind(a)
            .await
            .map_err(|e| format!("cannot bind {a}: {e} (choose other ports with {flag})"))
    };
    Ok((bind(base).await?, bind(next).await?))
}

fn write(dir: &Path, name: &str, text: &str) -> Result<String, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(p.display().to_string())
}

pub async fn start(args: DemoArgs) -> Result<Demo, String> {
    // the external names are localhost and 127.0.0.1: nothing else could
    // reach these routes, and the demo stays on this machine
    for (flag, a) in [("--listen", args.listen), ("--internal", args.internal)] {
        if !a.ip().is_loopback() {
            return Err(format!(
                "{flag} {a}: the demo serves loopback only (its hosts are localhost and 127.0.0.1); use a 127.x.y.z address"
            ));
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("deskgate-demo-")
        .tempdir()
        .map_err(|e| format!("cannot make a scratch directory: {e}"))?;
    let d = dir.path();
    let cert_err = |e: deskgate_devcerts::Error| format!("cannot make certificates: {e}");

    // certificates for this run only
    let ca = Ca::new("deskgate demo CA").map_err(cert_err)?;
    let front = ca.server(&[HOST_A, HOST_B]).map_err(cert_err)?;
    let node_a = ca.server(&[NODE_A]).map_err(cert_err)?;
    let node_b = ca.server(&[NODE_B]).map_err(cert_err)?;
    let client = ca.client("deskgate").map_err(cert_err)?;
    let ca_path = write(d, "ca.pem", ca.cert_pem())?;
    let front_cert = write(d, "front.pem", &front.cert_pem)?;
    let front_key = write(d, "front.key", &front.key_pem)?;
    let client_cert = write(d, "deskgate-client.pem", &client.cert_pem)?;
    let client_key = write(d, "deskgate-client.key", &client.key_pem)?;

    // sockets first, so the config names the ports the browser will use
    let (tcp_a, tcp_b) = bind_pair(args.listen, "--listen").await?;
    let (int_a, int_b) = bind_pair(args.internal, "--internal").await?;
    let (sim_a, sim_b) =
        bind_pair("127.0.0.1:0".parse().map_err(|_| "address")?, "--listen").await?;
    let addr = |l: &TcpListener| l.local_addr().map_err(|e| e.to_string());
    let (a, b, ia, ib, sa, sb) = (
        addr(&tcp_a)?,
        addr(&tcp_b)?,
        addr(&int_a)?,
        addr(&int_b)?,
        addr(&sim_a)?,
        addr(&sim_b)?,
    );

    let log = d.join("access.log").display().to_string();
    let security_log = d.join("security.log").display().to_string();
    let sso = if args.sso {
        format!(
            r#"
[sso]
mode = "keys"
algorithm = "RS256"
keys_url = "https://{NODE_A}:{NODE_PORT}/ids/v1/keys"
issuer = "{}"
audience = "{}"
"#,
            finesse_sim::SSO_ISSUER,
            finesse_sim::SSO_AUDIENCE
        )
    } else {
        String::new()
    };
    let admin_a = d.join("admin-a.sock").display().to_string();
    let admin_b = d.join("admin-b.sock").display().to_string();
    let mut toml = String::from("# deskgate demo: written for this run\n");
    for (side, name, bind) in [("a", "side-a", a), ("b", "side-b", b)] {
        let _ = write!(
            toml,
            r#"
[[listener]]
name = "{name}"
side = "{side}"
bind = "{bind}"
external_port = {port}
[[listener.cert]]
names = ["{HOST_A}", "{HOST_B}"]
cert = "{front_cert}"
key_file = "{front_key}"
"#,
            port = bind.port(),
        );
    }
    let _ = write!(
        toml,
        r#"
[upstream_tls]
trust = "{ca_path}"
client_cert = "{client_cert}"
client_key_file = "{client_key}"

[[component]]
name = "finesse"
kind = "finesse"
scheme = "https"
[[component.node]]
internal = "{NODE_A}:{NODE_PORT}"
connect = "{sa}"
external = "{HOST_A}:{pa}"
side = "a"
[[component.node]]
internal = "{NODE_B}:{NODE_PORT}"
connect = "{sb}"
external = "{HOST_B}:{pb}"
side = "b"

[[internal]]
side = "a"
bind = "{ia}"
admin_socket = "{admin_a}"
[[internal]]
side = "b"
bind = "{ib}"
admin_socket = "{admin_b}"

[timeouts]
drain = "2s"

[log]
access = "{log}"
security = "{security_log}"
{sso}"#,
        pa = a.port(),
        pb = b.port(),
    );
    let config_path = write(d, "deskgate.toml", &toml)?;
    let deployment = match deskgate_config::load(Path::new(&config_path)) {
        Ok(dep) => Arc::new(dep),
        Err(e) => return Err(format!("the demo's own config is invalid (a bug):\n{e}")),
    };

    let into_std = |l: TcpListener| l.into_std().map_err(|e| e.to_string());
    let side_a = deskgate_proxy::start_with(
        deployment.clone(),
        Side::A,
        vec![into_std(tcp_a)?, into_std(int_a)?],
    )
    .await?;
    let side_b = deskgate_proxy::start_with(
        deployment.clone(),
        Side::B,
        vec![into_std(tcp_b)?, into_std(int_b)?],
    )
    .await?;

    let cluster = Cluster::demo(args.agents);
    cluster.set_sso_mode(args.sso);
    let loopback: ipnet::IpNet = "127.0.0.1/32".parse().map_err(|_| "network")?;
    let node = |name: &str,
                peer: &str,
                primary: bool,
                issued: &deskgate_devcerts::Issued,
                map: SocketAddr| NodeConfig {
        name: HostPort::new(name, NODE_PORT),
        peer: Some(HostPort::new(peer, NODE_PORT)),
        primary,
        cert_pem: issued.cert_pem.clone(),
        key_pem: issued.key_pem.clone(),
        client_ca_pem: Some(ca.cert_pem().to_string()),
        allowed_proxies: vec![loopback],
        proxymap_url: Some(format!("http://{map}/proxymap.txt")),
        proxymap_every: Duration::from_secs(60),
    };
    let na = Node::start(
        sim_a,
        node(NODE_A, NODE_B, true, &node_a, ia),
        cluster.clone(),
    )?;
    let nb = Node::start(sim_b, node(NODE_B, NODE_A, false, &node_b, ib), cluster)?;
    for n in [&na, &nb] {
        if !n.awareness.wait_loaded(Duration::from_secs(10)).await {
            return Err("the simulated nodes could not load the proxy map".into());
        }
    }

    let url_a = format!("https://{HOST_A}:{}/desktop/", a.port());
    let url_b = format!("https://{HOST_B}:{}/desktop/", b.port());
    let banner = format!(
        "\
deskgate demo: a simulated Finesse pair behind deskgate, on loopback

  Side A desktop:   {url_a}
  Side B desktop:   {url_b}
  Proxy map:        http://{ia}/proxymap.txt   (side B: http://{ib}/proxymap.txt)
  Sign in as:       agents 1001 to {last} (supervisor 2001, administrator admin), password {DEMO_PASSWORD}
  Five wrong passwords in a row lock a user for 5 minutes, as Finesse does.

  Certificates are made for each run by a private CA, so a browser warns for
  each host, every run. Or trust the CA file, or start a fresh Chromium that
  trusts exactly this run's key:
  CA certificate:   {ca_path}
  Chromium pin:     --ignore-certificate-errors-spki-list={pin}
  Chromium:         chromium --user-data-dir=$(mktemp -d) --ignore-certificate-errors-spki-list={pin} {url_a}
  Try:              curl --cacert {ca_path} {url_a}
  Access log:       {log}
  Security log:     {security_log}
  Sign-in mode:     {mode}
  Upstream nodes:   {NODE_A}:{NODE_PORT} on {sa}, {NODE_B}:{NODE_PORT} on {sb} (client certificate required)
  Scratch dir:      {scratch} (removed on exit)

Press Ctrl-C to stop.
",
        last = 1000 + args.agents,
        mode = if args.sso {
            "SSO (tokens from the simulated IdS, checked by deskgate with keys it polls)"
        } else {
            "Basic (checked against Finesse, cached by deskgate)"
        },
        pin = front.spki_pin(),
        scratch = d.display(),
    );
    Ok(Demo {
        banner,
        sides: vec![side_a, side_b],
        nodes: vec![na, nb],
        _dir: dir,
    })
}
