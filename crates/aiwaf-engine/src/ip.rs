//! Client addresses: which address a request is charged to, and IP/CIDR sets.
//!
//! The seed believed the first `X-Forwarded-For` entry from anyone, so a client could dodge its
//! ban, impersonate an exempt address or frame a victim. Here the TCP peer is the client unless
//! the peer is a trusted proxy; then the forwarding chain is walked from the right and the first
//! hop that is not itself a trusted proxy is the client.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use smallvec::SmallVec;

/// A set of addresses and networks (IPv4 and IPv6) with cheap membership tests.
#[derive(Debug, Clone, Default)]
pub struct IpSet {
    hosts: HashSet<IpAddr, foldhash::fast::RandomState>,
    nets: Vec<IpNet>,
}

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
        if net.prefix_len() == net.max_prefix_len() {
            self.hosts.insert(net.addr());
        } else {
            self.nets.push(net);
        }
    }

    /// Whether `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.hosts.contains(&ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.nets.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.hosts.len() + self.nets.len()
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

/// The forwarding headers of a request, raw, in the order they appeared.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwardingHeaders<'a> {
    /// Values of every `Forwarded` header (RFC 7239).
    pub forwarded: &'a [&'a str],
    /// Values of every `X-Forwarded-For` header.
    pub x_forwarded_for: &'a [&'a str],
    /// The `X-Real-IP` header.
    pub x_real_ip: Option<&'a str>,
}

/// The address a request is charged to.
///
/// Forwarding headers count only when `peer` is in `trusted`. Then the chain (`Forwarded`, else
/// `X-Forwarded-For`, else `X-Real-IP`) is read right to left, skipping trusted proxies; the first
/// untrusted hop is the client. A hop that does not parse stops the walk and the last good hop
/// (a trusted proxy) is used, so garbage can never name an arbitrary address.
pub fn resolve_client_ip(peer: IpAddr, trusted: &IpSet, headers: &ForwardingHeaders<'_>) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut hops: SmallVec<[&str; 4]> = SmallVec::new();
    if !headers.forwarded.is_empty() {
        for value in headers.forwarded {
            for element in value.split(',') {
                if let Some(for_value) = forwarded_for(element) {
                    hops.push(for_value);
                }
            }
        }
    }
    if hops.is_empty() {
        for value in headers.x_forwarded_for {
            hops.extend(value.split(',').map(str::trim).filter(|s| !s.is_empty()));
        }
    }
    if hops.is_empty()
        && let Some(real) = headers.x_real_ip
    {
        hops.push(real.trim());
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
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
    let hop = hop.trim().trim_matches('"');
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> IpSet {
        IpSet::new(nets.iter().map(|n| parse_net(n).unwrap()))
    }

    #[test]
    fn untrusted_peer_ignores_every_header() {
        let h = ForwardingHeaders {
            forwarded: &["for=9.9.9.9"],
            x_forwarded_for: &["127.0.0.1"],
            x_real_ip: Some("8.8.8.8"),
        };
        assert_eq!(resolve_client_ip(ip("203.0.113.5"), &trusted(&[]), &h), ip("203.0.113.5"));
        assert_eq!(resolve_client_ip(ip("203.0.113.5"), &trusted(&["10.0.0.0/8"]), &h), ip("203.0.113.5"));
    }

    #[test]
    fn trusted_peer_takes_rightmost_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = ForwardingHeaders { x_forwarded_for: &["1.1.1.1, 198.51.100.7", "10.0.0.3"], ..Default::default() };
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, &h), ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_header_wins_and_handles_ipv6_and_ports() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = ForwardingHeaders {
            forwarded: &["for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.9"],
            x_forwarded_for: &["5.5.5.5"],
            ..Default::default()
        };
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, &h), ip("2001:db8::7"));
        let h = ForwardingHeaders { forwarded: &["for=192.0.2.60:8080"], ..Default::default() };
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, &h), ip("192.0.2.60"));
    }

    #[test]
    fn garbage_hop_cannot_name_an_address() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = ForwardingHeaders { x_forwarded_for: &["1.2.3.4, not-an-ip"], ..Default::default() };
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, &h), ip("10.0.0.2"));
    }

    #[test]
    fn x_real_ip_is_the_last_resort_and_all_trusted_chain_gives_leftmost() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = ForwardingHeaders { x_real_ip: Some("192.0.2.1"), ..Default::default() };
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, &h), ip("192.0.2.1"));
        let h = ForwardingHeaders { x_forwarded_for: &["10.1.1.1, 10.2.2.2"], ..Default::default() };
        assert_eq!(resolve_client_ip(ip("10.0.0.2"), &t, &h), ip("10.1.1.1"));
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
}
