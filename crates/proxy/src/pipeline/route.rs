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
