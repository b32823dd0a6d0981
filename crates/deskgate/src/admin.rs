//! `deskgate blocks`, `deskgate unblock` and `deskgate cache`: operator actions through the
//! running instance's admin socket (owner-only; never on the network).

use clap::Args;
use deskgate_config::Side;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Which instance to talk to: the admin socket of `--side` in the config, or `--socket`.
#[derive(Args)]
pub struct Target {
    /// The deployment config file (its [[internal]] admin_socket of --side).
    #[arg(short, long, required_unless_present = "socket")]
    config: Option<PathBuf>,
    /// a or b.
    #[arg(long, value_parser = super::parse_side, required_unless_present = "socket")]
    side: Option<Side>,
    /// The admin socket itself.
    #[arg(long)]
    socket: Option<PathBuf>,
}

fn socket_of(t: &Target) -> Result<PathBuf, String> {
    if let Some(s) = &t.socket {
        return Ok(s.clone());
    }
    let (Some(config), Some(side)) = (&t.config, t.side) else {
        return Err("give -c CONFIG --side a|b, or --socket PATH".into());
    };
    let d = deskgate_config::load(config).map_err(|e| e.to_string())?;
    d.internal_of(side)
        .and_then(|i| i.admin_socket.clone())
        .ok_or_else(|| {
            format!(
                "side {} has no admin_socket in its [[internal]] table",
                side.as_str()
            )
        })
}

/// One request on the admin socket; the status and body of the answer.
fn call(socket: &PathBuf, method: &str, target: &str) -> Result<(u16, String), String> {
    let err = |e: std::io::Error| format!("admin socket {}: {e}", socket.display());
    let mut s = UnixStream::connect(socket).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(err)?;
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(err)?;
    // read the head, then as many bytes as it announces (the server may
    // keep the connection open)
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let (head_end, length) = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            break (end + 4, length);
        }
        let n = s.read(&mut buf).map_err(err)?;
        if n == 0 {
            break (raw.len(), Some(0));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    while length.is_none_or(|l| raw.len() < head_end + l) {
        let n = s.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_at(head_end.min(text.len()));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("the admin socket gave no HTTP answer")?;
    Ok((status, body.to_string()))
}

fn fail(e: String) -> ExitCode {
    eprintln!("deskgate: {e}");
    ExitCode::FAILURE
}

/// One request to the target's admin socket whose 200 answer is JSON.
fn json_call(t: &Target, method: &str, path: &str) -> Result<serde_json::Value, String> {
    let socket = socket_of(t)?;
    match call(&socket, method, path)? {
        (200, b) => serde_json::from_str(b.trim()).map_err(|e| format!("unreadable answer: {e}")),
        (s, b) => Err(format!("the admin socket answered {s}: {}", b.trim())),
    }
}

pub fn blocks(t: &Target) -> ExitCode {
    let v = match json_call(t, "GET", "/blocks") {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let list = v["blocks"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no client is blocked");
        return ExitCode::SUCCESS;
    }
    println!("{:<42} {:<24} {:>9}", "CLIENT", "USER", "REMAINING");
    for b in list {
        let secs = b["remaining_s"].as_u64().unwrap_or(0);
        println!(
            "{:<42} {:<24} {:>6}m{:02}s",
            b["ip"].as_str().unwrap_or("?"),
            b["user"].as_str().unwrap_or("(whole IP)"),
            secs / 60,
            secs % 60
        );
    }
    ExitCode::SUCCESS
}

pub fn unblock(t: &Target, target: &str) -> ExitCode {
    let socket = match socket_of(t) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let enc: String = target
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    match call(&socket, "POST", &format!("/unblock?target={enc}")) {
        Ok((200, b)) => {
            let lifted = serde_json::from_str::<serde_json::Value>(b.trim())
                .map(|v| v["unblocked"].as_bool().unwrap_or(false))
                .unwrap_or(false);
            if lifted {
                println!("{target} unblocked");
                ExitCode::SUCCESS
            } else {
                println!("{target} was not blocked");
                ExitCode::from(2)
            }
        }
        Ok((s, b)) => fail(format!("the admin socket answered {s}: {}", b.trim())),
        Err(e) => fail(e),
    }
}

pub fn cache(t: &Target, action: &str) -> ExitCode {
    let (method, path) = match action {
        "clear" => ("POST", "/cache/clear"),
        _ => ("GET", "/status"),
    };
    let v = match json_call(t, method, path) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if action == "clear" {
        println!(
            "cache cleared: {} entries, {} bytes",
            v["removed"].as_u64().unwrap_or(0),
            v["bytes"].as_u64().unwrap_or(0)
        );
    } else {
        let c = &v["cache"];
        println!(
            "entries {}  bytes {} of {}  hits {}  misses {}  revalidated {}  collapsed {}",
            c["entries"],
            c["bytes"],
            c["max_bytes"],
            c["hits"],
            c["misses"],
            c["revalidated"],
            c["collapsed"]
        );
    }
    ExitCode::SUCCESS
}
