//! The Finesse simulator behind deskgate, in-process: a node named
//! `finesse1a.internal.test:8445` that polls deskgate's proxy map and treats
//! 127.0.0.1 (deskgate's upstream side) as its allowed proxy, while clients
//! from 127.0.0.2 and up reach it directly, as LAN clients.

use crate::client::Client;
use crate::deskgate::{one_route, Gate, Setup};
use crate::pki::Pki;
use finesse_sim::{Cluster, HostPort, Node, NodeConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The node's internal name in `one_route` (the proxy map's left side).
pub const INTERNAL: &str = "finesse1a.internal.test";
/// Its external name in `one_route`.
pub const EXTERNAL: &str = "finesse1a.example.com:8445";

pub struct SimRig {
    pub pki: Pki,
    pub cluster: Arc<Cluster>,
    pub node: Node,
    pub gate: Gate,
    /// Through deskgate, for finesse1a.example.com.
    pub client: Client,
    /// Straight to the node from 127.0.0.2 (a LAN client).
    pub direct: Client,
}

/// How the node's TLS is set up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NodeTls {
    /// Any client may connect.
    Open,
    /// A client certificate from the test CA is required, and deskgate presents one.
    MutualWithCert,
    /// A client certificate is required, and deskgate has none.
    MutualWithoutCert,
}

/// What `sim_rig_with` puts around the node.
pub struct SimOptions<'a> {
    pub tls: NodeTls,
    /// `auth` of the Finesse component (see `Setup::auth`).
    pub auth: &'a str,
    /// Extra TOML at the end of deskgate's config.
    pub extra: &'a str,
    /// Extra keys in the Finesse component.
    pub component_extra: &'a str,
}

impl Default for SimOptions<'_> {
    fn default() -> Self {
        SimOptions {
            tls: NodeTls::Open,
            auth: "none",
            extra: "",
            component_extra: "",
        }
    }
}

pub async fn sim_rig(tls: NodeTls) -> SimRig {
    sim_rig_with(SimOptions {
        tls,
        ..SimOptions::default()
    })
    .await
}

pub async fn sim_rig_with(o: SimOptions<'_>) -> SimRig {
    let tls = o.tls;
    let pki = Pki::new();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind node");
    let addr: SocketAddr = tcp.local_addr().expect("addr");
    let client_cert = pki.client("deskgate-client");
    let tls_extra = if tls == NodeTls::MutualWithCert {
        format!(
            "client_cert = \"{}\"\nclient_key_file = \"{}\"",
            client_cert.cert.display(),
            client_cert.key.display()
        )
    } else {
        String::new()
    };
    let toml = one_route(
        &pki,
        &Setup {
            upstream: addr,
            scheme: "https",
            internal: INTERNAL,
            tls_extra: &tls_extra,
            auth: o.auth,
            extra: o.extra,
            component_extra: o.component_extra,
        },
    );
    let gate = Gate::start(&pki, &toml).await;
    let internal = gate.internal.expect("internal listener");
    let node_cert = pki.ca.server(&[INTERNAL, "127.0.0.1"]).expect("node cert");
    let cluster = Cluster::demo(5);
    let node = Node::start(
        tcp,
        NodeConfig {
            name: HostPort::new(INTERNAL, 8445),
            peer: None,
            primary: true,
            cert_pem: node_cert.cert_pem,
            key_pem: node_cert.key_pem,
            client_ca_pem: (tls != NodeTls::Open).then(|| pki.ca.cert_pem().to_string()),
            allowed_proxies: vec!["127.0.0.1/32".parse().expect("net")],
            proxymap_url: Some(format!("http://{internal}/proxymap.txt")),
            proxymap_every: Duration::from_secs(60),
        },
        cluster.clone(),
    )
    .expect("start node");
    assert!(
        node.awareness.wait_loaded(Duration::from_secs(10)).await,
        "the node did not load deskgate's proxy map"
    );
    let client = Client::new(&pki, gate.addr("front"), "finesse1a.example.com");
    let direct = Client::new(&pki, addr, INTERNAL).from_ip("127.0.0.2");
    SimRig {
        pki,
        cluster,
        node,
        gate,
        client,
        direct,
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
