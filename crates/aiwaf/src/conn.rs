//! Connection admission: limits on connections in total and per client address, and a bounded
//! wait for the first bytes of a connection.
//!
//! hyper's `header_read_timeout` starts only once HTTP/1 has been chosen; the auto builder's
//! protocol sniff before that waited forever, so silent sockets were held open until the file
//! descriptors ran out. [`sniff`] waits for enough bytes to tell HTTP/1 from HTTP/2 within the
//! header timeout, and [`ConnLimits`] caps what one address (IPv6: one prefix) can hold.
//!
//! The per-address map is touched once per connection (accept and close), never per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;

/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `server.max_connections` reached.
    Total,
    /// `server.max_connections_per_ip` reached for this address.
    PerClient,
}

#[derive(Debug)]
struct Inner {
    max_total: usize,
    max_per_client: u32,
    ipv6_prefix: u8,
    open: AtomicUsize,
    per_client: Mutex<HashMap<IpAddr, u32, foldhash::fast::RandomState>>,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

/// Connection counters shared by the accept loop and every connection task.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    inner: Arc<Inner>,
}

/// Held for the life of an admitted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct ConnGuard {
    inner: Arc<Inner>,
    key: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.inner.open.fetch_sub(1, Ordering::Relaxed);
        let mut map = self.inner.per_client.lock();
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl ConnLimits {
    /// Limits: `max_total` connections, `max_per_client` per address; IPv6 addresses are grouped
    /// by their first `ipv6_prefix` bits (one holder of a /64 is one client).
    pub fn new(max_total: usize, max_per_client: u32, ipv6_prefix: u8) -> ConnLimits {
        ConnLimits {
            inner: Arc::new(Inner {
                max_total,
                max_per_client,
                ipv6_prefix,
                open: AtomicUsize::new(0),
                per_client: Mutex::new(HashMap::default()),
                refused: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
            }),
        }
    }

    /// Admits a connection from `peer`, or says why not.
    pub fn admit(&self, peer: IpAddr) -> Result<ConnGuard, Refused> {
        let key = aiwaf_engine::ip::client_key(peer, self.inner.ipv6_prefix);
        if self.inner.open.fetch_add(1, Ordering::Relaxed) >= self.inner.max_total {
            self.inner.open.fetch_sub(1, Ordering::Relaxed);
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Total);
        }
        let mut map = self.inner.per_client.lock();
        let n = map.entry(key).or_insert(0);
        if *n >= self.inner.max_per_client {
            drop(map);
            self.inner.open.fetch_sub(1, Ordering::Relaxed);
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::PerClient);
        }
        *n += 1;
        Ok(ConnGuard { inner: self.inner.clone(), key })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Connections refused by a limit so far.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Connections closed because they sent nothing usable in time.
    pub fn timed_out(&self) -> u64 {
        self.inner.timed_out.load(Ordering::Relaxed)
    }

    /// Counts a connection closed by [`sniff`].
    pub fn count_timeout(&self) {
        self.inner.timed_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits until the connection has sent enough to tell HTTP/1 from HTTP/2 (a byte that differs
/// from the HTTP/2 preface, or the whole preface). `false`: it sent nothing usable within
/// `limit`, or closed.
pub async fn sniff(stream: &TcpStream, limit: Duration) -> bool {
    let wait = async {
        let mut buf = [0u8; 24];
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if n >= H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
                return true;
            }
            // A partial preface: `peek` would return at once again; wait for more.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(limit, wait).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_and_total_limits_release_on_drop() {
        let l = ConnLimits::new(3, 2, 64);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let g1 = l.admit(a).unwrap();
        let _g2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refused::PerClient);
        let _g3 = l.admit("10.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(l.admit("10.0.0.3".parse().unwrap()).unwrap_err(), Refused::Total);
        drop(g1);
        assert_eq!(l.open(), 2);
        assert!(l.admit(a).is_ok());
        assert_eq!(l.refused(), 2);
    }

    #[test]
    fn ipv6_addresses_in_one_prefix_share_a_budget() {
        let l = ConnLimits::new(100, 2, 64);
        let _a = l.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _b = l.admit("2001:db8:1:2:ffff::9".parse().unwrap()).unwrap();
        assert_eq!(l.admit("2001:db8:1:2:abcd::1".parse().unwrap()).unwrap_err(), Refused::PerClient);
        assert!(l.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }
}
