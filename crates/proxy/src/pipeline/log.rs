//! Stage 12: the access log, exactly once per request whatever the outcome.
//!
//! A `LogGuard` is made when a request arrives and travels with it; the
//! line is written when the guard drops: after the response body ends, when
//! the client goes away mid-answer, or when the request future is
//! cancelled (status 499, as nginx logs it). Lines are JSON, written by a
//! dedicated thread so the request path never waits on the disk; SIGUSR1
//! reopens the file (logrotate). No secrets: no query strings, no headers
//! but the host.

use crate::body::OnFinish;
use crate::listen::activity::InFlight;
pub use crate::logwriter::LineWriter as AccessLog;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The request path as logged: segment parameters (`;jsessionid=...` carries
/// a session) are replaced by `;-`, so attacks stay visible and secrets do not.
pub fn loggable_path(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, seg) in raw.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match seg.split_once(';') {
            Some((name, _)) => {
                out.push_str(name);
                out.push_str(";-");
            }
            None => out.push_str(seg),
        }
    }
    truncated(&out)
}

/// At most 1 KiB of client-supplied text, cut on a character boundary.
pub fn truncated(s: &str) -> String {
    let mut end = s.len().min(1024);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The fields of one access log line, filled in as the request goes.
#[derive(Debug, Default)]
pub struct Record {
    pub request_id: String,
    pub listener: String,
    pub peer: Option<IpAddr>,
    pub client_ip: Option<IpAddr>,
    pub user: Option<String>,
    pub host: Option<String>,
    pub upstream: Option<String>,
    pub method: String,
    pub path: String,
    pub proto: &'static str,
    pub status: u16,
    pub deny: Option<&'static str>,
    /// Time to connect to the node: 0 on a reused pooled connection.
    pub upstream_connect_ms: Option<u64>,
    pub upstream_header_ms: Option<u64>,
    pub cache: &'static str,
}

/// Writes the record when dropped. One per request.
pub struct LogGuard {
    pub record: Record,
    started: Instant,
    bytes: u64,
    completed: bool,
    log: Arc<AccessLog>,
    /// Released when the request is over (connection keep-alive accounting).
    _in_flight: Option<InFlight>,
}

impl LogGuard {
    pub fn new(log: Arc<AccessLog>, record: Record, in_flight: Option<InFlight>) -> Self {
        LogGuard {
            record,
            started: Instant::now(),
            bytes: 0,
            completed: false,
            log,
            _in_flight: in_flight,
        }
    }

    /// For answers without a body to stream (rejections before the pipeline).
    pub fn mark_complete(&mut self) {
        self.completed = true;
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn line(&self) -> String {
        let r = &self.record;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut v = serde_json::json!({
            "ts": format!("{}.{:03}", now.as_secs(), now.subsec_millis()),
            "id": r.request_id,
            "listener": r.listener,
            "client": r.client_ip.map(|i| i.to_string()),
            "peer": r.peer.map(|i| i.to_string()),
            "user": r.user,
            "host": r.host,
            "upstream": r.upstream,
            "method": r.method,
            "path": r.path,
            "proto": r.proto,
            "status": if r.status == 0 { 499 } else { r.status },
            "bytes": self.bytes,
            "ms": self.elapsed_ms(),
            "upstream_connect_ms": r.upstream_connect_ms,
            "upstream_header_ms": r.upstream_header_ms,
            "cache": r.cache,
        });
        if let Some(d) = r.deny {
            v["deny"] = serde_json::Value::from(d);
        }
        if r.status != 0 && !self.completed {
            v["incomplete"] = serde_json::Value::from(true);
        }
        let mut s = v.to_string();
        s.push('\n');
        s
    }
}

impl OnFinish for LogGuard {
    fn finish(mut self: Box<Self>, bytes: u64, completed: bool) {
        self.bytes = bytes;
        self.completed = completed;
        // drop writes the line
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let line = self.line();
        self.log.write(line);
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn session_parameters_are_not_logged() {
        assert_eq!(
            loggable_path("/desktop/app.js;jsessionid=SECRET"),
            "/desktop/app.js;-"
        );
        assert_eq!(
            loggable_path("/desktop/..;/cfadmin"),
            "/desktop/..;-/cfadmin"
        );
        assert_eq!(loggable_path("/plain/path"), "/plain/path");
        assert!(loggable_path(&"/a".repeat(2000)).len() <= 1024);
    }
}
