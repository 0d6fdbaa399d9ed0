//! The engine's decision on the allow path: a benign GET from one of many clients.
//!
//! Run: `cargo bench -p aiwaf-engine --bench decision`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use aiwaf_engine::ip::IpSet;
use aiwaf_engine::{Engine, EngineConfig, Mode, RequestInfo, WafState};
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let config = EngineConfig::default();
    let state = WafState::new(&config);
    let engine = Engine::new(config, IpSet::default()).unwrap();
    let paths = ["/", "/blog/2024/hello-world/", "/static/app.css", "/api/items?page=2", "/en/profile/"];
    let mut n: u64 = 0;
    c.bench_function("inspect_allow_get", |b| {
        b.iter(|| {
            n += 1;
            // 4096 clients, each well under the rate limit (time advances 10 ms per request).
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (n % 4096) as u32));
            let req = RequestInfo {
                client,
                method: "GET",
                path: paths[(n % 5) as usize],
                content_type: None,
                accept: Some("text/html"),
                sec_fetch_dest: None,
                referer: None,
                query: None,
                headers: &[],
                host: None,
            };
            let now = 1_700_000_000_000 + n * 10;
            let i = engine.inspect(&state, Mode::Block, black_box(&req), now);
            assert!(i.verdict.is_allow());
            black_box(engine.observe(&state, Mode::Block, &i.context, 200, 0.002, now));
        })
    });
}

/// The IP-rotation case: every request from a client never seen before.
fn bench_new_clients(c: &mut Criterion) {
    let config = EngineConfig::default();
    let state = WafState::new(&config);
    let engine = Engine::new(config, IpSet::default()).unwrap();
    let mut n: u64 = 0;
    c.bench_function("inspect_allow_get_new_client", |b| {
        b.iter(|| {
            n += 1;
            let client = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n as u32));
            let req = RequestInfo {
                client,
                method: "GET",
                path: "/blog/2024/hello-world/",
                content_type: None,
                accept: Some("text/html"),
                sec_fetch_dest: None,
                referer: None,
                query: None,
                headers: &[],
                host: None,
            };
            let now = 1_700_000_000_000 + n;
            let i = engine.inspect(&state, Mode::Block, black_box(&req), now);
            black_box(engine.observe(&state, Mode::Block, &i.context, 200, 0.002, now));
        })
    });
}

/// The proxy benchmark's load (bench/proxy.sh): a random client out of 100 000 returning ones,
/// at ~33k requests/s, so the client table is full and most lookups miss the CPU caches.
fn bench_pool(c: &mut Criterion) {
    let config = EngineConfig::default();
    let state = WafState::new(&config);
    let engine = Engine::new(config, IpSet::default()).unwrap();
    let paths = ["/", "/blog/2024/05/hello-world/", "/static/css/app.css", "/api/items", "/en/profile/"];
    let mut n: u64 = 0;
    let mut x: u64 = 42;
    c.bench_function("inspect_observe_pool_100k", |b| {
        b.iter(|| {
            n += 1;
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + ((x >> 33) % 100_000) as u32));
            let req = RequestInfo {
                client,
                method: "GET",
                path: paths[((x >> 20) % 5) as usize],
                content_type: None,
                accept: Some("text/html"),
                sec_fetch_dest: None,
                referer: None,
                query: None,
                headers: &[],
                host: None,
            };
            let now = 1_700_000_000_000 + n * 30 / 1000;
            let i = engine.inspect(&state, Mode::Block, black_box(&req), now);
            black_box(engine.observe(&state, Mode::Block, &i.context, 200, 0.002, now));
        })
    });
}

/// Client address behind one trusted proxy (one `X-Forwarded-For` hop), as in the proxy bench.
fn bench_client_ip(c: &mut Criterion) {
    let config = EngineConfig { trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()], ..Default::default() };
    let engine = Engine::new(config, IpSet::default()).unwrap();
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    c.bench_function("client_ip_one_forwarded_hop", |b| {
        b.iter(|| {
            let xff = [black_box("10.1.2.3")];
            engine.client_ip(black_box(peer), &xff)
        })
    });
}

criterion_group!(benches, bench, bench_new_clients, bench_pool, bench_client_ip);
criterion_main!(benches);
