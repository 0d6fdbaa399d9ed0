//! Pools of upstreams: several servers behind one route, shared in turn (round robin) or by
//! fewest requests in flight, with passive health checks: an upstream that fails
//! `server.max_fails` times (no connection, no answer in time) within `server.fail_timeout` is
//! left out for `server.fail_timeout`, then tried again. When every upstream of a pool is out,
//! they are all tried anyway (an outage of the check must not be an outage of the site).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use http::Uri;

use crate::config::Balance;

/// Idle keep-alive connections kept per upstream.
const IDLE_PER_UPSTREAM: usize = 256;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One upstream server.
#[derive(Debug)]
pub struct Backend {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// Host and port.
    pub authority: http::uri::Authority,
    /// Path prefix the upstream is mounted under (`http://host/base`).
    pub base_path: String,
    /// `scheme://authority`, what a new connection is opened to.
    pub origin: Uri,
    /// Its idle keep-alive connections.
    pub idle: std::sync::Arc<crate::upstream::IdleList>,
    fails: AtomicU32,
    window_start: AtomicU64,
    down_until: AtomicU64,
    in_flight: AtomicU32,
}

impl Backend {
    fn new(u: &Uri, workers: usize) -> Backend {
        let scheme = u.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP);
        let authority = u.authority().cloned().expect("upstream validated to have a host");
        let origin = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .expect("scheme and authority of a valid URI");
        Backend {
            scheme,
            authority,
            base_path: u.path().trim_end_matches('/').to_string(),
            origin,
            idle: std::sync::Arc::new(crate::upstream::IdleList::new(IDLE_PER_UPSTREAM, IDLE_TIMEOUT, workers)),
            fails: AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            down_until: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        }
    }

    fn up(&self, now: u64) -> bool {
        self.down_until.load(Ordering::Relaxed) <= now
    }
}

/// Upstreams serving one route.
#[derive(Debug)]
pub struct Pool {
    backends: Vec<Backend>,
    next: AtomicUsize,
    balance: Balance,
    max_fails: u32,
    fail_timeout_ms: u64,
}

/// A request in flight to one backend (for least-connections); ends when dropped.
pub struct InFlight<'a>(Option<&'a AtomicU32>);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Pool {
    /// A pool of these upstreams (validated URLs, at least one).
    pub fn new(
        uris: &[Uri],
        balance: Balance,
        max_fails: u32,
        fail_timeout: std::time::Duration,
        workers: usize,
    ) -> Pool {
        Pool {
            backends: uris.iter().map(|u| Backend::new(u, workers)).collect(),
            next: AtomicUsize::new(0),
            balance,
            max_fails,
            fail_timeout_ms: fail_timeout.as_millis().min(u128::from(u64::MAX)) as u64,
        }
    }

    /// Number of upstreams.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the pool has no upstream (never, once built from configuration).
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Upstream `i`.
    pub fn get(&self, i: usize) -> &Backend {
        &self.backends[i]
    }

    /// The upstream for the next request, not one of `tried`; `now` (ms) is read only when
    /// there is a choice to make (a clock read per request for one upstream is wasted).
    pub fn pick(&self, now: impl FnOnce() -> u64, tried: &[usize]) -> usize {
        let n = self.backends.len();
        if n == 1 {
            return 0;
        }
        let now = now();
        let fresh = |i: &usize| !tried.contains(i);
        let mut up: Vec<usize> = (0..n).filter(fresh).filter(|i| self.backends[*i].up(now)).collect();
        if up.is_empty() {
            up = (0..n).filter(fresh).collect();
        }
        if up.is_empty() {
            up = (0..n).collect();
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        match self.balance {
            Balance::RoundRobin => up[turn % up.len()],
            Balance::LeastConnections => {
                let least = up.iter().map(|i| self.backends[*i].in_flight.load(Ordering::Relaxed)).min().unwrap_or(0);
                let ties: Vec<usize> =
                    up.into_iter().filter(|i| self.backends[*i].in_flight.load(Ordering::Relaxed) == least).collect();
                ties[turn % ties.len()]
            }
        }
    }

    /// Counts a request in flight to upstream `i` until the guard is dropped. Only
    /// least-connections pools of several upstreams count (a counter every request touches is a
    /// cache line all the proxy's threads pass around).
    pub fn start(&self, i: usize) -> InFlight<'_> {
        if self.balance != Balance::LeastConnections || self.backends.len() < 2 {
            return InFlight(None);
        }
        let c = &self.backends[i].in_flight;
        c.fetch_add(1, Ordering::Relaxed);
        InFlight(Some(c))
    }

    /// Upstream `i` failed (no connection, no answer in time) at `now`; returns whether it is
    /// now left out.
    pub fn failed(&self, i: usize, now: u64) -> bool {
        if self.max_fails == 0 {
            return false;
        }
        let b = &self.backends[i];
        let start = b.window_start.load(Ordering::Relaxed);
        if now.saturating_sub(start) > self.fail_timeout_ms {
            b.window_start.store(now, Ordering::Relaxed);
            b.fails.store(0, Ordering::Relaxed);
        }
        if b.fails.fetch_add(1, Ordering::Relaxed) + 1 >= self.max_fails && b.up(now) {
            b.down_until.store(now.saturating_add(self.fail_timeout_ms), Ordering::Relaxed);
            b.fails.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Upstream `i` answered: its failures are forgotten.
    pub fn succeeded(&self, i: usize) {
        let b = &self.backends[i];
        if b.fails.load(Ordering::Relaxed) != 0 {
            b.fails.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize, balance: Balance) -> Pool {
        let uris: Vec<Uri> = (0..n).map(|i| format!("http://127.0.0.1:{}", 9000 + i).parse().unwrap()).collect();
        Pool::new(&uris, balance, 3, std::time::Duration::from_secs(10), 1)
    }

    #[test]
    fn round_robin_skips_a_failed_upstream_for_fail_timeout() {
        let p = pool(3, Balance::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| p.pick(|| 0, &[])).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert!(!p.failed(1, 1000) && !p.failed(1, 1001));
        assert!(p.failed(1, 1002), "the third failure within the window");
        assert!((0..10).map(|_| p.pick(|| 2000, &[])).all(|i| i != 1));
        assert!((0..10).map(|_| p.pick(|| 12_003, &[])).any(|i| i == 1), "back after fail_timeout");
        // a retry goes elsewhere; when all are out, all are tried
        assert_ne!(p.pick(|| 0, &[0]), 0);
        for i in 0..3 {
            for _ in 0..3 {
                p.failed(i, 20_000);
            }
        }
        assert!((0..3).contains(&p.pick(|| 20_001, &[])));
    }

    #[test]
    fn least_connections_prefers_the_idle_upstream() {
        let p = pool(2, Balance::LeastConnections);
        let busy = p.start(0);
        assert!((0..4).all(|_| p.pick(|| 0, &[]) == 1));
        drop(busy);
        let picks: Vec<usize> = (0..4).map(|_| p.pick(|| 0, &[])).collect();
        assert!(picks.contains(&0) && picks.contains(&1));
    }
}
