//! The log writer thread shared by the access and the security log.
//!
//! The request path appends a finished line to a shared buffer and never
//! waits on the disk. The writer thread takes the whole buffer every
//! [`FLUSH_EVERY`] (or as soon as [`BATCH`] bytes wait), like nginx's
//! `access_log ... buffer=64k flush=1s`: one wake-up and one write per
//! batch, not per request. Whole lines only reach the file, in O_APPEND
//! writes that end at a line boundary: two writers appending to one file
//! (both sides of `deskgate demo`, or an old and a new process during a
//! restart) do not split each other's lines. SIGUSR1 reopens the file
//! (logrotate, fail2ban). A syslog sink sends one datagram per line.

use deskgate_config::{LogTarget, SecurityLogTarget};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where lines go.
#[derive(Clone, Debug)]
pub enum Sink {
    Stdout,
    File(PathBuf),
    /// A syslog datagram socket, e.g. `/dev/log`.
    Syslog(PathBuf),
}

impl From<LogTarget> for Sink {
    fn from(t: LogTarget) -> Sink {
        match t {
            LogTarget::Stdout => Sink::Stdout,
            LogTarget::File(p) => Sink::File(p),
        }
    }
}

impl From<SecurityLogTarget> for Sink {
    fn from(t: SecurityLogTarget) -> Sink {
        match t {
            SecurityLogTarget::Stdout => Sink::Stdout,
            SecurityLogTarget::File(p) => Sink::File(p),
            SecurityLogTarget::Syslog(p) => Sink::Syslog(p),
        }
    }
}

/// The writer is woken early once this many bytes wait.
const BATCH: usize = 64 * 1024;

/// Lines wait at most this long before they are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Bytes queued for the writer at most. A disk or syslog that cannot keep
/// up loses lines (counted, and said so in the log) instead of memory
/// growing without bound under a flood.
const QUEUE_BYTES: usize = 32 * 1024 * 1024;

struct Shared {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    reopen_due: AtomicBool,
    closed: AtomicBool,
}

/// Handle to one writer thread. Dropping it writes what is left.
pub struct LineWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LineWriter {
    /// Starts the writer. A sink that cannot be opened is an error at start.
    pub fn start(sink: impl Into<Sink>, name: &str) -> std::io::Result<Arc<LineWriter>> {
        let sink = sink.into();
        let mut out = open(&sink)?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(BATCH)),
            dropped: AtomicU64::new(0),
            reopen_due: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let st = shared.clone();
        let what = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
                loop {
                    std::thread::park_timeout(FLUSH_EVERY);
                    let closing = st.closed.load(Ordering::Acquire);
                    if let Ok(mut p) = st.pending.lock() {
                        // the full buffer is taken, the empty one given back
                        std::mem::swap(&mut *p, &mut batch);
                    }
                    let lost = st.dropped.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let note = format!("{{\"log\":\"deskgate\",\"lines_dropped\":{lost}}}\n");
                        batch.extend_from_slice(note.as_bytes());
                    }
                    if !batch.is_empty() {
                        let _ = out.write_all(&batch);
                        let _ = out.flush();
                        batch.clear();
                        if batch.capacity() > 4 * BATCH {
                            batch.shrink_to(BATCH);
                        }
                    }
                    if st.reopen_due.swap(false, Ordering::AcqRel) {
                        match open(&sink) {
                            Ok(o) => out = o,
                            Err(e) => tracing::error!("cannot reopen the {what}: {e}"),
                        }
                    }
                    if closing {
                        return;
                    }
                }
            })?;
        Ok(Arc::new(LineWriter {
            shared,
            thread: Mutex::new(Some(thread)),
        }))
    }

    fn wake(&self) {
        if let Ok(t) = self.thread.lock() {
            if let Some(t) = t.as_ref() {
                t.thread().unpark();
            }
        }
    }

    /// Reopens the log file (SIGUSR1), after writing what waits. Never
    /// waits itself: the signal handler stays free for SIGTERM.
    pub fn reopen(&self) {
        self.shared.reopen_due.store(true, Ordering::Release);
        self.wake();
    }

    /// Queues one line (ending in a newline); never waits on the disk.
    pub fn write(&self, line: String) {
        self.write_bytes(line.as_bytes());
    }

    /// Queues bytes that end at a line boundary.
    pub fn write_bytes(&self, line: &[u8]) {
        let Ok(mut p) = self.shared.pending.lock() else {
            return;
        };
        if p.len() + line.len() > QUEUE_BYTES {
            drop(p);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        p.extend_from_slice(line);
        let full = p.len() >= BATCH;
        drop(p);
        if full {
            self.wake();
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        let t = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = t {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn open(sink: &Sink) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(match sink {
        Sink::Stdout => Box::new(std::io::stdout()),
        Sink::File(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        Sink::Syslog(p) => {
            let sock = UnixDatagram::unbound()?;
            sock.connect(p)?;
            Box::new(Syslog { sock })
        }
    })
}

/// RFC 3164 framing, facility authpriv (10), severity notice (5): one
/// datagram per line; a full or absent syslog loses lines, never blocks.
struct Syslog {
    sock: UnixDatagram,
}

impl Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let mut msg = format!("<85>deskgate[{}]: ", std::process::id()).into_bytes();
            msg.extend_from_slice(line);
            let _ = self.sock.send(&msg);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_gets_one_datagram_per_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("log.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let w = LineWriter::start(Sink::Syslog(path), "test-log").expect("start");
        w.write("{\"a\":1}\n".into());
        w.write("{\"b\":2}\n".into());
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        for _ in 0..2 {
            let n = server.recv(&mut buf).expect("recv");
            got.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
        assert!(got[0].starts_with("<85>deskgate["), "{got:?}");
        assert!(got[0].ends_with("]: {\"a\":1}"), "{got:?}");
        assert!(got[1].ends_with("]: {\"b\":2}"), "{got:?}");
    }
}
