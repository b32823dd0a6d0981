//! Background work of the edge-security state: sweeping idle buckets and
//! expired blocks, refreshing the known-users list, polling SSO keys.
//! Each task ends when the instance stops.

use super::sso::parse_keys;
use crate::body::empty;
use crate::listen::Shared;
use deskgate_config::SsoKeys;
use http::{header, Request};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

/// How often idle rate state and expired blocks are swept.
const SWEEP: Duration = Duration::from_secs(5);
/// Retry delay after a failed fetch (users list, keys).
const RETRY: Duration = Duration::from_secs(5);
/// Upstreams may start after deskgate: fetch failures are not warned about
/// (and are retried every second) for this long after start.
const STARTUP_GRACE: Duration = Duration::from_secs(60);

pub fn spawn(shared: &Arc<Shared>) {
    let sh = shared.clone();
    tokio::spawn(async move {
        let stop = sh.hard_stop();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(SWEEP);
        loop {
            tokio::select! {
                _ = tick.tick() => sh.guard.sweep(),
                _ = &mut stop => break,
            }
        }
    });
    let d = &shared.snapshot.deployment;
    let mut checkers: Vec<String> = d
        .components
        .iter()
        .filter(|c| c.security.auth == deskgate_config::AuthMode::Finesse)
        .map(|c| d.security.check_target(&c.security).to_string())
        .collect();
    checkers.sort();
    checkers.dedup();
    let list = shared.guard.settings.auth.users_list.clone();
    for checker in checkers.into_iter().filter(|_| list.is_some()) {
        let Some(list) = list.clone() else { break };
        let sh = shared.clone();
        tokio::spawn(until_stopped(shared, async move {
            let started = std::time::Instant::now();
            loop {
                let wait = match fetch_users(&sh, &checker, &list).await {
                    Ok(n) => {
                        tracing::info!(users = n, finesse = %checker, "known-users list loaded");
                        list.refresh
                    }
                    Err(e)
                        if started.elapsed() < STARTUP_GRACE
                            && sh
                                .guard
                                .users
                                .read()
                                .map(|u| !u.contains_key(&checker))
                                .unwrap_or(true) =>
                    {
                        tracing::info!("known-users list not loaded yet ({e}); retrying");
                        Duration::from_secs(1)
                    }
                    Err(e) => {
                        tracing::warn!("known-users list not loaded ({e}); asking Finesse for every new user meanwhile");
                        RETRY
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }));
    }
    let poll = match shared.guard.sso.as_ref().map(|s| &s.source) {
        Some(SsoKeys::Url { poll, .. } | SsoKeys::File { poll, .. }) => Some(*poll),
        _ => None,
    };
    if let Some(poll) = poll {
        let sh = shared.clone();
        tokio::spawn(until_stopped(shared, async move {
            let started = std::time::Instant::now();
            let mut loaded = false;
            loop {
                let wait = match fetch_keys(&sh).await {
                    Ok(n) => {
                        if !loaded {
                            tracing::info!(keys = n, "SSO keys loaded");
                        }
                        loaded = true;
                        poll
                    }
                    // IdS may start after us: quiet for the first minute
                    Err(e) if !loaded && started.elapsed() < STARTUP_GRACE => {
                        tracing::info!("SSO keys not loaded yet ({e}); retrying");
                        Duration::from_secs(1)
                    }
                    Err(e) => {
                        tracing::warn!("SSO keys not refreshed: {e}");
                        RETRY.min(poll)
                    }
                };
                tokio::time::sleep(wait).await;
            }
        }));
    }
}

fn until_stopped(
    shared: &Arc<Shared>,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let stop = shared.hard_stop();
    async move {
        tokio::select! {
            _ = work => {}
            _ = stop => {}
        }
    }
}

/// GETs `path` from the first node of `component` (on this side) that answers 200.
async fn fetch(
    sh: &Shared,
    component: &str,
    node: Option<usize>,
    path: &str,
    authorization: Option<&str>,
) -> Result<Vec<u8>, String> {
    let d = &sh.snapshot.deployment;
    let comp = d
        .components
        .iter()
        .find(|c| c.name == component)
        .ok_or_else(|| format!("no component {component}"))?;
    // the named node when this side can reach it, else this side's nodes of
    // the same component (each side of the pair fetches from its own side)
    let side = sh.snapshot.side;
    let nodes: Vec<_> = match node
        .and_then(|i| comp.nodes.get(i))
        .filter(|n| n.side == side)
    {
        Some(n) => vec![n],
        None => comp.nodes.iter().filter(|n| n.side == side).collect(),
    };
    let mut last = "no node on this side".to_string();
    for n in nodes {
        let Some(client) = sh.snapshot.upstreams.get(n) else {
            last = "the node is not reachable from this side".into();
            continue;
        };
        let mut req = Request::get(path)
            .header(header::HOST, n.external_authority())
            .header(header::USER_AGENT, "deskgate");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let req = req.body(empty()).map_err(|e| e.to_string())?;
        let exchange = async {
            let resp = client
                .pool
                .send(req, false)
                .await
                .map_err(|e| format!("unreachable: {e}"))?;
            let status = resp.status();
            let body = http_body_util::Limited::new(resp.into_body(), 8 << 20)
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            if status.is_success() {
                Ok(body.to_vec())
            } else {
                Err(format!("status {}", status.as_u16()))
            }
        };
        match tokio::time::timeout(Duration::from_secs(10), exchange).await {
            Ok(Ok(b)) => return Ok(b),
            Ok(Err(e)) => last = e,
            Err(_) => last = "timed out".into(),
        }
    }
    Err(last)
}

async fn fetch_users(
    sh: &Shared,
    checker: &str,
    list: &deskgate_config::UsersList,
) -> Result<usize, String> {
    use base64::Engine;
    let creds = std::env::var(&list.credentials_env)
        .map_err(|_| format!("environment variable {} is not set", list.credentials_env))?;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    );
    let body = fetch(sh, checker, None, &list.path, Some(&auth)).await?;
    let users = super::validate::parse_users(&body)?;
    let n = users.len();
    sh.guard
        .users
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(checker.to_string(), Arc::new(users));
    Ok(n)
}

async fn fetch_keys(sh: &Shared) -> Result<usize, String> {
    let Some(sso) = sh.guard.sso.as_ref() else {
        return Ok(0);
    };
    let alg = sso.algorithm();
    let bytes = match &sso.source {
        SsoKeys::Url {
            component,
            node,
            path,
            ..
        } => fetch(sh, component, Some(*node), path, None).await?,
        SsoKeys::File { path, .. } => {
            let p = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read(p))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
        }
        _ => return Ok(0),
    };
    let keys = parse_keys(&bytes, alg)?;
    let n = keys.len();
    sso.set_keys(keys);
    Ok(n)
}
