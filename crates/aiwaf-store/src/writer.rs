//! The batched record writer: the only consumer of the bounded record channel.
//!
//! It takes whatever has queued up (at most [`MAX_BATCH`] records) and writes it in one
//! transaction, so under load batches grow by themselves and at rest a record is written at
//! once. A failed batch is retried with backoff and never dropped; meanwhile the channel fills
//! and the request path drops (and counts) new records instead of waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aiwaf_engine::Record;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Store;

/// Largest batch written in one transaction.
pub const MAX_BATCH: usize = 1024;

/// What the writer has done; shared with the server for reports and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Highest ban sequence number known to be in storage.
    pub persisted_ban_seq: AtomicU64,
    /// Records written.
    pub written: AtomicU64,
    /// Batches that failed (each is retried).
    pub failures: AtomicU64,
}

/// Spawns the writer on the current tokio runtime. It ends when every sender is dropped and
/// the channel is drained.
pub fn spawn(store: Store, mut rx: mpsc::Receiver<Record>, stats: Arc<WriterStats>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let mut backoff = Duration::from_millis(50);
            loop {
                match store.write_batch(&batch).await {
                    Ok(seq) => {
                        stats.persisted_ban_seq.fetch_max(seq, Ordering::SeqCst);
                        stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(error = %e, records = batch.len(), "Storage write failed; retrying.");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            batch.clear();
        }
    })
}
