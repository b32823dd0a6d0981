//! deskgate's data plane: listeners, the request pipeline, upstream clients.
//!
//! Read `pipeline/mod.rs` first: it is the ordered list of stages every
//! request goes through.
#![forbid(unsafe_code)]

pub mod ascii;
pub mod body;
pub mod cache;
pub mod listen;
pub mod logwriter;
pub mod pipeline;
pub mod progress;
pub mod security;
pub mod upstream;

use deskgate_config::{proxymap, Deployment, Side};
use listen::internal::AdminState;
use listen::Shared;
use pipeline::log::AccessLog;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use upstream::Upstreams;

/// One validated deployment with the upstream clients built for it.
pub struct Snapshot {
    pub deployment: Arc<Deployment>,
    pub upstreams: Upstreams,
    pub side: Side,
}

/// A running instance.
pub struct Running {
    /// Bound address of each external listener, by listener name.
    pub listeners: Vec<(String, SocketAddr)>,
    /// Bound address of the internal (proxy map) listener.
    pub internal: Option<SocketAddr>,
    shared: Arc<Shared>,
    drain_tx: watch::Sender<bool>,
    stop_tx: watch::Sender<bool>,
    drain_time: Duration,
    admin_socket: Option<std::path::PathBuf>,
}

/// Starts every listener of `side`. Fails before serving anything if a
/// socket cannot be bound or the access log cannot be opened.
pub async fn start(deployment: Arc<Deployment>, side: Side) -> Result<Running, String> {
    start_with(deployment, side, Vec::new()).await
}

/// Like [`start`], but a listener (external or internal) whose bind address
/// is the local address of one of `prebound` serves that socket instead of
/// binding its own. `deskgate demo` binds port 0 first, then writes the
/// ports it got into the config, so the external ports are the real ones.
pub async fn start_with(
    deployment: Arc<Deployment>,
    side: Side,
    mut prebound: Vec<std::net::TcpListener>,
) -> Result<Running, String> {
    // a socket that matches no listener would leave that listener binding
    // its own address, and failing there with "address in use"
    let binds: Vec<SocketAddr> = deployment
        .listeners_of(side)
        .map(|l| l.bind)
        .chain(deployment.internal_of(side).map(|i| i.bind))
        .collect();
    for l in &prebound {
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        if !binds.contains(&addr) {
            return Err(format!(
                "a socket on {addr} was handed over, but no listener of side {} binds it",
                side.as_str()
            ));
        }
    }
    let mut bind = |addr: SocketAddr| {
        let found = prebound
            .iter()
            .position(|l| l.local_addr().ok() == Some(addr))
            .map(|i| prebound.swap_remove(i));
        async move {
            match found {
                Some(std) => {
                    std.set_nonblocking(true)?;
                    TcpListener::from_std(std)
                }
                None => TcpListener::bind(addr).await,
            }
        }
    };
    let upstreams = Upstreams::build(&deployment, side)?;
    let access_log = AccessLog::start(deployment.log.access.clone(), "access-log")
        .map_err(|e| format!("cannot open the access log: {e}"))?;
    let security_log =
        logwriter::LineWriter::start(deployment.security.log.clone(), "security-log")
            .map_err(|e| format!("cannot open the security log: {e}"))?;
    let guard = security::Guard::new(
        &deployment,
        side,
        pipeline::seclog::SecurityLog::new(security_log),
        deskgate_policy::Clock::system(),
    )?;
    let snapshot = Arc::new(Snapshot {
        deployment: deployment.clone(),
        upstreams,
        side,
    });
    let (drain_tx, drain_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Shared::new(snapshot, access_log, guard, drain_rx.clone(), stop_rx);
    security::tasks::spawn(&shared);

    let mut bound = Vec::new();
    for l in deployment.listeners_of(side) {
        let tcp = bind(l.bind)
            .await
            .map_err(|e| format!("listener {}: cannot bind {}: {e}", l.name, l.bind))?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        bound.push((l.name.clone(), addr, tcp, l.clone()));
    }
    let map: Arc<str> = proxymap::render(&deployment).into();
    let mut internal = None;
    let mut admin_socket = None;
    if let Some(i) = deployment.internal_of(side) {
        let tcp = bind(i.bind)
            .await
            .map_err(|e| format!("internal listener: cannot bind {}: {e}", i.bind))?;
        internal = Some(tcp.local_addr().map_err(|e| e.to_string())?);
        tokio::spawn(listen::internal::serve_proxymap(
            tcp,
            map.clone(),
            drain_rx.clone(),
        ));
        if let Some(path) = &i.admin_socket {
            let sock = bind_owner_only(path)?;
            let st = Arc::new(AdminState {
                side: side.as_str(),
                shared: shared.clone(),
                proxymap: map.clone(),
            });
            tokio::spawn(listen::internal::serve_admin(sock, st, drain_rx.clone()));
            admin_socket = Some(path.clone());
        }
    }
    let mut listeners = Vec::new();
    for (name, addr, tcp, l) in bound {
        tracing::info!(listener = %name, %addr, external_port = l.external_port, routes = l.routes.len(), "listening");
        tokio::spawn(listen::serve(tcp, l, shared.clone()));
        listeners.push((name, addr));
    }
    if let Some(a) = internal {
        tracing::info!(%a, "internal listener (proxy map) ready");
    }
    Ok(Running {
        listeners,
        internal,
        drain_time: deployment.timeouts.drain,
        shared,
        drain_tx,
        stop_tx,
        admin_socket,
    })
}

/// Binds the admin socket under a temporary name, makes it owner-only, then
/// renames it into place: nobody can connect while it is still open to all.
fn bind_owner_only(path: &std::path::Path) -> Result<UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e: std::io::Error| format!("admin socket {}: {e}", path.display());
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let sock = UnixListener::bind(&tmp).map_err(err)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(sock)
}

impl Running {
    /// Reopens the access and security logs (SIGUSR1).
    pub fn reopen_logs(&self) {
        self.shared.access_log.reopen();
        self.shared.guard.log.reopen();
    }

    /// The edge-security state (for status and tests).
    pub fn guard(&self) -> &security::Guard {
        &self.shared.guard
    }

    /// Open client connections.
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections()
    }

    /// Stops accepting, lets open requests finish for up to the drain time,
    /// then closes what is left (tunnels included).
    pub async fn shutdown(self) {
        let _ = self.drain_tx.send(true);
        let deadline = tokio::time::Instant::now() + self.drain_time;
        while self.shared.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.stop_tx.send(true);
        if let Some(p) = &self.admin_socket {
            let _ = std::fs::remove_file(p);
        }
        // let connection tasks see the stop and write their last log lines
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
