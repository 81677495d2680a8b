//! [`is_forbidden_address`]: the private and reserved address ranges an outbound call must
//! never reach (pure; the runtime resolves names and calls this for **every** A/AAAA record).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 ranges refused, as (network, prefix length).
const V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
    ([172, 16, 0, 0], 12),
    ([192, 168, 0, 0], 16),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 3), // 224.0.0.0 and above: multicast, reserved, broadcast
];

fn v4_forbidden(ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - u32::from(len));
        ip & mask == u32::from_be_bytes(net) & mask
    })
}

fn v6_forbidden(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xff00) == 0xff00 // ff00::/8 multicast
        || ip.to_ipv4_mapped().is_some() // ::ffff:0:0/96, whatever the IPv4 address
}

/// Whether an outbound call to `ip` is refused: IPv4 0/8, 10/8, 100.64/10, 127/8, 169.254/16,
/// 172.16/12, 192.168/16, 192.0.0/24, 192.0.2/24, 198.18/15, 198.51.100/24, 203.0.113/24 and
/// everything from 224.0.0.0 up; IPv6 `::`, `::1`, `fe80::/10`, `fc00::/7`, `ff00::/8` and every
/// IPv4-mapped address.
pub fn is_forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => v6_forbidden(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden_address(s.parse().unwrap())
    }

    #[test]
    fn ipv4_ranges() {
        for bad in [
            "0.1.2.3",
            "10.255.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(forbidden(bad), "{bad}");
        }
        for ok in ["1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.15.0.1", "172.32.0.1", "198.20.0.1"] {
            assert!(!forbidden(ok), "{ok}");
        }
    }

    #[test]
    fn ipv6_ranges() {
        for bad in ["::", "::1", "fe80::1", "febf::1", "fc00::1", "fdff::1", "ff02::1", "::ffff:8.8.8.8"] {
            assert!(forbidden(bad), "{bad}");
        }
        for ok in ["2001:4860:4860::8888", "2606:4700::1111", "fec0::1"] {
            assert!(!forbidden(ok), "{ok}");
        }
    }
}
