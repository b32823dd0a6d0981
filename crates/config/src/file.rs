//! The config file as written: a serde model that rejects unknown keys.
//!
//! Nothing here is trusted yet; `validate` turns it into the runtime model.

use serde::Deserialize;

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub listener: Vec<ListenerFile>,
    #[serde(default)]
    pub component: Vec<ComponentFile>,
    /// Default upstream TLS for every component that has no `upstream_tls` of its own.
    #[serde(default)]
    pub upstream_tls: Option<UpstreamTlsFile>,
    #[serde(default)]
    pub client_ip: ClientIpFile,
    #[serde(default)]
    pub internal: Vec<InternalFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    #[serde(default)]
    pub filter: FilterFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub auth: AuthFile,
    pub sso: Option<SsoFile>,
    #[serde(default)]
    pub websocket: WebSocketFile,
    #[serde(default)]
    pub brute_force: BruteForceFile,
    #[serde(default)]
    pub rate: RateFile,
    #[serde(default)]
    pub cache: CacheFile,
}

/// `[cache]`: the in-memory response cache (SPEC 8).
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    pub enabled: Option<bool>,
    pub max_bytes: Option<String>,
    pub max_object: Option<String>,
    pub static_ttl: Option<String>,
    pub preflight: Option<bool>,
    pub preflight_ttl: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Option<String>,
    pub side: String,
    pub bind: String,
    /// The port clients see (may differ from the bind port behind a port-translating balancer).
    pub external_port: i64,
    #[serde(default)]
    pub cert: Vec<CertFile>,
    /// Add `Strict-Transport-Security` to answers.
    #[serde(default)]
    pub hsts: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    /// SNI names this certificate serves (the certificate must cover each).
    pub names: Vec<String>,
    /// PEM certificate chain file.
    pub cert: String,
    /// PEM private key file ...
    pub key_file: Option<String>,
    /// ... or the name of an environment variable holding the PEM key.
    pub key_env: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ComponentFile {
    pub name: String,
    pub kind: String,
    /// `https` (default) or `http` towards the nodes.
    pub scheme: Option<String>,
    pub upstream_tls: Option<UpstreamTlsFile>,
    /// Upstream response head timeout for this component (reports can be slow).
    pub response_timeout: Option<String>,
    /// Offer HTTP/2 to `https` nodes in the TLS handshake (default false:
    /// HTTP/1.1 keep-alive measured better in the agent benchmark).
    pub http2: Option<bool>,
    /// Paths compare case-insensitively (for upstreams that treat case so).
    pub case_insensitive: Option<bool>,
    /// Extra path prefixes added to the kind's supported URL set.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Extra admin path prefixes answered with 403.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Replaces the kind's allowed methods.
    pub methods: Option<Vec<String>>,
    /// `finesse` (credentials checked against Finesse) or `none` (the sign-in flow itself).
    pub auth: Option<String>,
    /// The Finesse component credentials are checked against (a Finesse component: itself).
    pub check_against: Option<String>,
    /// Extra path patterns served without credentials.
    #[serde(default)]
    pub unauthenticated: Vec<String>,
    /// Requests per second (and burst) for the component's own class.
    pub rate: Option<i64>,
    pub burst: Option<i64>,
    /// Requests in flight per known user.
    pub in_flight: Option<i64>,
    /// Rate classes chosen by path; replace the kind's when given.
    pub rate_class: Option<Vec<RateClassFile>>,
    #[serde(default)]
    pub node: Vec<NodeFile>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RateClassFile {
    pub name: String,
    pub paths: Vec<String>,
    pub rate: i64,
    pub burst: i64,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    /// `internal-name:port`: proxy map, upstream TLS name and SNI.
    pub internal: String,
    /// Optional `address:port` to connect to instead of resolving the internal name.
    pub connect: Option<String>,
    /// `external-name:port` that clients use.
    pub external: String,
    pub side: String,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// PEM trust bundle that upstream certificates must chain to.
    pub trust: Option<String>,
    /// Verify upstream certificates (default true).
    pub verify: Option<bool>,
    /// Client certificate for upstream mutual TLS ...
    pub client_cert: Option<String>,
    /// ... and its key, from a file ...
    pub client_key_file: Option<String>,
    /// ... or an environment variable.
    pub client_key_env: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientIpFile {
    /// Trusted intermediaries (IP or CIDR) whose client-IP header is believed.
    #[serde(default)]
    pub trusted: Vec<String>,
    /// The one header carrying the client IP (default `X-Real-IP`).
    pub header: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct InternalFile {
    pub side: String,
    /// Plain HTTP bind for `/proxymap.txt` (reference port 10000).
    pub bind: String,
    /// Unix socket for operator actions.
    pub admin_socket: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_body: Option<String>,
    pub max_head: Option<String>,
    pub max_header_line: Option<String>,
    pub max_headers: Option<i64>,
    pub keepalive_requests: Option<i64>,
    pub h2_max_streams: Option<i64>,
    pub max_connections: Option<i64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    pub handshake: Option<String>,
    pub request_head: Option<String>,
    pub body_idle: Option<String>,
    pub send_idle: Option<String>,
    pub keepalive: Option<String>,
    pub upstream_connect: Option<String>,
    pub upstream_response: Option<String>,
    pub tunnel_idle: Option<String>,
    pub drain: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FilterFile {
    /// Status for paths outside the supported URL set: 421 (default) or 404.
    pub unsupported_status: Option<i64>,
    /// Only User-Agents matching this regex pass (412 otherwise). Off when absent.
    pub user_agent: Option<String>,
    /// Referer hosts allowed (417 otherwise). Off when absent.
    pub referer_hosts: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// Access log file, or `-` for standard output (default).
    pub access: Option<String>,
    /// Security log file, `-` for standard output (default), or `syslog` / `syslog:<socket>`.
    pub security: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// The Finesse component that checks credentials for components without
    /// their own `check_against` (default: the only `finesse` component).
    pub check_against: Option<String>,
    /// `METHOD /path/{user}` (default `GET /finesse/api/User/{user}`).
    pub validate: Option<String>,
    pub cache_ttl: Option<String>,
    pub revalidate: Option<String>,
    pub negative_ttl: Option<String>,
    pub cache_entries: Option<i64>,
    pub max_validations: Option<i64>,
    pub validation_timeout: Option<String>,
    pub realm: Option<String>,
    pub users_list: Option<UsersListFile>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct UsersListFile {
    /// Environment variable holding `user:password` of an administrator.
    pub credentials_env: String,
    pub refresh: Option<String>,
    pub path: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SsoFile {
    /// `hmac`, `keys` or `upstream`.
    pub mode: String,
    pub algorithm: Option<String>,
    pub secret_env: Option<String>,
    /// `https://<internal node host:port>/path` of a configured node.
    pub keys_url: Option<String>,
    pub keys_file: Option<String>,
    pub poll: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub skew: Option<String>,
    pub user_claim: Option<String>,
    pub validate: Option<String>,
    pub cache_max: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct WebSocketFile {
    /// Mode (a) window, or `off`.
    pub ip_window: Option<String>,
    /// Mode (b) on or off.
    pub subprotocol: Option<bool>,
    /// Mode (c) cookie lifetime, or `off`.
    pub cookie_ttl: Option<String>,
    pub per_user: Option<i64>,
    pub per_ip: Option<i64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct BruteForceFile {
    pub failures: Option<i64>,
    pub window: Option<String>,
    pub block: Option<String>,
    pub spray_users: Option<i64>,
    pub tracked: Option<i64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    pub nat_factor: Option<i64>,
    pub dry_run: Option<bool>,
    #[serde(default)]
    pub exempt: Vec<String>,
    pub static_rate: Option<i64>,
    pub static_burst: Option<i64>,
    pub connections_per_ip: Option<i64>,
}
