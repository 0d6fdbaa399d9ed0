//! Client addresses: which address a request is charged to, and IP/CIDR sets.
//!
//! The seed believed the first `X-Forwarded-For` entry from anyone, so a client could dodge its
//! ban, impersonate an exempt address or frame a victim. Here the TCP peer is the client unless
//! the peer is a trusted proxy; then the one header the operator named ([`ClientIpHeader`]) is
//! read — never whichever forwarding header the client chose to send — and a chain is walked
//! from the right: the first hop that is not itself a trusted proxy is the client.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use smallvec::SmallVec;

/// A set of addresses and networks (IPv4 and IPv6) with cheap membership tests.
#[derive(Debug, Clone, Default)]
pub struct IpSet {
    /// The hosts while there are at most `FEW` of them (a trusted proxy or two, the usual case),
    /// compared one by one: cheaper than hashing the address.
    few: Vec<IpAddr>,
    /// The hosts once there are more (`few` is then empty).
    hosts: HashSet<IpAddr, foldhash::fast::RandomState>,
    nets: Vec<IpNet>,
}

/// Up to this many hosts a set is searched in order rather than hashed.
const FEW: usize = 8;

impl IpSet {
    /// Builds a set from networks; host-length networks become exact entries.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> IpSet {
        let mut set = IpSet::default();
        for net in nets {
            set.insert(net);
        }
        set
    }

    /// Adds one network.
    pub fn insert(&mut self, net: IpNet) {
        let net = net.trunc();
        if net.prefix_len() != net.max_prefix_len() {
            self.nets.push(net);
        } else if !self.hosts.is_empty() {
            self.hosts.insert(net.addr());
        } else if !self.few.contains(&net.addr()) {
            if self.few.len() < FEW {
                self.few.push(net.addr());
            } else {
                self.hosts.extend(std::mem::take(&mut self.few));
                self.hosts.insert(net.addr());
            }
        }
    }

    /// Whether `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let host = if self.hosts.is_empty() { self.few.contains(&ip) } else { self.hosts.contains(&ip) };
        host || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.few.is_empty() && self.hosts.is_empty() && self.nets.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.few.len() + self.hosts.len() + self.nets.len()
    }
}

/// Parses `IP` or `IP/prefix` into a network (a bare address is a host network).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if s.contains('/') {
        s.parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| format!("`{s}` is not an IP network (expected e.g. 10.0.0.0/8)"))
    } else {
        s.parse::<IpAddr>()
            .map(|ip| IpNet::from(canonical(ip)))
            .map_err(|_| format!("`{s}` is not an IP address or CIDR network"))
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) to plain IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The key a client's windows, counters and bans are kept under: an IPv4 address as it is, an
/// IPv6 address cut to its first `ipv6_prefix` bits (anyone holding a /64 has 2^64 addresses;
/// keyed per /128 each of them would be a fresh client with fresh limits).
pub fn client_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) if ipv6_prefix < 128 && !v6.is_loopback() => {
            let bits = u128::from(v6);
            let mask = if ipv6_prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(ipv6_prefix)) };
            IpAddr::V6((bits & mask).into())
        }
        other => other,
    }
}

/// The one header that carries the client address, as the operator's proxy sets it (nginx's
/// `real_ip_header`). Only this header is read, and only from trusted peers: a client that
/// sends another forwarding header changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`: a chain, appended to by each proxy (the default).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239): a chain of `for=` parameters.
    Forwarded,
    /// `X-Real-IP`: one address set by the proxy.
    XRealIp,
    /// `CF-Connecting-IP`: one address set by Cloudflare.
    CfConnectingIp,
}

impl ClientIpHeader {
    /// The header's name, lower-case.
    pub fn header_name(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
            ClientIpHeader::XRealIp => "x-real-ip",
            ClientIpHeader::CfConnectingIp => "cf-connecting-ip",
        }
    }

    /// Whether the header is a chain that each proxy appends to (else one address).
    pub fn is_chain(self) -> bool {
        matches!(self, ClientIpHeader::XForwardedFor | ClientIpHeader::Forwarded)
    }
}

impl std::str::FromStr for ClientIpHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ClientIpHeader::XForwardedFor),
            "forwarded" => Ok(ClientIpHeader::Forwarded),
            "x-real-ip" => Ok(ClientIpHeader::XRealIp),
            "cf-connecting-ip" => Ok(ClientIpHeader::CfConnectingIp),
            _ => Err(format!(
                "`{}` is not a supported client address header \
                 (expected X-Forwarded-For, Forwarded, X-Real-IP or CF-Connecting-IP)",
                s.trim()
            )),
        }
    }
}

/// The address a request is charged to.
///
/// `values` are the values of the configured `header` (every occurrence, in order). They count
/// only when `peer` is in `trusted`. A chain (`X-Forwarded-For`, `Forwarded`) is read right to
/// left, skipping trusted proxies; the first untrusted hop is the client. A single-address
/// header (`X-Real-IP`, `CF-Connecting-IP`) names the client in its last value. A hop that does
/// not parse stops the walk and the last good hop (a trusted proxy) is used, so garbage can
/// never name an arbitrary address.
pub fn resolve_client_ip(peer: IpAddr, trusted: &IpSet, header: ClientIpHeader, values: &[&str]) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    match header {
        ClientIpHeader::Forwarded => {
            let mut hops: SmallVec<[&str; 4]> = SmallVec::new();
            for value in values {
                for element in value.split(',') {
                    match forwarded_for(element) {
                        Some(for_value) => hops.push(for_value),
                        // An element without `for=` is a hop we cannot place: stop there.
                        None if !element.trim().is_empty() => hops.push(""),
                        None => {}
                    }
                }
            }
            walk_hops(peer, trusted, hops.iter().rev().copied())
        }
        // the common case, one proxy in front: a single value naming a single hop
        ClientIpHeader::XForwardedFor if values.len() == 1 && memchr::memchr(b',', values[0].as_bytes()).is_none() => {
            let hop = values[0].trim();
            if hop.is_empty() { peer } else { walk_hops(peer, trusted, std::iter::once(hop)) }
        }
        // read from the right as it is split, without collecting the hops first
        ClientIpHeader::XForwardedFor => walk_hops(
            peer,
            trusted,
            values.iter().rev().flat_map(|v| v.rsplit(',')).map(str::trim).filter(|s| !s.is_empty()),
        ),
        ClientIpHeader::XRealIp | ClientIpHeader::CfConnectingIp => match values.last() {
            Some(last) => parse_hop(last).unwrap_or(peer),
            None => peer,
        },
    }
}

/// The client from a chain's hops, rightmost first, behind the trusted `peer`: the first hop
/// that is not a trusted proxy; a hop that does not parse stops the walk at the last good one.
fn walk_hops<'a>(peer: IpAddr, trusted: &IpSet, right_to_left: impl Iterator<Item = &'a str>) -> IpAddr {
    let mut client = peer;
    for hop in right_to_left {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !trusted.contains(ip) {
                    return ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// The `for=` parameter of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
    })
}

/// Parses a hop: `1.2.3.4`, `1.2.3.4:5678`, `"[2001:db8::1]:80"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Some(ip) = plain_ipv4(hop.as_bytes()) {
        return Some(IpAddr::V4(ip));
    }
    let hop = hop.trim();
    // quotes stripped from both ends (`"` is one byte: the cuts are character boundaries)
    let b = hop.as_bytes();
    let start = b.iter().position(|&c| c != b'"').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b'"').map_or(start, |i| i + 1);
    let hop = &hop[start..end];
    if !hop.contains(':') {
        return hop.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
    }
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse::<IpAddr>().ok().map(canonical);
    }
    if let Some((host, port)) = hop.rsplit_once(':')
        && port.chars().all(|c| c.is_ascii_digit())
    {
        return host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4);
    }
    None
}

/// A dotted quad in its plain form — four decimal octets of one to three digits, no leading
/// zeros, nothing else — read without the general parser (a forwarded hop is one on almost every
/// request). Everything it accepts `Ipv4Addr::from_str` accepts as the same address; anything
/// else is `None` and goes to the general parser.
fn plain_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v: u32 = 0;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() || i - start == 3 {
                break;
            }
            v = v * 10 + u32::from(c - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || v > 255 || (len > 1 && b[start] == b'0') {
            return None;
        }
        *octet = v as u8;
    }
    (i == b.len()).then_some(std::net::Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> IpSet {
        IpSet::new(nets.iter().map(|n| parse_net(n).unwrap()))
    }

    use ClientIpHeader::*;

    #[test]
    fn untrusted_peer_ignores_every_header() {
        for (h, v) in [(XForwardedFor, "127.0.0.1"), (Forwarded, "for=9.9.9.9"), (XRealIp, "8.8.8.8")] {
            assert_eq!(resolve_client_ip(ip("203.0.113.5"), &trusted(&[]), h, &[v]), ip("203.0.113.5"));
            assert_eq!(resolve_client_ip(ip("203.0.113.5"), &trusted(&["10.0.0.0/8"]), h, &[v]), ip("203.0.113.5"));
        }
    }

    #[test]
    fn trusted_peer_takes_rightmost_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        let v = ["1.1.1.1, 198.51.100.7", "10.0.0.3"];
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XForwardedFor, &v), ip("198.51.100.7"));
        // empty elements, blanks, quotes and ports are read as hops are
        for v in [
            &["1.1.1.1,, \t198.51.100.7:5555 ,10.0.0.3"][..],
            &["\"198.51.100.7\"", " ", "10.0.0.3,"],
            &["198.51.100.7", "", "10.0.0.4, 10.0.0.3"],
        ] {
            assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XForwardedFor, v), ip("198.51.100.7"), "{v:?}");
        }
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XForwardedFor, &[" , "]), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_header_handles_ipv6_and_ports() {
        let t = trusted(&["10.0.0.0/8"]);
        let v = ["for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9"];
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, Forwarded, &v), ip("2001:db8::7"));
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, Forwarded, &["for=192.0.2.60:8080"]), ip("192.0.2.60"));
        // An element without `for=` cannot be placed: the walk stops at the last good hop.
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, Forwarded, &["for=1.2.3.4, proto=http"]), ip("10.0.0.2"));
    }

    #[test]
    fn plain_dotted_quads_read_as_the_general_parser_reads_them() {
        let mut cases: Vec<String> = [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.4 ",
            " 1.2.3.4",
            "1..3.4",
            "1.2.3.",
            ".1.2.3",
            "1234.1.1.1",
            "1.2.3.4:80",
            "\"1.2.3.4\"",
            "",
            "1.2.3.4\0",
            "1.2.3.+4",
            "١.2.3.4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // every string of up to 8 characters over digits and dots, sampled
        let alphabet = b"0123456789.";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 7 + (x % 9) as usize;
            cases.push((0..len).map(|k| alphabet[((x >> (k * 4)) % 11) as usize] as char).collect());
            let o = |k: u32| (x >> (k * 9)) % 300;
            cases.push(format!("{}.{}.{}.{}", o(0), o(1), o(2), o(3)));
            cases.push(format!("{}.0{}.{}.{}", o(0), o(1), o(2), o(3)));
        }
        for case in &cases {
            let general = case.parse::<std::net::Ipv4Addr>().ok();
            match plain_ipv4(case.as_bytes()) {
                Some(fast) => assert_eq!(Some(fast), general, "{case:?}"),
                // and it declines only what the general parser declines too
                None => assert_eq!(general, None, "{case:?} declined"),
            }
        }
        assert_eq!(
            resolve_client_ip(ip("127.0.0.1"), &trusted(&["127.0.0.1"]), ClientIpHeader::XForwardedFor, &["  "]),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn garbage_hop_cannot_name_an_address() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XForwardedFor, &["1.2.3.4, not-an-ip"]), ip("10.0.0.2"));
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XRealIp, &["not-an-ip"]), ip("10.0.0.2"));
    }

    #[test]
    fn single_address_headers_take_the_last_value() {
        let t = trusted(&["10.0.0.0/8"]);
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XRealIp, &["192.0.2.1"]), ip("192.0.2.1"));
        assert_eq!(
            resolve_client_ip(ip("10.0.0.2"), &t, CfConnectingIp, &["198.51.100.1", "192.0.2.9"]),
            ip("192.0.2.9")
        );
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XRealIp, &[]), ip("10.0.0.2"));
        let all_trusted = ["10.1.1.1, 10.2.2.2"];
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, XForwardedFor, &all_trusted), ip("10.1.1.1"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_prefix() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1"), 64), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1"), 48), ip("2001:db8:1::"));
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1"), 128), ip("2001:db8:1:2:aaaa::1"));
        assert_eq!(client_key(ip("2001:db8::1"), 0), ip("::"));
        assert_eq!(client_key(ip("::1"), 64), ip("::1"));
        assert_eq!(client_key(ip("192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(client_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
    }

    #[test]
    fn header_names_parse_case_insensitively() {
        assert_eq!("X-Forwarded-For".parse::<ClientIpHeader>(), Ok(XForwardedFor));
        assert_eq!("forwarded".parse::<ClientIpHeader>(), Ok(Forwarded));
        assert_eq!("X-REAL-IP".parse::<ClientIpHeader>(), Ok(XRealIp));
        assert_eq!("CF-Connecting-IP".parse::<ClientIpHeader>(), Ok(CfConnectingIp));
        assert!("x-client-ip".parse::<ClientIpHeader>().unwrap_err().contains("x-client-ip"));
    }

    #[test]
    fn sets_match_hosts_cidrs_and_mapped_v4() {
        let s = trusted(&["192.168.1.7", "10.0.0.0/8", "2001:db8::/32"]);
        assert!(s.contains(ip("192.168.1.7")));
        assert!(!s.contains(ip("192.168.1.8")));
        assert!(s.contains(ip("10.200.3.4")));
        assert!(s.contains(ip("::ffff:10.0.0.1")));
        assert!(s.contains(ip("2001:db8:1::5")));
        assert!(!s.contains(ip("2001:db9::5")));
        assert!(parse_net("nope").is_err());
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn sets_answer_alike_with_few_hosts_and_many() {
        // searched in order up to FEW hosts, hashed beyond: the same answers either way
        let mut set = IpSet::default();
        for n in 0..20u8 {
            set.insert(parse_net(&format!("192.0.2.{n}")).unwrap());
            set.insert(parse_net(&format!("192.0.2.{n}")).unwrap()); // again: no double entry
            assert_eq!(set.len(), usize::from(n) + 1);
            for k in 0..25u8 {
                assert_eq!(set.contains(ip(&format!("192.0.2.{k}"))), k <= n, "{k} in a set of {}", n + 1);
                assert_eq!(set.contains(ip(&format!("::ffff:192.0.2.{k}"))), k <= n);
            }
        }
    }
}
