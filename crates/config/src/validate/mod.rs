//! File model -> validated runtime. Collects every problem, never panics.

mod components;
mod listeners;
mod security;
mod settings;
mod values;

use crate::error::{KeyPath, Problems};
use crate::file::FileConfig;
use crate::runtime::*;
use components::{assign_routes, component};
use listeners::{check_listener_clashes, listener};
use settings::{cache, client_ip, global_filter, internal, limits, timeouts};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use values::binds_clash;

/// Resolves relative paths against the config file's directory.
pub(super) struct Ctx<'a> {
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
    let comps: Vec<Arc<Component>> = components.iter().map(|(c, _)| c.clone()).collect();
    let security = security::security(&mut cx, &f, &comps, &root);
    let cache = cache(&mut cx, &f.cache, &root.key("cache"));

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
        security,
        cache,
    })
}
