//! `deskgate-loadgen`: the agent model of `../shared/LOAD-MODEL.md`, for
//! `bench/`. Each agent signs in like a desktop (the page, about a hundred
//! static files and twenty REST calls with its Basic credential, then an
//! XMPP session over a WebSocket), then stays: an XMPP ping every 10 s and
//! a REST call every one to two minutes. Agents come from one 127.x source
//! address per `--per-ip` agents, as desktops behind NATs do.
//!
//! `agents` plays N agents (their logins spread over `--login-window`, the
//! storm) and keeps them for `--duration` (steady state), then prints one
//! JSON object: login, ping and REST latency percentiles, and errors.
//! `ws-idle` opens N WebSockets through the proxy and holds them idle until
//! stdin closes (the harness reads the proxy's RSS meanwhile).

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(name = "deskgate-loadgen", about = "Agents for deskgate's benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// Where the proxy listens.
    #[arg(long)]
    connect: SocketAddr,
    /// The external host:port (Host header, SNI and certificate name).
    #[arg(long)]
    host: String,
    /// CA certificate (PEM) the proxy's certificate chains to.
    #[arg(long)]
    ca: std::path::PathBuf,
    /// First agent id; agents are consecutive ids.
    #[arg(long, default_value_t = 1001)]
    first: u32,
    #[arg(long, default_value = "deskgate-demo")]
    password: String,
    /// Agents (or sockets) per client source address.
    #[arg(long, default_value_t = 50)]
    per_ip: u32,
    /// Source addresses are 127.<ip-net>.x.y.
    #[arg(long, default_value_t = 77)]
    ip_net: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Sign N agents in within --login-window seconds, keep them --duration seconds.
    Agents {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        agents: u32,
        #[arg(long, default_value_t = 60)]
        login_window: u64,
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Static files per login.
        #[arg(long, default_value_t = 100)]
        statics: u32,
        /// REST calls per login.
        #[arg(long, default_value_t = 20)]
        rest: u32,
        #[arg(long, default_value = "cc.deskgate.test")]
        domain: String,
    },
    /// Open N idle WebSockets through the proxy; hold them until stdin closes.
    WsIdle {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        count: u32,
    },
}

/// Latencies and errors, shared by every agent.
#[derive(Default)]
struct Stats {
    login_ms: Vec<f64>,
    ping_ms: Vec<f64>,
    rest_ms: Vec<f64>,
    requests: u64,
    errors: BTreeMap<String, u64>,
}

type Shared = Arc<Mutex<Stats>>;

fn error(stats: &Shared, what: &str) {
    if let Ok(mut s) = stats.lock() {
        *s.errors.entry(what.to_string()).or_default() += 1;
    }
}

struct Net {
    target: Target,
    tls: TlsConnector,
    name: ServerName<'static>,
}

impl Net {
    fn new(target: Target) -> Result<Net, String> {
        let pem = std::fs::read(&target.ca).map_err(|e| format!("{}: {e}", target.ca.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let c: rustls_pki_types::CertificateDer = c.map_err(|e| e.to_string())?;
            roots.add(c).map_err(|e| e.to_string())?;
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let host = target.host.split(':').next().unwrap_or("").to_string();
        let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
        Ok(Net {
            target,
            tls: TlsConnector::from(Arc::new(cfg)),
            name,
        })
    }

    /// The source address of agent (or socket) number `i`.
    fn source(&self, i: u32) -> IpAddr {
        let n = i / self.target.per_ip.max(1);
        IpAddr::V4(Ipv4Addr::new(
            127,
            self.target.ip_net,
            (n / 250) as u8,
            (n % 250 + 1) as u8,
        ))
    }

    async fn connect(&self, from: IpAddr) -> std::io::Result<TlsStream<TcpStream>> {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::new(from, 0))?;
        let tcp = sock.connect(self.target.connect).await?;
        tcp.set_nodelay(true)?;
        self.tls.connect(self.name.clone(), tcp).await
    }

    fn basic(&self, id: u32) -> String {
        let raw = format!("{id}:{}", self.target.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// An HTTP/1.1 keep-alive connection, reopened when the server closes it.
struct Http {
    send: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    from: IpAddr,
    /// The session cookie the proxy set, as a browser keeps it (`name=value`).
    cookie: Option<String>,
}

impl Http {
    fn new(from: IpAddr) -> Http {
        Http {
            send: None,
            from,
            cookie: None,
        }
    }

    async fn get(&mut self, net: &Net, path: &str, auth: Option<&str>) -> Result<u16, String> {
        for attempt in 0..2 {
            if self.send.as_ref().is_none_or(|s| s.is_closed()) {
                let tls = net
                    .connect(self.from)
                    .await
                    .map_err(|e| format!("connect: {}", e.kind()))?;
                let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|_| "handshake".to_string())?;
                tokio::spawn(conn);
                self.send = Some(send);
            }
            let Some(send) = self.send.as_mut() else {
                continue;
            };
            if send.ready().await.is_err() {
                self.send = None;
                continue;
            }
            let mut req = http::Request::get(path).header("host", &net.target.host);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if let Some(c) = &self.cookie {
                req = req.header("cookie", c);
            }
            let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
            match send.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if let Some(c) = resp
                        .headers()
                        .get_all("set-cookie")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .filter_map(|v| v.split(';').next())
                        .find(|c| c.starts_with("__Host-deskgate-session="))
                    {
                        self.cookie = Some(c.to_string());
                    }
                    let close = resp
                        .headers()
                        .get("connection")
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                    resp.into_body()
                        .collect()
                        .await
                        .map_err(|_| "body".to_string())?;
                    if close {
                        self.send = None;
                    }
                    return Ok(status);
                }
                // a keep-alive connection the server closed as we sent: once more
                Err(_) if attempt == 0 => self.send = None,
                Err(e) => return Err(format!("request: {e}")),
            }
        }
        Err("request".into())
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

const STATICS: [&str; 3] = [
    "/desktop/js/desktop.js",
    "/desktop/css/desktop.css",
    "/desktop/img/logo.svg",
];
const REST: [&str; 3] = [
    "/finesse/api/User/{id}",
    "/finesse/api/SystemInfo",
    "/finesse/api/User/{id}",
];

struct Plan {
    statics: u32,
    rest: u32,
    domain: String,
    steady_until: Instant,
}

/// One desktop: sign in, then stay until the end of the run.
async fn agent(net: Arc<Net>, plan: Arc<Plan>, stats: Shared, index: u32, start_at: Instant) {
    tokio::time::sleep_until(start_at.into()).await;
    let id = net.target.first + index;
    let from = net.source(index);
    let auth = net.basic(id);
    let t0 = Instant::now();
    let mut http = Http::new(from);
    let mut count = 0u64;
    let check = |r: Result<u16, String>, what: &str| -> bool {
        match r {
            Ok(200) | Ok(304) => true,
            Ok(s) => {
                error(&stats, &format!("{what} {s}"));
                false
            }
            Err(e) => {
                error(&stats, &format!("{what} {e}"));
                false
            }
        }
    };
    if !check(http.get(&net, "/desktop/", None).await, "page") {
        return;
    }
    count += 1;
    for i in 0..plan.statics {
        // a hundred different files: the same three, each under its version
        let path = format!("{}?v={}", STATICS[i as usize % STATICS.len()], i / 3);
        if !check(http.get(&net, &path, None).await, "static") {
            return;
        }
        count += 1;
    }
    for i in 0..plan.rest {
        let path = REST[i as usize % REST.len()].replace("{id}", &id.to_string());
        let t = Instant::now();
        if !check(http.get(&net, &path, Some(&auth)).await, "rest") {
            return;
        }
        count += 1;
        if let Ok(mut s) = stats.lock() {
            s.rest_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // the notification WebSocket: the gate knows this address signed in
    let cookie = http.cookie.clone();
    let mut ws = match xmpp_login(&net, &plan.domain, from, cookie.as_deref(), id).await {
        Ok(ws) => ws,
        Err(e) => {
            error(&stats, &format!("xmpp {e}"));
            return;
        }
    };
    if let Ok(mut s) = stats.lock() {
        s.login_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        s.requests += count + 1;
    }
    // steady state: pings every 10 s, a REST call every 60 to 120 s
    let jitter = |n: u64| Duration::from_millis((id as u64 * 7919) % n);
    let mut next_ping = Instant::now() + jitter(10_000);
    let mut next_rest = Instant::now() + Duration::from_secs(60) + jitter(60_000);
    let mut ping = 0u32;
    loop {
        let next = next_ping.min(next_rest);
        if next >= plan.steady_until {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        if Instant::now() >= next_ping {
            ping += 1;
            let pid = format!("p{ping}");
            let t = Instant::now();
            let stanza = format!(
                r#"<iq xmlns="jabber:client" type="get" id="{pid}" to="{}"><ping xmlns="urn:xmpp:ping"/></iq>"#,
                plan.domain
            );
            if ws.send(Message::Text(stanza)).await.is_err() {
                error(&stats, "ping send");
                return;
            }
            match wait_for(&mut ws, &format!("id=\"{pid}\""), Duration::from_secs(10)).await {
                Ok(_) => {
                    if let Ok(mut s) = stats.lock() {
                        s.ping_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                Err(e) => {
                    error(&stats, &format!("ping {e}"));
                    return;
                }
            }
            next_ping += Duration::from_secs(10);
        }
        if Instant::now() >= next_rest {
            let t = Instant::now();
            let path = format!("/finesse/api/User/{id}");
            if !check(http.get(&net, &path, Some(&auth)).await, "steady rest") {
                return;
            }
            if let Ok(mut s) = stats.lock() {
                s.rest_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                s.requests += 1;
            }
            next_rest += Duration::from_secs(60) + jitter(60_000);
        }
    }
    let _ = ws.close(None).await;
}

type Ws = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

async fn upgrade(net: &Net, from: IpAddr, cookie: Option<&str>) -> Result<Ws, String> {
    let tls = net
        .connect(from)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let mut req = format!("wss://{}/ws/", net.target.host)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static("xmpp"),
    );
    if let Some(c) = cookie.and_then(|c| http::HeaderValue::from_str(c).ok()) {
        req.headers_mut().insert("cookie", c);
    }
    let (ws, resp) = tokio_tungstenite::client_async(req, tls)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(format!("upgrade {}", resp.status()));
    }
    Ok(ws)
}

/// Frames until one contains `marker`.
async fn wait_for(ws: &mut Ws, marker: &str, limit: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "timeout".to_string())?;
        match msg {
            Some(Ok(Message::Text(t))) if t.contains(marker) => return Ok(t.to_string()),
            Some(Ok(Message::Text(t))) if t.contains("stream:error") || t.contains("<failure") => {
                return Err("refused".into())
            }
            Some(Ok(Message::Close(_))) | None => return Err("closed".into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("ws: {e}")),
        }
    }
}

/// SASL PLAIN, bind and presence, as the desktop's XMPP client does.
async fn xmpp_login(
    net: &Net,
    domain: &str,
    from: IpAddr,
    cookie: Option<&str>,
    id: u32,
) -> Result<Ws, String> {
    let mut ws = upgrade(net, from, cookie).await?;
    let open = format!(
        r#"<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="{domain}" version="1.0"/>"#
    );
    let limit = Duration::from_secs(30);
    ws.send(Message::Text(open.clone()))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(&mut ws, "mechanisms", limit).await?;
    let plain = base64::engine::general_purpose::STANDARD
        .encode(format!("\0{id}\0{}", net.target.password));
    ws.send(Message::Text(format!(
        r#"<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">{plain}</auth>"#
    )))
    .await
    .map_err(|e| e.to_string())?;
    wait_for(&mut ws, "<success", limit).await?;
    ws.send(Message::Text(open))
        .await
        .map_err(|e| e.to_string())?;
    wait_for(&mut ws, "urn:ietf:params:xml:ns:xmpp-bind", limit).await?;
    ws.send(Message::Text(
        r#"<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>desktop</resource></bind></iq>"#.into(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    wait_for(&mut ws, "id=\"bind1\"", limit).await?;
    ws.send(Message::Text(r#"<presence xmlns="jabber:client"/>"#.into()))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn run_agents(
    net: Net,
    agents: u32,
    window: u64,
    duration: u64,
    plan: Plan,
) -> serde_json::Value {
    let net = Arc::new(net);
    let stats: Shared = Arc::default();
    let start = Instant::now() + Duration::from_millis(200);
    let plan = Arc::new(Plan {
        steady_until: start + Duration::from_secs(window + duration),
        ..plan
    });
    let mut tasks = Vec::with_capacity(agents as usize);
    for i in 0..agents {
        // logins spread evenly over the window
        let at = start + Duration::from_secs_f64(window as f64 * i as f64 / agents.max(1) as f64);
        tasks.push(tokio::spawn(agent(
            net.clone(),
            plan.clone(),
            stats.clone(),
            i,
            at,
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
    let took = start.elapsed().as_secs_f64();
    let mut s = match stats.lock() {
        Ok(mut s) => std::mem::take(&mut *s),
        Err(_) => Stats::default(),
    };
    let errors: u64 = s.errors.values().sum();
    serde_json::json!({
        "agents": agents,
        "login_window_s": window,
        "steady_s": duration,
        "logins_ok": s.login_ms.len(),
        "login_p50_ms": pct(&mut s.login_ms, 0.5),
        "login_p99_ms": pct(&mut s.login_ms, 0.99),
        "pings": s.ping_ms.len(),
        "ping_p50_ms": pct(&mut s.ping_ms, 0.5),
        "ping_p99_ms": pct(&mut s.ping_ms, 0.99),
        "rest_p50_ms": pct(&mut s.rest_ms, 0.5),
        "rest_p99_ms": pct(&mut s.rest_ms, 0.99),
        "requests": s.requests,
        "errors": errors,
        "error_kinds": s.errors,
        "took_s": took,
    })
}

async fn run_ws_idle(net: Net, count: u32) -> Result<(), String> {
    let net = Arc::new(net);
    // each socket is another agent's: a REST call first (its session
    // cookie is the gate's proof, as a browser's is), then the upgrade
    let mut held = Vec::with_capacity(count as usize);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..count {
        let net = net.clone();
        set.spawn(async move {
            let from = net.source(i);
            let id = net.target.first + i;
            let mut http = Http::new(from);
            let path = format!("/finesse/api/User/{id}");
            let s = http.get(&net, &path, Some(&net.basic(id))).await?;
            if s != 200 {
                return Err(format!("sign-in of {id} from {from} got {s}"));
            }
            upgrade(&net, from, http.cookie.as_deref()).await
        });
        // at most 64 at a time
        while set.len() >= 64 {
            if let Some(r) = set.join_next().await {
                held.push(r.map_err(|e| e.to_string())??);
            }
        }
    }
    while let Some(r) = set.join_next().await {
        held.push(r.map_err(|e| e.to_string())??);
    }
    println!("ready {}", held.len());
    // hold until the harness closes stdin
    let mut buf = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut buf)).await;
    drop(held);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("deskgate-loadgen: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Agents {
                target,
                agents,
                login_window,
                duration,
                statics,
                rest,
                domain,
            } => {
                let net = Net::new(target)?;
                let plan = Plan {
                    statics,
                    rest,
                    domain,
                    steady_until: Instant::now(),
                };
                let v = run_agents(net, agents, login_window, duration, plan).await;
                println!("{v}");
                Ok(())
            }
            Command::WsIdle { target, count } => run_ws_idle(Net::new(target)?, count).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("deskgate-loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
