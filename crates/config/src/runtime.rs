//! The validated, immutable deployment that the data plane reads.
//!
//! Built once by `validate`; a reload builds a new one beside it. The data
//! plane never sees the file format.

use crate::kinds::Kind;
use ipnet::IpNet;
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Which half of the HA pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "a" | "A" => Some(Side::A),
            "b" | "B" => Some(Side::B),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// A whole deployment: both sides, so the proxy map covers both.
#[derive(Debug)]
pub struct Deployment {
    pub source: PathBuf,
    pub listeners: Vec<Arc<Listener>>,
    pub components: Vec<Arc<Component>>,
    pub client_ip: ClientIpPolicy,
    pub internal: Vec<Internal>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub filter: GlobalFilter,
    pub log: LogSettings,
    pub security: crate::security::Security,
    pub cache: CacheSettings,
}

impl Deployment {
    /// The listeners one instance serves.
    pub fn listeners_of(&self, side: Side) -> impl Iterator<Item = &Arc<Listener>> {
        self.listeners.iter().filter(move |l| l.side == side)
    }
    pub fn internal_of(&self, side: Side) -> Option<&Internal> {
        self.internal.iter().find(|i| i.side == side)
    }
    /// Every node of every component, both sides.
    pub fn nodes(&self) -> impl Iterator<Item = (&Arc<Component>, &Arc<Node>)> {
        self.components
            .iter()
            .flat_map(|c| c.nodes.iter().map(move |n| (c, n)))
    }
}

/// A certificate with the SNI names it serves.
#[derive(Debug)]
pub struct SniCert {
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
}

/// One external listener.
#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub side: Side,
    pub bind: SocketAddr,
    pub external_port: u16,
    pub certs: Vec<SniCert>,
    /// Lower-case external host -> route.
    pub routes: HashMap<String, Route>,
    pub hsts: bool,
}

impl Listener {
    /// Does the certificate chosen for `sni` also cover `host`? (HTTP/2 421 rule.)
    pub fn sni_covers(&self, sni: &str, host: &str) -> bool {
        let Some(cert) = self.cert_for(sni) else {
            return false;
        };
        cert.names.iter().any(|n| name_matches(n, host))
    }
    /// The certificate for an SNI name (exact, then wildcard).
    pub fn cert_for(&self, sni: &str) -> Option<&SniCert> {
        let sni = sni.to_ascii_lowercase();
        self.certs
            .iter()
            .find(|c| c.names.contains(&sni))
            .or_else(|| {
                self.certs
                    .iter()
                    .find(|c| c.names.iter().any(|n| name_matches(n, &sni)))
            })
    }
}

/// `*.example.com` matches one label; otherwise names compare case-insensitively.
pub fn name_matches(pattern: &str, host: &str) -> bool {
    if let Some(suffix) = pattern.strip_prefix("*.") {
        match host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest.eq_ignore_ascii_case(suffix),
            None => false,
        }
    } else {
        pattern.eq_ignore_ascii_case(host)
    }
}

/// Where a request for one external host goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub component: Arc<Component>,
    pub node: Arc<Node>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A component cluster (Finesse, IdS, ...).
#[derive(Debug)]
pub struct Component {
    pub name: String,
    pub kind: Kind,
    pub scheme: Scheme,
    /// Client TLS settings towards the nodes (for `https`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub response_timeout: Duration,
    /// HTTP/2 is offered to `https` nodes (ALPN, `http2 = true`); upgrades always use HTTP/1.1.
    pub http2: bool,
    pub rules: PathRules,
    pub security: crate::security::ComponentSecurity,
    pub nodes: Vec<Arc<Node>>,
}

/// Supported URL set, admin denies and methods of one component.
#[derive(Debug, Clone)]
pub struct PathRules {
    /// Supported prefixes; `/x/` matches below `/x/`, `/x` matches `/x` and below `/x/`.
    pub allow: Vec<String>,
    /// Admin prefixes (403), compared case-insensitively, plain string prefix.
    pub deny: Vec<String>,
    /// Allowed method names, upper case (text, so this crate needs no HTTP types).
    pub methods: Vec<String>,
    pub case_insensitive: bool,
}

/// One upstream node.
#[derive(Debug)]
pub struct Node {
    pub internal_host: String,
    pub internal_port: u16,
    /// Where to connect; `None` = resolve `internal_host`.
    pub connect: Option<String>,
    pub external_host: String,
    pub external_port: u16,
    pub side: Side,
}

impl Node {
    /// `host:port` to dial.
    pub fn dial_target(&self) -> String {
        match &self.connect {
            Some(c) => c.clone(),
            None => format!("{}:{}", self.internal_host, self.internal_port),
        }
    }
    /// `external-host:port`, the `Host` sent upstream.
    pub fn external_authority(&self) -> String {
        format!("{}:{}", self.external_host, self.external_port)
    }
}

/// Which peers' client-IP header is believed.
#[derive(Debug, Clone)]
pub struct ClientIpPolicy {
    pub trusted: Vec<IpNet>,
    /// Lower-case header name.
    pub header: String,
}

impl ClientIpPolicy {
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The internal listener (proxy map) and admin socket of one side.
#[derive(Debug, Clone)]
pub struct Internal {
    pub side: Side,
    pub bind: SocketAddr,
    pub admin_socket: Option<PathBuf>,
}

/// Sizes and counts (SPEC 6 defaults).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body: u64,
    pub max_head: usize,
    pub max_header_line: usize,
    pub max_headers: usize,
    pub keepalive_requests: u32,
    pub h2_max_streams: u32,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 15 * 1024 * 1024,
            max_head: 4 * 1024 + 2 * 8 * 1024,
            max_header_line: 8 * 1024,
            max_headers: 100,
            keepalive_requests: 500,
            h2_max_streams: 150,
            max_connections: 20_000,
        }
    }
}

/// Timeouts (SPEC 6 defaults).
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub handshake: Duration,
    pub request_head: Duration,
    /// Between request body chunks from the client, and between upstream response chunks.
    pub body_idle: Duration,
    /// A client that does not read what we send for this long is dropped.
    pub send_idle: Duration,
    pub keepalive: Duration,
    pub upstream_connect: Duration,
    pub upstream_response: Duration,
    pub tunnel_idle: Duration,
    pub drain: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(10),
            request_head: Duration::from_secs(10),
            body_idle: Duration::from_secs(10),
            send_idle: Duration::from_secs(10),
            keepalive: Duration::from_secs(20),
            upstream_connect: Duration::from_secs(5),
            upstream_response: Duration::from_secs(60),
            tunnel_idle: Duration::from_secs(120),
            drain: Duration::from_secs(30),
        }
    }
}

/// Filters that apply to every route.
#[derive(Debug, Clone)]
pub struct GlobalFilter {
    /// 421 or 404.
    pub unsupported_status: u16,
    pub user_agent: Option<regex::Regex>,
    /// Lower-case host names allowed in `Referer`.
    pub referer_hosts: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub enum LogTarget {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub access: LogTarget,
}

/// The in-memory response cache (SPEC 8).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub enabled: bool,
    /// Bodies and headers held in all, in bytes.
    pub max_bytes: u64,
    /// Larger responses are streamed and never held.
    pub max_object: u64,
    /// Freshness of an unauthenticated-list response that states none
    /// (no `Cache-Control: max-age`, no `Expires`); revalidated after.
    pub static_ttl: Duration,
    /// CORS preflight answers are kept per upstream for `preflight_ttl`.
    pub preflight: bool,
    pub preflight_ttl: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: true,
            max_bytes: 64 * 1024 * 1024,
            max_object: 2 * 1024 * 1024,
            static_ttl: Duration::from_secs(300),
            preflight: true,
            preflight_ttl: Duration::from_secs(300),
        }
    }
}
