//! Test harness: certificates made at test time, TLS clients that can send
//! anything, mock upstreams that misbehave on purpose, real nginx and
//! Prosody on loopback, and deskgate itself on port 0.
#![forbid(unsafe_code)]

pub mod client;
pub mod deskgate;
pub mod edge;
pub mod h2raw;
pub mod js;
pub mod mock;
pub mod nginx;
pub mod pki;
pub mod prosody;
pub mod sim;

/// A port that was free a moment ago, for servers that cannot bind port 0
/// and report it (nginx, Prosody). deskgate itself always binds port 0.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A server process a test started; stopped by its PID (SIGTERM) when dropped.
pub struct Process {
    child: std::process::Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGTERM by PID: nginx's master stops its workers, Prosody exits cleanly
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` and waits (readiness, not sleep) until it accepts on `addr`.
/// `None` if it exited or did not listen in time: the caller retries on another port.
pub async fn spawn_listening(
    cmd: &mut std::process::Command,
    addr: std::net::SocketAddr,
) -> Option<Process> {
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn server");
    let mut p = Process { child };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Some(p);
        }
        if let Ok(Some(_)) = p.child.try_wait() {
            return None; // port taken meanwhile, or a bad config
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Finds a program on PATH; tests that need it say loudly when it is missing.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([
            std::path::PathBuf::from("/usr/sbin"),
            std::path::PathBuf::from("/sbin"),
        ])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The external tools the real-peer tests need: when missing, the test fails
/// with this message unless DESKGATE_ALLOW_MISSING_TOOLS=1 (never in CI).
pub fn require(program: &str) -> Option<std::path::PathBuf> {
    match which(program) {
        Some(p) => Some(p),
        None if std::env::var("DESKGATE_ALLOW_MISSING_TOOLS").as_deref() == Ok("1") => {
            eprintln!("SKIPPED LOUDLY: {program} is not installed (run .ci/install-test-tools)");
            None
        }
        None => panic!("{program} is not installed: run .ci/install-test-tools (or set DESKGATE_ALLOW_MISSING_TOOLS=1 to skip)"),
    }
}
