//! deskgate: the command line. Thin: parse, load config, start, handle signals.
#![forbid(unsafe_code)]

mod admin;
mod demo;
mod gencerts;

/// mimalloc instead of glibc's malloc: 5-6% fewer instructions per
/// proxied request and per cached static hit (callgrind, BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use deskgate_config::{proxymap, Deployment, Side};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Edge reverse proxy for Cisco Finesse web desktops.
#[derive(Parser)]
#[command(name = "deskgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy for one side of the HA pair.
    Run {
        /// The deployment config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Which side's listeners to serve: a or b.
        #[arg(long, value_parser = parse_side)]
        side: Side,
        /// Worker threads (default: one per core). Benchmarks pin one.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
    },
    /// Validate a config file and print a summary (exit 0 = valid), like `nginx -t`.
    Check {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the proxy map (internalhost:port=externalhost:port) the upstreams poll.
    Proxymap {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// The demo: two simulated Finesse nodes behind deskgate on loopback, with a
    /// desktop to open in a browser. Certificates are made for the run.
    Demo {
        /// Side A's listener; side B listens on the next port (port 0: any free ports).
        #[arg(long, default_value = "127.0.0.1:8445")]
        listen: std::net::SocketAddr,
        /// Side A's internal listener (proxy map); side B's is on the next port.
        #[arg(long, default_value = "127.0.0.1:10000")]
        internal: std::net::SocketAddr,
        /// How many demo agents (1001, 1002, ...).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10000))]
        agents: u32,
        /// SSO mode: the desktop signs in with tokens from the simulated IdS.
        #[arg(long)]
        sso: bool,
    },
    /// List the clients blocked for brute force (user + IP, or whole IP), through the admin socket.
    Blocks {
        #[command(flatten)]
        admin: admin::Target,
    },
    /// Lift a block: `IP` (whole-IP block) or `USER@IP`, through the admin socket.
    Unblock {
        #[command(flatten)]
        admin: admin::Target,
        /// `192.0.2.7`, `2001:db8::1` (its /64) or `1001@192.0.2.7`.
        target: String,
    },
    /// The response cache: `clear` forgets every stored answer, `status` shows its figures.
    Cache {
        #[command(flatten)]
        admin: admin::Target,
        /// clear or status.
        #[arg(value_parser = ["clear", "status"])]
        action: String,
    },
    /// Make a private CA and every certificate and key the config names that is missing.
    /// For labs, tests and the example only: production brings its own certificates.
    GenCerts {
        #[arg(short, long)]
        config: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
}

fn parse_side(s: &str) -> Result<Side, String> {
    Side::parse(s).ok_or_else(|| format!("side must be a or b, not {s:?}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Check { config } => match load(&config) {
            Some(d) => {
                print_summary(&d);
                println!(
                    "deskgate: configuration file {} test is successful",
                    config.display()
                );
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "deskgate: configuration file {} test failed",
                    config.display()
                );
                ExitCode::FAILURE
            }
        },
        Command::Proxymap { config } => match load(&config) {
            Some(d) => {
                print!("{}", proxymap::render(&d));
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        },
        Command::Blocks { admin } => admin::blocks(&admin),
        Command::Unblock { admin, target } => admin::unblock(&admin, &target),
        Command::Cache { admin, action } => admin::cache(&admin, &action),
        Command::GenCerts { config, force } => match gencerts::run(&config, force) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("deskgate: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config,
            side,
            workers,
        } => {
            let Some(d) = load(&config) else {
                return ExitCode::FAILURE;
            };
            match runtime_with(workers.map(usize::from)) {
                Some(rt) => rt.block_on(run(Arc::new(d), side)),
                None => ExitCode::FAILURE,
            }
        }
        Command::Demo {
            listen,
            internal,
            agents,
            sso,
        } => match runtime() {
            Some(rt) => rt.block_on(demo::run(demo::DemoArgs {
                listen,
                internal,
                agents,
                sso,
            })),
            None => ExitCode::FAILURE,
        },
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    runtime_with(None)
}

/// A runtime with `workers` threads, one per core by default. One worker
/// is a current-thread runtime: no work-stealing queues or cross-thread
/// wake-ups to pay for (the benchmark's pinned worker).
fn runtime_with(workers: Option<usize>) -> Option<tokio::runtime::Runtime> {
    let mut b = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    match b.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("deskgate: cannot start the runtime: {e}");
            None
        }
    }
}

fn load(path: &Path) -> Option<Deployment> {
    match deskgate_config::load(path) {
        Ok(d) => Some(d),
        Err(e) => {
            for p in &e.problems {
                eprintln!("deskgate: [emerg] {p}");
            }
            None
        }
    }
}

fn print_summary(d: &Deployment) {
    for side in [Side::A, Side::B] {
        for l in d.listeners_of(side) {
            println!(
                "side {}: listener {} on {} (external port {}), {} certificate(s), {} route(s)",
                side.as_str(),
                l.name,
                l.bind,
                l.external_port,
                l.certs.len(),
                l.routes.len()
            );
            let mut routes: Vec<_> = l.routes.iter().collect();
            routes.sort_by(|a, b| a.0.cmp(b.0));
            for (host, r) in routes {
                println!(
                    "  {host}:{} -> {} {} {}:{}",
                    l.external_port,
                    r.component.kind.as_str(),
                    r.component.name,
                    r.node.internal_host,
                    r.node.internal_port
                );
            }
        }
        if let Some(i) = d.internal_of(side) {
            println!(
                "side {}: internal listener (proxy map) on {}",
                side.as_str(),
                i.bind
            );
        }
    }
    println!(
        "{} component(s), {} node(s)",
        d.components.len(),
        d.nodes().count()
    );
    let sec = &d.security;
    for c in &d.components {
        let auth = match c.security.auth {
            deskgate_config::AuthMode::Finesse => {
                format!("credentials checked by {}", sec.check_target(&c.security))
            }
            deskgate_config::AuthMode::None => "no credentials (sign-in flow)".to_string(),
        };
        println!(
            "component {}: {auth}; {} r/s burst {}, {} in flight per user, {} unauthenticated pattern(s)",
            c.name,
            c.security.rate.per_second,
            c.security.rate.burst,
            c.security.in_flight,
            c.security.unauthenticated.len()
        );
        if c.security.auth == deskgate_config::AuthMode::Finesse
            && c.security.unauthenticated.is_empty()
            && c.kind != deskgate_config::kinds::Kind::Chat
        {
            println!(
                "  note: every request to {} needs a credential, static files too; list its static paths with unauthenticated = [\"/path/**/*.js\", ...] if browsers or Finesse load them before sign-in",
                c.name
            );
        }
    }
    let w = &sec.websocket;
    let on = |b: bool| if b { "on" } else { "off" };
    println!(
        "websocket gate: ip {}, subprotocol {}, cookie {}; brute force: {} failures in {:?} block for {:?}, {} users block the IP; sso: {}",
        on(w.ip_window.is_some()),
        on(w.subprotocol),
        on(w.cookie_ttl.is_some()),
        sec.brute_force.failures,
        sec.brute_force.window,
        sec.brute_force.block,
        sec.brute_force.spray_users,
        sec.sso.as_ref().map_or("off".to_string(), |s| s.algorithm.clone()),
    );
}

async fn run(d: Arc<Deployment>, side: Side) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int, mut usr1) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) {
        (Ok(t), Ok(i), Ok(u)) => (t, i, u),
        _ => {
            eprintln!("deskgate: cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let running = match deskgate_proxy::start(d, side).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("deskgate: [emerg] {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(side = side.as_str(), "deskgate ready");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reopening the access log");
                running.reopen_logs();
            }
        }
    }
    tracing::info!(open = running.open_connections(), "draining");
    running.shutdown().await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
