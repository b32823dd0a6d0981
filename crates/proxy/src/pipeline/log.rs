//! Stage 12: the access log, exactly once per request whatever the outcome.
//!
//! A `LogGuard` is made when a request arrives and travels with it; the
//! line is written when the guard drops: after the response body ends, when
//! the client goes away mid-answer, or when the request future is
//! cancelled (status 499, as nginx logs it). Lines are JSON, written by a
//! dedicated thread so the request path never waits on the disk; SIGUSR1
//! reopens the file (logrotate). No secrets: no query strings, no headers
//! but the host.

use crate::ascii::{self, push_u64};
use crate::body::OnFinish;
use crate::listen::activity::InFlight;
pub use crate::logwriter::LineWriter as AccessLog;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The request path as logged: segment parameters (`;jsessionid=...` carries
/// a session) are replaced by `;-`, so attacks stay visible and secrets do not.
pub fn loggable_path(raw: &str) -> String {
    if !raw.as_bytes().contains(&b';') {
        return truncated(raw);
    }
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
    pub listener: Arc<str>,
    pub peer: Option<IpAddr>,
    pub client_ip: Option<IpAddr>,
    pub user: Option<Arc<str>>,
    pub host: Option<String>,
    /// `component/internal-host:port`, made once per node.
    pub upstream: Option<Arc<str>>,
    pub method: http::Method,
    /// `false` for rejections before a request was read (logged as `-`).
    pub method_known: bool,
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

    /// The JSON line, written field by field into one buffer (no map, no
    /// intermediate values: this runs for every request).
    #[cfg(test)]
    fn line(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_line(&mut out);
        out
    }

    fn write_line(&self, out: &mut Vec<u8>) {
        let r = &self.record;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        out.extend_from_slice(b"{\"ts\":\"");
        push_u64(out, now.as_secs());
        let ms = u64::from(now.subsec_millis());
        out.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'"',
        ]);
        let field = |out: &mut Vec<u8>, k: &str, v: Option<&str>| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"\":");
            match v {
                Some(v) => ascii::push_json_str(out, v),
                None => out.extend_from_slice(b"null"),
            }
        };
        let ip_field = |out: &mut Vec<u8>, k: &[u8], v: Option<IpAddr>| {
            out.extend_from_slice(k);
            match v {
                Some(ip) => {
                    out.push(b'"');
                    ascii::push_ip(out, ip);
                    out.push(b'"');
                }
                None => out.extend_from_slice(b"null"),
            }
        };
        field(out, "id", Some(&r.request_id));
        field(out, "listener", Some(&r.listener));
        ip_field(out, b",\"client\":", r.client_ip);
        ip_field(out, b",\"peer\":", r.peer);
        field(out, "user", r.user.as_deref());
        field(out, "host", r.host.as_deref());
        field(out, "upstream", r.upstream.as_deref());
        field(
            out,
            "method",
            Some(if r.method_known {
                r.method.as_str()
            } else {
                "-"
            }),
        );
        field(out, "path", Some(&r.path));
        field(out, "proto", Some(r.proto));
        let status = if r.status == 0 { 499 } else { r.status };
        for (k, v) in [
            (&b",\"status\":"[..], Some(u64::from(status))),
            (b",\"bytes\":", Some(self.bytes)),
            (b",\"ms\":", Some(self.elapsed_ms())),
            (b",\"upstream_connect_ms\":", r.upstream_connect_ms),
            (b",\"upstream_header_ms\":", r.upstream_header_ms),
        ] {
            out.extend_from_slice(k);
            match v {
                Some(n) => push_u64(out, n),
                None => out.extend_from_slice(b"null"),
            }
        }
        field(out, "cache", Some(r.cache));
        if let Some(d) = r.deny {
            field(out, "deny", Some(d));
        }
        if r.status != 0 && !self.completed {
            out.extend_from_slice(b",\"incomplete\":true");
        }
        out.extend_from_slice(b"}\n");
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
        thread_local! {
            // one line's buffer per worker thread, reused
            static LINE: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
        }
        let write = |buf: &mut Vec<u8>| {
            buf.clear();
            self.write_line(buf);
            self.log.write_bytes(buf);
        };
        LINE.with(|b| match b.try_borrow_mut() {
            Ok(mut buf) => write(&mut buf),
            // a line written while another is (cannot happen today): its own buffer
            Err(_) => write(&mut Vec::new()),
        });
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

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let log = AccessLog::start(crate::logwriter::Sink::Stdout, "test-access").expect("log");
        let mut g = LogGuard::new(
            log,
            Record {
                request_id: "abc".into(),
                listener: "front".into(),
                peer: Some("127.0.0.1".parse().expect("ip")),
                client_ip: Some("2001:db8::1".parse().expect("ip")),
                user: Some("10\"01\n".into()),
                method: http::Method::GET,
                method_known: true,
                path: "/desktop/\u{7f}x".into(),
                proto: "h2",
                status: 200,
                deny: Some("rate_limited"),
                upstream_header_ms: Some(3),
                cache: "hit",
                ..Default::default()
            },
            None,
        );
        g.bytes = 12;
        let line = g.line();
        g.mark_complete();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["user"], "10\"01\n");
        assert_eq!(v["client"], "2001:db8::1");
        assert_eq!(v["host"], serde_json::Value::Null);
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 12);
        assert_eq!(v["upstream_header_ms"], 3);
        assert_eq!(v["upstream_connect_ms"], serde_json::Value::Null);
        assert_eq!(v["cache"], "hit");
        assert_eq!(v["deny"], "rate_limited");
        assert_eq!(v["incomplete"], true);
    }
}
