//! The key a client IP is counted under: the IPv4 address itself, or the
//! IPv6 /64 (one subscriber usually owns a whole /64, and rotating inside it
//! is free for an attacker).

use std::net::{IpAddr, Ipv6Addr};

/// A client's counting key; IPv4-mapped IPv6 counts as IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey(u128);

impl IpKey {
    pub fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey(u128::from(v4.to_ipv6_mapped())),
                None => IpKey(u128::from(v6) & !((1u128 << 64) - 1)),
            },
        }
    }

    /// How the key is shown to operators: the address, or the /64 network.
    pub fn display(self) -> String {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{v6}/64"),
        }
    }

    pub fn as_u128(self) -> u128 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> IpKey {
        IpKey::of(s.parse().expect("ip"))
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
        assert_eq!(key("10.0.0.1").display(), "10.0.0.1");
        assert_eq!(key("2001:db8:1:2::1").display(), "2001:db8:1:2::/64");
    }
}
