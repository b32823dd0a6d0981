//! Stage 4: the real client IP (SPEC 5).
//!
//! The configured header is believed only when the TCP peer is a trusted
//! intermediary; the chain is read right to left and the first untrusted
//! entry is the client. From anyone else every client-IP header is ignored
//! (the forwarding stage strips them all).

use deskgate_config::{canonical_ip, ClientIpPolicy};
use http::HeaderMap;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client the decisions are about.
    pub ip: IpAddr,
    /// The trusted chain, client first, ending with the TCP peer (for `X-Forwarded-For`).
    pub chain: Vec<IpAddr>,
}

/// Works out the real client from the peer and, if trusted, its header.
///
/// The list is walked from the right (nearest hop first); the first entry
/// that is not a trusted intermediary is the client, and nothing to its left
/// (which the client itself may have written) is ever read. An unreadable
/// entry reached while every hop so far was trusted means the nearest
/// trusted hop could not name its client: the walk stops at that hop.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, policy: &ClientIpPolicy) -> ClientAddr {
    let peer = canonical_ip(peer);
    let mut chain = vec![peer];
    if !policy.is_trusted(peer) {
        return ClientAddr { ip: peer, chain };
    }
    let Ok(name) = http::HeaderName::from_bytes(policy.header.as_bytes()) else {
        return ClientAddr { ip: peer, chain };
    };
    let values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    let entries = values.iter().rev().flat_map(|v| v.rsplit(|b| *b == b','));
    for raw in entries {
        let ip = std::str::from_utf8(raw)
            .ok()
            .and_then(|s| parse_ip(s.trim()))
            .map(canonical_ip);
        let Some(ip) = ip else { break };
        chain.push(ip);
        if !policy.is_trusted(ip) {
            break;
        }
    }
    chain.reverse();
    ClientAddr {
        ip: chain[0],
        chain,
    }
}

/// Accepts `1.2.3.4`, `1.2.3.4:5678`, `::1` and `[::1]:5678`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ClientIpPolicy {
        ClientIpPolicy {
            trusted: vec!["10.0.0.0/8".parse().expect("cidr")],
            header: "x-real-ip".into(),
        }
    }

    fn headers(name: &'static str, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().expect("value"));
        h
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let peer: IpAddr = "127.0.0.9".parse().expect("ip");
        let a = resolve(peer, &headers("x-real-ip", "1.2.3.4"), &policy());
        assert_eq!(a.ip, peer);
        assert_eq!(a.chain, vec![peer]);
    }

    #[test]
    fn trusted_peer_header_is_believed() {
        let peer: IpAddr = "10.1.1.1".parse().expect("ip");
        let a = resolve(peer, &headers("x-real-ip", "198.51.100.7"), &policy());
        assert_eq!(a.ip, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        assert_eq!(a.chain.len(), 2);
    }

    #[test]
    fn chain_stops_at_first_untrusted_entry_from_the_right() {
        let peer: IpAddr = "10.1.1.1".parse().expect("ip");
        let a = resolve(
            peer,
            &headers("x-real-ip", "6.6.6.6, 198.51.100.7, 10.2.2.2"),
            &policy(),
        );
        assert_eq!(a.ip, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        let want: Vec<IpAddr> = ["198.51.100.7", "10.2.2.2", "10.1.1.1"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        assert_eq!(a.chain, want);
    }

    #[test]
    fn garbage_left_of_the_real_client_is_never_read() {
        let peer: IpAddr = "10.1.1.1".parse().expect("ip");
        let a = resolve(peer, &headers("x-real-ip", "x, 198.51.100.7"), &policy());
        assert_eq!(a.ip, "198.51.100.7".parse::<IpAddr>().expect("ip"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-real-ip",
            http::HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.8").expect("v"),
        );
        let a = resolve(peer, &h, &policy());
        assert_eq!(a.ip, "198.51.100.8".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn several_header_lines_read_as_one_list() {
        let peer: IpAddr = "10.1.1.1".parse().expect("ip");
        let mut h = HeaderMap::new();
        h.append("x-real-ip", "6.6.6.6".parse().expect("v"));
        h.append("x-real-ip", "198.51.100.9, 10.3.3.3".parse().expect("v"));
        let a = resolve(peer, &h, &policy());
        assert_eq!(a.ip, "198.51.100.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn garbage_header_falls_back_to_peer() {
        let peer: IpAddr = "10.1.1.1".parse().expect("ip");
        let a = resolve(peer, &headers("x-real-ip", "not-an-ip"), &policy());
        assert_eq!(a.ip, peer);
    }

    #[test]
    fn other_headers_are_never_read() {
        let peer: IpAddr = "10.1.1.1".parse().expect("ip");
        let a = resolve(peer, &headers("x-forwarded-for", "1.2.3.4"), &policy());
        assert_eq!(a.ip, peer);
    }
}
