//! The log writer thread shared by the access and the security log.
//!
//! The request path hands a finished line to a channel and never waits on
//! the disk. Whole lines only reach the file, in O_APPEND writes that end at
//! a line boundary (one write call per batch of up to 64 KiB plus a line):
//! two writers appending to one file (both sides of `deskgate demo`, or an
//! old and a new process during a restart) do not split each other's lines.
//! SIGUSR1 reopens the file (logrotate, fail2ban). A syslog sink sends one
//! datagram per line.

use deskgate_config::{LogTarget, SecurityLogTarget};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

enum Msg {
    Line(String),
    Reopen,
}

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

/// Lines are gathered up to this many bytes before one write.
const BATCH: usize = 64 * 1024;

/// Lines queued for the writer at most. A disk or syslog that cannot keep
/// up loses lines (counted, and said so in the log) instead of memory
/// growing without bound under a flood.
const QUEUE: usize = 100_000;

/// Handle to one writer thread.
pub struct LineWriter {
    tx: mpsc::SyncSender<Msg>,
    dropped: std::sync::atomic::AtomicU64,
    reopen_due: std::sync::atomic::AtomicBool,
}

impl LineWriter {
    /// Starts the writer. A sink that cannot be opened is an error at start.
    pub fn start(sink: impl Into<Sink>, name: &str) -> std::io::Result<Arc<LineWriter>> {
        let sink = sink.into();
        let mut out = open(&sink)?;
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let what = name.to_string();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    while let Some(msg) = next.take() {
                        match msg {
                            Msg::Line(l) => {
                                batch.extend_from_slice(l.as_bytes());
                                if batch.len() >= BATCH {
                                    let _ = out.write_all(&batch);
                                    batch.clear();
                                }
                            }
                            Msg::Reopen => {
                                let _ = out.write_all(&batch);
                                batch.clear();
                                let _ = out.flush();
                                match open(&sink) {
                                    Ok(o) => out = o,
                                    Err(e) => tracing::error!("cannot reopen the {what}: {e}"),
                                }
                            }
                        }
                        next = rx.try_recv().ok();
                    }
                    let _ = out.write_all(&batch);
                    batch.clear();
                    let _ = out.flush();
                }
            })?;
        Ok(Arc::new(LineWriter {
            tx,
            dropped: std::sync::atomic::AtomicU64::new(0),
            reopen_due: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Reopens the log file (SIGUSR1). Never waits: with the queue full
    /// (a stuck disk) the signal handler must still be free for SIGTERM;
    /// the reopen is then retried with the next line written.
    pub fn reopen(&self) {
        use std::sync::atomic::Ordering;
        if self.tx.try_send(Msg::Reopen).is_err() {
            self.reopen_due.store(true, Ordering::Relaxed);
        }
    }

    /// Queues one line (ending in a newline); never waits.
    pub fn write(&self, line: String) {
        use std::sync::atomic::Ordering;
        if self.reopen_due.swap(false, Ordering::Relaxed) && self.tx.try_send(Msg::Reopen).is_err()
        {
            self.reopen_due.store(true, Ordering::Relaxed);
        }
        if self.tx.try_send(Msg::Line(line)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note = format!("{{\"log\":\"deskgate\",\"lines_dropped\":{lost}}}\n");
            if self.tx.try_send(Msg::Line(note)).is_err() {
                self.dropped.fetch_add(lost, Ordering::Relaxed);
            }
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
