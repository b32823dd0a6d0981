//! Proofs a WebSocket upgrade (or a BOSH / socket.io poll) can carry, since
//! browsers cannot put an Authorization header on them (SPEC 3):
//!
//! - an extra offered subprotocol `auth.basic.<base64url(user:password)>`
//!   or `auth.bearer.<token>` (header tokens cannot hold `=`, `/` or `:`),
//!   which is turned back into an Authorization value and removed before
//!   the upgrade is forwarded;
//! - a signed, short-lived session cookie that deskgate sets on
//!   authenticated answers, which survives NAT (many agents, one IP).

use aws_lc_rs::hmac;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

/// The subprotocol prefix that carries a credential.
pub const AUTH_PREFIX: &str = "auth.";

/// What the offered subprotocols said.
#[derive(Debug, PartialEq, Eq)]
pub struct Offer {
    /// The protocols to forward, in the client's order, without `auth.*`.
    pub protocols: Vec<String>,
    /// The credential as an Authorization value (`Basic ...` / `Bearer ...`).
    pub authorization: Option<String>,
    /// An `auth.*` protocol was offered but could not be read.
    pub malformed: bool,
}

/// Splits `Sec-WebSocket-Protocol` values into the protocols and the credential.
pub fn parse_offer<'a>(values: impl IntoIterator<Item = &'a str>) -> Offer {
    let mut offer = Offer {
        protocols: Vec::new(),
        authorization: None,
        malformed: false,
    };
    for token in values.into_iter().flat_map(|v| v.split(',')) {
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        let Some(rest) = token.strip_prefix(AUTH_PREFIX) else {
            offer.protocols.push(token.to_string());
            continue;
        };
        let auth = if let Some(b) = rest.strip_prefix("basic.") {
            URL_SAFE_NO_PAD
                .decode(b)
                .ok()
                .filter(|raw| raw.contains(&b':'))
                .map(|raw| format!("Basic {}", STANDARD.encode(raw)))
        } else {
            rest.strip_prefix("bearer.")
                .filter(|t| !t.is_empty())
                .map(|t| format!("Bearer {t}"))
        };
        match auth {
            Some(a) if offer.authorization.is_none() => offer.authorization = Some(a),
            _ => offer.malformed = true,
        }
    }
    offer
}

/// Signs and checks session cookies: `v1.<user>.<expiry>.<tag>`, where the
/// user is base64url, the expiry is Unix seconds, and the tag an HMAC over
/// the rest. Times are passed in (wall-clock seconds), so tests need no clock.
pub struct CookieSigner {
    key: hmac::Key,
}

impl CookieSigner {
    pub fn new(secret: &[u8]) -> CookieSigner {
        CookieSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    pub fn random() -> Result<CookieSigner, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "the system random number generator failed".to_string())?;
        Ok(CookieSigner { key })
    }

    pub fn issue(&self, user: &str, expires_unix: u64) -> String {
        let body = format!("v1.{}.{expires_unix}", URL_SAFE_NO_PAD.encode(user));
        let tag = hmac::sign(&self.key, body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(&tag.as_ref()[..20]))
    }

    /// The user a cookie names, if it is ours, intact and not expired.
    pub fn check(&self, value: &str, now_unix: u64) -> Option<String> {
        let (body, tag) = value.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let full = hmac::sign(&self.key, body.as_bytes());
        // constant-time comparison of the truncated tag
        if tag.len() != 20 || !constant_time_eq(&tag, &full.as_ref()[..20]) {
            return None;
        }
        let mut parts = body.split('.');
        let (Some("v1"), Some(user), Some(exp), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let exp: u64 = exp.parse().ok()?;
        if now_unix >= exp {
            return None;
        }
        String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()
    }

    /// Seconds left on a cookie we issued (to decide when to renew it).
    pub fn remaining(&self, value: &str, now_unix: u64) -> Option<u64> {
        self.check(value, now_unix)?;
        let exp: u64 = value.rsplit('.').nth(1)?.parse().ok()?;
        Some(exp.saturating_sub(now_unix))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basic_credential_is_taken_out_of_the_offer() {
        let b64 = URL_SAFE_NO_PAD.encode("1001:pa/ss=word");
        let o = parse_offer([format!("xmpp, auth.basic.{b64}").as_str()]);
        assert_eq!(o.protocols, vec!["xmpp"]);
        assert_eq!(
            o.authorization.as_deref(),
            Some(format!("Basic {}", STANDARD.encode("1001:pa/ss=word")).as_str())
        );
        assert!(!o.malformed);
    }

    #[test]
    fn bearer_tokens_and_bad_offers() {
        let o = parse_offer(["xmpp", "auth.bearer.eyJ.x.y"]);
        assert_eq!(o.protocols, vec!["xmpp"]);
        assert_eq!(o.authorization.as_deref(), Some("Bearer eyJ.x.y"));
        for bad in [
            "xmpp, auth.basic.!!!",
            "xmpp, auth.basic.",
            "xmpp, auth.bearer.",
            "xmpp, auth.other.x",
        ] {
            let o = parse_offer([bad]);
            assert!(o.malformed, "{bad}");
            assert_eq!(o.authorization, None, "{bad}");
            assert_eq!(o.protocols, vec!["xmpp"], "{bad}");
        }
        // no colon: not a user:password pair
        let o = parse_offer([format!("auth.basic.{}", URL_SAFE_NO_PAD.encode("x")).as_str()]);
        assert!(o.malformed);
        // two credentials: the second is refused
        let o = parse_offer(["auth.bearer.a, auth.bearer.b"]);
        assert!(o.malformed);
        assert_eq!(o.authorization.as_deref(), Some("Bearer a"));
    }

    #[test]
    fn cookies_are_signed_and_expire() {
        let s = CookieSigner::new(b"secret");
        let c = s.issue("1001", 1000);
        assert_eq!(s.check(&c, 999).as_deref(), Some("1001"));
        assert_eq!(s.remaining(&c, 400), Some(600));
        assert_eq!(s.check(&c, 1000), None);
        // another key, or any change, is refused
        assert_eq!(CookieSigner::new(b"other").check(&c, 1), None);
        let forged = c.replace(
            &URL_SAFE_NO_PAD.encode("1001"),
            &URL_SAFE_NO_PAD.encode("2001"),
        );
        assert_eq!(s.check(&forged, 1), None);
        let longer = c.replace(".1000.", ".9999.");
        assert_eq!(s.check(&longer, 1), None);
        for junk in ["", ".", "v1..", "a.b.c.d.e", "v1.x.1.!!"] {
            assert_eq!(s.check(junk, 1), None, "{junk}");
        }
    }
}
