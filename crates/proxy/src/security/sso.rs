//! SSO bearer tokens (SPEC 3): JWTs verified with an HMAC secret or with
//! public keys (JWKS or PEM) polled from IdS or read from a file, with
//! rotation. The algorithm is pinned by config (`alg: none` and HS/RS
//! confusion are refused before any key is tried); `exp`, `nbf` and, where
//! configured, `iss` and `aud` are checked with a clock skew allowance.
//! Valid tokens are cached until their expiry, at most `cache_max`.

use deskgate_config::{SsoKeys, SsoSettings};
use deskgate_policy::credentials::CredKey;
use deskgate_policy::Clock;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The keys tokens may be signed with.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, DecodingKey>,
    /// Keys without a `kid` (PEM files), tried in turn.
    anonymous: Vec<DecodingKey>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user: Arc<str>,
    /// Unix seconds of `exp`.
    pub exp: u64,
}

/// Why a token was refused (for the security log).
pub type Refusal = &'static str;

pub struct Verifier {
    alg: Algorithm,
    validation: Validation,
    user_claim: String,
    cache_max: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// Token key -> (user, clock ticks when the entry ends).
    cache: quick_cache::sync::Cache<CredKey, (Arc<str>, u64)>,
    clock: Clock,
    pub source: SsoKeys,
}

impl Verifier {
    pub fn new(s: &SsoSettings, clock: &Clock) -> Result<Verifier, String> {
        let alg: Algorithm = s
            .algorithm
            .parse()
            .map_err(|_| format!("SSO algorithm {} is not supported", s.algorithm))?;
        let mut validation = Validation::new(alg);
        validation.leeway = s.skew.as_secs();
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(iss) = &s.issuer {
            validation.set_issuer(&[iss]);
        }
        match &s.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let keys = match &s.keys {
            SsoKeys::Hmac { secret } => KeySet {
                by_kid: HashMap::new(),
                anonymous: vec![DecodingKey::from_secret(secret)],
            },
            // an unreadable key file is a start-up error, not a silent 401 for everyone
            SsoKeys::File { path, .. } => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("SSO keys file {}: {e}", path.display()))?;
                parse_keys(&bytes, alg)
                    .map_err(|e| format!("SSO keys file {}: {e}", path.display()))?
            }
            SsoKeys::Url { .. } | SsoKeys::Upstream { .. } => KeySet::default(),
        };
        Ok(Verifier {
            alg,
            validation,
            user_claim: s.user_claim.clone(),
            cache_max: s.cache_max,
            keys: RwLock::new(Arc::new(keys)),
            cache: quick_cache::sync::Cache::new(100_000),
            clock: clock.clone(),
            source: s.keys.clone(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn set_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }

    pub fn key_count(&self) -> usize {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The cached answer for a token, if still valid.
    pub fn cached(&self, key: &CredKey) -> Option<Arc<str>> {
        let (user, until) = self.cache.get(key)?;
        if self.clock.ticks() < until {
            Some(user)
        } else {
            self.cache.remove(key);
            None
        }
    }

    /// Remembers a valid token until its expiry (capped).
    pub fn remember(&self, key: CredKey, user: Arc<str>, exp_unix: Option<u64>) {
        let now_unix = unix_now();
        let left = exp_unix
            .map(|e| Duration::from_secs(e.saturating_sub(now_unix)))
            .unwrap_or(self.cache_max)
            .min(self.cache_max);
        if left.is_zero() {
            return;
        }
        let until = self.clock.ticks() + left.as_nanos() as u64;
        self.cache.insert(key, (user, until));
    }

    /// Verifies a token's signature and claims with the current keys.
    pub fn verify(&self, token: &str) -> Result<Verified, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed_token")?;
        if header.alg != self.alg {
            return Err("algorithm_not_allowed");
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        if keys.is_empty() {
            return Err("no_keys_yet");
        }
        let candidates: Vec<&DecodingKey> =
            match header.kid.as_deref().and_then(|k| keys.by_kid.get(k)) {
                Some(k) => vec![k],
                None => keys.anonymous.iter().chain(keys.by_kid.values()).collect(),
            };
        let mut refusal = "bad_signature";
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(token, key, &self.validation) {
                Ok(data) => return self.claims(&data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    refusal = match e.kind() {
                        K::ExpiredSignature => return Err("expired"),
                        K::ImmatureSignature => return Err("not_yet_valid"),
                        K::InvalidIssuer => return Err("wrong_issuer"),
                        K::InvalidAudience => return Err("wrong_audience"),
                        K::MissingRequiredClaim(_) => return Err("missing_claim"),
                        K::InvalidSignature => "bad_signature",
                        K::InvalidAlgorithm | K::InvalidKeyFormat => "wrong_key_type",
                        _ => "malformed_token",
                    };
                }
            }
        }
        Err(refusal)
    }

    fn claims(&self, c: &serde_json::Value) -> Result<Verified, Refusal> {
        let user = c
            .get(&self.user_claim)
            .and_then(|v| v.as_str())
            .filter(|u| !u.is_empty() && u.len() <= 256)
            .ok_or("no_user_claim")?;
        let exp = c
            .get("exp")
            .and_then(|v| v.as_u64())
            .ok_or("missing_claim")?;
        Ok(Verified {
            user: user.into(),
            exp,
        })
    }

    /// The user and expiry a token claims, unverified: only to build the
    /// check URL and the cache lifetime in upstream mode, where Finesse's
    /// answer decides.
    pub fn unverified(&self, token: &str) -> Option<(String, Option<u64>)> {
        let payload = token.split('.').nth(1)?;
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let c: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        let user = c.get(&self.user_claim)?.as_str()?.to_string();
        (!user.is_empty() && user.len() <= 256).then_some(())?;
        Some((user, c.get("exp").and_then(|v| v.as_u64())))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses a JWKS document or PEM public keys (one or more blocks).
pub fn parse_keys(bytes: &[u8], alg: Algorithm) -> Result<KeySet, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut set = KeySet::default();
    if text.trim_start().starts_with('{') {
        let jwks: JwkSet =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        for jwk in &jwks.keys {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid.clone(), key);
                }
                None => set.anonymous.push(key),
            }
        }
    } else {
        for block in pem_blocks(&text) {
            let key = match alg.family() {
                jsonwebtoken::AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(block.as_bytes()),
                jsonwebtoken::AlgorithmFamily::Ec => DecodingKey::from_ec_pem(block.as_bytes()),
                jsonwebtoken::AlgorithmFamily::Ed => DecodingKey::from_ed_pem(block.as_bytes()),
                jsonwebtoken::AlgorithmFamily::Hmac => {
                    return Err("HMAC keys are not public keys".into())
                }
            };
            if let Ok(k) = key {
                set.anonymous.push(k);
            }
        }
    }
    if set.is_empty() {
        return Err(format!("no usable {alg:?} public key in it"));
    }
    Ok(set)
}

/// The `-----BEGIN ...-----` to `-----END ...-----` blocks of a PEM file.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("-----BEGIN ") {
            cur = Some(format!("{line}\n"));
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
            c.push('\n');
            if line.starts_with("-----END ") {
                out.extend(cur.take());
            }
        }
    }
    out
}
