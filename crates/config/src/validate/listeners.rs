//! Listeners: bind, external port, certificates per SNI name, clashes.

use super::values::{binds_clash, port, side, socket_addr};
use super::Ctx;
use crate::error::KeyPath;
use crate::file::ListenerFile;
use crate::runtime::*;
use crate::tls::{self, SecretSource};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn key_source<'a>(
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

pub(super) fn listener(cx: &mut Ctx<'_>, l: &ListenerFile, kp: &KeyPath) -> Option<Listener> {
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

pub(super) fn check_listener_clashes(cx: &mut Ctx<'_>, listeners: &[(usize, Listener)]) {
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
