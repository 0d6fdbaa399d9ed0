//! The batched record writer: the only consumer of the bounded record channel.
//!
//! It takes whatever has queued up (at most [`MAX_BATCH`] records) and writes it in one
//! transaction, so under load batches grow by themselves and at rest a record is written at
//! once. When the database is unreachable it keeps draining the channel (so the request path
//! never sees it fill) into a local queue: bans are kept (up to [`MAX_QUEUED_BANS`]), other
//! records up to [`MAX_QUEUED_OTHER`] (the oldest dropped and counted), and everything queued
//! is written on reconnect, retried with backoff.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aiwaf_engine::Record;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Store;

/// Largest batch written in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Bans kept while storage is down.
pub const MAX_QUEUED_BANS: usize = 100_000;
/// Other records kept while storage is down.
pub const MAX_QUEUED_OTHER: usize = 50_000;

/// What the writer has done; shared with the server for reports and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Highest ban sequence number known to be in storage.
    pub persisted_ban_seq: AtomicU64,
    /// Records written.
    pub written: AtomicU64,
    /// Batches that failed (each is retried).
    pub failures: AtomicU64,
    /// Records dropped from the outage queue (never bans unless over their own cap).
    pub dropped: AtomicU64,
    /// Records the database refused outright (bad data): dropped so they never block the rest.
    pub poisoned: AtomicU64,
    /// Records waiting to be written.
    pub queued: AtomicU64,
    /// Whether the last write failed.
    pub failing: AtomicBool,
    /// Whether a batch is being written now (taken from the channel, not yet in storage).
    pub writing: AtomicBool,
    /// Lists reloads that read everything (start, other lists changed, periodic resync).
    pub full_reloads: AtomicU64,
    /// Lists reloads that applied only the bans changed since the last one.
    pub incremental_reloads: AtomicU64,
}

struct Queue {
    bans: VecDeque<Record>,
    other: VecDeque<Record>,
}

impl Queue {
    fn push(&mut self, r: Record, stats: &WriterStats) {
        let (q, cap) = match r {
            Record::Ban(_) => (&mut self.bans, MAX_QUEUED_BANS),
            _ => (&mut self.other, MAX_QUEUED_OTHER),
        };
        if q.len() >= cap {
            q.pop_front();
            stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(r);
    }

    fn len(&self) -> usize {
        self.bans.len() + self.other.len()
    }

    /// Up to `MAX_BATCH` records, bans first.
    fn batch(&mut self) -> Vec<Record> {
        let mut b = Vec::with_capacity(MAX_BATCH.min(self.len()));
        while b.len() < MAX_BATCH {
            match self.bans.pop_front().or_else(|| self.other.pop_front()) {
                Some(r) => b.push(r),
                None => break,
            }
        }
        b
    }

    /// Puts a failed batch back in front, in order.
    fn restore(&mut self, batch: Vec<Record>) {
        for r in batch.into_iter().rev() {
            match r {
                Record::Ban(_) => self.bans.push_front(r),
                _ => self.other.push_front(r),
            }
        }
    }
}

/// Writes `batch` one record per transaction; a record the database refuses is dropped and
/// counted. Fails (for a retry of what is left) only when the database becomes unreachable.
/// `done` counts the records handled before a failure, so only the rest is retried.
async fn write_singly(store: &Store, batch: &[Record], stats: &WriterStats, done: &mut usize) -> crate::Result<u64> {
    let mut max_seq = 0;
    for r in batch {
        match store.write_batch(std::slice::from_ref(r)).await {
            Ok(seq) => max_seq = max_seq.max(seq),
            Err(e) if e.is_data_error() => {
                let n = stats.poisoned.fetch_add(1, Ordering::Relaxed) + 1;
                if let Record::Ban(b) = r {
                    // Still counts as handled, so the server stops holding it as pending.
                    max_seq = max_seq.max(b.seq);
                }
                if n.is_power_of_two() {
                    tracing::error!(error = %e, refused = n, "Storage refused a record; dropped it.");
                }
            }
            Err(e) => return Err(e),
        }
        *done += 1;
    }
    Ok(max_seq)
}

/// Spawns the writer on the current tokio runtime. It ends when every sender is dropped and
/// the queue is written (or, with storage down, after a last try).
pub fn spawn(store: Store, rx: mpsc::Receiver<Record>, stats: Arc<WriterStats>) -> JoinHandle<()> {
    spawn_with_audit(store, rx, stats, None)
}

/// [`spawn`], also appending every block event to `audit` as it arrives.
pub fn spawn_with_audit(
    store: Store,
    mut rx: mpsc::Receiver<Record>,
    stats: Arc<WriterStats>,
    mut audit: Option<crate::audit::AuditLog>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        fn audit_write(audit: &mut Option<crate::audit::AuditLog>, r: &Record) {
            if let (Some(a), Record::Event(e)) = (audit, r)
                && let Err(err) = a.write(e)
            {
                tracing::warn!(error = %err, "Audit log write failed.");
            }
        }
        let mut q = Queue { bans: VecDeque::new(), other: VecDeque::new() };
        let mut closed = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            if q.len() == 0 {
                stats.writing.store(false, Ordering::SeqCst);
                match rx.recv().await {
                    Some(r) => {
                        stats.writing.store(true, Ordering::SeqCst);
                        audit_write(&mut audit, &r);
                        q.push(r, &stats)
                    }
                    None => break,
                }
            }
            while let Ok(r) = rx.try_recv() {
                audit_write(&mut audit, &r);
                q.push(r, &stats);
            }
            if let Some(a) = &mut audit {
                let _ = a.flush();
            }
            let mut batch = q.batch();
            stats.queued.store(q.len() as u64, Ordering::Relaxed);
            let mut result = store.write_batch(&batch).await;
            if let Err(e) = &result
                && e.is_data_error()
            {
                // One bad record must not hold the others back: write them one by one and drop
                // (and count) only what the database refuses.
                let mut done = 0;
                result = write_singly(&store, &batch, &stats, &mut done).await;
                if result.is_err() {
                    stats.written.fetch_add(done as u64, Ordering::Relaxed);
                    batch.drain(..done);
                }
            }
            match result {
                Ok(seq) => {
                    stats.persisted_ban_seq.fetch_max(seq, Ordering::SeqCst);
                    stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    if stats.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(queued = q.len(), "Storage reachable again; writing queued records.");
                    }
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    q.restore(batch);
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    if !stats.failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(error = %e, queued = q.len(), "Storage write failed; queueing records and retrying.");
                    }
                    if closed {
                        tracing::error!(
                            queued = q.len(),
                            "Shutting down with storage unreachable; queued records lost."
                        );
                        break;
                    }
                    // Keep draining the channel while waiting, so the request path never blocks.
                    let sleep = tokio::time::sleep(backoff);
                    tokio::pin!(sleep);
                    loop {
                        tokio::select! {
                            _ = &mut sleep => break,
                            r = rx.recv(), if !closed => match r {
                                Some(r) => {
                                    audit_write(&mut audit, &r);
                                    q.push(r, &stats)
                                }
                                None => closed = true,
                            },
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            if closed && q.len() == 0 {
                break;
            }
        }
        stats.queued.store(0, Ordering::Relaxed);
        stats.writing.store(false, Ordering::SeqCst);
    })
}
