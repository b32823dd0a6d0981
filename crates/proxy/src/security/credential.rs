//! The credential a request carries, read once and used by steps 5, 7, 8
//! and 9: an Authorization header, or (on a WebSocket upgrade) an
//! `auth.basic.` / `auth.bearer.` subprotocol.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use deskgate_policy::credentials::{CredKey, Hasher};
use deskgate_policy::proof;
use http::{header, HeaderMap};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Basic,
    Bearer,
}

/// A credential, with the password inside `authorization` only: it is never
/// logged, cached or kept past the request.
pub struct Credential {
    /// The Authorization value, as Finesse is to see it.
    pub authorization: String,
    pub scheme: Scheme,
    /// The user a Basic credential claims (not yet verified).
    pub claimed_user: Option<String>,
    pub key: CredKey,
    /// It came in `Sec-WebSocket-Protocol` (to be removed before forwarding).
    pub from_subprotocol: bool,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("scheme", &self.scheme)
            .field("claimed_user", &self.claimed_user)
            .finish_non_exhaustive()
    }
}

/// What the request offered.
#[derive(Debug)]
pub enum Presented {
    None,
    /// Unreadable: a scheme we do not know, bad base64, no `user:`.
    Malformed,
    Some(Credential),
}

/// Longest user name we read; Finesse ids are short.
const MAX_USER: usize = 256;

/// Reads the request's credential. `subprotocol`: mode (b) is on and this is
/// a WebSocket upgrade. `keyed`: the hasher and the Finesse cluster that
/// checks it (they key the cache); `None` where no cache lookup follows
/// (unauthenticated-list requests: only the claimed user is read, and the
/// key stays zero).
pub fn presented(h: &HeaderMap, subprotocol: bool, keyed: Option<(&Hasher, &str)>) -> Presented {
    let mut values = h.get_all(header::AUTHORIZATION).iter();
    let (value, from_subprotocol) = match (values.next(), values.next()) {
        (Some(_), Some(_)) => return Presented::Malformed,
        (Some(v), None) => match v.to_str() {
            Ok(s) => (std::borrow::Cow::Borrowed(s.trim()), false),
            Err(_) => return Presented::Malformed,
        },
        (None, _) if subprotocol => {
            let offer = proof::parse_offer(
                h.get_all(header::SEC_WEBSOCKET_PROTOCOL)
                    .iter()
                    .filter_map(|v| v.to_str().ok()),
            );
            match (offer.authorization, offer.malformed) {
                (_, true) => return Presented::Malformed,
                (Some(a), false) => (std::borrow::Cow::Owned(a), true),
                (None, false) => return Presented::None,
            }
        }
        (None, _) => return Presented::None,
    };
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Presented::Malformed;
    };
    let rest = rest.trim();
    let (scheme, claimed_user) = if scheme.eq_ignore_ascii_case("basic") {
        match basic_user(rest) {
            Some(u) => (Scheme::Basic, Some(u)),
            None => return Presented::Malformed,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        (Scheme::Bearer, None)
    } else {
        return Presented::Malformed;
    };
    // the same credential keys the same entry however the scheme was spelt
    let canonical = match scheme {
        Scheme::Basic => "Basic",
        Scheme::Bearer => "Bearer",
    };
    let authorization =
        if value.len() == canonical.len() + 1 + rest.len() && value.starts_with(canonical) {
            value.into_owned()
        } else {
            format!("{canonical} {rest}")
        };
    Presented::Some(Credential {
        key: keyed.map_or([0; 16], |(hasher, checker)| {
            hasher.credential_for(checker.as_bytes(), authorization.as_bytes())
        }),
        authorization,
        scheme,
        claimed_user,
        from_subprotocol,
    })
}

/// The user of `base64(user:password)`, if it is a readable name.
fn basic_user(b64: &str) -> Option<String> {
    // decoded on the stack: this runs for every authenticated request
    let mut buf = [0u8; 768];
    let heap;
    let raw: &[u8] = match STANDARD.decode_slice(b64, &mut buf) {
        Ok(n) => &buf[..n],
        Err(_) => {
            heap = STANDARD.decode(b64).ok()?;
            &heap
        }
    };
    let colon = raw.iter().position(|b| *b == b':')?;
    let user = std::str::from_utf8(&raw[..colon]).ok()?;
    // `.` and `..` would turn the check URL's `{user}` into a dot segment
    let ok = !user.is_empty()
        && user != "."
        && user != ".."
        && user.len() <= MAX_USER
        && !user.chars().any(char::is_control);
    ok.then(|| user.to_string())
}

/// Removes `auth.*` from the offered subprotocols before forwarding.
pub fn strip_auth_subprotocol(h: &mut HeaderMap) {
    let offer = proof::parse_offer(
        h.get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    h.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if !offer.protocols.is_empty() {
        if let Ok(v) = offer.protocols.join(", ").parse() {
            h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn basic(s: &str) -> String {
        format!("Basic {}", STANDARD.encode(s))
    }

    #[test]
    fn basic_and_bearer_are_read_and_keyed() {
        let hasher = Hasher::random().expect("rng");
        let v = basic("1001:secret");
        let Presented::Some(c) = presented(
            &headers(&[("authorization", &v)]),
            false,
            Some((&hasher, "f")),
        ) else {
            panic!("not read");
        };
        assert_eq!(c.scheme, Scheme::Basic);
        assert_eq!(c.claimed_user.as_deref(), Some("1001"));
        assert!(!format!("{c:?}").contains("secret"));
        // `basic` spelt another way is the same credential
        let lower = v.replacen("Basic", "basic", 1);
        let Presented::Some(c2) = presented(
            &headers(&[("authorization", &lower)]),
            false,
            Some((&hasher, "f")),
        ) else {
            panic!("not read");
        };
        assert_eq!(c.key, c2.key);
        assert!(matches!(
            presented(
                &headers(&[("authorization", "Bearer abc.def.ghi")]),
                false,
                Some((&hasher, "f"))
            ),
            Presented::Some(Credential {
                scheme: Scheme::Bearer,
                ..
            })
        ));
    }

    #[test]
    fn unreadable_credentials_are_malformed() {
        let hasher = Hasher::random().expect("rng");
        let nocolon = format!("Basic {}", STANDARD.encode("nocolon"));
        let nouser = basic(":pw");
        for v in [
            "Digest x",
            "Basic !!!",
            "Basic",
            "Bearer ",
            &nocolon,
            &nouser,
        ] {
            assert!(
                matches!(
                    presented(
                        &headers(&[("authorization", v)]),
                        false,
                        Some((&hasher, "f"))
                    ),
                    Presented::Malformed
                ),
                "{v}"
            );
        }
        let two = headers(&[
            ("authorization", &basic("a:b")),
            ("authorization", &basic("c:d")),
        ]);
        assert!(matches!(
            presented(&two, false, Some((&hasher, "f"))),
            Presented::Malformed
        ));
        assert!(matches!(
            presented(&HeaderMap::new(), true, Some((&hasher, "f"))),
            Presented::None
        ));
    }

    #[test]
    fn a_subprotocol_credential_is_read_only_when_allowed_and_then_stripped() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let hasher = Hasher::random().expect("rng");
        let offer = format!("xmpp, auth.basic.{}", URL_SAFE_NO_PAD.encode("1001:pw"));
        let mut h = headers(&[("sec-websocket-protocol", &offer)]);
        assert!(matches!(
            presented(&h, false, Some((&hasher, "f"))),
            Presented::None
        ));
        let Presented::Some(c) = presented(&h, true, Some((&hasher, "f"))) else {
            panic!("not read");
        };
        assert!(c.from_subprotocol);
        assert_eq!(c.authorization, basic("1001:pw"));
        strip_auth_subprotocol(&mut h);
        assert_eq!(h.get("sec-websocket-protocol").expect("kept"), "xmpp");
    }
}
