use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aiwaf_store::test_support::{isolated_postgres_url, service_url};

use crate::support::*;

/// Per-test Redis key prefix, so tests run in parallel and twice in a row.
fn prefix(tag: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("aiwaf-test:{tag}:{}:{n}:", std::process::id())
}

fn cluster_opts(db: &str, redis: &str, key_prefix: &str, extra: &str) -> ProxyOpts {
    let config = format!(
        "[storage]\ndatabase_url = \"{db}\"\n[state]\nredis_url = \"{redis}\"\nkey_prefix = \"{key_prefix}\"\n{extra}"
    );
    ProxyOpts { config: Some(config), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_limits_and_bans() {
    let (Some(pg), Some(redis)) = (
        service_url("AIWAF_TEST_POSTGRES_URL", "two_instances_share_limits_and_bans"),
        service_url("AIWAF_TEST_REDIS_URL", "two_instances_share_limits_and_bans"),
    ) else {
        return;
    };
    let db = isolated_postgres_url(&pg, "cluster").await;
    let up = Upstream::start().await;
    let kp = prefix("share");
    // The propagation polls below are counted in the shared window too: a flood threshold they
    // cannot reach keeps them from banning the client themselves.
    let extra = "[rate_limit]\nmax = 6\nflood = 100000\n";
    let a = Proxy::start(&up.url(), cluster_opts(&db, &redis, &kp, extra));
    let b = Proxy::start(&up.url(), cluster_opts(&db, &redis, &kp, extra));
    println!("a = {}, b = {}", a.addr, b.addr);

    // One client alternating between the instances meets the global limit, not twice it.
    let mut statuses = Vec::new();
    for k in 0..8 {
        let to = if k % 2 == 0 { a.addr } else { b.addr };
        statuses.push(get("127.0.70.1", to, "/").await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);

    // A ban on one instance blocks on the other; measure how long that takes.
    let mut took = Vec::new();
    for k in 1..=20 {
        let client = format!("127.0.71.{k}");
        let r = get(&client, a.addr, "/.env").await;
        assert_eq!(r.status, 403);
        let t0 = Instant::now();
        loop {
            if get(&client, b.addr, "/").await.status == 403 {
                took.push(t0.elapsed());
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(3), "ban never reached the other instance");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    took.sort();
    let p50 = took[took.len() / 2];
    let p95 = took[took.len() * 19 / 20 - 1];
    let max = took[took.len() - 1];
    println!("ban propagation between instances: p50 {p50:?}, p95 {p95:?}, max of 20 {max:?}");
    // One slow sample on a loaded 2-core box (tests run in parallel) must not fail the suite;
    // the 19th of 20 must still be quick.
    assert!(p95 <= Duration::from_millis(100), "p95 propagation {p95:?} over 100 ms");
    assert!(max <= Duration::from_millis(1000), "slowest propagation {max:?} over 1 s");

    // The CLI works against PostgreSQL as against SQLite, and an unban reaches both instances.
    let (code, out, err) = a.cli(&["blacklist", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.71.1\""), "{out}");
    assert_eq!(a.cli(&["blacklist", "remove", "127.0.71.1"]).0, 0);
    for p in [&a, &b] {
        // Not banned any more (the polls themselves count in the shared rate window, so after a
        // few of them the answer may be a 429: that is the rate limit, not the ban).
        let ok = eventually(Duration::from_secs(1), async || get("127.0.71.1", p.addr, "/").await.status != 403).await;
        println!("unban applied on {} after {ok:?}", p.addr);
        assert!(ok.is_some(), "unban not applied within 1 s on {}", p.addr);
    }
    // A 404 flood split across the instances is one flood.
    for k in 0..6 {
        let to = if k % 2 == 0 { a.addr } else { b.addr };
        assert_eq!(get("127.0.72.1", to, &format!("/nf/{k}")).await.status, 404);
    }
    // The sixth 404 was seen by instance B, which banned (its response phase counts in Redis off
    // the response path, so the ban lands a moment after the 404 went back); A follows within
    // the propagation time.
    let banned =
        eventually(Duration::from_millis(500), async || get("127.0.72.1", b.addr, "/").await.status == 403).await;
    assert!(banned.is_some());
    let seen = eventually(Duration::from_secs(1), async || get("127.0.72.1", a.addr, "/").await.status == 403).await;
    assert!(seen.is_some());
}

/// A private redis-server on a free loopback port, stoppable.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start_on(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "private redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { port, child: Some(child) }
    }
    fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        PrivateRedis::start_on(port)
    }
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_is_survived_per_policy() {
    if service_url("AIWAF_TEST_REDIS_URL", "redis_outage_is_survived_per_policy").is_none() {
        return;
    }
    let up = Upstream::start().await;
    let mut redis = PrivateRedis::start();
    let kp = prefix("outage");
    let state = |policy: &str| {
        format!(
            "[state]\nredis_url = \"{}\"\nkey_prefix = \"{kp}\"\non_backend_error = \"{policy}\"\nbackend_timeout = \"50ms\"\n[rate_limit]\nmax = 3\nflood = 100\n",
            redis.url()
        )
    };
    let open_a = Proxy::start(&up.url(), ProxyOpts { config: Some(state("open")), ..Default::default() });
    let open_b = Proxy::start(&up.url(), ProxyOpts { config: Some(state("open")), ..Default::default() });
    let closed = Proxy::start(&up.url(), ProxyOpts { config: Some(state("closed")), ..Default::default() });
    assert_eq!(get("127.0.73.1", open_a.addr, "/").await.status, 200);
    assert_eq!(get("127.0.73.2", closed.addr, "/").await.status, 200);

    // Redis dies mid-traffic: traffic keeps being answered, quickly, per the policy.
    redis.stop();
    for k in 0..20 {
        let t = Instant::now();
        let r = get(&format!("127.0.74.{k}"), open_a.addr, "/").await;
        assert_eq!(r.status, 200, "fail-open must keep serving");
        assert!(t.elapsed() < Duration::from_millis(500), "a request waited {:?}", t.elapsed());
        let r = get(&format!("127.0.75.{k}"), closed.addr, "/").await;
        assert_eq!(r.status, 503, "fail-closed answers 503");
        assert_eq!(r.json()["reason"], "shared state unavailable");
    }
    // Detectors still work on local state meanwhile (fail-open).
    assert_eq!(get("127.0.76.1", open_a.addr, "/.env").await.status, 403);

    // Redis is back: counters are shared again (a client alternating instances hits the global limit).
    let _redis = PrivateRedis::start_on(redis.port);
    let resumed = eventually(Duration::from_secs(6), async || {
        let client = format!("127.0.77.{}", rand_octet());
        let mut s = Vec::new();
        for k in 0..4 {
            s.push(get(&client, if k % 2 == 0 { open_a.addr } else { open_b.addr }, "/").await.status);
        }
        s == [200, 200, 200, 429]
    })
    .await;
    assert!(resumed.is_some(), "shared counters did not resume after Redis came back");
    // The fail-closed instance leaves Redis alone for a second after its last failure.
    let back =
        eventually(Duration::from_secs(3), async || get("127.0.78.1", closed.addr, "/").await.status == 200).await;
    assert!(back.is_some(), "fail-closed instance did not resume");
}

fn rand_octet() -> u8 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 250) as u8 + 1
}

/// A TCP forwarder to PostgreSQL that the test can cut and restore.
struct Cuttable {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Cuttable {
    async fn start(target: SocketAddr) -> Cuttable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (u, g) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused-ish
                }
                let (u, g) = (u.clone(), g.clone());
                let born = g.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                                if !u.load(Ordering::SeqCst) || g.load(Ordering::SeqCst) != born {
                                    return; // cut: both sides are dropped
                                }
                            }
                        }
                    }
                });
            }
        });
        Cuttable { addr, up, generation }
    }
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_queues_bans_that_land_on_reconnect() {
    let Some(pg) = service_url("AIWAF_TEST_POSTGRES_URL", "postgres_outage_queues_bans") else { return };
    let db = isolated_postgres_url(&pg, "outage").await;
    // Route the proxy's database traffic through a forwarder we can cut.
    let url: http::Uri = db.split('?').next().unwrap().replace("postgres://", "http://").parse().unwrap();
    let target: SocketAddr = tokio::net::lookup_host((url.host().unwrap(), url.port_u16().unwrap_or(5432)))
        .await
        .unwrap()
        .find(|a| a.is_ipv4())
        .unwrap();
    let fwd = Cuttable::start(target).await;
    let via =
        db.replacen(&format!("{}:{}", url.host().unwrap(), url.port_u16().unwrap_or(5432)), &fwd.addr.to_string(), 1);
    let up = Upstream::start().await;
    let p = Proxy::start(
        &up.url(),
        ProxyOpts { config: Some(format!("[storage]\ndatabase_url = \"{via}\"\n")), ..Default::default() },
    );
    assert_eq!(get("127.0.79.1", p.addr, "/").await.status, 200);

    fwd.cut();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Storage is gone: the proxy keeps serving and banning from memory.
    for k in 1..=3 {
        assert_eq!(get(&format!("127.0.80.{k}"), p.addr, "/.git/config").await.status, 403);
        assert_eq!(get(&format!("127.0.80.{k}"), p.addr, "/").await.status, 403);
    }
    assert_eq!(get("127.0.81.1", p.addr, "/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let direct = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--database-url", db.as_str()]);
        cli_in(&p.dir, None, &a)
    };
    let (_, out, _) = direct(&["blacklist", "list", "--json"]);
    assert!(!out.contains("127.0.80.1"), "nothing can be written during the outage: {out}");

    // Storage is back: the queued bans land.
    fwd.restore();
    let landed = eventually(Duration::from_secs(10), async || {
        let (_, out, _) = direct(&["blacklist", "list", "--json"]);
        (1..=3).all(|k| out.contains(&format!("127.0.80.{k}\"")))
    })
    .await;
    assert!(landed.is_some(), "queued bans did not land after reconnecting");
}
