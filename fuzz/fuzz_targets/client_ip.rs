//! Client-address resolution from arbitrary forwarding headers: never panics, and never names an
//! address that is neither the peer nor written in the header.
#![no_main]
use std::net::{IpAddr, Ipv4Addr};

use aiwaf_engine::ip::{ClientIpHeader, IpSet, client_key, parse_net, resolve_client_ip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let values: Vec<&str> = text.split('\n').collect();
    let header = [
        ClientIpHeader::XForwardedFor,
        ClientIpHeader::Forwarded,
        ClientIpHeader::XRealIp,
        ClientIpHeader::CfConnectingIp,
    ][usize::from(sel) % 4];
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let trusted = IpSet::new([parse_net("10.0.0.0/8").unwrap()]);
    let ip = resolve_client_ip(peer, &trusted, header, &values);
    // Garbage can never name an arbitrary address: any other answer is written in the header.
    if let IpAddr::V4(v4) = ip
        && ip != peer
    {
        assert!(text.contains(&v4.to_string()), "{ip} not in {text:?}");
    }
    let _ = client_key(ip, sel % 129);
    let _ = parse_net(&text);
});
