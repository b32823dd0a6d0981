//! `finesse-sim`: one simulated Finesse node on its own. `deskgate demo`
//! runs two of these in-process; this binary is for trying the simulator
//! alone or behind another proxy.

use clap::Parser;
use finesse_sim::{Cluster, HostPort, Node, NodeConfig, DEMO_PASSWORD};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "finesse-sim",
    about = "A simulated Cisco Finesse node (REST, desktop, XMPP notifications)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8445")]
    listen: SocketAddr,
    /// This node's internal host:port, as the proxy map's left side names it.
    #[arg(long, default_value = "finesse-a.lan:8445")]
    name: String,
    /// The other node of the pair (internal host:port).
    #[arg(long)]
    peer: Option<String>,
    /// This node is side B (the secondary).
    #[arg(long)]
    secondary: bool,
    /// Server certificate chain (PEM). Without it a private CA and a
    /// certificate for --name and 127.0.0.1 are made, and the CA is written
    /// to --ca-out.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Where the generated CA certificate goes (default: a new file in the
    /// system's temporary directory, printed at start).
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Require client certificates signed by this CA (upstream mutual TLS).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Addresses (IP or CIDR) whose requests are proxied requests.
    #[arg(long = "allowed-proxy")]
    allowed_proxies: Vec<String>,
    /// The proxy's map, polled every --proxymap-every seconds.
    #[arg(long)]
    proxymap_url: Option<String>,
    #[arg(long, default_value_t = 60)]
    proxymap_every: u64,
    /// Seconds a signed-in agent may have no notification session before it
    /// is signed out.
    #[arg(long, default_value_t = 60)]
    presence_grace: u64,
    /// Number of demo agents (1001...); the password is `deskgate-demo`.
    #[arg(long, default_value_t = 10)]
    agents: u32,
}

fn read(p: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

async fn run(a: Args) -> Result<(), String> {
    let name = HostPort::parse(&a.name).ok_or("--name must be host:port")?;
    let peer = match &a.peer {
        Some(p) => Some(HostPort::parse(p).ok_or("--peer must be host:port")?),
        None => None,
    };
    let (cert_pem, key_pem) = match (&a.cert, &a.key) {
        (Some(c), Some(k)) => (read(c)?, read(k)?),
        _ => {
            let ca = deskgate_devcerts::Ca::new("finesse-sim CA").map_err(|e| e.to_string())?;
            let leaf = ca
                .server(&[name.host.as_str(), "127.0.0.1"])
                .map_err(|e| e.to_string())?;
            let out = a.ca_out.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("finesse-sim-ca-{}.pem", std::process::id()))
            });
            std::fs::write(&out, ca.cert_pem())
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("CA certificate written to {}", out.display());
            (leaf.cert_pem, leaf.key_pem)
        }
    };
    let client_ca_pem = match &a.client_ca {
        Some(p) => Some(read(p)?),
        None => None,
    };
    let mut allowed = Vec::new();
    for s in &a.allowed_proxies {
        let net = s
            .parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| format!("--allowed-proxy {s}: not an IP or CIDR"))?;
        allowed.push(net);
    }
    let cfg = NodeConfig {
        name,
        peer,
        primary: !a.secondary,
        cert_pem,
        key_pem,
        client_ca_pem,
        allowed_proxies: allowed,
        proxymap_url: a.proxymap_url,
        proxymap_every: Duration::from_secs(a.proxymap_every.max(1)),
    };
    let cluster = Cluster::demo(a.agents);
    cluster.set_presence_grace(Duration::from_secs(a.presence_grace));
    let node = Node::bind(a.listen, cfg, cluster).await?;
    println!(
        "Finesse simulator on https://{}/desktop/  (agents 1001..{}, password {DEMO_PASSWORD})",
        node.addr,
        1000 + a.agents
    );
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| e.to_string())?,
        _ = term.recv() => {}
    }
    node.stop();
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    if let Err(e) = run(Args::parse()).await {
        eprintln!("finesse-sim: {e}");
        std::process::exit(1);
    }
}
