//! Stage 12, security half: one structured line per auth failure, block,
//! unblock, rate-limit or in-flight rejection, connection-cap closure and
//! WebSocket denial (SPEC 10). Each line names the client IP, the user
//! (never a password or token), the route and the reason; fail2ban reads
//! the `message` of whole-IP blocks. Lines go to their own file (reopened
//! on SIGUSR1), to standard output, or to syslog.

use crate::logwriter::LineWriter;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AuthFailure,
    Block,
    Unblock,
    RateLimited,
    InFlight,
    ConnectionCap,
    WebSocketDenied,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AuthFailure => "auth_failure",
            Kind::Block => "block",
            Kind::Unblock => "unblock",
            Kind::RateLimited => "rate_limited",
            Kind::InFlight => "in_flight",
            Kind::ConnectionCap => "connection_cap",
            Kind::WebSocketDenied => "websocket_denied",
        }
    }
}

/// One security event.
#[derive(Debug)]
pub struct Event<'a> {
    pub kind: Kind,
    pub client_ip: Option<IpAddr>,
    pub user: Option<&'a str>,
    /// `component host` or the listener, where known.
    pub route: Option<&'a str>,
    pub reason: &'a str,
    pub request_id: Option<&'a str>,
    /// Free text for log readers (the fail2ban line of a whole-IP block).
    pub message: Option<String>,
    /// The limit would have refused, but dry-run mode let it pass.
    pub dry_run: bool,
}

impl<'a> Event<'a> {
    pub fn new(kind: Kind, reason: &'a str) -> Event<'a> {
        Event {
            kind,
            client_ip: None,
            user: None,
            route: None,
            reason,
            request_id: None,
            message: None,
            dry_run: false,
        }
    }
}

pub struct SecurityLog {
    out: Arc<LineWriter>,
}

impl SecurityLog {
    pub fn new(out: Arc<LineWriter>) -> SecurityLog {
        SecurityLog { out }
    }

    pub fn write(&self, e: Event<'_>) {
        self.out.write(line(&e));
    }

    pub fn reopen(&self) {
        self.out.reopen();
    }
}

fn line(e: &Event<'_>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut v = serde_json::json!({
        "ts": format!("{}.{:03}", now.as_secs(), now.subsec_millis()),
        "log": "security",
        "event": e.kind.as_str(),
        "client": e.client_ip.map(|i| i.to_string()),
        "user": e.user.map(crate::pipeline::log::truncated),
        "route": e.route,
        "reason": e.reason,
    });
    if let Some(id) = e.request_id {
        v["id"] = id.into();
    }
    if e.dry_run {
        v["dry_run"] = true.into();
    }
    if let Some(m) = &e.message {
        v["message"] = m.as_str().into();
    }
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_the_fields_operators_grep_for() {
        let mut e = Event::new(Kind::Block, "spraying");
        e.client_ip = Some("192.0.2.7".parse().expect("ip"));
        e.message = Some(deskgate_policy::bruteforce::fail2ban_line(
            "192.0.2.7".parse().expect("ip"),
            std::time::Duration::from_secs(1800),
        ));
        let l = line(&e);
        assert!(l.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&l).expect("json");
        assert_eq!(v["event"], "block");
        assert_eq!(v["client"], "192.0.2.7");
        assert!(l.contains(
            "\"message\":\"192.0.2.7 will be blocked for 30 minutes for exceeding retry limit.\""
        ));
    }
}
