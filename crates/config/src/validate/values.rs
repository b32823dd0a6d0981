//! Single values: sides, addresses, ports, durations, sizes, counts.

use super::Ctx;
use crate::error::KeyPath;
use crate::runtime::Side;
use std::net::SocketAddr;
use std::time::Duration;

pub(super) fn side(cx: &mut Ctx<'_>, s: &str, kp: &KeyPath) -> Option<Side> {
    let side = Side::parse(s);
    if side.is_none() {
        cx.p.add(
            kp.clone(),
            format!("side {s:?} is not a or b"),
            "write side = \"a\" or side = \"b\"",
        );
    }
    side
}

pub(super) fn socket_addr(cx: &mut Ctx<'_>, s: &str, kp: &KeyPath) -> Option<SocketAddr> {
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            let hint = match s.rsplit_once(':') {
                Some((_, port)) if port.parse::<u16>().is_err() => {
                    "the port must be a number from 1 to 65535"
                }
                _ => "write an IP address and port, e.g. \"0.0.0.0:443\" or \"[::]:443\"",
            };
            cx.p.add(kp.clone(), format!("{s:?} is not an address:port"), hint);
            None
        }
    }
}

/// A list of IP addresses and CIDRs (trusted intermediaries, exempt addresses).
pub(super) fn networks(cx: &mut Ctx<'_>, list: &[String], kp: &KeyPath) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let parsed = t
            .parse::<ipnet::IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => out.push(n.trunc()),
            Err(_) => cx.p.add(
                kp.index(i),
                format!("{t:?} is not an IP address or CIDR"),
                "write e.g. \"10.1.0.0/16\" or \"192.0.2.10\"",
            ),
        }
    }
    out
}

/// Parses `host:port` with a port from 1 to 65535.
pub(super) fn host_port(cx: &mut Ctx<'_>, s: &str, kp: &KeyPath) -> Option<(String, u16)> {
    let Some((host, port)) = s.rsplit_once(':') else {
        cx.p.add(
            kp.clone(),
            format!("{s:?} has no port"),
            "write host:port, e.g. \"finesse1.example.com:8445\"",
        );
        return None;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        cx.p.add(
            kp.clone(),
            format!("{s:?} has no valid host name"),
            "write host:port",
        );
        return None;
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Some((host.to_ascii_lowercase(), p as u16)),
        _ => {
            cx.p.add(
                kp.clone(),
                format!("port {port:?} in {s:?} is out of range"),
                "use a port from 1 to 65535",
            );
            None
        }
    }
}

pub(super) fn port(cx: &mut Ctx<'_>, v: i64, kp: &KeyPath) -> Option<u16> {
    if (1..=65535).contains(&v) {
        Some(v as u16)
    } else {
        cx.p.add(
            kp.clone(),
            format!("port {v} is out of range"),
            "use a port from 1 to 65535",
        );
        None
    }
}

/// No timeout in deskgate needs more than a day; longer ones are typos.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

pub(super) fn duration(
    cx: &mut Ctx<'_>,
    v: &Option<String>,
    default: Duration,
    kp: &KeyPath,
) -> Duration {
    match v {
        None => default,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if d > MAX_DURATION => {
                cx.p.add(
                    kp.clone(),
                    format!("{s:?} is longer than a day"),
                    "use at most \"24h\"",
                );
                default
            }
            Ok(d) if !d.is_zero() => d,
            _ => {
                cx.p.add(
                    kp.clone(),
                    format!("{s:?} is not a duration"),
                    "write e.g. \"10s\", \"500ms\" or \"2m\"",
                );
                default
            }
        },
    }
}

/// Sizes like `15MB`, `20KB` or a plain byte count.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1024,
        "M" | "MB" | "MIB" => 1024 * 1024,
        "G" | "GB" | "GIB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

pub(super) fn size(cx: &mut Ctx<'_>, v: &Option<String>, default: u64, kp: &KeyPath) -> u64 {
    match v {
        None => default,
        Some(s) => match parse_size(s) {
            Some(n) if n > 0 => n,
            _ => {
                cx.p.add(
                    kp.clone(),
                    format!("{s:?} is not a size"),
                    "write e.g. \"15MB\", \"8KB\" or a byte count",
                );
                default
            }
        },
    }
}

pub(super) fn count(cx: &mut Ctx<'_>, v: Option<i64>, default: u64, max: u64, kp: &KeyPath) -> u64 {
    match v {
        None => default,
        Some(n) if n >= 1 && (n as u64) <= max => n as u64,
        Some(n) => {
            cx.p.add(
                kp.clone(),
                format!("{n} is out of range"),
                format!("use a number from 1 to {max}"),
            );
            default
        }
    }
}

/// Two sockets of one instance that cannot both be bound: the same port on
/// the same address, or on any address when one of them is the wildcard.
/// Port 0 (tests) asks the kernel for a fresh port and never clashes.
pub(super) fn binds_clash(a: SocketAddr, b: SocketAddr) -> bool {
    use crate::runtime::canonical_ip;
    use std::net::IpAddr;
    // a wildcard covers its own family; [::] (dual-stack) covers IPv4 too
    fn covers(wild: IpAddr, other: IpAddr) -> bool {
        wild.is_unspecified() && (wild.is_ipv6() || other.is_ipv4())
    }
    let (x, y) = (canonical_ip(a.ip()), canonical_ip(b.ip()));
    a.port() != 0 && a.port() == b.port() && (x == y || covers(x, y) || covers(y, x))
}

#[cfg(test)]
mod bind_tests {
    use super::binds_clash;

    #[test]
    fn clashes_follow_address_families() {
        let c = |a: &str, b: &str| binds_clash(a.parse().expect("a"), b.parse().expect("b"));
        assert!(c("0.0.0.0:443", "10.0.0.5:443"));
        assert!(c("[::]:443", "10.0.0.5:443"));
        assert!(c("[::ffff:127.0.0.1]:443", "127.0.0.1:443"));
        assert!(!c("0.0.0.0:443", "[::1]:443"));
        assert!(!c("10.0.0.5:443", "10.0.0.6:443"));
        assert!(!c("0.0.0.0:443", "0.0.0.0:8443"));
        assert!(!c("127.0.0.1:0", "127.0.0.1:0"));
    }
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("15MB"), Some(15 * 1024 * 1024));
        assert_eq!(parse_size("8KB"), Some(8192));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("10 parsecs"), None);
    }
}
