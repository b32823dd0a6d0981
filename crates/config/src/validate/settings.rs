//! Instance-wide settings: limits, timeouts, client IP, internal listeners, filters.

use super::values::{count, duration, networks, side, size, socket_addr};
use super::Ctx;
use crate::error::KeyPath;
use crate::file::{CacheFile, ClientIpFile, FilterFile, InternalFile, LimitsFile, TimeoutsFile};
use crate::runtime::*;

pub(super) fn limits(cx: &mut Ctx<'_>, f: &LimitsFile, kp: &KeyPath) -> Limits {
    let d = Limits::default();
    let max_head = size(cx, &f.max_head, d.max_head as u64, &kp.key("max_head")) as usize;
    let max_header_line = size(
        cx,
        &f.max_header_line,
        d.max_header_line as u64,
        &kp.key("max_header_line"),
    ) as usize;
    if max_head < 8192 {
        cx.p.add(
            kp.key("max_head"),
            format!("{max_head} bytes is below the 8KB minimum"),
            "use at least \"8KB\"",
        );
    }
    Limits {
        max_body: size(cx, &f.max_body, d.max_body, &kp.key("max_body")),
        max_head,
        max_header_line,
        max_headers: count(
            cx,
            f.max_headers,
            d.max_headers as u64,
            1000,
            &kp.key("max_headers"),
        ) as usize,
        keepalive_requests: count(
            cx,
            f.keepalive_requests,
            d.keepalive_requests as u64,
            1_000_000,
            &kp.key("keepalive_requests"),
        ) as u32,
        h2_max_streams: count(
            cx,
            f.h2_max_streams,
            d.h2_max_streams as u64,
            10_000,
            &kp.key("h2_max_streams"),
        ) as u32,
        max_connections: count(
            cx,
            f.max_connections,
            d.max_connections as u64,
            10_000_000,
            &kp.key("max_connections"),
        ) as usize,
    }
}

pub(super) fn timeouts(cx: &mut Ctx<'_>, f: &TimeoutsFile, kp: &KeyPath) -> Timeouts {
    let d = Timeouts::default();
    Timeouts {
        handshake: duration(cx, &f.handshake, d.handshake, &kp.key("handshake")),
        request_head: duration(cx, &f.request_head, d.request_head, &kp.key("request_head")),
        body_idle: duration(cx, &f.body_idle, d.body_idle, &kp.key("body_idle")),
        send_idle: duration(cx, &f.send_idle, d.send_idle, &kp.key("send_idle")),
        keepalive: duration(cx, &f.keepalive, d.keepalive, &kp.key("keepalive")),
        upstream_connect: duration(
            cx,
            &f.upstream_connect,
            d.upstream_connect,
            &kp.key("upstream_connect"),
        ),
        upstream_response: duration(
            cx,
            &f.upstream_response,
            d.upstream_response,
            &kp.key("upstream_response"),
        ),
        tunnel_idle: duration(cx, &f.tunnel_idle, d.tunnel_idle, &kp.key("tunnel_idle")),
        drain: duration(cx, &f.drain, d.drain, &kp.key("drain")),
    }
}

pub(super) fn client_ip(cx: &mut Ctx<'_>, f: &ClientIpFile, kp: &KeyPath) -> ClientIpPolicy {
    let trusted = networks(cx, &f.trusted, &kp.key("trusted"));
    let header = f.header.clone().unwrap_or_else(|| "X-Real-IP".to_string());
    let valid = !header.is_empty()
        && header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        cx.p.add(
            kp.key("header"),
            format!("{header:?} is not a header name"),
            "write a header name such as \"X-Real-IP\"",
        );
    }
    ClientIpPolicy {
        trusted,
        header: header.to_ascii_lowercase(),
    }
}

pub(super) fn internal(cx: &mut Ctx<'_>, list: &[InternalFile], kp: &KeyPath) -> Vec<Internal> {
    let mut out: Vec<Internal> = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let ikp = kp.index(i);
        let side = side(cx, &f.side, &ikp.key("side"));
        let bind = socket_addr(cx, &f.bind, &ikp.key("bind"));
        if let (Some(side), Some(bind)) = (side, bind) {
            if out.iter().any(|o| o.side == side) {
                cx.p.add(
                    ikp.key("side"),
                    format!("side {} has two [[internal]] tables", side.as_str()),
                    "keep one [[internal]] per side",
                );
            }
            out.push(Internal {
                side,
                bind,
                admin_socket: f.admin_socket.as_ref().map(|p| cx.path(p)),
            });
        }
    }
    out
}

pub(super) fn global_filter(cx: &mut Ctx<'_>, f: &FilterFile, kp: &KeyPath) -> GlobalFilter {
    let unsupported_status = match f.unsupported_status {
        None => 421,
        Some(s @ (404 | 421)) => s as u16,
        Some(s) => {
            cx.p.add(
                kp.key("unsupported_status"),
                format!("{s} is not allowed"),
                "use 421 (default) or 404",
            );
            421
        }
    };
    let user_agent = f
        .user_agent
        .as_ref()
        .and_then(|r| match regex::Regex::new(r) {
            Ok(re) => Some(re),
            Err(e) => {
                cx.p.add(
                    kp.key("user_agent"),
                    format!("bad regex: {e}"),
                    "fix the regular expression",
                );
                None
            }
        });
    GlobalFilter {
        unsupported_status,
        user_agent,
        referer_hosts: f
            .referer_hosts
            .as_ref()
            .map(|v| v.iter().map(|h| h.to_ascii_lowercase()).collect()),
    }
}

pub(super) fn cache(cx: &mut Ctx<'_>, f: &CacheFile, kp: &KeyPath) -> CacheSettings {
    let d = CacheSettings::default();
    let max_bytes = size(cx, &f.max_bytes, d.max_bytes, &kp.key("max_bytes"));
    let max_object = size(cx, &f.max_object, d.max_object, &kp.key("max_object"));
    if max_object > max_bytes {
        cx.p.add(
            kp.key("max_object"),
            format!("max_object ({max_object} bytes) is larger than max_bytes ({max_bytes} bytes)"),
            "make max_object at most max_bytes (a quarter of it or less keeps several objects)",
        );
    }
    CacheSettings {
        enabled: f.enabled.unwrap_or(d.enabled),
        max_bytes,
        max_object,
        static_ttl: duration(cx, &f.static_ttl, d.static_ttl, &kp.key("static_ttl")),
        preflight: f.preflight.unwrap_or(d.preflight),
        preflight_ttl: duration(
            cx,
            &f.preflight_ttl,
            d.preflight_ttl,
            &kp.key("preflight_ttl"),
        ),
    }
}
