//! File model -> validated runtime. Collects every problem, never panics.

use crate::error::{KeyPath, Problems};
use crate::file::*;
use crate::kinds::{Kind, ALWAYS_DENY};
use crate::runtime::*;
use crate::tls::{self, SecretSource, UpstreamTls};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Resolves relative paths against the config file's directory.
struct Ctx<'a> {
    base: &'a Path,
    p: Problems,
}

impl Ctx<'_> {
    fn path(&self, s: &str) -> PathBuf {
        let p = Path::new(s);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// Validates the file model. On failure returns the problems with key paths.
pub(crate) fn validate(
    f: FileConfig,
    source: &Path,
) -> Result<Deployment, Vec<(KeyPath, String, String)>> {
    let base = source
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut cx = Ctx {
        base: &base,
        p: Problems::default(),
    };
    let root = KeyPath::root();

    let limits = limits(&mut cx, &f.limits, &root.key("limits"));
    let timeouts = timeouts(&mut cx, &f.timeouts, &root.key("timeouts"));
    let default_tls = f.upstream_tls.clone();
    let mut components = Vec::new();
    let mut comp_names = HashSet::new();
    for (i, c) in f.component.iter().enumerate() {
        let kp = root.key("component").index(i);
        if !comp_names.insert(c.name.clone()) {
            cx.p.add(
                kp.key("name"),
                format!("component name {:?} is used twice", c.name),
                "give each [[component]] its own name",
            );
        }
        if let Some(comp) = component(&mut cx, c, default_tls.as_ref(), &timeouts, &kp) {
            components.push(comp);
        }
    }
    if f.component.is_empty() {
        cx.p.add(
            root.key("component"),
            "no [[component]] is configured",
            "add at least one [[component]] with a [[component.node]]",
        );
    }

    let mut listeners = Vec::new();
    for (i, l) in f.listener.iter().enumerate() {
        if let Some(li) = listener(&mut cx, l, &root.key("listener").index(i)) {
            listeners.push((i, li));
        }
    }
    if f.listener.is_empty() {
        cx.p.add(
            root.key("listener"),
            "no [[listener]] is configured",
            "add a [[listener]] per side with a bind address, external_port and [[listener.cert]]",
        );
    }
    check_listener_clashes(&mut cx, &listeners);
    assign_routes(&mut cx, &components, &mut listeners);

    let client_ip = client_ip(&mut cx, &f.client_ip, &root.key("client_ip"));
    let internal = internal(&mut cx, &f.internal, &root.key("internal"));
    for (i, int) in internal.iter().enumerate() {
        if let Some((li, _)) = listeners
            .iter()
            .find(|(_, l)| l.side == int.side && binds_clash(l.bind, int.bind))
        {
            cx.p.add(
                root.key("internal").index(i).key("bind"),
                format!(
                    "listener[{li}] of side {} already binds {}",
                    int.side.as_str(),
                    int.bind
                ),
                "give the internal listener its own address or port",
            );
        }
    }
    let filter = global_filter(&mut cx, &f.filter, &root.key("filter"));
    let log = LogSettings {
        access: match f.log.access.as_deref() {
            None | Some("-") => LogTarget::Stdout,
            Some(p) => LogTarget::File(cx.path(p)),
        },
    };

    if !cx.p.is_empty() {
        return Err(cx.p.list);
    }
    Ok(Deployment {
        source: source.to_path_buf(),
        listeners: listeners.into_iter().map(|(_, l)| Arc::new(l)).collect(),
        components: components.into_iter().map(|(c, _)| c).collect(),
        client_ip,
        internal,
        limits,
        timeouts,
        filter,
        log,
    })
}

fn side(cx: &mut Ctx<'_>, s: &str, kp: &KeyPath) -> Option<Side> {
    let side = Side::parse(s);
    if side.is_none() {
        cx.p.add(
            kp.clone(),
            format!("side {s:?} is not a or b"),
            "write side = \"a\" or side = \"b\"",
        );
    }
    side
}

fn socket_addr(cx: &mut Ctx<'_>, s: &str, kp: &KeyPath) -> Option<SocketAddr> {
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            let hint = match s.rsplit_once(':') {
                Some((_, port)) if port.parse::<u16>().is_err() => {
                    "the port must be a number from 1 to 65535"
                }
                _ => "write an IP address and port, e.g. \"0.0.0.0:443\" or \"[::]:443\"",
            };
            cx.p.add(kp.clone(), format!("{s:?} is not an address:port"), hint);
            None
        }
    }
}

/// Parses `host:port` with a port from 1 to 65535.
fn host_port(cx: &mut Ctx<'_>, s: &str, kp: &KeyPath) -> Option<(String, u16)> {
    let Some((host, port)) = s.rsplit_once(':') else {
        cx.p.add(
            kp.clone(),
            format!("{s:?} has no port"),
            "write host:port, e.g. \"finesse1.example.com:8445\"",
        );
        return None;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        cx.p.add(
            kp.clone(),
            format!("{s:?} has no valid host name"),
            "write host:port",
        );
        return None;
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Some((host.to_ascii_lowercase(), p as u16)),
        _ => {
            cx.p.add(
                kp.clone(),
                format!("port {port:?} in {s:?} is out of range"),
                "use a port from 1 to 65535",
            );
            None
        }
    }
}

fn port(cx: &mut Ctx<'_>, v: i64, kp: &KeyPath) -> Option<u16> {
    if (1..=65535).contains(&v) {
        Some(v as u16)
    } else {
        cx.p.add(
            kp.clone(),
            format!("port {v} is out of range"),
            "use a port from 1 to 65535",
        );
        None
    }
}

/// No timeout in deskgate needs more than a day; longer ones are typos.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn duration(cx: &mut Ctx<'_>, v: &Option<String>, default: Duration, kp: &KeyPath) -> Duration {
    match v {
        None => default,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if d > MAX_DURATION => {
                cx.p.add(
                    kp.clone(),
                    format!("{s:?} is longer than a day"),
                    "use at most \"24h\"",
                );
                default
            }
            Ok(d) if !d.is_zero() => d,
            _ => {
                cx.p.add(
                    kp.clone(),
                    format!("{s:?} is not a duration"),
                    "write e.g. \"10s\", \"500ms\" or \"2m\"",
                );
                default
            }
        },
    }
}

/// Sizes like `15MB`, `20KB` or a plain byte count.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1024,
        "M" | "MB" | "MIB" => 1024 * 1024,
        "G" | "GB" | "GIB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

fn size(cx: &mut Ctx<'_>, v: &Option<String>, default: u64, kp: &KeyPath) -> u64 {
    match v {
        None => default,
        Some(s) => match parse_size(s) {
            Some(n) if n > 0 => n,
            _ => {
                cx.p.add(
                    kp.clone(),
                    format!("{s:?} is not a size"),
                    "write e.g. \"15MB\", \"8KB\" or a byte count",
                );
                default
            }
        },
    }
}

fn count(cx: &mut Ctx<'_>, v: Option<i64>, default: u64, max: u64, kp: &KeyPath) -> u64 {
    match v {
        None => default,
        Some(n) if n >= 1 && (n as u64) <= max => n as u64,
        Some(n) => {
            cx.p.add(
                kp.clone(),
                format!("{n} is out of range"),
                format!("use a number from 1 to {max}"),
            );
            default
        }
    }
}

fn limits(cx: &mut Ctx<'_>, f: &LimitsFile, kp: &KeyPath) -> Limits {
    let d = Limits::default();
    let max_head = size(cx, &f.max_head, d.max_head as u64, &kp.key("max_head")) as usize;
    let max_header_line = size(
        cx,
        &f.max_header_line,
        d.max_header_line as u64,
        &kp.key("max_header_line"),
    ) as usize;
    if max_head < 8192 {
        cx.p.add(
            kp.key("max_head"),
            format!("{max_head} bytes is below the 8KB minimum"),
            "use at least \"8KB\"",
        );
    }
    Limits {
        max_body: size(cx, &f.max_body, d.max_body, &kp.key("max_body")),
        max_head,
        max_header_line,
        max_headers: count(
            cx,
            f.max_headers,
            d.max_headers as u64,
            1000,
            &kp.key("max_headers"),
        ) as usize,
        keepalive_requests: count(
            cx,
            f.keepalive_requests,
            d.keepalive_requests as u64,
            1_000_000,
            &kp.key("keepalive_requests"),
        ) as u32,
        h2_max_streams: count(
            cx,
            f.h2_max_streams,
            d.h2_max_streams as u64,
            10_000,
            &kp.key("h2_max_streams"),
        ) as u32,
        max_connections: count(
            cx,
            f.max_connections,
            d.max_connections as u64,
            10_000_000,
            &kp.key("max_connections"),
        ) as usize,
    }
}

fn timeouts(cx: &mut Ctx<'_>, f: &TimeoutsFile, kp: &KeyPath) -> Timeouts {
    let d = Timeouts::default();
    Timeouts {
        handshake: duration(cx, &f.handshake, d.handshake, &kp.key("handshake")),
        request_head: duration(cx, &f.request_head, d.request_head, &kp.key("request_head")),
        body_idle: duration(cx, &f.body_idle, d.body_idle, &kp.key("body_idle")),
        send_idle: duration(cx, &f.send_idle, d.send_idle, &kp.key("send_idle")),
        keepalive: duration(cx, &f.keepalive, d.keepalive, &kp.key("keepalive")),
        upstream_connect: duration(
            cx,
            &f.upstream_connect,
            d.upstream_connect,
            &kp.key("upstream_connect"),
        ),
        upstream_response: duration(
            cx,
            &f.upstream_response,
            d.upstream_response,
            &kp.key("upstream_response"),
        ),
        tunnel_idle: duration(cx, &f.tunnel_idle, d.tunnel_idle, &kp.key("tunnel_idle")),
        drain: duration(cx, &f.drain, d.drain, &kp.key("drain")),
    }
}

fn key_source<'a>(
    cx: &mut Ctx<'_>,
    file: &'a Option<String>,
    env: &'a Option<String>,
    file_key: &str,
    env_key: &str,
    kp: &KeyPath,
) -> Option<(Option<PathBuf>, Option<&'a str>)> {
    match (file, env) {
        (Some(f), None) => Some((Some(cx.path(f)), None)),
        (None, Some(e)) => Some((None, Some(e.as_str()))),
        (Some(_), Some(_)) => {
            cx.p.add(
                kp.key(env_key),
                format!("both {file_key} and {env_key} are set"),
                format!("keep only one of {file_key} and {env_key}"),
            );
            None
        }
        (None, None) => {
            cx.p.add(
                kp.clone(),
                format!("no private key: neither {file_key} nor {env_key} is set"),
                format!("add {file_key} = \"path/to/key.pem\" or {env_key} = \"VARIABLE\""),
            );
            None
        }
    }
}

fn listener(cx: &mut Ctx<'_>, l: &ListenerFile, kp: &KeyPath) -> Option<Listener> {
    let side = side(cx, &l.side, &kp.key("side"));
    let bind = socket_addr(cx, &l.bind, &kp.key("bind"));
    let external_port = port(cx, l.external_port, &kp.key("external_port"));
    if l.cert.is_empty() {
        cx.p.add(
            kp.key("cert"),
            "the listener has no certificate",
            "add a [[listener.cert]] with names, cert and key_file",
        );
    }
    let mut certs = Vec::new();
    for (i, c) in l.cert.iter().enumerate() {
        let ckp = kp.key("cert").index(i);
        if c.names.is_empty() {
            cx.p.add(
                ckp.key("names"),
                "the certificate serves no names",
                "list the SNI names it serves",
            );
        }
        let chain = match tls::read_certs(&cx.path(&c.cert)) {
            Ok(chain) => chain,
            Err(e) => {
                cx.p.add(
                    ckp.key("cert"),
                    e,
                    "point cert at a readable PEM certificate chain",
                );
                continue;
            }
        };
        let Some((file, env)) =
            key_source(cx, &c.key_file, &c.key_env, "key_file", "key_env", &ckp)
        else {
            continue;
        };
        let src = match (&file, env) {
            (Some(f), _) => SecretSource::File(f),
            (None, Some(e)) => SecretSource::Env(e),
            (None, None) => continue,
        };
        let key_kp = ckp.key(if file.is_some() {
            "key_file"
        } else {
            "key_env"
        });
        let key = match tls::read_key(src) {
            Ok(k) => k,
            Err(e) => {
                cx.p.add(
                    key_kp,
                    e,
                    "point it at the PEM private key of this certificate",
                );
                continue;
            }
        };
        for (j, name) in c.names.iter().enumerate() {
            match tls::covers(&chain[0], name) {
                Ok(true) => {}
                Ok(false) => cx.p.add(
                    ckp.key("names").index(j),
                    format!("certificate {} does not cover {name:?}", c.cert),
                    "use a certificate whose subjectAltName lists this name, or remove the name",
                ),
                Err(e) => cx.p.add(
                    ckp.key("names").index(j),
                    e,
                    "fix the name or the certificate",
                ),
            }
        }
        match tls::certified_key(chain, key) {
            Ok(ck) => certs.push(SniCert {
                names: c.names.iter().map(|n| n.to_ascii_lowercase()).collect(),
                key: Arc::new(ck),
            }),
            Err(e) => {
                cx.p.add(key_kp, e, "pair the certificate with its own private key")
            }
        }
    }
    let name = l
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", l.side, l.bind));
    Some(Listener {
        name,
        side: side?,
        bind: bind?,
        external_port: external_port?,
        certs,
        routes: HashMap::new(),
        hsts: l.hsts.unwrap_or(false),
    })
}

/// Two sockets of one instance that cannot both be bound: the same port on
/// the same address, or on any address when one of them is the wildcard.
/// Port 0 (tests) asks the kernel for a fresh port and never clashes.
pub(crate) fn binds_clash(a: SocketAddr, b: SocketAddr) -> bool {
    use std::net::IpAddr;
    fn canon(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        }
    }
    // a wildcard covers its own family; [::] (dual-stack) covers IPv4 too
    fn covers(wild: IpAddr, other: IpAddr) -> bool {
        wild.is_unspecified() && (wild.is_ipv6() || other.is_ipv4())
    }
    let (x, y) = (canon(a.ip()), canon(b.ip()));
    a.port() != 0 && a.port() == b.port() && (x == y || covers(x, y) || covers(y, x))
}

#[cfg(test)]
mod bind_tests {
    use super::binds_clash;

    #[test]
    fn clashes_follow_address_families() {
        let c = |a: &str, b: &str| binds_clash(a.parse().expect("a"), b.parse().expect("b"));
        assert!(c("0.0.0.0:443", "10.0.0.5:443"));
        assert!(c("[::]:443", "10.0.0.5:443"));
        assert!(c("[::ffff:127.0.0.1]:443", "127.0.0.1:443"));
        assert!(!c("0.0.0.0:443", "[::1]:443"));
        assert!(!c("10.0.0.5:443", "10.0.0.6:443"));
        assert!(!c("0.0.0.0:443", "0.0.0.0:8443"));
        assert!(!c("127.0.0.1:0", "127.0.0.1:0"));
    }
}

fn check_listener_clashes(cx: &mut Ctx<'_>, listeners: &[(usize, Listener)]) {
    let mut names: HashMap<(Side, u16, String), usize> = HashMap::new();
    for (n, (i, l)) in listeners.iter().enumerate() {
        let kp = KeyPath::root().key("listener").index(*i);
        let earlier = listeners[..n]
            .iter()
            .find(|(_, o)| o.side == l.side && binds_clash(o.bind, l.bind));
        if let Some((first, o)) = earlier {
            cx.p.add(
                kp.key("bind"),
                format!(
                    "listener[{first}] of side {} already binds {} (this one wants {})",
                    l.side.as_str(),
                    o.bind,
                    l.bind
                ),
                "give each listener of one side its own bind address and port",
            );
        }
        for c in &l.certs {
            for n in &c.names {
                if let Some(first) = names.insert((l.side, l.external_port, n.clone()), *i) {
                    if first != *i {
                        cx.p.add(
                            kp.key("cert"),
                            format!(
                                "{n}:{} is also served by listener[{first}] of side {}",
                                l.external_port,
                                l.side.as_str()
                            ),
                            "serve each external host:port from one listener per side",
                        );
                    }
                }
            }
        }
    }
}

fn upstream_tls(
    cx: &mut Ctx<'_>,
    u: &UpstreamTlsFile,
    kp: &KeyPath,
) -> Option<Arc<rustls::ClientConfig>> {
    let trust = u.trust.as_ref().map(|t| cx.path(t));
    let verify = u.verify.unwrap_or(true);
    if verify && trust.is_none() {
        cx.p.add(
            kp.key("trust"),
            "verify is on but no trust bundle is given",
            "set trust = \"path/to/internal-ca.pem\" (or verify = false, not for production)",
        );
        return None;
    }
    let client_cert = u.client_cert.as_ref().map(|c| cx.path(c));
    let key = match &client_cert {
        Some(_) => key_source(
            cx,
            &u.client_key_file,
            &u.client_key_env,
            "client_key_file",
            "client_key_env",
            kp,
        ),
        None => None,
    };
    let client = match (&client_cert, &key) {
        (Some(c), Some((Some(f), _))) => Some((c.as_path(), SecretSource::File(f))),
        (Some(c), Some((None, Some(e)))) => Some((c.as_path(), SecretSource::Env(e))),
        (Some(_), _) => return None,
        (None, _) => None,
    };
    match tls::upstream_client_config(UpstreamTls {
        trust: trust.as_deref(),
        verify,
        client,
    }) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            cx.p.add(
                kp.clone(),
                e,
                "fix the trust bundle or client certificate files",
            );
            None
        }
    }
}

fn component(
    cx: &mut Ctx<'_>,
    c: &ComponentFile,
    default_tls: Option<&UpstreamTlsFile>,
    t: &Timeouts,
    kp: &KeyPath,
) -> Option<(Arc<Component>, Vec<KeyPath>)> {
    let kind = Kind::parse(&c.kind);
    if kind.is_none() {
        cx.p.add(
            kp.key("kind"),
            format!("kind {:?} is unknown", c.kind),
            "use one of finesse, ids, cuic, livedata, chat, idp, gadget",
        );
    }
    let scheme = match c.scheme.as_deref() {
        None | Some("https") => Some(Scheme::Https),
        Some("http") => Some(Scheme::Http),
        Some(s) => {
            cx.p.add(
                kp.key("scheme"),
                format!("scheme {s:?} is unknown"),
                "use \"https\" or \"http\"",
            );
            None
        }
    };
    let tls = if scheme == Some(Scheme::Https) {
        match (&c.upstream_tls, default_tls) {
            (Some(u), _) => upstream_tls(cx, u, &kp.key("upstream_tls")),
            (None, Some(u)) => upstream_tls(cx, u, &KeyPath::root().key("upstream_tls")),
            (None, None) => {
                cx.p.add(
                    kp.clone(),
                    "https upstream without TLS settings",
                    "add an [upstream_tls] table with trust = \"internal-ca.pem\"",
                );
                None
            }
        }
    } else {
        None
    };
    let response_timeout = duration(
        cx,
        &c.response_timeout,
        t.upstream_response,
        &kp.key("response_timeout"),
    );
    let kind = kind?;
    let mut methods: Vec<String> = match &c.methods {
        Some(m) => m.iter().map(|s| s.to_ascii_uppercase()).collect(),
        None => kind
            .default_methods()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    for (i, m) in methods.iter().enumerate() {
        if m.is_empty()
            || !m.bytes().all(|b| b.is_ascii_uppercase())
            || m == "CONNECT"
            || m == "TRACE"
        {
            cx.p.add(
                kp.key("methods").index(i),
                format!("method {m:?} cannot be allowed"),
                "list methods such as GET, POST, PUT, DELETE, OPTIONS",
            );
        }
    }
    methods.dedup();
    for (key, list) in [("allow", &c.allow), ("deny", &c.deny)] {
        for (i, p) in list.iter().enumerate() {
            if !p.starts_with('/')
                || p.contains("..")
                || p.contains('%')
                || p.contains(';')
                || p.contains('\\')
            {
                cx.p.add(
                    kp.key(key).index(i),
                    format!("{p:?} is not a plain path prefix"),
                    "write a normalised prefix such as \"/desktop/\"",
                );
            }
        }
    }
    let mut allow: Vec<String> = kind.default_allow().iter().map(|s| s.to_string()).collect();
    allow.extend(c.allow.iter().cloned());
    let mut deny: Vec<String> = kind
        .default_deny()
        .iter()
        .chain(ALWAYS_DENY)
        .map(|s| s.to_ascii_lowercase())
        .collect();
    deny.extend(c.deny.iter().map(|s| s.to_ascii_lowercase()));
    deny.sort();
    deny.dedup();
    let case_insensitive = c.case_insensitive.unwrap_or(false);
    if case_insensitive {
        allow.iter_mut().for_each(|a| *a = a.to_ascii_lowercase());
    }

    let mut nodes = Vec::new();
    let mut node_paths = Vec::new();
    if c.node.is_empty() {
        cx.p.add(
            kp.key("node"),
            "the component has no node",
            "add a [[component.node]] with internal, external and side",
        );
    }
    for (i, n) in c.node.iter().enumerate() {
        let nkp = kp.key("node").index(i);
        let internal = host_port(cx, &n.internal, &nkp.key("internal"));
        let external = host_port(cx, &n.external, &nkp.key("external"));
        let side = side(cx, &n.side, &nkp.key("side"));
        if let Some(conn) = &n.connect {
            host_port(cx, conn, &nkp.key("connect"));
        }
        if let (Some((ih, ip)), Some((eh, ep)), Some(side)) = (internal, external, side) {
            nodes.push(Arc::new(Node {
                internal_host: ih,
                internal_port: ip,
                connect: n.connect.clone(),
                external_host: eh,
                external_port: ep,
                side,
            }));
            node_paths.push(nkp);
        }
    }
    let comp = Arc::new(Component {
        name: c.name.clone(),
        kind,
        scheme: scheme?,
        tls,
        response_timeout,
        rules: PathRules {
            allow,
            deny,
            methods: methods.into_iter().map(http_method::Method).collect(),
            case_insensitive,
        },
        nodes,
    });
    Some((comp, node_paths))
}

/// Puts every node on the listener of its side that serves its external host:port.
fn assign_routes(
    cx: &mut Ctx<'_>,
    components: &[(Arc<Component>, Vec<KeyPath>)],
    listeners: &mut [(usize, Listener)],
) {
    let mut seen: HashMap<(String, u16), String> = HashMap::new();
    let mut internal_seen: HashMap<(String, u16), String> = HashMap::new();
    for (comp, node_paths) in components {
        for (node, nkp) in comp.nodes.iter().zip(node_paths) {
            let int = (node.internal_host.clone(), node.internal_port);
            if let Some(other) = internal_seen.insert(int.clone(), comp.name.clone()) {
                cx.p.add(
                    nkp.key("internal"),
                    format!("internal {}:{} is already a node of component {other:?}", int.0, int.1),
                    "the proxy map gives each internal host:port one external name: list each node once",
                );
            }
            let kp = nkp.key("external");
            let ext = (node.external_host.clone(), node.external_port);
            if let Some(other) = seen.insert(ext.clone(), comp.name.clone()) {
                cx.p.add(
                    kp,
                    format!("external {}:{} is already used by component {other:?}", ext.0, ext.1),
                    "each external host:port maps to exactly one node: give this node another external name or port",
                );
                continue;
            }
            let listener = listeners.iter_mut().find(|(_, l)| {
                l.side == node.side
                    && l.external_port == node.external_port
                    && l.certs
                        .iter()
                        .any(|c| c.names.iter().any(|n| name_matches(n, &node.external_host)))
            });
            match listener {
                Some((_, l)) => {
                    l.routes.insert(
                        node.external_host.clone(),
                        Route { component: comp.clone(), node: node.clone() },
                    );
                }
                None => cx.p.add(
                    kp,
                    format!(
                        "no listener of side {} serves {}:{}",
                        node.side.as_str(),
                        node.external_host,
                        node.external_port
                    ),
                    format!(
                        "add {:?} to the names of a [[listener.cert]] on a side-{} listener with external_port = {}",
                        node.external_host,
                        node.side.as_str(),
                        node.external_port
                    ),
                ),
            }
        }
    }
}

fn client_ip(cx: &mut Ctx<'_>, f: &ClientIpFile, kp: &KeyPath) -> ClientIpPolicy {
    let mut trusted = Vec::new();
    for (i, t) in f.trusted.iter().enumerate() {
        let parsed = t
            .parse::<ipnet::IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => trusted.push(n.trunc()),
            Err(_) => cx.p.add(
                kp.key("trusted").index(i),
                format!("{t:?} is not an IP address or CIDR"),
                "write e.g. \"10.1.0.0/16\" or \"192.0.2.10\"",
            ),
        }
    }
    let header = f.header.clone().unwrap_or_else(|| "X-Real-IP".to_string());
    let valid = !header.is_empty()
        && header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        cx.p.add(
            kp.key("header"),
            format!("{header:?} is not a header name"),
            "write a header name such as \"X-Real-IP\"",
        );
    }
    ClientIpPolicy {
        trusted,
        header: header.to_ascii_lowercase(),
    }
}

fn internal(cx: &mut Ctx<'_>, list: &[InternalFile], kp: &KeyPath) -> Vec<Internal> {
    let mut out: Vec<Internal> = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let ikp = kp.index(i);
        let side = side(cx, &f.side, &ikp.key("side"));
        let bind = socket_addr(cx, &f.bind, &ikp.key("bind"));
        if let (Some(side), Some(bind)) = (side, bind) {
            if out.iter().any(|o| o.side == side) {
                cx.p.add(
                    ikp.key("side"),
                    format!("side {} has two [[internal]] tables", side.as_str()),
                    "keep one [[internal]] per side",
                );
            }
            out.push(Internal {
                side,
                bind,
                admin_socket: f.admin_socket.as_ref().map(|p| cx.path(p)),
            });
        }
    }
    out
}

fn global_filter(cx: &mut Ctx<'_>, f: &FilterFile, kp: &KeyPath) -> GlobalFilter {
    let unsupported_status = match f.unsupported_status {
        None => 421,
        Some(s @ (404 | 421)) => s as u16,
        Some(s) => {
            cx.p.add(
                kp.key("unsupported_status"),
                format!("{s} is not allowed"),
                "use 421 (default) or 404",
            );
            421
        }
    };
    let user_agent = f
        .user_agent
        .as_ref()
        .and_then(|r| match regex::Regex::new(r) {
            Ok(re) => Some(re),
            Err(e) => {
                cx.p.add(
                    kp.key("user_agent"),
                    format!("bad regex: {e}"),
                    "fix the regular expression",
                );
                None
            }
        });
    GlobalFilter {
        unsupported_status,
        user_agent,
        referer_hosts: f
            .referer_hosts
            .as_ref()
            .map(|v| v.iter().map(|h| h.to_ascii_lowercase()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("15MB"), Some(15 * 1024 * 1024));
        assert_eq!(parse_size("8KB"), Some(8192));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("10 parsecs"), None);
    }
}
