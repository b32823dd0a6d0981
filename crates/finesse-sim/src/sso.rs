//! SSO for the simulator: it plays IdS well enough for deskgate's tests.
//! `/desktop/sso/token` issues RS256 access tokens for a user and password
//! (the real flow goes through IdS and an IdP; the token is what matters
//! here), `/ids/v1/keys` publishes the signing keys as JWKS and
//! `/ids/v1/keys.pem` as PEM, and the REST API accepts the tokens as
//! `Authorization: Bearer`. Keys rotate on demand; the previous key stays
//! published until the next rotation, as IdS does during a rollover.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Access tokens last an hour (IdS's default).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_pem: String,
}

pub struct Issuer {
    /// Newest first; at most two (current and previous).
    keys: Mutex<Vec<SigningKey>>,
    pub issuer: String,
    pub audience: String,
    generation: Mutex<u32>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_key(generation: u32) -> Result<SigningKey, String> {
    let pair = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .map_err(|e| format!("RSA key generation: {e}"))?;
    let encoding = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes())
        .map_err(|e| format!("signing key: {e}"))?;
    let public_pem = pair.public_key_pem();
    let decoding =
        DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(|e| format!("public key: {e}"))?;
    Ok(SigningKey {
        kid: format!("sim-key-{generation}"),
        encoding,
        decoding,
        public_pem,
    })
}

impl Issuer {
    pub fn new(issuer: &str, audience: &str) -> Result<Issuer, String> {
        Ok(Issuer {
            keys: Mutex::new(vec![new_key(1)?]),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            generation: Mutex::new(1),
        })
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, Vec<SigningKey>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new signing key; the previous one stays published, older ones go.
    pub fn rotate(&self) -> Result<String, String> {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        let key = new_key(*g)?;
        let kid = key.kid.clone();
        let mut keys = self.keys();
        keys.insert(0, key);
        keys.truncate(2);
        Ok(kid)
    }

    /// The kid of the key new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.keys()
            .first()
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// A token for `user` valid for `lifetime`.
    pub fn issue(&self, user: &str, lifetime: Duration) -> Result<String, String> {
        let t = now();
        self.sign(serde_json::json!({
            "sub": user,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": t,
            "nbf": t,
            "exp": t + lifetime.as_secs(),
        }))
    }

    /// Signs any claims with the current key (tests craft bad tokens with it).
    pub fn sign(&self, claims: serde_json::Value) -> Result<String, String> {
        let keys = self.keys();
        let key = keys.first().ok_or("no key")?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|e| e.to_string())
    }

    /// The user a token names, if one of our published keys signed it and it is current.
    pub fn verify(&self, token: &str) -> Option<String> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let mut v = Validation::new(Algorithm::RS256);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        let keys = self.keys();
        keys.iter()
            .filter(|k| header.kid.as_deref().is_none_or(|kid| kid == k.kid))
            .find_map(|k| jsonwebtoken::decode::<serde_json::Value>(token, &k.decoding, &v).ok())
            .and_then(|d| d.claims.get("sub")?.as_str().map(str::to_string))
    }

    /// The published keys as a JWKS document.
    pub fn jwks(&self) -> String {
        let keys: Vec<Jwk> = self
            .keys()
            .iter()
            .filter_map(|k| {
                let mut jwk = Jwk::from_encoding_key(&k.encoding, Algorithm::RS256).ok()?;
                jwk.common.key_id = Some(k.kid.clone());
                Some(jwk)
            })
            .collect();
        serde_json::to_string(&JwkSet { keys }).unwrap_or_else(|_| "{\"keys\":[]}".into())
    }

    /// The published keys as PEM blocks, newest first.
    pub fn pem(&self) -> String {
        self.keys().iter().map(|k| k.public_pem.clone()).collect()
    }
}

/// Form or query fields (`a=b&c=d`, percent-decoded, `+` as space).
fn fields(text: &str) -> std::collections::HashMap<String, String> {
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: http::StatusCode, kind: &'static str, body: String) -> crate::server::Reply {
    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// `/desktop/sso/token` (GET or POST with `username` and `password`: a
/// token pair; POST with `refresh-token`: a fresh access token) and the
/// published keys.
pub fn endpoint(
    path: &str,
    method: &http::Method,
    query: &str,
    body: &[u8],
    cluster: &crate::Cluster,
) -> crate::server::Reply {
    use http::StatusCode;
    let Some(issuer) = cluster.sso() else {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "SSO unavailable\n".into(),
        );
    };
    match path {
        "/ids/v1/keys" => return reply(StatusCode::OK, "application/json", issuer.jwks()),
        "/ids/v1/keys.pem" => return reply(StatusCode::OK, "application/x-pem-file", issuer.pem()),
        _ => {}
    }
    let f = if method == http::Method::POST {
        fields(&String::from_utf8_lossy(body))
    } else {
        fields(query)
    };
    let user = if let Some(refresh) = f.get("refresh-token") {
        // refresh tokens are access tokens with a longer life, here
        issuer.verify(refresh)
    } else {
        match (f.get("username"), f.get("password")) {
            (Some(u), Some(p)) if cluster.check_password(u, p) => Some(u.clone()),
            (Some(_), Some(_)) => {
                cluster.count("failed-sign-in");
                None
            }
            _ => None,
        }
    };
    let Some(user) = user else {
        return reply(
            StatusCode::UNAUTHORIZED,
            "application/json",
            "{\"error\":\"invalid_grant\"}".into(),
        );
    };
    let access = issuer.issue(&user, TOKEN_LIFETIME);
    let refresh = issuer.issue(&user, TOKEN_LIFETIME * 8);
    match (access, refresh) {
        (Ok(a), Ok(r)) => reply(
            StatusCode::OK,
            "application/json",
            serde_json::json!({
                "access_token": a,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME.as_secs(),
                "refresh_token": r,
            })
            .to_string(),
        ),
        _ => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "signing failed\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_until_their_key_is_rotated_out() {
        let iss = Issuer::new("https://ids.test/ids/v1", "finesse").expect("issuer");
        let old = iss.issue("1001", TOKEN_LIFETIME).expect("token");
        assert_eq!(iss.verify(&old).as_deref(), Some("1001"));
        assert!(iss.jwks().contains("sim-key-1"));
        iss.rotate().expect("rotate");
        let new = iss.issue("1002", TOKEN_LIFETIME).expect("token");
        assert_eq!(iss.verify(&new).as_deref(), Some("1002"));
        assert_eq!(iss.verify(&old).as_deref(), Some("1001"));
        iss.rotate().expect("rotate");
        assert_eq!(iss.verify(&old), None);
        assert!(!iss.jwks().contains("sim-key-1") && iss.jwks().contains("sim-key-3"));
        assert_eq!(iss.pem().matches("BEGIN PUBLIC KEY").count(), 2);
        assert_eq!(iss.verify("garbage"), None);
    }
}
