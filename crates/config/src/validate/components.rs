//! Components and nodes: kinds, upstream TLS, filtering rules, routes.

use super::listeners::key_source;
use super::values::{duration, host_port, side};
use super::Ctx;
use crate::error::KeyPath;
use crate::file::{ComponentFile, UpstreamTlsFile};
use crate::kinds::{Kind, ALWAYS_DENY};
use crate::runtime::*;
use crate::tls::{self, SecretSource, UpstreamTls};
use std::collections::HashMap;
use std::sync::Arc;

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

pub(super) fn component(
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
    let security = super::security::component_security(cx, c, kind, case_insensitive, kp);
    let comp = Arc::new(Component {
        name: c.name.clone(),
        kind,
        scheme: scheme?,
        tls,
        response_timeout,
        http2: c.http2.unwrap_or(false),
        rules: PathRules {
            allow,
            deny,
            methods,
            case_insensitive,
        },
        security,
        nodes,
    });
    Some((comp, node_paths))
}

/// Puts every node on the listener of its side that serves its external host:port.
pub(super) fn assign_routes(
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
