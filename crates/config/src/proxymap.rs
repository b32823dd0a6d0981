//! The proxy map (network translation file) that upstreams poll.
//!
//! Generated from the routes of both sides: the routes and the map cannot
//! disagree. One `internalhost:port=externalhost:port` per line.

use crate::runtime::Deployment;

/// The proxy map text, sorted for stable output.
pub fn render(d: &Deployment) -> String {
    let mut lines: Vec<String> = d
        .nodes()
        .map(|(_, n)| {
            format!(
                "{}:{}={}:{}",
                n.internal_host.to_ascii_lowercase(),
                n.internal_port,
                n.external_host,
                n.external_port
            )
        })
        .collect();
    lines.sort();
    lines.dedup();
    let mut out = lines.join("\n");
    out.push('\n');
    out
}
