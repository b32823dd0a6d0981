//! Stage 3: route by listener + Host (SPEC 1).
//!
//! A Host without a port means the listener's external port; another port
//! or an unknown name gets 421. On HTTP/2 a Host that the connection's
//! SNI certificate does not cover gets 421 (connection coalescing must not
//! reach a route the client never negotiated TLS for).

use super::deny::Deny;
use deskgate_config::{Listener, Route};

/// Splits `host[:port]` (IPv6 in brackets), lower-cases and drops a trailing dot.
pub fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.contains(['@', '/', ' ']) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Finds the route for a request's authority on a listener.
pub fn resolve<'a>(
    listener: &'a Listener,
    authority: Option<&str>,
    sni: Option<&str>,
    is_h2: bool,
) -> Result<&'a Route, Deny> {
    let authority = authority.ok_or(Deny::BadRequest("missing_host"))?;
    let (host, port) = split_authority(authority).ok_or(Deny::BadRequest("bad_host"))?;
    if port.unwrap_or(listener.external_port) != listener.external_port {
        return Err(Deny::UnknownHost);
    }
    let route = listener.routes.get(&host).ok_or(Deny::UnknownHost)?;
    if is_h2 {
        if let Some(sni) = sni {
            if !listener.sni_covers(sni, &host) {
                return Err(Deny::Misdirected);
            }
        }
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deskgate_config::kinds::Kind;
    use deskgate_config::runtime::{Component, Node, PathRules, Scheme, Side, SniCert};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    fn sni_cert(ca: &deskgate_devcerts::Ca, names: &[&str]) -> SniCert {
        let issued = ca.server(names).expect("cert");
        let certs = vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("pem")];
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key");
        SniCert {
            names: names.iter().map(|n| n.to_string()).collect(),
            key: Arc::new(deskgate_config::tls::certified_key(certs, key).expect("pair")),
        }
    }

    /// Port 8445; a and b share a certificate, c has its own; a and c have routes.
    fn listener() -> Listener {
        let ca = deskgate_devcerts::Ca::new("t").expect("ca");
        let component = Arc::new(Component {
            name: "f".into(),
            kind: Kind::Finesse,
            scheme: Scheme::Http,
            tls: None,
            response_timeout: Duration::from_secs(1),
            http2: true,
            rules: PathRules {
                allow: vec![],
                deny: vec![],
                methods: vec![],
                case_insensitive: false,
            },
            security: deskgate_config::ComponentSecurity {
                auth: deskgate_config::AuthMode::None,
                check_against: None,
                unauthenticated: Default::default(),
                rate: Kind::Finesse.default_rate(),
                classes: vec![],
                in_flight: 1,
            },
            nodes: vec![],
        });
        let route = |host: &str| Route {
            component: component.clone(),
            node: Arc::new(Node {
                internal_host: format!("{host}.internal"),
                internal_port: 8445,
                connect: None,
                external_host: host.into(),
                external_port: 8445,
                side: Side::A,
            }),
        };
        let mut routes = HashMap::new();
        routes.insert("a.example.com".to_string(), route("a.example.com"));
        routes.insert("c.example.com".to_string(), route("c.example.com"));
        Listener {
            name: "l".into(),
            side: Side::A,
            bind: "127.0.0.1:0".parse().expect("addr"),
            external_port: 8445,
            certs: vec![
                sni_cert(&ca, &["a.example.com", "b.example.com"]),
                sni_cert(&ca, &["c.example.com"]),
            ],
            routes,
            hsts: false,
        }
    }

    #[test]
    fn routes_by_host_and_the_listener_port() {
        let l = listener();
        let host = |r: Result<&Route, Deny>| r.map(|r| r.node.external_host.clone());
        assert_eq!(
            host(resolve(&l, Some("a.example.com:8445"), None, false)),
            Ok("a.example.com".into())
        );
        assert_eq!(
            host(resolve(&l, Some("A.Example.Com"), None, false)),
            Ok("a.example.com".into())
        );
        assert_eq!(
            host(resolve(&l, Some("a.example.com:443"), None, false)),
            Err(Deny::UnknownHost)
        );
        assert_eq!(
            host(resolve(&l, Some("b.example.com:8445"), None, false)),
            Err(Deny::UnknownHost)
        );
        assert_eq!(
            host(resolve(&l, None, None, false)),
            Err(Deny::BadRequest("missing_host"))
        );
        assert_eq!(
            host(resolve(&l, Some("a.example.com:x"), None, false)),
            Err(Deny::BadRequest("bad_host"))
        );
    }

    #[test]
    fn http2_needs_the_sni_certificate_to_cover_the_host() {
        let l = listener();
        let ok = |sni: &str, host: &str, h2: bool| resolve(&l, Some(host), Some(sni), h2).is_ok();
        assert!(ok("a.example.com", "a.example.com:8445", true));
        assert!(
            !ok("c.example.com", "a.example.com:8445", true),
            "coalescing across certificates"
        );
        assert!(
            ok("b.example.com", "a.example.com:8445", true),
            "one certificate covers both"
        );
        assert!(
            ok("c.example.com", "a.example.com:8445", false),
            "HTTP/1.1 routes by Host"
        );
        assert!(ok("unknown.example.com", "a.example.com:8445", false));
    }

    #[test]
    fn authorities_split() {
        assert_eq!(
            split_authority("A.example.com:8445"),
            Some(("a.example.com".into(), Some(8445)))
        );
        assert_eq!(
            split_authority("a.example.com."),
            Some(("a.example.com".into(), None))
        );
        assert_eq!(
            split_authority("[::1]:443"),
            Some(("::1".into(), Some(443)))
        );
        assert_eq!(split_authority("[::1]"), Some(("::1".into(), None)));
        assert_eq!(split_authority("a:99999"), None);
        assert_eq!(split_authority("user@a"), None);
        assert_eq!(split_authority(":443"), None);
    }
}
