//! Small text writers for the request path: every request writes a few
//! numbers and addresses into its log line and forwarding headers, and the
//! formatting machinery (`write!`, `to_string`) showed up in the profile
//! for them (see BENCHMARKS.md, "Where the time went").

use std::net::IpAddr;

/// Decimal digits of `n`.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// An address as text: dotted quad, or RFC 5952 for IPv6 (std's `Display`).
pub fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(_) => {
            use std::io::Write as _;
            let _ = write!(out, "{ip}");
        }
    }
}

/// `s` as a JSON string, quotes included. Plain printable ASCII (almost
/// every field) is copied as it is; anything else goes through serde_json.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    let plain = s
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).expect("utf-8")
    }

    #[test]
    fn numbers_and_addresses_read_as_std_writes_them() {
        for n in [0u64, 7, 10, 99, 100, 65535, u64::MAX] {
            assert_eq!(text(|o| push_u64(o, n)), n.to_string());
        }
        for ip in [
            "0.0.0.0",
            "10.9.0.1",
            "255.255.255.255",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(text(|o| push_ip(o, ip)), ip.to_string());
        }
    }

    #[test]
    fn json_strings_match_serde_json() {
        for s in [
            "",
            "plain /path?x=1",
            "quo\"te",
            "back\\slash",
            "nl\n",
            "\u{7f}",
            "é",
            "\u{0}",
        ] {
            let want = serde_json::to_string(s).expect("json");
            assert_eq!(text(|o| push_json_str(o, s)), want, "{s:?}");
        }
    }
}
