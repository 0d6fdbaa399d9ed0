//! The proxy's workers: one thread per core, each running a single-threaded tokio runtime that
//! serves the client connections handed to it, start to end (nginx's worker processes, in
//! threads).
//!
//! A connection's task never leaves its worker: its client socket, the upstream connections it
//! opens and the timers it arms are registered with that worker's own I/O and timer drivers, and
//! a wake-up is a push onto a local queue. tokio's work-stealing runtime, serving the same
//! traffic, pays per wake-up for an atomic run queue, a LIFO slot and waking a parked worker to
//! steal (a `futex` per few dozen requests), and its I/O driver is shared by every worker. The
//! rest of `aiwaf serve` (the accept loop, storage writer, reloader, admin listener, retraining)
//! runs on a small multi-threaded runtime beside them.
//!
//! Accepted connections go to the worker with the fewest open connections; an upstream's idle
//! connections are kept per worker (`upstream::IdleList`), since each belongs to the worker whose
//! drivers it is registered with.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// This thread's worker number, `1..=n`; `0` on any other thread.
pub fn current() -> usize {
    INDEX.with(Cell::get)
}

/// How many workers `threads` (the `threads` setting) asks for: one per CPU when unset.
pub fn count(threads: Option<usize>) -> usize {
    threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1)
}

/// The running workers; dropping this stops them (their remaining tasks are dropped).
pub struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    handle: tokio::runtime::Handle,
    /// Connections open on it.
    load: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` workers (at least one).
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(n.max(1));
        for i in 1..=n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let handle = rt.handle().clone();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new().name(format!("aiwaf-worker-{i}")).spawn(move || {
                INDEX.with(|c| c.set(i));
                rt.block_on(async {
                    let _ = stopped.await;
                });
                // what is left (a WebSocket tunnel, a Redis count in flight) ends with the runtime
                rt.shutdown_timeout(std::time::Duration::from_millis(100));
            })?;
            workers.push(Worker { handle, load: Arc::default(), stop: Some(stop), thread: Some(thread) });
        }
        Ok(Workers { workers })
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are none (never, once started).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Runs a connection's task on the worker with the fewest open connections.
    pub fn spawn<F>(&self, conn: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_on(self.pick(), conn);
    }

    /// The worker with the fewest open connections (an index for [`Workers::spawn_on`]).
    pub fn pick(&self) -> usize {
        (0..self.workers.len()).min_by_key(|&i| self.workers[i].load.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Runs a connection's task on worker `i` (`0..len()`; counted there at once).
    pub fn spawn_on<F>(&self, i: usize, conn: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let w = &self.workers[i.min(self.workers.len() - 1)];
        let open = Open::new(w.load.clone());
        w.handle.spawn(async move {
            let _open = open;
            conn.await;
        });
    }

    /// Connections open per worker.
    pub fn loads(&self) -> Vec<usize> {
        self.workers.iter().map(|w| w.load.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(s) = w.stop.take() {
                let _ = s.send(());
            }
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// One open connection counted on its worker (counted when handed over, so that a burst of
/// accepts spreads before the first task runs).
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(load: Arc<AtomicUsize>) -> Open {
        load.fetch_add(1, Ordering::Relaxed);
        Open(load)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections spread over the workers by their open connections, each task runs on a
    /// worker thread (never the caller's) and a finished connection no longer counts.
    #[test]
    fn spreads_connections_and_counts_them() {
        let workers = Workers::start(3).unwrap();
        assert_eq!(workers.len(), 3);
        let (release, held) = tokio::sync::watch::channel(false);
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        for _ in 0..6 {
            let mut held = held.clone();
            let seen = seen_tx.clone();
            workers.spawn(async move {
                seen.send(current()).unwrap();
                let _ = held.wait_for(|r| *r).await;
            });
        }
        let mut on: Vec<usize> =
            (0..6).map(|_| seen_rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()).collect();
        on.sort_unstable();
        assert_eq!(on, vec![1, 1, 2, 2, 3, 3]);
        assert_eq!(workers.loads(), vec![2, 2, 2]);
        assert_eq!(current(), 0);
        release.send(true).unwrap();
        let t0 = std::time::Instant::now();
        while workers.loads() != vec![0, 0, 0] {
            assert!(t0.elapsed() < std::time::Duration::from_secs(5), "loads {:?}", workers.loads());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(workers); // joins the threads
    }
}
