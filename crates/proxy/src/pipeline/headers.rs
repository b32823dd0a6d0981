//! Header hygiene both ways (SPEC 5): small pure functions.
//!
//! Towards the upstream: hop-by-hop headers and the names listed in
//! `Connection` are removed, every client-supplied forwarding header is
//! dropped and rebuilt from what deskgate knows, `Host` is the external
//! host:port. Towards the client: hop-by-hop headers go, and `Server`
//! carries no version.

use super::client_ip::ClientAddr;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 7.6.1 and the usual legacy ones).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    KEEP_ALIVE,
];

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Forwarding and override headers a client must never be able to set:
/// they name the client, or make some upstreams take another path or method.
const FORWARDING: [&str; 17] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-host",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "forwarded",
    "x-request-id",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
];

/// Removes hop-by-hop headers, including those `Connection` names.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let mut drop = Names::default();
    for v in h.get_all(header::CONNECTION) {
        let Ok(v) = v.to_str() else { continue };
        for token in v.split(',').map(str::trim) {
            // `close` names no header, `keep-alive` and `upgrade` go below anyway
            if token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case("upgrade")
            {
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(token.as_bytes()) {
                drop.push(n);
            }
        }
    }
    // one pass over the names; most requests and answers carry none of these
    for k in h.keys() {
        if HOP_BY_HOP.contains(k) || *k == PROXY_CONNECTION {
            drop.push(k.clone());
        }
    }
    drop.remove_from(h);
}

/// Header names to remove, kept on the stack while there are few
/// (cloning a standard name allocates nothing).
#[derive(Default)]
struct Names {
    few: [Option<HeaderName>; 6],
    len: usize,
    more: Vec<HeaderName>,
}

impl Names {
    fn push(&mut self, n: HeaderName) {
        match self.few.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(n);
                self.len += 1;
            }
            None => self.more.push(n),
        }
    }

    fn remove_from(self, h: &mut HeaderMap) {
        for n in self.few.into_iter().flatten().chain(self.more) {
            h.remove(n);
        }
    }
}

const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_CLIENT_IP: HeaderName = HeaderName::from_static("x-client-ip");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the forwarding headers are built from.
pub struct Forwarding<'a> {
    pub client: &'a ClientAddr,
    /// The node's external `host:port` (made once per node).
    pub external_authority: &'a HeaderValue,
    pub external_port: &'a HeaderValue,
    pub client_ip_header: &'a str,
    pub request_id: &'a str,
    pub upgrade: bool,
}

/// A request header no client may send on: hop-by-hop, forwarding and
/// override headers, underscored names, the trusted client-IP header.
fn never_forwarded(name: &str, client_ip_header: &str) -> bool {
    // like nginx's default (underscores_in_headers off): `X_Forwarded_For`
    // must not reach an upstream that reads it as X-Forwarded-For
    // every forwarding name starts with x, f or t: most names skip the list
    (matches!(name.as_bytes().first(), Some(b'x' | b'f' | b't'))
        && (FORWARDING.contains(&name) || name == "x-method-override"))
        || name.eq_ignore_ascii_case(client_ip_header)
        || name.as_bytes().contains(&b'_')
}

/// Turns client request headers into upstream request headers, in place.
/// One pass over the names; nothing is allocated unless a header has to go.
pub fn to_upstream(h: &mut HeaderMap, f: &Forwarding<'_>) {
    strip_hop_by_hop(h);
    let mut drop = Names::default();
    for k in h.keys() {
        if never_forwarded(k.as_str(), f.client_ip_header) {
            drop.push(k.clone());
        }
    }
    drop.remove_from(h);
    join_cookies(h);
    crate::security::strip_session_cookie(h);
    let client = ip_value(f.client.ip);
    let xff = match f.client.chain.as_slice() {
        [one] if *one == f.client.ip => client.clone(),
        chain => {
            let mut joined = Vec::with_capacity(chain.len() * 16);
            for (i, ip) in chain.iter().enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b", ");
                }
                crate::ascii::push_ip(&mut joined, *ip);
            }
            HeaderValue::from_maybe_shared(bytes::Bytes::from(joined))
                .unwrap_or_else(|_| client.clone())
        }
    };
    h.insert(X_FORWARDED_FOR, xff);
    h.insert(X_CLIENT_IP, client);
    h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    h.insert(X_FORWARDED_PORT, f.external_port.clone());
    h.insert(X_FORWARDED_HOST, f.external_authority.clone());
    if let Ok(v) = HeaderValue::from_str(f.request_id) {
        h.insert(X_REQUEST_ID, v);
    }
    h.insert(header::HOST, f.external_authority.clone());
    if f.upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
}

/// An address as a header value.
fn ip_value(ip: std::net::IpAddr) -> HeaderValue {
    let mut buf = Vec::with_capacity(16);
    crate::ascii::push_ip(&mut buf, ip);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(buf))
        .unwrap_or_else(|_| HeaderValue::from_static("0.0.0.0"))
}

/// HTTP/2 may split `Cookie`; HTTP/1.1 upstreams need one header (RFC 9113 8.2.3).
fn join_cookies(h: &mut HeaderMap) {
    if h.get_all(header::COOKIE).iter().count() > 1 {
        let joined = h
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        if let Ok(v) = HeaderValue::from_str(&joined) {
            h.insert(header::COOKIE, v);
        }
    }
}

/// Cleans upstream response headers before they reach the client.
pub fn to_client(h: &mut HeaderMap, upgraded: bool, hsts: bool) {
    if upgraded {
        // keep the upgrade handshake; drop only what may not pass
        h.remove(header::TRANSFER_ENCODING);
        h.remove(KEEP_ALIVE);
    } else {
        strip_hop_by_hop(h);
    }
    h.insert(header::SERVER, HeaderValue::from_static("deskgate"));
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// `to_upstream` for a direct client 127.0.0.9 on f.example.com:8445.
    fn forward_from_test_client(h: &mut HeaderMap) {
        let ip: IpAddr = "127.0.0.9".parse().expect("ip");
        let c = ClientAddr {
            ip,
            chain: vec![ip],
        };
        to_upstream(
            h,
            &Forwarding {
                client: &c,
                external_authority: &HeaderValue::from_static("f.example.com:8445"),
                external_port: &HeaderValue::from_static("8445"),
                client_ip_header: "x-real-ip",
                request_id: "r1",
                upgrade: false,
            },
        );
    }

    #[test]
    fn spoofed_forwarding_headers_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "6.6.6.6".parse().expect("v"));
        h.insert("x-real-ip", "6.6.6.6".parse().expect("v"));
        h.insert("x-client-ip", "6.6.6.6".parse().expect("v"));
        h.insert("forwarded", "for=6.6.6.6".parse().expect("v"));
        h.insert("host", "evil".parse().expect("v"));
        forward_from_test_client(&mut h);
        assert_eq!(h["x-forwarded-for"], "127.0.0.9");
        assert_eq!(h["x-client-ip"], "127.0.0.9");
        assert_eq!(h["host"], "f.example.com:8445");
        assert_eq!(h["x-forwarded-port"], "8445");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(h.get("x-real-ip").is_none());
        assert!(h.get("forwarded").is_none());
    }

    #[test]
    fn override_and_underscored_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("x-original-url", "/cfadmin".parse().expect("v"));
        h.insert("x-http-method-override", "DELETE".parse().expect("v"));
        h.insert("x_forwarded_for", "6.6.6.6".parse().expect("v"));
        h.insert("true-client-ip", "6.6.6.6".parse().expect("v"));
        h.insert("x-fine", "1".parse().expect("v"));
        forward_from_test_client(&mut h);
        for gone in [
            "x-original-url",
            "x-http-method-override",
            "x_forwarded_for",
            "true-client-ip",
        ] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        assert!(h.get("x-fine").is_some());
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().expect("v"));
        h.insert("keep-alive", "timeout=5".parse().expect("v"));
        h.insert("x-secret", "1".parse().expect("v"));
        h.insert("te", "trailers".parse().expect("v"));
        h.insert("proxy-authorization", "Basic eA==".parse().expect("v"));
        h.insert("x-keep", "1".parse().expect("v"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.get("x-keep").is_some());
    }

    #[test]
    fn split_cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1".parse().expect("v"));
        h.append("cookie", "b=2".parse().expect("v"));
        join_cookies(&mut h);
        assert_eq!(h["cookie"], "a=1; b=2");
    }

    #[test]
    fn server_header_has_no_version() {
        let mut h = HeaderMap::new();
        h.insert("server", "Apache-Coyote/1.1".parse().expect("v"));
        to_client(&mut h, false, false);
        assert_eq!(h["server"], "deskgate");
    }
}
