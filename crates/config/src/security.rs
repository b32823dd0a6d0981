//! The validated edge-security settings (SPEC 3, 4 and 10): credential
//! gate, SSO tokens, WebSocket gate, brute force, rate and concurrency
//! limits, and where the security log goes. Defaults are the SPEC's.

use crate::pattern::PatternSet;
use deskgate_policy::bruteforce::BruteForceConfig;
use deskgate_policy::credentials::CacheConfig;
use deskgate_policy::rate::Rate;
use ipnet::IpNet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Security {
    pub auth: AuthSettings,
    pub sso: Option<SsoSettings>,
    pub websocket: WebSocketGate,
    pub brute_force: BruteForceConfig,
    pub rate: RateSettings,
    /// Never rate-limited, capped or blocked (both proxies, balancers, known forward proxies).
    pub exempt: Vec<IpNet>,
    pub log: SecurityLogTarget,
}

impl Security {
    /// The Finesse component that checks `c`'s credentials.
    pub fn check_target<'a>(&'a self, c: &'a ComponentSecurity) -> &'a str {
        c.check_against
            .as_deref()
            .unwrap_or(&self.auth.check_against)
    }

    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = crate::canonical_ip(ip);
        self.exempt.iter().any(|n| n.contains(&ip))
    }
}

/// How a component's requests are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Basic (or SSO bearer) credentials checked against the cluster's Finesse.
    Finesse,
    /// The component is the sign-in flow itself (IdS, the IdP): no gate.
    None,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Finesse => "finesse",
            AuthMode::None => "none",
        }
    }
}

/// A request deskgate makes to Finesse: method and path template with `{user}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamCheck {
    pub method: String,
    pub path: String,
}

impl UpstreamCheck {
    /// The path for one user, the name percent-encoded as one segment.
    pub fn path_for(&self, user: &str) -> String {
        let mut enc = String::with_capacity(user.len());
        for b in user.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        self.path.replace("{user}", &enc)
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The Finesse component that checks credentials for components that
    /// name none (empty when there is no single one).
    pub check_against: String,
    pub validate: UpstreamCheck,
    pub cache: CacheConfig,
    /// Validations in flight towards Finesse at most.
    pub max_validations: usize,
    pub validation_timeout: Duration,
    /// `WWW-Authenticate: Basic realm="..."`.
    pub realm: String,
    pub users_list: Option<UsersList>,
}

/// The optional list of known users (`GET /finesse/api/Users`).
#[derive(Debug, Clone)]
pub struct UsersList {
    pub path: String,
    /// Environment variable holding `user:password` of an administrator.
    pub credentials_env: String,
    pub refresh: Duration,
}

/// Where SSO signing keys come from.
#[derive(Debug, Clone)]
pub enum SsoKeys {
    /// A shared HMAC secret (IdS 12.6(1)), read from the environment.
    Hmac { secret: Vec<u8> },
    /// Public keys (JWKS or PEM) fetched from a node of a component.
    Url {
        component: String,
        node: usize,
        path: String,
        poll: Duration,
    },
    /// Public keys (JWKS or PEM) read from a file, re-read every poll.
    File { path: PathBuf, poll: Duration },
    /// No local check: Finesse is asked once per token.
    Upstream { check: UpstreamCheck },
}

#[derive(Debug, Clone)]
pub struct SsoSettings {
    pub keys: SsoKeys,
    /// The only accepted `alg` (e.g. `RS256`); `none` is never accepted.
    pub algorithm: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub skew: Duration,
    /// The claim naming the user (default `sub`).
    pub user_claim: String,
    /// Longest a validated token is cached (capped by its `exp`).
    pub cache_max: Duration,
}

#[derive(Debug, Clone)]
pub struct WebSocketGate {
    /// Mode (a): the client IP authenticated within this window. `None`: off.
    pub ip_window: Option<Duration>,
    /// Mode (b): `auth.basic.` / `auth.bearer.` subprotocols.
    pub subprotocol: bool,
    /// Mode (c): the signed session cookie, and how long one lasts. `None`: off.
    pub cookie_ttl: Option<Duration>,
    pub per_user: u32,
    pub per_ip: u32,
}

/// The session cookie's name; `__Host-` makes browsers insist on Secure,
/// Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-deskgate-session";

impl Default for WebSocketGate {
    fn default() -> Self {
        WebSocketGate {
            ip_window: Some(Duration::from_secs(600)),
            subprotocol: true,
            cookie_ttl: Some(Duration::from_secs(600)),
            per_user: 4,
            per_ip: 40,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RateSettings {
    pub nat_factor: u32,
    /// Log what would be refused, refuse nothing.
    pub dry_run: bool,
    /// The class of paths on the unauthenticated list (default 200 r/s, burst 400).
    pub static_class: Rate,
    /// Connections per client IP at accept, before the NAT factor.
    pub connections_per_ip: u32,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            nat_factor: 10,
            dry_run: false,
            static_class: Rate {
                per_second: 200,
                burst: 400,
            },
            connections_per_ip: 12,
        }
    }
}

/// A rate class inside a component, chosen by path (first match wins).
#[derive(Debug, Clone)]
pub struct RateClass {
    pub name: String,
    pub paths: PatternSet,
    pub rate: Rate,
}

/// A component's security policy.
#[derive(Debug, Clone)]
pub struct ComponentSecurity {
    pub auth: AuthMode,
    /// The Finesse component whose nodes check this component's
    /// credentials; a Finesse component checks its own. `None`: the
    /// `[auth] check_against` default.
    pub check_against: Option<String>,
    /// Paths served without credentials.
    pub unauthenticated: PatternSet,
    /// The component's own rate.
    pub rate: Rate,
    pub classes: Vec<RateClass>,
    /// Requests in flight per known user (per IP: times the NAT factor).
    pub in_flight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityLogTarget {
    Stdout,
    File(PathBuf),
    /// A syslog datagram socket (`/dev/log` by default).
    Syslog(PathBuf),
}
