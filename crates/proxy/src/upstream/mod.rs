//! Upstream side: one pooled HTTP/1.1 client per node, and the WebSocket tunnel.

pub mod connect;
pub mod tunnel;

use crate::body::ProxyBody;
use connect::NodeConnector;
use deskgate_config::{Deployment, Node, Scheme, Side};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A pooled client for one node, and the base URI requests are sent to.
pub struct NodeClient {
    pub client: Client<NodeConnector, ProxyBody>,
    /// `https://internal-host:port`: the pool key (nothing of it reaches clients).
    pub base: String,
    /// `component/internal-host:port`, for the access log.
    pub log_name: Arc<str>,
    /// The node's external `host:port` and port, as the upstream is told
    /// them (`Host`, `X-Forwarded-Host`, `X-Forwarded-Port`).
    pub external_authority: http::HeaderValue,
    pub external_port: http::HeaderValue,
}

/// Clients for every node an instance routes to, keyed by the node's identity
/// in the deployment they were built from (the two live and die together).
pub struct Upstreams {
    by_node: HashMap<usize, NodeClient>,
}

fn key(node: &Arc<Node>) -> usize {
    Arc::as_ptr(node) as usize
}

impl Upstreams {
    pub fn build(d: &Deployment, side: Side) -> Result<Upstreams, String> {
        let mut by_node = HashMap::new();
        for (comp, node) in d.nodes() {
            if node.side != side {
                continue;
            }
            let tls = match comp.scheme {
                Scheme::Https => comp.tls.clone(),
                Scheme::Http => None,
            };
            let connector = NodeConnector::new(
                node.dial_target(),
                &node.internal_host,
                tls,
                d.timeouts.upstream_connect,
            )?;
            let client = Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                // shorter than the usual upstream keep-alive, so we rarely reuse a closing socket
                .pool_idle_timeout(Duration::from_secs(15))
                .pool_max_idle_per_host(256)
                .http1_preserve_header_case(false)
                .build(connector);
            let scheme = match comp.scheme {
                Scheme::Https => "https",
                Scheme::Http => "http",
            };
            let base = format!(
                "{scheme}://{}:{}",
                bracket(&node.internal_host),
                node.internal_port
            );
            let log_name = format!(
                "{}/{}:{}",
                comp.name, node.internal_host, node.internal_port
            )
            .into();
            let external_authority = http::HeaderValue::from_str(&node.external_authority())
                .map_err(|_| format!("{}: external name is not a header value", comp.name))?;
            let external_port = http::HeaderValue::from(node.external_port);
            by_node.insert(
                key(node),
                NodeClient {
                    client,
                    base,
                    log_name,
                    external_authority,
                    external_port,
                },
            );
        }
        Ok(Upstreams { by_node })
    }

    pub fn get(&self, node: &Arc<Node>) -> Option<&NodeClient> {
        self.by_node.get(&key(node))
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
