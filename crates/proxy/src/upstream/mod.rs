//! Upstream side: one connection pool per node, and the WebSocket tunnel.

pub mod connect;
pub mod pool;
pub mod tunnel;

use connect::NodeConnector;
use deskgate_config::{Deployment, Node, Scheme, Side};
use pool::Pool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The connections to one node, and what it is told and logged as.
pub struct NodeClient {
    pub pool: Arc<Pool>,
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
                // HTTP/2 where the component asks for it and a TLS node picks it (ALPN)
                comp.http2,
                d.timeouts.upstream_connect,
            )?;
            // idle at most 15 s: shorter than the usual upstream keep-alive,
            // so we rarely reuse a socket the node is closing
            let pool = Pool::new(connector, 256, Duration::from_secs(15));
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
                    pool,
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
